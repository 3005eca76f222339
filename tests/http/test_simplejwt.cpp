// simplejwt (Django REST framework + SimpleJWT) at /auth: token, token/refresh, token/verify,
// register, getuser, with DRF's error shapes ({"field": [...]}, {"detail", "code"}).
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <cctype>
#include <set>

using namespace latch::test;

namespace {

constexpr std::int64_t kAccessTtl = 5 * 60; // SPEC: simplejwt 5 min
constexpr std::int64_t kRefreshTtl = 86400; // SPEC: simplejwt 1 day
const std::string kPassword = "password123";
const json kRequired = json::array({"This field is required."});
const json kTokenNotValid = {{"detail", "Token is invalid or expired"},
                             {"code", "token_not_valid"}};
const json kNoAccount = {{"detail", "No active account found with the given credentials"}};

struct Session {
  std::string username, access, refresh;
};

// A 200/201 answer carrying exactly {"refresh", "access"}.
Session take_pair(const Reply &r, const std::string &username) {
  REQUIRE(r.body.is_object());
  REQUIRE(keys(r.body) == std::set<std::string>{"refresh", "access"});
  return {username, r.body["access"].get<std::string>(), r.body["refresh"].get<std::string>()};
}

Session register_user(const LatchProcess &latch) {
  std::string username = unique("sj");
  Reply r = latch.post("/auth/register", {{"username", username}, {"password", kPassword}});
  REQUIRE(r.status == 201);
  return take_pair(r, username);
}

Session obtain_token(const LatchProcess &latch, const std::string &username) {
  Reply r = latch.post("/auth/token", {{"username", username}, {"password", kPassword}});
  REQUIRE(r.status == 200);
  return take_pair(r, username);
}

Reply refresh(const LatchProcess &latch, const std::string &token) {
  return latch.post("/auth/token/refresh", {{"refresh", token}});
}

Reply verify(const LatchProcess &latch, const std::string &token) {
  return latch.post("/auth/token/verify", {{"token", token}});
}

void check_claims(const std::string &token, const std::string &type, const std::string &username,
                  std::int64_t lifetime) {
  check_token_claims(token, type, username, std::nullopt, lifetime);
}

void check_pair(const Session &s) {
  check_claims(s.access, "access", s.username, kAccessTtl);
  check_claims(s.refresh, "refresh", s.username, kRefreshTtl);
  CHECK(jwt_payload(s.access)["sid"] == jwt_payload(s.refresh)["sid"]);
}

// SimpleJWT's answer for every bad, expired, revoked or wrong-type token.
void check_token_not_valid(const Reply &r) {
  CHECK(r.status == 401);
  CHECK(r.body == kTokenNotValid);
  CHECK(r.header("WWW-Authenticate") == "Bearer realm=\"api\"");
}

std::string tamper(std::string token) {
  token.back() = token.back() == 'A' ? 'B' : 'A';
  return token;
}

} // namespace

TEST_CASE("simplejwt register answers 201 with a refresh/access pair for the new user") {
  LatchProcess latch;
  Session s = register_user(latch);
  check_pair(s);
  CHECK(jwt_payload(s.access)["jti"] != jwt_payload(s.refresh)["jti"]);
  Reply me = latch.get("/auth/getuser", s.access);
  CHECK(me.status == 200);
  CHECK(me.body == json{{"username", s.username}});
}

TEST_CASE("simplejwt register takes an optional email, and refuses an invalid one") {
  LatchProcess latch;
  std::string username = unique("sjmail");
  Reply r = latch.post("/auth/register",
                       {{"username", username}, {"password", kPassword}, {"email", "no-at-sign"}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"email", {"Enter a valid email address."}}});

  r = latch.post(
      "/auth/register",
      {{"username", username}, {"password", kPassword}, {"email", username + "@Example.com"}});
  REQUIRE(r.status == 201);
  Session s = take_pair(r, username);
  CHECK(jwt_payload(s.access)["email"] == username + "@example.com");
  // The email makes the user able to sign in where sign-in is by email (picflux).
  CHECK(
      latch
          .post("/api/auth/signin", {{"email", username + "@example.com"}, {"password", kPassword}})
          .status == 200);
}

