// picflux (NestJS) at /api/auth: signup, signin, logout, refresh, with NestJS's error shape
// {"statusCode", "message", "error"} and class-validator's messages.
#include "support/latch_process.h"
#include "support/raw_client.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <set>

using namespace latch::test;

namespace {

constexpr std::int64_t kAccessTtl = 15 * 60;     // SPEC: picflux 15 min
constexpr std::int64_t kRefreshTtl = 14 * 86400; // SPEC: picflux 14 days
const json kUnauthorized = {{"statusCode", 401}, {"message", "Unauthorized"}};

struct Account {
  std::string username, email, password;
  json signup_body() const {
    return {{"email", email}, {"username", username}, {"password", password}};
  }
  json signin_body() const { return {{"email", email}, {"password", password}}; }
};

struct Session {
  Account account;
  std::string access, refresh;
};

Account new_account() {
  std::string name = unique("pf");
  return {name, name + "@example.com", "password123"};
}

// A 200/201 answer carrying exactly {"access_token", "refresh_token"}.
Session take_pair(const Reply &r, const Account &account) {
  REQUIRE(r.body.is_object());
  REQUIRE(keys(r.body) == std::set<std::string>{"access_token", "refresh_token"});
  return {account, r.body["access_token"].get<std::string>(),
          r.body["refresh_token"].get<std::string>()};
}

Session sign_up(const LatchProcess &latch) {
  Account account = new_account();
  Reply r = latch.post("/api/auth/signup", account.signup_body());
  REQUIRE(r.status == 201);
  return take_pair(r, account);
}

Session sign_in(const LatchProcess &latch, const Account &account) {
  Reply r = latch.post("/api/auth/signin", account.signin_body());
  REQUIRE(r.status == 200);
  return take_pair(r, account);
}

// The claims SPEC.md's "Tokens" section requires, with picflux's lifetimes.
void check_claims(const std::string &token, const std::string &type, const Account &account,
                  std::int64_t lifetime) {
  check_token_claims(token, type, account.username, account.email, lifetime);
}

void check_pair(const Session &s) {
  check_claims(s.access, "access", s.account, kAccessTtl);
  check_claims(s.refresh, "refresh", s.account, kRefreshTtl);
  CHECK(jwt_payload(s.access)["sid"] == jwt_payload(s.refresh)["sid"]);
}

// A NestJS validation error: 400 with class-validator's list of messages.
void check_validation(Reply r, const std::vector<std::string> &expected) {
  CHECK(r.status == 400);
  REQUIRE(r.body.is_object());
  CHECK(r.body["statusCode"] == 400);
  CHECK(r.body["error"] == "Bad Request");
  REQUIRE(r.body["message"].is_array());
  for (const auto &m : expected) {
    INFO("expected message: ", m, " in ", r.text);
    CHECK(std::find(r.body["message"].begin(), r.body["message"].end(), m) !=
          r.body["message"].end());
  }
}

void check_unauthorized(const Reply &r) {
  CHECK(r.status == 401);
  CHECK(r.body == kUnauthorized);
}

// Sends one request exactly as written on a fresh connection and answers the status code of
// the reply, or 0 if none came within 2 seconds.
int raw_request_status(int port, const std::string &request) {
  RawClient c(port);
  if (!c.connected() || !c.send(request)) return 0;
  c.read(1, std::chrono::seconds(2));
  const auto responses = c.responses();
  return responses.empty() ? 0 : responses.front().status;
}

} // namespace

TEST_CASE("picflux signup answers 201 with a token pair carrying the user and picflux lifetimes") {
  LatchProcess latch;
  Session s = sign_up(latch);
  check_pair(s);
  CHECK(jwt_payload(s.access)["jti"] != jwt_payload(s.refresh)["jti"]);

  // The new account is usable right away, from any API: the access token works at getuser.
  Reply me = latch.get("/auth/getuser", s.access);
  CHECK(me.status == 200);
  CHECK(me.body == json{{"username", s.account.username}});
}

TEST_CASE("picflux signup lists every missing field in class-validator's words") {
  LatchProcess latch;
  check_validation(
      latch.post("/api/auth/signup", json::object()),
      {"email should not be empty", "email must be an email", "username must be a string",
       "username must be longer than or equal to 4 characters", "password must be a string",
       "password must be longer than or equal to 8 characters"});
}

