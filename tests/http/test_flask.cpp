// flask (Flask + flask-jwt-extended) at /auth: signup, login, refresh, forget-password,
// reset-password, logout. Bodies {"message": ...}; token problems {"msg": ...} with 401.
#include "support/latch_process.h"

#include "auth/secure.h"

#include <doctest/doctest.h>

#include <chrono>
#include <set>

using namespace latch::test;

namespace {

constexpr std::int64_t kAccessTtl = 3600;        // SPEC: flask 1 h
constexpr std::int64_t kRefreshTtl = 30 * 86400; // SPEC: flask 30 days
const std::string kPassword = "password123";
const std::string kSecret = "flask-tests-secret-0123456789abcdef-0123456789";

struct Account {
  std::string username, email, password;
  json signup_body() const {
    return {{"username", username}, {"email", email}, {"password", password}};
  }
  json login_body() const { return {{"username", username}, {"password", password}}; }
};

struct Pair {
  std::string access, refresh;
};

json message(const std::string &text) {
  return {{"message", text}};
}
json msg(const std::string &text) {
  return {{"msg", text}};
}

Account new_account() {
  std::string name = unique("fl");
  return {name, name + "@example.com", kPassword};
}

Account sign_up(const LatchProcess &latch) {
  Account a = new_account();
  Reply r = latch.post("/auth/signup", a.signup_body());
  REQUIRE(r.status == 201);
  CHECK(r.body == message("User created."));
  return a;
}

Pair log_in(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/auth/login", a.login_body());
  REQUIRE(r.status == 200);
  REQUIRE(r.body.is_object());
  REQUIRE(keys(r.body) == std::set<std::string>{"access_token", "refresh_token"});
  return {r.body["access_token"].get<std::string>(), r.body["refresh_token"].get<std::string>()};
}

Reply refresh(const LatchProcess &latch, const std::string &token) {
  return latch.post_raw("/auth/refresh", "", "application/json", token);
}

Reply logout(const LatchProcess &latch, const std::string &token) {
  return latch.post_raw("/auth/logout", "", "application/json", token);
}

Reply forget(const LatchProcess &latch, const std::string &email) {
  return latch.post("/auth/forget-password", {{"email", email}});
}

Reply reset(const LatchProcess &latch, const std::string &token, const std::string &password) {
  return latch.post("/auth/reset-password", {{"reset_token", token}, {"new_password", password}});
}

void check_claims(const std::string &token, const std::string &type, const Account &a,
                  std::int64_t lifetime) {
  check_token_claims(token, type, a.username, a.email, lifetime);
}

void check_401(const Reply &r, const json &body) {
  CHECK(r.status == 401);
  CHECK(r.body == body);
}

// The same token with its times moved an hour or more into the past, signed with kSecret: a
// correctly signed token that has expired.
std::string expired_copy(const std::string &token) {
  json c = jwt_payload(token);
  std::int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
  std::int64_t life = c["exp"].get<std::int64_t>() - c["iat"].get<std::int64_t>();
  c["exp"] = now - 3600;
  c["iat"] = now - 3600 - life;
  std::string signing_input =
      token.substr(0, token.find('.')) + "." + latch::secure::base64url_encode(c.dump());
  return signing_input + "." +
         latch::secure::base64url_encode(latch::secure::hmac_sha256(kSecret, signing_input));
}

} // namespace

TEST_CASE("flask signup answers 201 User created. and login answers a token pair") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Pair p = log_in(latch, a);
  check_claims(p.access, "access", a, kAccessTtl);
  check_claims(p.refresh, "refresh", a, kRefreshTtl);
  CHECK(jwt_payload(p.access)["sid"] == jwt_payload(p.refresh)["sid"]);
  CHECK(jwt_payload(p.access)["jti"] != jwt_payload(p.refresh)["jti"]);

  Reply me = latch.get("/auth/getuser", p.access);
  CHECK(me.status == 200);
  CHECK(me.body == json{{"username", a.username}});
}

TEST_CASE(
    "flask signup answers 400 Missing required fields. for missing, blank or wrong-type fields") {
  LatchProcess latch;
  Account a = new_account();
  std::vector<json> bodies = {
      json::object(),
      {{"username", a.username}, {"email", a.email}},
      {{"username", a.username}, {"password", a.password}},
      {{"email", a.email}, {"password", a.password}},
      {{"username", ""}, {"email", a.email}, {"password", a.password}},
      {{"username", a.username}, {"email", 42}, {"password", a.password}},
      {{"username", json::array()}, {"email", a.email}, {"password", true}}};
  for (const json &body : bodies) {
    INFO("body: ", body.dump());
    Reply r = latch.post("/auth/signup", body);
    CHECK(r.status == 400);
    CHECK(r.body == message("Missing required fields."));
  }
  // None of them created the user.
  CHECK(latch.post("/auth/login", a.login_body()).status == 401);
}

