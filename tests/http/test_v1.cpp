// v1 (Go + Gin, /api/v1): every route's success and each documented or settled error,
// answered as {"error": "..."}; the register confirmation mail and --require-verified-email.
#include "support/latch_process.h"

#include "auth/secure.h"

#include <doctest/doctest.h>

#include <chrono>
#include <set>
#include <string>
#include <thread>

using namespace latch::test;

namespace {

struct Account {
  std::string username, email, password;
};

// The v1 error shape: exactly {"error": message} with that status.
void check_error(const Reply &r, int status, const std::string &message) {
  CHECK(r.status == status);
  CHECK(r.body == json{{"error", message}});
}

Account make_account(const std::string &prefix = "v1user") {
  Account a{unique(prefix), "", "password123"};
  a.email = lower(a.username) + "@example.com";
  return a;
}

// Registers without the confirmation mail, so no SMTP is needed.
Account register_user(const LatchProcess &latch, const std::string &prefix = "v1user") {
  Account a = make_account(prefix);
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  REQUIRE(r.status == 201);
  return a;
}

json login(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  REQUIRE(r.status == 200);
  return r.body;
}

// A copy of token with its payload replaced (the signature no longer matches).
std::string with_payload(const std::string &token, const json &payload) {
  size_t a = token.find('.'), b = token.find('.', a + 1);
  return token.substr(0, a + 1) + latch::secure::base64url_encode(payload.dump()) + token.substr(b);
}

// An unsigned token: {"alg":"none"} with the given payload and an empty signature.
std::string alg_none(const json &payload) {
  return latch::secure::base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
         latch::secure::base64url_encode(payload.dump()) + ".";
}

std::string confirmation_token(const SmtpSink &sink, int n) {
  std::string mail = sink.wait_for_message(n);
  REQUIRE(!mail.empty());
  std::string token = token_from_link(mail);
  REQUIRE(!token.empty());
  return token;
}

} // namespace

// ---- register --------------------------------------------------------------------------

TEST_CASE("register answers 201 registered and the new user can sign in") {
  LatchProcess latch;
  Account a = make_account();
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  CHECK(r.status == 201);
  CHECK(r.body == json{{"message", "registered"}});
  CHECK(r.header("Content-Type").rfind("application/json", 0) == 0);
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 200);
}

TEST_CASE("register refuses a body missing email, username or password with 400") {
  LatchProcess latch;
  const std::string message = "email, username and password are required";
  Account a = make_account();
  check_error(latch.post("/api/v1/register", {{"username", a.username}, {"password", a.password}}),
              400, message);
  check_error(latch.post("/api/v1/register", {{"email", a.email}, {"password", a.password}}), 400,
              message);
  check_error(latch.post("/api/v1/register", {{"email", a.email}, {"username", a.username}}), 400,
              message);
  check_error(latch.post("/api/v1/register", json::object()), 400, message);
  // Blank or non-string values count as missing.
  check_error(latch.post("/api/v1/register",
                         {{"email", a.email}, {"username", "  "}, {"password", a.password}}),
              400, message);
  check_error(latch.post("/api/v1/register",
                         {{"email", a.email}, {"username", a.username}, {"password", 12345678}}),
              400, message);
  // None of those created the user.
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 401);
}

TEST_CASE("register answers 409 when the username or the email is taken, whatever its case") {
  LatchProcess latch;
  Account a = register_user(latch);
  Account other = make_account();
  check_error(
      latch.post("/api/v1/register?sendEmail=false",
                 {{"email", other.email}, {"username", a.username}, {"password", "password123"}}),
      409, "user already exists");
  check_error(latch.post("/api/v1/register?sendEmail=false", {{"email", other.email},
                                                              {"username", upper(a.username)},
                                                              {"password", "password123"}}),
              409, "user already exists");
  check_error(latch.post("/api/v1/register?sendEmail=false", {{"email", upper(a.email)},
                                                              {"username", other.username},
                                                              {"password", "password123"}}),
              409, "user already exists");
  // The refused requests created nothing: the other email is still free.
  CHECK(
      latch
          .post("/api/v1/register?sendEmail=false",
                {{"email", other.email}, {"username", other.username}, {"password", "password123"}})
          .status == 201);
}