TEST_CASE("simplejwt register lists each missing, blank or wrong-type field") {
  LatchProcess latch;
  Reply r = latch.post("/auth/register", json::object());
  CHECK(r.status == 400);
  CHECK(r.body == json{{"username", kRequired}, {"password", kRequired}});

  r = latch.post("/auth/register", {{"password", kPassword}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"username", kRequired}});

  r = latch.post("/auth/register", {{"username", unique("sj")}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"password", kRequired}});

  r = latch.post("/auth/register", {{"username", "   "}, {"password", ""}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"username", {"This field may not be blank."}},
                       {"password", {"This field may not be blank."}}});

  r = latch.post("/auth/register", {{"username", 42}, {"password", json::array({kPassword})}});
  CHECK(r.status == 400);
  CHECK(r.body ==
        json{{"username", {"Not a valid string."}}, {"password", {"Not a valid string."}}});
}

TEST_CASE("simplejwt register refuses a password shorter than 8 characters") {
  LatchProcess latch;
  std::string username = unique("sj");
  Reply r = latch.post("/auth/register", {{"username", username}, {"password", "short7!"}});
  CHECK(r.status == 400);
  CHECK(r.body ==
        json{{"password", {"This password is too short. It must contain at least 8 characters."}}});
  // Nothing was created: the name is still free.
  CHECK(latch.post("/auth/register", {{"username", username}, {"password", kPassword}}).status ==
        201);
}

TEST_CASE("simplejwt register answers 409 User already exists for a taken username") {
  LatchProcess latch;
  Session s = register_user(latch);
  Reply r =
      latch.post("/auth/register", {{"username", s.username}, {"password", "other-password"}});
  CHECK(r.status == 409);
  CHECK(r.body == json{{"detail", "User already exists"}});

  std::string shouted = s.username;
  for (char &c : shouted)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  r = latch.post("/auth/register", {{"username", shouted}, {"password", kPassword}});
  CHECK(r.status == 409);
  CHECK(r.body == json{{"detail", "User already exists"}});
}

TEST_CASE("simplejwt token signs in by username and answers a new session's pair") {
  LatchProcess latch;
  Session registered = register_user(latch);
  Session s = obtain_token(latch, registered.username);
  check_pair(s);
  CHECK(jwt_payload(s.access)["user_id"] == jwt_payload(registered.access)["user_id"]);
  CHECK(jwt_payload(s.access)["sid"] != jwt_payload(registered.access)["sid"]);
}

TEST_CASE("simplejwt token refuses a wrong password or an unknown user with 401") {
  LatchProcess latch;
  Session s = register_user(latch);
  Reply r = latch.post("/auth/token", {{"username", s.username}, {"password", "wrong-password"}});
  CHECK(r.status == 401);
  CHECK(r.body == kNoAccount);

  r = latch.post("/auth/token", {{"username", unique("nobody")}, {"password", kPassword}});
  CHECK(r.status == 401);
  CHECK(r.body == kNoAccount);
}

TEST_CASE("simplejwt token lists each missing, blank or wrong-type field") {
  LatchProcess latch;
  Reply r = latch.post("/auth/token", json::object());
  CHECK(r.status == 400);
  CHECK(r.body == json{{"username", kRequired}, {"password", kRequired}});

  r = latch.post("/auth/token", {{"username", "someone"}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"password", kRequired}});

  r = latch.post("/auth/token", {{"username", ""}, {"password", kPassword}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"username", {"This field may not be blank."}}});

  r = latch.post("/auth/token", {{"username", json::object()}, {"password", 12345678}});
  CHECK(r.status == 400);
  CHECK(r.body ==
        json{{"username", {"Not a valid string."}}, {"password", {"Not a valid string."}}});
}

TEST_CASE("simplejwt accepts form-encoded and multipart bodies at every POST route") {
  LatchProcess latch;
  std::string username = unique("sjform");

  Reply r = latch.post_form("/auth/register", "username=" + username + "&password=" + kPassword);
  REQUIRE(r.status == 201);
  check_pair(take_pair(r, username));

  r = latch.post_multipart("/auth/token", {{"username", username}, {"password", kPassword}});
  REQUIRE(r.status == 200);
  Session s = take_pair(r, username);
  check_pair(s);

  r = latch.post_form("/auth/token", "username=" + username + "&password=" + kPassword);
  REQUIRE(r.status == 200);

  r = latch.post_form("/auth/token/refresh", "refresh=" + s.refresh);
  REQUIRE(r.status == 200);
  Session next = take_pair(r, username);

  r = latch.post_multipart("/auth/token/refresh", {{"refresh", next.refresh}});
  REQUIRE(r.status == 200);
  Session newest = take_pair(r, username);

  r = latch.post_form("/auth/token/verify", "token=" + newest.access);
  CHECK(r.status == 200);
  CHECK(r.body == json::object());
  r = latch.post_multipart("/auth/token/verify", {{"token", newest.refresh}});
  CHECK(r.status == 200);
  CHECK(r.body == json::object());

  r = latch.post_multipart("/auth/register",
                           {{"username", unique("sjmulti")}, {"password", kPassword}});
  CHECK(r.status == 201);

  // Missing fields are reported the same way whatever the body's encoding.
  r = latch.post_form("/auth/token", "username=" + username);
  CHECK(r.status == 400);
  CHECK(r.body == json{{"password", kRequired}});
  r = latch.post_multipart("/auth/register", {{"password", kPassword}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"username", kRequired}});
}