TEST_CASE("flask signup answers 409 User already exists. for a taken username or email") {
  LatchProcess latch;
  Account first = sign_up(latch);

  Account same_name = new_account();
  same_name.username = first.username;
  Reply r = latch.post("/auth/signup", same_name.signup_body());
  CHECK(r.status == 409);
  CHECK(r.body == message("User already exists."));

  Account same_email = new_account();
  same_email.email = first.email;
  r = latch.post("/auth/signup", same_email.signup_body());
  CHECK(r.status == 409);
  CHECK(r.body == message("User already exists."));
}

TEST_CASE("flask signup refuses a password shorter than 8 characters and an invalid email") {
  LatchProcess latch;
  Account a = new_account();
  a.password = "short7!";
  Reply r = latch.post("/auth/signup", a.signup_body());
  CHECK(r.status == 400);
  CHECK(r.body == message("Password must be at least 8 characters."));

  Account b = new_account();
  b.email = "not-an-email";
  r = latch.post("/auth/signup", b.signup_body());
  CHECK(r.status == 400);
  REQUIRE(r.body.is_object());
  CHECK(r.body["message"].is_string());
  CHECK(keys(r.body) == std::set<std::string>{"message"});
}

TEST_CASE("flask login answers 400 Missing credentials. and 401 Invalid credentials.") {
  LatchProcess latch;
  Account a = sign_up(latch);
  for (const json &body :
       {json::object(), json{{"username", a.username}}, json{{"password", a.password}},
        json{{"username", a.username}, {"password", ""}},
        json{{"username", 7}, {"password", a.password}}}) {
    INFO("body: ", body.dump());
    Reply r = latch.post("/auth/login", body);
    CHECK(r.status == 400);
    CHECK(r.body == message("Missing credentials."));
  }

  Reply r = latch.post("/auth/login", {{"username", a.username}, {"password", "wrong-password"}});
  CHECK(r.status == 401);
  CHECK(r.body == message("Invalid credentials."));

  r = latch.post("/auth/login", {{"username", unique("nobody")}, {"password", kPassword}});
  CHECK(r.status == 401);
  CHECK(r.body == message("Invalid credentials."));

  // Sign-in is by username, not by email.
  r = latch.post("/auth/login", {{"username", a.email}, {"password", kPassword}});
  CHECK(r.status == 401);
  CHECK(r.body == message("Invalid credentials."));
}

TEST_CASE("flask refresh answers only an access token and the refresh token keeps working") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Pair p = log_in(latch, a);
  for (int i = 1; i <= 3; ++i) {
    INFO("refresh ", i);
    Reply r = refresh(latch, p.refresh);
    REQUIRE(r.status == 200);
    REQUIRE(r.body.is_object());
    CHECK(keys(r.body) == std::set<std::string>{"access_token"});
    std::string access = r.body["access_token"].get<std::string>();
    check_claims(access, "access", a, kAccessTtl);
    CHECK(access != p.access);
    CHECK(jwt_payload(access)["sid"] == jwt_payload(p.refresh)["sid"]);
    CHECK(latch.get("/auth/getuser", access).status == 200);
  }
  // The earlier access token is still valid as well.
  CHECK(latch.get("/auth/getuser", p.access).status == 200);
}

TEST_CASE("flask refresh refuses missing, access, garbage and expired tokens in "
          "flask-jwt-extended's words") {
  LatchProcess latch({{}, {{"LATCH_JWT_SECRET", kSecret}}});
  Account a = sign_up(latch);
  Pair p = log_in(latch, a);
  check_401(latch.post_raw("/auth/refresh", "", "application/json"),
            msg("Missing Authorization Header"));
  check_401(refresh(latch, p.access), msg("Only refresh tokens are allowed"));
  check_401(refresh(latch, "garbage"), msg("Not enough segments"));
  Reply r = refresh(latch, "a.b.c");
  CHECK(r.status == 401);
  REQUIRE(r.body.is_object());
  CHECK(keys(r.body) == std::set<std::string>{"msg"});
  check_401(refresh(latch, expired_copy(p.refresh)), msg("Token has expired"));
  // Still usable after all the refused attempts.
  CHECK(refresh(latch, p.refresh).status == 200);
}