TEST_CASE("register refuses a password shorter than 8 characters and a malformed email") {
  LatchProcess latch;
  Account a = make_account();
  check_error(latch.post("/api/v1/register?sendEmail=false",
                         {{"email", a.email}, {"username", a.username}, {"password", "1234567"}}),
              400, "password must be at least 8 characters");
  check_error(
      latch.post("/api/v1/register?sendEmail=false",
                 {{"email", "not-an-email"}, {"username", a.username}, {"password", a.password}}),
      400, "invalid email");
  // Exactly 8 characters is enough.
  CHECK(latch
            .post("/api/v1/register?sendEmail=false",
                  {{"email", a.email}, {"username", a.username}, {"password", "12345678"}})
            .status == 201);
}

TEST_CASE("register refuses a sendEmail value that is neither true nor false") {
  LatchProcess latch;
  Account a = make_account();
  check_error(latch.post("/api/v1/register?sendEmail=maybe",
                         {{"email", a.email}, {"username", a.username}, {"password", a.password}}),
              400, "sendEmail must be true or false");
}

// ---- register mail and email confirmation ----------------------------------------------

TEST_CASE("register with sendEmail=false sends no mail, and by default sends a confirmation") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account quiet = make_account("quiet");
  REQUIRE(
      latch
          .post("/api/v1/register?sendEmail=false",
                {{"email", quiet.email}, {"username", quiet.username}, {"password", "password123"}})
          .status == 201);
  Account loud = make_account("loud");
  REQUIRE(
      latch
          .post("/api/v1/register",
                {{"email", loud.email}, {"username", loud.username}, {"password", "password123"}})
          .status == 201);
  // Mail goes out in order, so had the first registration mailed, it would be message 1.
  std::string mail = sink.wait_for_message(1);
  REQUIRE(!mail.empty());
  CHECK(mail.find("X-Rcpt-To: " + loud.email) != std::string::npos);
  CHECK(mail.find(quiet.email) == std::string::npos);
  CHECK(mail.find("/api/v1/verify?token=") != std::string::npos);
  CHECK(sink.wait_for_message(2, 500).empty());
  CHECK(sink.message_count() == 1);
}

TEST_CASE("sendEmail=false also works as a JSON body field") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account quiet = make_account("quiet");
  REQUIRE(latch
              .post("/api/v1/register", {{"email", quiet.email},
                                         {"username", quiet.username},
                                         {"password", "password123"},
                                         {"sendEmail", false}})
              .status == 201);
  Account loud = make_account("loud");
  REQUIRE(
      latch
          .post("/api/v1/register?sendEmail=true",
                {{"email", loud.email}, {"username", loud.username}, {"password", "password123"}})
          .status == 201);
  std::string mail = sink.wait_for_message(1);
  CHECK(mail.find("X-Rcpt-To: " + loud.email) != std::string::npos);
  CHECK(sink.wait_for_message(2, 500).empty());
}

TEST_CASE("the mailed confirmation link confirms the address once; a second use answers 400") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = make_account();
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", a.email}, {"username", a.username}, {"password", a.password}})
              .status == 201);
  std::string token = confirmation_token(sink, 1);
  Reply first = latch.get("/api/v1/verify?token=" + token);
  CHECK(first.status == 200);
  CHECK(first.body == json{{"message", "email verified"}});
  check_error(latch.get("/api/v1/verify?token=" + token), 400, "invalid or expired token");
}

TEST_CASE("with --verify-token-in-response register answers verifyToken, which confirms the "
          "address as the mailed link does") {
  SmtpSink sink;
  LatchProcess latch({{"--verify-token-in-response", "--require-verified-email"},
                      {{"LATCH_SMTP_URL", sink.url()}}});
  CHECK(latch.log().find("warning: --verify-token-in-response is on") != std::string::npos);
  Account a = make_account();
  Reply r = latch.post("/api/v1/register",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  REQUIRE(r.status == 201);
  CHECK(keys(r.body) == std::set<std::string>{"message", "verifyToken"});
  CHECK(r.body["message"] == "registered");
  REQUIRE(r.body["verifyToken"].is_string());
  const std::string answered = r.body["verifyToken"];
  CHECK(answered.size() >= 43); // 256 random bits, base64url
  // The mail goes too, with a token of its own.
  const std::string mailed = confirmation_token(sink, 1);
  CHECK(mailed != answered);
  check_error(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}), 401,
              "email not verified");
  Reply confirmed = latch.get("/api/v1/verify?token=" + answered);
  CHECK(confirmed.status == 200);
  CHECK(confirmed.body == json{{"message", "email verified"}});
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 200);
  check_error(latch.get("/api/v1/verify?token=" + answered), 400, "invalid or expired token");
  // Another user's answered token confirms only that user.
  Account b = make_account();
  Reply rb = latch.post("/api/v1/register",
                        {{"email", b.email}, {"username", b.username}, {"password", b.password}});
  REQUIRE(rb.status == 201);
  CHECK(rb.body["verifyToken"] != answered);
  check_error(latch.post("/api/v1/login", {{"email", b.email}, {"password", b.password}}), 401,
              "email not verified");
}