TEST_CASE("picflux signup enforces email format, username 4-30 and password 8-30") {
  LatchProcess latch;
  Account a = new_account();
  auto with = [&](const char *key, const json &value) {
    json body = a.signup_body();
    body[key] = value;
    return latch.post("/api/auth/signup", body);
  };
  check_validation(with("email", "not-an-email"), {"email must be an email"});
  check_validation(with("username", "abc"),
                   {"username must be longer than or equal to 4 characters"});
  check_validation(with("username", std::string(31, 'u')),
                   {"username must be shorter than or equal to 30 characters"});
  check_validation(with("password", "short7!"),
                   {"password must be longer than or equal to 8 characters"});
  check_validation(with("password", std::string(31, 'p')),
                   {"password must be shorter than or equal to 30 characters"});

  // The bounds themselves are allowed.
  std::string name = unique("edge");
  Account edge{std::string(30 - name.size(), 'e') + name, name + "@example.com",
               std::string(30, 'p')};
  REQUIRE(edge.username.size() == 30);
  CHECK(latch.post("/api/auth/signup", edge.signup_body()).status == 201);

  // None of the refused attempts created the account.
  CHECK(latch.post("/api/auth/signin", a.signin_body()).status == 401);
}

TEST_CASE("picflux signup refuses wrong-type fields with 400, never 500") {
  LatchProcess latch;
  check_validation(
      latch.post("/api/auth/signup",
                 {{"email", 12345}, {"username", json::array({"x"})}, {"password", true}}),
      {"email must be an email", "username must be a string", "password must be a string"});
  check_validation(latch.post("/api/auth/signup", {{"email", "a@example.com"},
                                                   {"username", json::object()},
                                                   {"password", 12345678}}),
                   {"username must be a string", "password must be a string"});
}

TEST_CASE("picflux signup answers 409 when the username or the email is already in use") {
  LatchProcess latch;
  Session first = sign_up(latch);
  const json conflict = {{"statusCode", 409},
                         {"message", "Username or email is already in use"},
                         {"error", "Conflict"}};

  Account same_name = new_account();
  same_name.username = first.account.username;
  Reply r = latch.post("/api/auth/signup", same_name.signup_body());
  CHECK(r.status == 409);
  CHECK(r.body == conflict);

  Account same_email = new_account();
  same_email.email = first.account.email;
  r = latch.post("/api/auth/signup", same_email.signup_body());
  CHECK(r.status == 409);
  CHECK(r.body == conflict);

  // Usernames are unique regardless of case; emails are stored lower-case.
  Account upper_name = new_account();
  upper_name.username = upper(first.account.username);
  r = latch.post("/api/auth/signup", upper_name.signup_body());
  CHECK(r.status == 409);
  CHECK(r.body == conflict);

  Account upper_email = new_account();
  upper_email.email = upper(first.account.email);
  r = latch.post("/api/auth/signup", upper_email.signup_body());
  CHECK(r.status == 409);
  CHECK(r.body == conflict);
}

TEST_CASE("picflux signin answers 200 with a new session's token pair") {
  LatchProcess latch;
  Session up = sign_up(latch);
  Session in = sign_in(latch, up.account);
  check_pair(in);
  CHECK(jwt_payload(in.access)["sub"] == jwt_payload(up.access)["sub"]);
  CHECK(jwt_payload(in.access)["sid"] != jwt_payload(up.access)["sid"]);

  // The email is matched without regard to case.
  Account shouting = up.account;
  shouting.email = upper(shouting.email);
  CHECK(latch.post("/api/auth/signin", shouting.signin_body()).status == 200);
}

TEST_CASE("picflux signin refuses a wrong password or an unknown email with 401") {
  LatchProcess latch;
  Session s = sign_up(latch);
  const json invalid = {
      {"statusCode", 401}, {"message", "Invalid credentials"}, {"error", "Unauthorized"}};

  Reply r =
      latch.post("/api/auth/signin", {{"email", s.account.email}, {"password", "wrong-password"}});
  CHECK(r.status == 401);
  CHECK(r.body == invalid);

  r = latch.post("/api/auth/signin",
                 {{"email", unique("nobody") + "@example.com"}, {"password", "password123"}});
  CHECK(r.status == 401);
  CHECK(r.body == invalid);

  // Sign-in is by email: the username in the email field is not a valid email.
  check_validation(
      latch.post("/api/auth/signin", {{"email", s.account.username}, {"password", "password123"}}),
      {"email must be an email"});
}

TEST_CASE("picflux signin validates missing and wrong-type fields with 400") {
  LatchProcess latch;
  check_validation(latch.post("/api/auth/signin", json::object()),
                   {"email should not be empty", "email must be an email",
                    "password must be a string", "password should not be empty"});
  check_validation(latch.post("/api/auth/signin", {{"email", "a@example.com"}, {"password", 42}}),
                   {"password must be a string"});
  check_validation(latch.post("/api/auth/signin", {{"email", true}, {"password", "password123"}}),
                   {"email must be an email"});
}