TEST_CASE("flask logout answers Logged out successfully. and ends the session") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Pair p = log_in(latch, a);
  Pair elsewhere = log_in(latch, a);
  Reply refreshed = refresh(latch, p.refresh);
  REQUIRE(refreshed.status == 200);
  std::string sibling = refreshed.body["access_token"].get<std::string>();

  Reply r = logout(latch, p.access);
  CHECK(r.status == 200);
  CHECK(r.body == message("Logged out successfully."));

  // The access token is refused afterwards, here and at other APIs ...
  check_401(logout(latch, p.access), msg("Token has been revoked"));
  CHECK(latch.get("/auth/getuser", p.access).status == 401);
  CHECK(latch.get("/api/v1/authorized/me", p.access).status == 401);
  // ... and so are the session's refresh token and the other access token issued in it.
  check_401(refresh(latch, p.refresh), msg("Token has been revoked"));
  CHECK(latch.get("/auth/getuser", sibling).status == 401);

  // Another session of the same user is untouched.
  CHECK(latch.get("/auth/getuser", elsewhere.access).status == 200);
  CHECK(refresh(latch, elsewhere.refresh).status == 200);
}

TEST_CASE("flask logout refuses missing, refresh, garbage and expired tokens") {
  LatchProcess latch({{}, {{"LATCH_JWT_SECRET", kSecret}}});
  Account a = sign_up(latch);
  Pair p = log_in(latch, a);
  check_401(latch.post_raw("/auth/logout", "", "application/json"),
            msg("Missing Authorization Header"));
  check_401(logout(latch, p.refresh), msg("Only non-refresh tokens are allowed"));
  check_401(logout(latch, "garbage"), msg("Not enough segments"));
  check_401(logout(latch, expired_copy(p.access)), msg("Token has expired"));
  // None of them ended the session.
  CHECK(latch.get("/auth/getuser", p.access).status == 200);
  CHECK(refresh(latch, p.refresh).status == 200);
}

TEST_CASE(
    "flask forget-password with --reset-token-in-response returns a reset token that works once") {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  Account a = sign_up(latch);
  Pair before = log_in(latch, a);

  Reply r = forget(latch, a.email);
  REQUIRE(r.status == 200);
  REQUIRE(r.body.is_object());
  REQUIRE(keys(r.body) == std::set<std::string>{"reset_token"});
  std::string token = r.body["reset_token"].get<std::string>();
  CHECK(token.size() >= 22); // >= 128 bits of randomness

  r = reset(latch, token, "new-password-456");
  CHECK(r.status == 200);
  CHECK(r.body == message("Password reset successful."));

  r = reset(latch, token, "another-password-789");
  CHECK(r.status == 401);
  CHECK(r.body == message("Invalid reset token."));

  // The old password stops working and the new one works.
  CHECK(latch.post("/auth/login", a.login_body()).status == 401);
  Account renewed = a;
  renewed.password = "new-password-456";
  log_in(latch, renewed);

  // The reset ended the sessions that existed before it.
  CHECK(latch.get("/auth/getuser", before.access).status == 401);
  check_401(logout(latch, before.access), msg("Token has been revoked"));
  check_401(refresh(latch, before.refresh), msg("Token has been revoked"));
}

TEST_CASE("flask forget-password matches the email without regard to case") {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  Account a = sign_up(latch);
  std::string shouted = a.email;
  for (char &c : shouted)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  Reply r = forget(latch, shouted);
  CHECK(r.status == 200);
  CHECK(r.body.contains("reset_token"));
}

TEST_CASE("flask forget-password answers Email required. and No user with that email.") {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  for (const json &body : {json::object(), json{{"email", ""}}, json{{"email", 12}}}) {
    INFO("body: ", body.dump());
    Reply r = latch.post("/auth/forget-password", body);
    CHECK(r.status == 400);
    CHECK(r.body == message("Email required."));
  }
  Reply r = forget(latch, unique("nobody") + "@example.com");
  CHECK(r.status == 404);
  CHECK(r.body == message("No user with that email."));
}

TEST_CASE(
    "flask reset-password answers Token and new password required. and Invalid reset token.") {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  for (const json &body :
       {json::object(), json{{"reset_token", "abc"}}, json{{"new_password", "new-password-456"}},
        json{{"reset_token", ""}, {"new_password", "new-password-456"}},
        json{{"reset_token", 5}, {"new_password", "new-password-456"}}}) {
    INFO("body: ", body.dump());
    Reply r = latch.post("/auth/reset-password", body);
    CHECK(r.status == 400);
    CHECK(r.body == message("Token and new password required."));
  }
  Reply r = reset(latch, "no-such-token-0123456789abcdef", "new-password-456");
  CHECK(r.status == 401);
  CHECK(r.body == message("Invalid reset token."));

  // A too-short new password is refused and leaves the token usable.
  Account a = sign_up(latch);
  Reply f = forget(latch, a.email);
  REQUIRE(f.status == 200);
  std::string token = f.body["reset_token"].get<std::string>();
  r = reset(latch, token, "short7!");
  CHECK(r.status == 400);
  CHECK(r.body == message("Password must be at least 8 characters."));
  CHECK(reset(latch, token, "new-password-456").status == 200);
}