TEST_CASE("simplejwt refresh answers a new pair in the same session") {
  LatchProcess latch;
  Session s = register_user(latch);
  Reply r = refresh(latch, s.refresh);
  REQUIRE(r.status == 200);
  Session next = take_pair(r, s.username);
  check_pair(next);
  CHECK(next.refresh != s.refresh);
  CHECK(next.access != s.access);
  CHECK(jwt_payload(next.access)["sid"] == jwt_payload(s.access)["sid"]);
  CHECK(latch.get("/auth/getuser", next.access).status == 200);
}

TEST_CASE("simplejwt refresh rotates and a reused refresh token revokes the session") {
  LatchProcess latch;
  Session s = register_user(latch);
  Reply r = refresh(latch, s.refresh);
  REQUIRE(r.status == 200);
  Session second = take_pair(r, s.username);
  r = refresh(latch, second.refresh);
  REQUIRE(r.status == 200);
  Session newest = take_pair(r, s.username);

  // The already-rotated first token comes back: the whole session is revoked ...
  check_token_not_valid(refresh(latch, s.refresh));
  // ... including its newest refresh token and the access tokens issued in it.
  check_token_not_valid(refresh(latch, newest.refresh));
  check_token_not_valid(latch.get("/auth/getuser", newest.access));
  check_token_not_valid(verify(latch, newest.access));
  check_token_not_valid(verify(latch, newest.refresh));

  // Another session of the same user is untouched.
  Session other = obtain_token(latch, s.username);
  CHECK(refresh(latch, other.refresh).status == 200);
}

TEST_CASE("simplejwt refresh requires the refresh field and refuses access and bad tokens") {
  LatchProcess latch;
  Session s = register_user(latch);
  Reply r = latch.post("/auth/token/refresh", json::object());
  CHECK(r.status == 400);
  CHECK(r.body == json{{"refresh", kRequired}});

  r = latch.post("/auth/token/refresh", {{"refresh", 7}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"refresh", {"Not a valid string."}}});

  check_token_not_valid(refresh(latch, s.access));
  check_token_not_valid(refresh(latch, "garbage"));
  check_token_not_valid(refresh(latch, tamper(s.refresh)));
  // The refused attempts did not spend the real refresh token.
  CHECK(refresh(latch, s.refresh).status == 200);
}

TEST_CASE("simplejwt verify answers {} for either token type and 401 for bad tokens") {
  LatchProcess latch;
  Session s = register_user(latch);
  for (const std::string &token : {s.access, s.refresh}) {
    Reply r = verify(latch, token);
    CHECK(r.status == 200);
    CHECK(r.body == json::object());
  }

  Reply r = latch.post("/auth/token/verify", json::object());
  CHECK(r.status == 400);
  CHECK(r.body == json{{"token", kRequired}});
  r = latch.post("/auth/token/verify", {{"token", ""}});
  CHECK(r.status == 400);
  CHECK(r.body == json{{"token", {"This field may not be blank."}}});

  check_token_not_valid(verify(latch, "garbage"));
  check_token_not_valid(verify(latch, "a.b.c"));
  check_token_not_valid(verify(latch, tamper(s.access)));
}

TEST_CASE("simplejwt verify and getuser refuse an access token after logout") {
  // simplejwt has no logout of its own; any API's logout ends the session for every API.
  LatchProcess latch;
  Session s = register_user(latch);
  REQUIRE(latch.post_raw("/api/auth/logout", "", "application/json", s.access).status == 200);
  check_token_not_valid(latch.get("/auth/getuser", s.access));
  check_token_not_valid(verify(latch, s.access));
  check_token_not_valid(refresh(latch, s.refresh));
}

TEST_CASE("simplejwt getuser answers the caller's username") {
  LatchProcess latch;
  Session s = register_user(latch);
  Reply r = latch.get("/auth/getuser", s.access);
  CHECK(r.status == 200);
  CHECK(r.body == json{{"username", s.username}});

  // Any API's access token works here too.
  std::string name = unique("pfu");
  Reply up =
      latch.post("/api/auth/signup",
                 {{"email", name + "@example.com"}, {"username", name}, {"password", kPassword}});
  REQUIRE(up.status == 201);
  r = latch.get("/auth/getuser", up.body["access_token"].get<std::string>());
  CHECK(r.status == 200);
  CHECK(r.body == json{{"username", name}});
}