TEST_CASE("with --verify-token-in-response and sendEmail=false the answered token is the only "
          "one: no mail goes") {
  SmtpSink sink;
  LatchProcess latch({{"--verify-token-in-response", "--require-verified-email"},
                      {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = make_account();
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  REQUIRE(r.status == 201);
  REQUIRE(r.body["verifyToken"].is_string());
  CHECK(latch.get("/api/v1/verify?token=" + r.body["verifyToken"].get<std::string>()).status ==
        200);
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 200);
  // A mailed registration after it would be message 1.
  Account loud = make_account("loud");
  REQUIRE(
      latch
          .post("/api/v1/register",
                {{"email", loud.email}, {"username", loud.username}, {"password", "password123"}})
          .status == 201);
  CHECK(sink.wait_for_message(1).find("X-Rcpt-To: " + loud.email) != std::string::npos);
  CHECK(sink.message_count() == 1);
}

TEST_CASE("without --verify-token-in-response register answers no token and warns of none") {
  LatchProcess latch;
  Account a = make_account();
  Reply r = latch.post("/api/v1/register",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  CHECK(r.status == 201);
  CHECK(r.body == json{{"message", "registered"}});
  CHECK(latch.log().find("--verify-token-in-response") == std::string::npos);
}

TEST_CASE("GET verify without a token or with an unknown one answers 400") {
  LatchProcess latch;
  check_error(latch.get("/api/v1/verify"), 400, "token not provided");
  check_error(latch.get("/api/v1/verify?token="), 400, "token not provided");
  check_error(latch.get("/api/v1/verify?token=" + latch::secure::random_token(32)), 400,
              "invalid or expired token");
}

TEST_CASE("a browser opening the confirmation link gets an HTML page") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = make_account();
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", a.email}, {"username", a.username}, {"password", a.password}})
              .status == 201);
  std::string token = confirmation_token(sink, 1);
  httplib::Headers html{{"Accept", "text/html,application/xhtml+xml"}};
  Reply ok = latch.get("/api/v1/verify?token=" + token, "", html);
  CHECK(ok.status == 200);
  CHECK(ok.header("Content-Type").rfind("text/html", 0) == 0);
  CHECK(ok.text.find("Your email address is confirmed.") != std::string::npos);
  Reply again = latch.get("/api/v1/verify?token=" + token, "", html);
  CHECK(again.status == 400);
  CHECK(again.header("Content-Type").rfind("text/html", 0) == 0);
  CHECK(again.text.find("invalid, expired or already used") != std::string::npos);
}

TEST_CASE("with --require-verified-email, login answers 401 email not verified until the link is "
          "opened") {
  SmtpSink sink;
  LatchProcess latch({{"--require-verified-email"}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = make_account();
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", a.email}, {"username", a.username}, {"password", a.password}})
              .status == 201);
  check_error(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}), 401,
              "email not verified");
  // The verification state is told only to someone who knows the password.
  check_error(latch.post("/api/v1/login", {{"email", a.email}, {"password", "wrong-password"}}),
              401, "invalid credentials");
  REQUIRE(latch.get("/api/v1/verify?token=" + confirmation_token(sink, 1)).status == 200);
  Reply r = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  CHECK(r.status == 200);
  CHECK(r.body.contains("access_token"));
}

TEST_CASE("without --require-verified-email an unconfirmed user signs in") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = make_account();
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", a.email}, {"username", a.username}, {"password", a.password}})
              .status == 201);
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 200);
}