TEST_CASE("flask forget-password without the flag answers a message and mails a working link") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = sign_up(latch);
  Pair before = log_in(latch, a);

  Reply r = forget(latch, a.email);
  CHECK(r.status == 200);
  REQUIRE(r.body.is_object());
  CHECK(keys(r.body) == std::set<std::string>{"message"});
  CHECK(r.body["message"].is_string());
  CHECK(!r.body.contains("reset_token"));

  std::string mail = sink.wait_for_message(1);
  REQUIRE(!mail.empty());
  CHECK(mail.find("X-Rcpt-To: " + a.email) != std::string::npos);
  CHECK(mail.find("/reset-password?token=") != std::string::npos);
  std::string token = token_from_link(mail);
  REQUIRE(!token.empty());

  r = reset(latch, token, "mailed-password-789");
  CHECK(r.status == 200);
  CHECK(r.body == message("Password reset successful."));
  Account renewed = a;
  renewed.password = "mailed-password-789";
  log_in(latch, renewed);
  CHECK(latch.post("/auth/login", a.login_body()).status == 401);
  CHECK(latch.get("/auth/getuser", before.access).status == 401);
}

TEST_CASE("flask answers malformed JSON with 400 and a 100 KB body with 413 in its message shape") {
  LatchProcess latch;
  for (const char *path :
       {"/auth/signup", "/auth/login", "/auth/forget-password", "/auth/reset-password"}) {
    for (const std::string body : {"{bad json", "[]", "{\"username\": \"a\xff\"}"}) {
      INFO(path, " with ", body);
      Reply r = latch.post_raw(path, body, "application/json");
      CHECK(r.status == 400);
      REQUIRE(r.body.is_object());
      CHECK(keys(r.body) == std::set<std::string>{"message"});
      CHECK(r.body["message"].is_string());
    }
    INFO(path, " with 100 KB");
    std::string big = json{{"username", "x"}, {"password", std::string(100 * 1024, 'x')}}.dump();
    Reply r = latch.post_raw(path, big, "application/json");
    CHECK(r.status == 413);
    CHECK(r.body == message("Request body too large."));
  }
  sign_up(latch); // still serving
}

TEST_CASE("flask rate-limits sign-in per client address with 429 and Retry-After") {
  LatchProcess latch({{}, {{"LATCH_RATE_LIMIT", "3"}}});
  json unknown = {{"username", unique("ghost")}, {"password", kPassword}};
  for (int i = 1; i <= 3; ++i) {
    INFO("attempt ", i);
    CHECK(latch.post("/auth/login", unknown).status == 401);
  }
  Reply r = latch.post("/auth/login", unknown);
  CHECK(r.status == 429);
  std::string retry = r.header("Retry-After");
  REQUIRE(!retry.empty());
  CHECK(std::stoi(retry) >= 1);
  CHECK(std::stoi(retry) <= 60);
  CHECK(r.body == message("Too many requests. Try again in " + retry + " seconds."));
  // Sign-up and the reset routes share the per-address budget.
  CHECK(latch.post("/auth/signup", new_account().signup_body()).status == 429);
  CHECK(forget(latch, "a@example.com").status == 429);
}

TEST_CASE("flask locks an account after too many failed logins, even with the right password") {
  LatchProcess latch({{}, {{"LATCH_MAX_FAILED_LOGINS", "2"}}});
  Account a = sign_up(latch);
  Account bystander = sign_up(latch);
  json wrong = {{"username", a.username}, {"password", "wrong-password"}};
  CHECK(latch.post("/auth/login", wrong).status == 401);
  CHECK(latch.post("/auth/login", wrong).status == 401);

  Reply r = latch.post("/auth/login", a.login_body());
  CHECK(r.status == 429);
  REQUIRE(r.body.is_object());
  REQUIRE(r.body["message"].is_string());
  CHECK(r.body["message"].get<std::string>().rfind("Too many requests. Try again in ", 0) == 0);
  CHECK(!r.header("Retry-After").empty());

  log_in(latch, bystander);
}