TEST_CASE("simplejwt getuser without credentials answers 401 with WWW-Authenticate") {
  LatchProcess latch;
  Reply r = latch.get("/auth/getuser");
  CHECK(r.status == 401);
  CHECK(r.body["detail"] == "Authentication credentials were not provided.");
  CHECK(r.header("WWW-Authenticate") == "Bearer realm=\"api\"");

  // A scheme other than Bearer is no credentials at all.
  r = latch.get("/auth/getuser", "", {{"Authorization", "Basic dXNlcjpwYXNz"}});
  CHECK(r.status == 401);
  CHECK(r.body["detail"] == "Authentication credentials were not provided.");
  CHECK(r.header("WWW-Authenticate") == "Bearer realm=\"api\"");
}

TEST_CASE("simplejwt getuser refuses a refresh token and garbage with token_not_valid") {
  LatchProcess latch;
  Session s = register_user(latch);
  check_token_not_valid(latch.get("/auth/getuser", s.refresh));
  check_token_not_valid(latch.get("/auth/getuser", "garbage"));
  check_token_not_valid(latch.get("/auth/getuser", tamper(s.access)));
}

TEST_CASE("simplejwt answers malformed JSON with 400 parse error, never 500") {
  LatchProcess latch;
  for (const char *path :
       {"/auth/token", "/auth/token/refresh", "/auth/token/verify", "/auth/register"}) {
    for (const std::string body : {"{bad json", "[1, 2]", "{\"username\": \"a\xff\"}"}) {
      INFO(path, " with ", body);
      Reply r = latch.post_raw(path, body, "application/json");
      CHECK(r.status == 400);
      REQUIRE(r.body.is_object());
      REQUIRE(r.body["detail"].is_string());
      CHECK(r.body["detail"].get<std::string>().rfind("JSON parse error", 0) == 0);
    }
  }
}

TEST_CASE("simplejwt answers a 100 KB body with 413 in DRF's detail shape") {
  LatchProcess latch;
  std::string big =
      json{{"username", "someone"}, {"password", std::string(100 * 1024, 'x')}}.dump();
  for (const char *path : {"/auth/token", "/auth/register", "/auth/token/refresh"}) {
    INFO("path: ", path);
    Reply r = latch.post_raw(path, big, "application/json");
    CHECK(r.status == 413);
    REQUIRE(r.body.is_object());
    CHECK(r.body["detail"] == "Request body too large.");
  }
  register_user(latch); // still serving
}

TEST_CASE("simplejwt rate-limits sign-in per client address with 429 and Retry-After") {
  LatchProcess latch({{}, {{"LATCH_RATE_LIMIT", "3"}}});
  json unknown = {{"username", unique("ghost")}, {"password", kPassword}};
  for (int i = 1; i <= 3; ++i) {
    INFO("attempt ", i);
    CHECK(latch.post("/auth/token", unknown).status == 401);
  }
  Reply r = latch.post("/auth/token", unknown);
  CHECK(r.status == 429);
  std::string retry = r.header("Retry-After");
  REQUIRE(!retry.empty());
  CHECK(std::stoi(retry) >= 1);
  CHECK(std::stoi(retry) <= 60);
  CHECK(r.body["detail"] == "Request was throttled. Expected available in " + retry + " seconds.");
  // register is throttled by the same per-address budget.
  CHECK(latch.post("/auth/register", {{"username", unique("late")}, {"password", kPassword}})
            .status == 429);
}

TEST_CASE(
    "simplejwt locks an account after too many failed sign-ins, even with the right password") {
  LatchProcess latch({{}, {{"LATCH_MAX_FAILED_LOGINS", "2"}}});
  Session s = register_user(latch);
  Session bystander = register_user(latch);
  json wrong = {{"username", s.username}, {"password", "wrong-password"}};
  CHECK(latch.post("/auth/token", wrong).status == 401);
  CHECK(latch.post("/auth/token", wrong).status == 401);

  Reply r = latch.post("/auth/token", {{"username", s.username}, {"password", kPassword}});
  CHECK(r.status == 429);
  REQUIRE(r.body.is_object());
  REQUIRE(r.body["detail"].is_string());
  CHECK(r.body["detail"].get<std::string>().rfind("Request was throttled. Expected available in ",
                                                  0) == 0);
  CHECK(!r.header("Retry-After").empty());

  CHECK(latch.post("/auth/token", {{"username", bystander.username}, {"password", kPassword}})
            .status == 200);
}