TEST_CASE(
    "a confirmation token does not reset a password and a reset token does not confirm an email") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = make_account();
  REQUIRE(latch
              .post("/api/v1/register",
                    {{"email", a.email}, {"username", a.username}, {"password", a.password}})
              .status == 201);
  std::string confirm = confirmation_token(sink, 1);
  check_error(
      latch.post("/api/v1/password-reset-confirm?token=" + confirm,
                 {{"new_password", "newpassword1"}, {"new_password_confirm", "newpassword1"}}),
      400, "invalid or expired token");

  REQUIRE(
      latch.post("/api/v1/password-reset", {{"email", a.email}, {"username", a.username}}).status ==
      200);
  std::string reset = confirmation_token(sink, 2);
  check_error(latch.get("/api/v1/verify?token=" + reset), 400, "invalid or expired token");
  // Both tokens still do their own job.
  CHECK(latch.get("/api/v1/verify?token=" + confirm).status == 200);
  CHECK(latch
            .post("/api/v1/password-reset-confirm?token=" + reset,
                  {{"new_password", "newpassword1"}, {"new_password_confirm", "newpassword1"}})
            .status == 200);
}

// ---- login -----------------------------------------------------------------------------

TEST_CASE("login answers the token pair with expires_in 3600 and refresh_expires_in 259200") {
  LatchProcess latch;
  Account a = register_user(latch);
  Reply r = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  REQUIRE(r.status == 200);
  CHECK(keys(r.body) ==
        std::set<std::string>{"access_token", "expires_in", "refresh_expires_in", "refresh_token"});
  CHECK(r.body["expires_in"] == 3600);
  CHECK(r.body["refresh_expires_in"] == 259200);

  json access = jwt_payload(r.body["access_token"].get<std::string>());
  json refresh = jwt_payload(r.body["refresh_token"].get<std::string>());
  CHECK(access["token_type"] == "access");
  CHECK(refresh["token_type"] == "refresh");
  CHECK(access["email"] == a.email);
  CHECK(access["username"] == a.username);
  CHECK(access["uid"].is_string());
  CHECK(access["uid"] == access["sub"]);
  CHECK(access["uid"] == access["user_id"]);
  CHECK(refresh["uid"] == access["uid"]);
  CHECK(access["exp"].get<long long>() - access["iat"].get<long long>() == 3600);
  CHECK(refresh["exp"].get<long long>() - refresh["iat"].get<long long>() == 259200);
  CHECK(access["sid"] == refresh["sid"]);
  CHECK(access["jti"] != refresh["jti"]);
}

TEST_CASE("login finds the user by email whatever its case") {
  LatchProcess latch;
  Account a = register_user(latch);
  Reply r = latch.post("/api/v1/login", {{"email", upper(a.email)}, {"password", a.password}});
  CHECK(r.status == 200);
  CHECK(jwt_payload(r.body["access_token"].get<std::string>())["email"] == a.email);
}

TEST_CASE(
    "login answers 401 invalid credentials for a wrong password and for an unknown email alike") {
  LatchProcess latch;
  Account a = register_user(latch);
  Reply wrong = latch.post("/api/v1/login", {{"email", a.email}, {"password", "wrong-password"}});
  Reply unknown =
      latch.post("/api/v1/login", {{"email", "nobody@example.com"}, {"password", a.password}});
  check_error(wrong, 401, "invalid credentials");
  check_error(unknown, 401, "invalid credentials");
  CHECK(wrong.text == unknown.text);
  // The password is case-sensitive.
  check_error(latch.post("/api/v1/login", {{"email", a.email}, {"password", upper(a.password)}}),
              401, "invalid credentials");
}

TEST_CASE("login refuses a body missing the email or the password with 400") {
  LatchProcess latch;
  Account a = register_user(latch);
  check_error(latch.post("/api/v1/login", {{"password", a.password}}), 400,
              "email and password are required");
  check_error(latch.post("/api/v1/login", {{"email", a.email}}), 400,
              "email and password are required");
  check_error(latch.post("/api/v1/login", {{"email", a.email}, {"password", ""}}), 400,
              "email and password are required");
}

// ---- refresh ---------------------------------------------------------------------------

TEST_CASE("refresh answers a new access token with expires_in 3600 in the same session") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  Reply r = latch.post("/api/v1/refresh", {{"refresh_token", pair["refresh_token"]}});
  REQUIRE(r.status == 200);
  CHECK(keys(r.body) == std::set<std::string>{"access_token", "expires_in"});
  CHECK(r.body["expires_in"] == 3600);
  std::string access = r.body["access_token"];
  CHECK(access != pair["access_token"].get<std::string>());
  json claims = jwt_payload(access);
  CHECK(claims["token_type"] == "access");
  CHECK(claims["sid"] == jwt_payload(pair["access_token"].get<std::string>())["sid"]);
  CHECK(claims["exp"].get<long long>() - claims["iat"].get<long long>() == 3600);
  CHECK(latch.get("/api/v1/authorized/me", access).status == 200);
}