TEST_CASE("picflux signup and signin accept form-encoded bodies") {
  LatchProcess latch;
  Account a = new_account();
  std::string email = a.username + "%40example.com";
  Reply up = latch.post_form("/api/auth/signup", "email=" + email + "&username=" + a.username +
                                                     "&password=password123");
  REQUIRE(up.status == 201);
  check_pair(take_pair(up, a));

  Reply in = latch.post_form("/api/auth/signin", "email=" + email + "&password=password123");
  REQUIRE(in.status == 200);
  check_pair(take_pair(in, a));
}

TEST_CASE("picflux refresh takes the refresh token as Bearer and answers a new pair") {
  LatchProcess latch;
  Session s = sign_up(latch);
  Reply r = latch.post_raw("/api/auth/refresh", "", "application/json", s.refresh);
  REQUIRE(r.status == 200);
  Session next = take_pair(r, s.account);
  check_pair(next);
  CHECK(next.refresh != s.refresh);
  CHECK(next.access != s.access);
  CHECK(jwt_payload(next.refresh)["sid"] == jwt_payload(s.refresh)["sid"]);

  // The new access token is a working access token.
  CHECK(latch.get("/auth/getuser", next.access).status == 200);
}

TEST_CASE("picflux refresh rotates and a reused refresh token revokes the whole session") {
  LatchProcess latch;
  Session s = sign_up(latch);
  Reply r = latch.post_raw("/api/auth/refresh", "", "application/json", s.refresh);
  REQUIRE(r.status == 200);
  Session second = take_pair(r, s.account);
  r = latch.post_raw("/api/auth/refresh", "", "application/json", second.refresh);
  REQUIRE(r.status == 200);
  Session newest = take_pair(r, s.account);

  // The first refresh token was already rotated: presenting it again is theft.
  check_unauthorized(latch.post_raw("/api/auth/refresh", "", "application/json", s.refresh));
  // ... so the session is gone: its newest refresh token and its access tokens stop working.
  check_unauthorized(latch.post_raw("/api/auth/refresh", "", "application/json", newest.refresh));
  CHECK(latch.get("/auth/getuser", newest.access).status == 401);
  check_unauthorized(latch.post_raw("/api/auth/logout", "", "application/json", newest.access));

  // Other sessions of the same user are not affected.
  Session other = sign_in(latch, s.account);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", other.refresh).status == 200);
}

TEST_CASE("picflux refresh refuses a missing, garbage or access token with 401 Unauthorized") {
  LatchProcess latch;
  Session s = sign_up(latch);
  check_unauthorized(latch.post_raw("/api/auth/refresh", "", "application/json"));
  check_unauthorized(latch.post_raw("/api/auth/refresh", "", "application/json", "garbage"));
  check_unauthorized(latch.post_raw("/api/auth/refresh", "", "application/json", s.access));
  std::string tampered = s.refresh;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  check_unauthorized(latch.post_raw("/api/auth/refresh", "", "application/json", tampered));
  // None of the refused attempts spent the real refresh token.
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", s.refresh).status == 200);
}

TEST_CASE("picflux logout answers 200 with an empty body and ends the session") {
  LatchProcess latch;
  Session s = sign_up(latch);
  Reply refreshed = latch.post_raw("/api/auth/refresh", "", "application/json", s.refresh);
  REQUIRE(refreshed.status == 200);
  Session current = take_pair(refreshed, s.account);
  Session elsewhere = sign_in(latch, s.account);

  // The documented email/password body is accepted and ignored; the token authenticates.
  Reply r = latch.post_raw("/api/auth/logout", s.account.signin_body().dump(), "application/json",
                           current.access);
  CHECK(r.status == 200);
  CHECK(r.text.empty());

  // The access token is blacklisted everywhere ...
  CHECK(latch.get("/auth/getuser", current.access).status == 401);
  CHECK(latch.get("/api/v1/authorized/me", current.access).status == 401);
  check_unauthorized(latch.post_raw("/api/auth/logout", "", "application/json", current.access));
  // ... and the session's refresh token stops working.
  check_unauthorized(latch.post_raw("/api/auth/refresh", "", "application/json", current.refresh));

  // A different session of the same user lives on.
  CHECK(latch.get("/auth/getuser", elsewhere.access).status == 200);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", elsewhere.refresh).status ==
        200);
}