TEST_CASE("refresh does not rotate: the v1 refresh token works again") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", pair["refresh_token"]}}).status == 200);
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", pair["refresh_token"]}}).status == 200);
  // And the first access token is still good.
  CHECK(latch.get("/api/v1/authorized/me", pair["access_token"].get<std::string>()).status == 200);
}

TEST_CASE("refresh answers 400 refresh_token is required when it is missing or blank") {
  LatchProcess latch;
  check_error(latch.post("/api/v1/refresh", json::object()), 400, "refresh_token is required");
  check_error(latch.post("/api/v1/refresh", {{"refresh_token", ""}}), 400,
              "refresh_token is required");
  check_error(latch.post("/api/v1/refresh", {{"token", "x"}}), 400, "refresh_token is required");
}

TEST_CASE("refresh answers 401 invalid token for an access token, garbage or a forged token") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  std::string refresh = pair["refresh_token"];
  check_error(latch.post("/api/v1/refresh", {{"refresh_token", pair["access_token"]}}), 401,
              "invalid token");
  check_error(latch.post("/api/v1/refresh", {{"refresh_token", "not.a.jwt"}}), 401,
              "invalid token");
  json claims = jwt_payload(refresh);
  claims["exp"] = claims["exp"].get<long long>() + 86400;
  check_error(latch.post("/api/v1/refresh", {{"refresh_token", with_payload(refresh, claims)}}),
              401, "invalid token");
  check_error(latch.post("/api/v1/refresh", {{"refresh_token", alg_none(jwt_payload(refresh))}}),
              401, "invalid token");
}

// ---- verify ----------------------------------------------------------------------------

TEST_CASE("verify answers the claims of an access token") {
  LatchProcess latch;
  Account a = register_user(latch);
  std::string access = login(latch, a)["access_token"];
  Reply r = latch.post("/api/v1/verify", {{"token", access}});
  REQUIRE(r.status == 200);
  CHECK(keys(r.body) == std::set<std::string>{"token"});
  CHECK(r.body["token"] == jwt_payload(access));
  CHECK(r.body["token"]["token_type"] == "access");
  CHECK(r.body["token"]["email"] == a.email);
  for (const char *k : {"uid", "email", "exp", "iat"})
    CHECK(r.body["token"].contains(k));
}

TEST_CASE("verify answers the claims of a refresh token too") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  std::string refresh = pair["refresh_token"];
  Reply r = latch.post("/api/v1/verify", {{"token", refresh}});
  REQUIRE(r.status == 200);
  CHECK(r.body["token"] == jwt_payload(refresh));
  CHECK(r.body["token"]["token_type"] == "refresh");
  CHECK(r.body["token"]["uid"] == jwt_payload(pair["access_token"].get<std::string>())["uid"]);
}

TEST_CASE("verify answers 400 without a token and 401 invalid token for a bad one") {
  LatchProcess latch;
  Account a = register_user(latch);
  std::string access = login(latch, a)["access_token"];
  check_error(latch.post("/api/v1/verify", json::object()), 400, "token is required");
  check_error(latch.post("/api/v1/verify", {{"token", "garbage"}}), 401, "invalid token");
  json claims = jwt_payload(access);
  claims["uid"] = "00000000-0000-4000-8000-000000000000";
  check_error(latch.post("/api/v1/verify", {{"token", with_payload(access, claims)}}), 401,
              "invalid token");
  check_error(latch.post("/api/v1/verify", {{"token", alg_none(jwt_payload(access))}}), 401,
              "invalid token");
}

TEST_CASE("verify answers 401 invalid token for tokens of a session that logged out") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  std::string access = pair["access_token"];
  REQUIRE(latch.post_raw("/api/v1/logout", "", "", access).status == 200);
  check_error(latch.post("/api/v1/verify", {{"token", access}}), 401, "invalid token");
  check_error(latch.post("/api/v1/verify", {{"token", pair["refresh_token"]}}), 401,
              "invalid token");
}

TEST_CASE("POST verify-token, the original router's path, answers as POST verify does") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  const std::string access = pair["access_token"], refresh = pair["refresh_token"];
  // Each body to both paths: the same status and the same bytes.
  for (const json &body :
       {json{{"token", access}}, json{{"token", refresh}}, json{{"token", "garbage"}},
        json{{"token", alg_none(jwt_payload(access))}}, json{{"token", 5}}, json::object()}) {
    CAPTURE(body.dump());
    Reply documented = latch.post("/api/v1/verify", body);
    Reply original = latch.post("/api/v1/verify-token", body);
    CHECK(original.status == documented.status);
    CHECK(original.text == documented.text);
  }
  Reply r = latch.post("/api/v1/verify-token", {{"token", access}});
  REQUIRE(r.status == 200);
  CHECK(r.body == json{{"token", jwt_payload(access)}});
  check_error(latch.post("/api/v1/verify-token", json::object()), 400, "token is required");
  check_error(latch.post_raw("/api/v1/verify-token", "{", "application/json"), 400,
              "invalid request body");
  // A session that logged out is over at both paths.
  REQUIRE(latch.post_raw("/api/v1/logout", "", "", access).status == 200);
  check_error(latch.post("/api/v1/verify-token", {{"token", access}}), 401, "invalid token");
  check_error(latch.post("/api/v1/verify-token", {{"token", refresh}}), 401, "invalid token");
  check_error(latch.get("/api/v1/verify-token"), 405, "method not allowed");
}

// ---- authorized/me ---------------------------------------------------------------------

TEST_CASE("me answers the claims of the access token") {
  LatchProcess latch;
  Account a = register_user(latch);
  std::string access = login(latch, a)["access_token"];
  Reply r = latch.get("/api/v1/authorized/me", access);
  REQUIRE(r.status == 200);
  CHECK(keys(r.body) == std::set<std::string>{"claims"});
  const json &claims = r.body["claims"];
  CHECK(claims == jwt_payload(access));
  CHECK(claims["uid"].is_string());
  CHECK(claims["email"] == a.email);
  CHECK(claims["exp"].is_number_integer());
  CHECK(claims["iat"].is_number_integer());
  CHECK(claims["exp"].get<long long>() - claims["iat"].get<long long>() == 3600);
}

TEST_CASE("me answers 401 missing token without a Bearer header") {
  LatchProcess latch;
  Account a = register_user(latch);
  std::string access = login(latch, a)["access_token"];
  check_error(latch.get("/api/v1/authorized/me"), 401, "missing token");
  check_error(latch.get("/api/v1/authorized/me", "", {{"Authorization", "Basic " + access}}), 401,
              "missing token");
  check_error(latch.get("/api/v1/authorized/me", "", {{"Authorization", "Bearer "}}), 401,
              "missing token");
}

TEST_CASE("me answers 401 invalid token for garbage, a refresh token and forged tokens") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  std::string access = pair["access_token"];
  check_error(latch.get("/api/v1/authorized/me", "garbage"), 401, "invalid token");
  check_error(latch.get("/api/v1/authorized/me", pair["refresh_token"].get<std::string>()), 401,
              "invalid token");
  json claims = jwt_payload(access);
  claims["email"] = "admin@example.com";
  check_error(latch.get("/api/v1/authorized/me", with_payload(access, claims)), 401,
              "invalid token");
  check_error(latch.get("/api/v1/authorized/me", alg_none(jwt_payload(access))), 401,
              "invalid token");
  // A signature cut off.
  check_error(latch.get("/api/v1/authorized/me", access.substr(0, access.rfind('.') + 1)), 401,
              "invalid token");
}

TEST_CASE("me refuses an access token signed by another server's secret") {
  LatchProcess latch({{}, {{"LATCH_JWT_SECRET", std::string(48, 'a')}}});
  LatchProcess other({{}, {{"LATCH_JWT_SECRET", std::string(48, 'b')}}});
  Account a = register_user(other);
  std::string foreign = login(other, a)["access_token"];
  REQUIRE(other.get("/api/v1/authorized/me", foreign).status == 200);
  check_error(latch.get("/api/v1/authorized/me", foreign), 401, "invalid token");
}

TEST_CASE("me refuses an access token once it has expired") {
  LatchProcess latch({{}, {{"LATCH_V1_ACCESS_TTL", "1"}}});
  Account a = register_user(latch);
  json pair = login(latch, a);
  CHECK(pair["expires_in"] == 1);
  std::string access = pair["access_token"];
  REQUIRE(latch.get("/api/v1/authorized/me", access).status == 200);
  std::this_thread::sleep_for(std::chrono::milliseconds(2200));
  check_error(latch.get("/api/v1/authorized/me", access), 401, "invalid token");
  // The refresh token outlives it and gives a working one.
  Reply r = latch.post("/api/v1/refresh", {{"refresh_token", pair["refresh_token"]}});
  REQUIRE(r.status == 200);
  CHECK(latch.get("/api/v1/authorized/me", r.body["access_token"].get<std::string>()).status ==
        200);
}