TEST_CASE("picflux logout refuses a missing, garbage or refresh token with 401 Unauthorized") {
  LatchProcess latch;
  Session s = sign_up(latch);
  check_unauthorized(latch.post_raw("/api/auth/logout", "", "application/json"));
  check_unauthorized(latch.post_raw("/api/auth/logout", "", "application/json", "not.a.jwt"));
  check_unauthorized(latch.post_raw("/api/auth/logout", "", "application/json", s.refresh));
  // The refused attempts ended nothing.
  CHECK(latch.get("/auth/getuser", s.access).status == 200);
}

TEST_CASE("picflux logout and refresh work for a POST that has no body and no Content-Length") {
  // RFC 9112 6.3: a request with neither Content-Length nor Transfer-Encoding has an empty body,
  // which is how `curl -X POST -H "Authorization: Bearer ..."` sends these body-less routes.
  LatchProcess latch;
  Session s = sign_up(latch);
  auto bodyless = [](const std::string &path, const std::string &token) {
    return "POST " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
           "\r\nConnection: close\r\n\r\n";
  };
  CHECK(raw_request_status(latch.port(), bodyless("/api/auth/refresh", s.refresh)) == 200);
  CHECK(raw_request_status(latch.port(), bodyless("/api/auth/logout", s.access)) == 200);
}

TEST_CASE("picflux answers malformed JSON and non-object bodies with 400 in NestJS's shape") {
  LatchProcess latch;
  for (const std::string body : {"{bad json", "[]", "\"a string\"", "{\"email\": \"a\xff\"}"}) {
    INFO("body: ", body);
    for (const char *path : {"/api/auth/signup", "/api/auth/signin"}) {
      Reply r = latch.post_raw(path, body, "application/json");
      CHECK(r.status == 400);
      REQUIRE(r.body.is_object());
      CHECK(r.body["statusCode"] == 400);
      CHECK(r.body["error"] == "Bad Request");
      CHECK(r.body.contains("message"));
    }
  }
}

TEST_CASE("picflux answers a 100 KB body with 413 in NestJS's shape") {
  LatchProcess latch;
  std::string big =
      json{{"email", "a@example.com"}, {"password", std::string(100 * 1024, 'x')}}.dump();
  const json too_large = {
      {"statusCode", 413}, {"message", "request entity too large"}, {"error", "Payload Too Large"}};
  for (const char *path : {"/api/auth/signup", "/api/auth/signin"}) {
    INFO("path: ", path);
    Reply r = latch.post_raw(path, big, "application/json");
    CHECK(r.status == 413);
    CHECK(r.body == too_large);
  }
  // The server is still fine afterwards.
  sign_up(latch);
}

TEST_CASE("picflux rate-limits sign-in per client address with 429 and Retry-After") {
  LatchProcess latch({{}, {{"LATCH_RATE_LIMIT", "3"}}});
  json unknown = {{"email", unique("ghost") + "@example.com"}, {"password", "password123"}};
  for (int i = 1; i <= 3; ++i) {
    INFO("attempt ", i);
    CHECK(latch.post("/api/auth/signin", unknown).status == 401);
  }
  Reply r = latch.post("/api/auth/signin", unknown);
  CHECK(r.status == 429);
  CHECK(r.body == json{{"statusCode", 429}, {"message", "ThrottlerException: Too Many Requests"}});
  std::string retry = r.header("Retry-After");
  REQUIRE(!retry.empty());
  CHECK(std::stoi(retry) >= 1);
  CHECK(std::stoi(retry) <= 60);
  // Sign-up shares the per-address budget.
  CHECK(latch.post("/api/auth/signup", new_account().signup_body()).status == 429);
}

TEST_CASE("picflux locks an account after too many failed sign-ins, even with the right password") {
  LatchProcess latch({{}, {{"LATCH_MAX_FAILED_LOGINS", "2"}}});
  Session s = sign_up(latch);
  Session bystander = sign_up(latch);
  json wrong = {{"email", s.account.email}, {"password", "wrong-password"}};
  CHECK(latch.post("/api/auth/signin", wrong).status == 401);
  CHECK(latch.post("/api/auth/signin", wrong).status == 401);

  Reply r = latch.post("/api/auth/signin", s.account.signin_body());
  CHECK(r.status == 429);
  CHECK(r.body == json{{"statusCode", 429}, {"message", "ThrottlerException: Too Many Requests"}});
  CHECK(!r.header("Retry-After").empty());

  // The lockout is per account.
  CHECK(latch.post("/api/auth/signin", bystander.account.signin_body()).status == 200);
}