// ---- logout ----------------------------------------------------------------------------

TEST_CASE("logout answers logout successful and blacklists the access token") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  std::string access = pair["access_token"];
  Reply r = latch.post_raw("/api/v1/logout", "", "", access);
  CHECK(r.status == 200);
  CHECK(r.body == json{{"message", "logout successful"}});
  check_error(latch.get("/api/v1/authorized/me", access), 401, "invalid token");
  check_error(latch.post_raw("/api/v1/logout", "", "", access), 401, "invalid token");
}

TEST_CASE("logout ends the session's refresh token but not the user's other sessions") {
  LatchProcess latch;
  Account a = register_user(latch);
  json ended = login(latch, a);
  json kept = login(latch, a);
  REQUIRE(
      latch.post_raw("/api/v1/logout", "", "", ended["access_token"].get<std::string>()).status ==
      200);
  check_error(latch.post("/api/v1/refresh", {{"refresh_token", ended["refresh_token"]}}), 401,
              "invalid token");
  CHECK(latch.get("/api/v1/authorized/me", kept["access_token"].get<std::string>()).status == 200);
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", kept["refresh_token"]}}).status == 200);
}

TEST_CASE("logout answers 401 missing token without one and invalid token for a refresh token") {
  LatchProcess latch;
  Account a = register_user(latch);
  json pair = login(latch, a);
  check_error(latch.post_raw("/api/v1/logout", "", ""), 401, "missing token");
  check_error(latch.post_raw("/api/v1/logout", "", "", pair["refresh_token"].get<std::string>()),
              401, "invalid token");
  check_error(latch.post_raw("/api/v1/logout", "", "", "garbage"), 401, "invalid token");
  // None of those ended the session.
  CHECK(latch.get("/api/v1/authorized/me", pair["access_token"].get<std::string>()).status == 200);
}

// ---- password-reset and password-reset-confirm -----------------------------------------

TEST_CASE("password-reset answers 400 when the email or the username is missing") {
  LatchProcess latch;
  Account a = register_user(latch);
  const std::string message = "email and username are required";
  check_error(latch.post("/api/v1/password-reset", {{"email", a.email}}), 400, message);
  check_error(latch.post("/api/v1/password-reset", {{"username", a.username}}), 400, message);
  check_error(latch.post("/api/v1/password-reset", json::object()), 400, message);
  check_error(latch.post("/api/v1/password-reset", {{"email", ""}, {"username", a.username}}), 400,
              message);
}

TEST_CASE(
    "password-reset answers 200 alike whether or not it matches a user, and mails only a match") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  Account other = register_user(latch);
  Reply unknown = latch.post("/api/v1/password-reset",
                             {{"email", "nobody@example.com"}, {"username", a.username}});
  Reply mismatch =
      latch.post("/api/v1/password-reset", {{"email", a.email}, {"username", other.username}});
  Reply match =
      latch.post("/api/v1/password-reset", {{"email", a.email}, {"username", a.username}});
  CHECK(unknown.status == 200);
  CHECK(mismatch.status == 200);
  CHECK(match.status == 200);
  CHECK(unknown.text == match.text);
  CHECK(mismatch.text == match.text);
  // Mail goes out in order: had a non-match mailed, it would be message 1.
  std::string mail = sink.wait_for_message(1);
  REQUIRE(!mail.empty());
  CHECK(mail.find("X-Rcpt-To: " + a.email) != std::string::npos);
  CHECK(!token_from_link(mail).empty());
  CHECK(sink.wait_for_message(2, 500).empty());
  CHECK(sink.message_count() == 1);
}

TEST_CASE("password-reset-confirm answers 400 token not provided without a token") {
  LatchProcess latch;
  json body = {{"new_password", "newpassword1"}, {"new_password_confirm", "newpassword1"}};
  check_error(latch.post("/api/v1/password-reset-confirm", body), 400, "token not provided");
  check_error(latch.post("/api/v1/password-reset-confirm?token=", body), 400, "token not provided");
}

TEST_CASE("password-reset-confirm answers 400 password not confirm when the two passwords differ") {
  LatchProcess latch;
  check_error(
      latch.post("/api/v1/password-reset-confirm?token=" + latch::secure::random_token(32),
                 {{"new_password", "newpassword1"}, {"new_password_confirm", "newpassword2"}}),
      400, "password not confirm");
}

TEST_CASE("password-reset-confirm answers 400 when a new password field is missing") {
  LatchProcess latch;
  check_error(
      latch.post("/api/v1/password-reset-confirm?token=abc", {{"new_password", "newpassword1"}}),
      400, "new_password and new_password_confirm are required");
  check_error(latch.post("/api/v1/password-reset-confirm?token=abc",
                         {{"new_password_confirm", "newpassword1"}}),
              400, "new_password and new_password_confirm are required");
}

TEST_CASE("password-reset-confirm answers 400 for an unknown or malformed token") {
  LatchProcess latch;
  json body = {{"new_password", "newpassword1"}, {"new_password_confirm", "newpassword1"}};
  check_error(
      latch.post("/api/v1/password-reset-confirm?token=" + latch::secure::random_token(32), body),
      400, "invalid or expired token");
  check_error(latch.post("/api/v1/password-reset-confirm?token=x", body), 400,
              "invalid or expired token");
}

TEST_CASE("password-reset-confirm answers 200 {} and a too-short or unconfirmed password keeps the "
          "token usable") {
  SmtpSink sink;
  LatchProcess latch({{}, {{"LATCH_SMTP_URL", sink.url()}}});
  Account a = register_user(latch);
  REQUIRE(
      latch.post("/api/v1/password-reset", {{"email", a.email}, {"username", a.username}}).status ==
      200);
  std::string token = confirmation_token(sink, 1);
  const std::string path = "/api/v1/password-reset-confirm?token=" + token;
  check_error(latch.post(path, {{"new_password", "short"}, {"new_password_confirm", "short"}}), 400,
              "password must be at least 8 characters");
  check_error(
      latch.post(path, {{"new_password", "newpassword1"}, {"new_password_confirm", "other"}}), 400,
      "password not confirm");
  Reply r = latch.post(
      path, {{"new_password", "newpassword1"}, {"new_password_confirm", "newpassword1"}});
  CHECK(r.status == 200);
  CHECK(r.body == json::object());
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", "newpassword1"}}).status ==
        200);
}

// ---- bodies, unknown paths and methods --------------------------------------------------

TEST_CASE("malformed JSON answers 400 in the v1 shape on every route that takes a body") {
  LatchProcess latch;
  for (const char *path : {"/api/v1/register", "/api/v1/login", "/api/v1/refresh", "/api/v1/verify",
                           "/api/v1/password-reset", "/api/v1/password-reset-confirm?token=abc"}) {
    CAPTURE(path);
    check_error(latch.post_raw(path, R"({"email": "a@example.com",)", "application/json"), 400,
                "invalid request body");
    check_error(latch.post_raw(path, R"(["email"])", "application/json"), 400,
                "invalid request body");
  }
}

TEST_CASE("a body over 64 KiB answers 413 in the v1 shape") {
  LatchProcess latch;
  std::string big = R"({"email": ")" + std::string(70 * 1024, 'a') + R"(@example.com"})";
  for (const char *path : {"/api/v1/register", "/api/v1/login", "/api/v1/refresh", "/api/v1/verify",
                           "/api/v1/password-reset", "/api/v1/password-reset-confirm"}) {
    CAPTURE(path);
    check_error(latch.post_raw(path, big, "application/json"), 413, "request body too large");
  }
}

TEST_CASE("a body that is not JSON answers 415 in the v1 shape") {
  LatchProcess latch;
  check_error(latch.post_raw("/api/v1/login", "email=a@example.com&password=x",
                             "application/x-www-form-urlencoded"),
              415, "unsupported content type");
  check_error(latch.post_raw("/api/v1/login", "hello", "text/plain"), 415,
              "unsupported content type");
}

TEST_CASE("an unknown /api/v1 path answers 404 and a wrong method 405, in the v1 shape") {
  LatchProcess latch;
  check_error(latch.get("/api/v1/xyz"), 404, "not found");
  check_error(latch.post("/api/v1/xyz", json::object()), 404, "not found");
  check_error(latch.get("/api/v1/login"), 405, "method not allowed");
  check_error(latch.post("/api/v1/authorized/me", json::object()), 405, "method not allowed");
}
