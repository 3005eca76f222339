// envelope (Express, /api/v1/auth): login and signUp, and every answer in the envelope
// {code, requestTime, message, apiVersion, data} with the HTTP status equal to code.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <chrono>
#include <ctime>
#include <regex>
#include <set>
#include <string>
#include <thread>

using namespace latch::test;

namespace {

struct Account {
  std::string username, email, password, display_name;
};

const std::string kStrongPassword = "Passw0rd!";

// Seconds between requestTime ("2023-10-23T07:49:26.825Z") and now.
long long seconds_from_now(const std::string &iso) {
  std::tm tm{};
  if (!strptime(iso.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 1'000'000;
  long long then = static_cast<long long>(timegm(&tm));
  long long now = std::chrono::duration_cast<std::chrono::seconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  return now > then ? now - then : then - now;
}

// The envelope, exactly: five keys, HTTP status == code, ISO 8601 UTC time with milliseconds.
void check_envelope(const Reply &r, int code, const std::string &message,
                    const std::string &api_version = "v0.0.1") {
  static const std::regex iso(R"(^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$)");
  CAPTURE(r.text);
  CHECK(r.status == code);
  CHECK(r.header("Content-Type").rfind("application/json", 0) == 0);
  REQUIRE(r.body.is_object());
  CHECK(keys(r.body) ==
        std::set<std::string>{"code", "requestTime", "message", "apiVersion", "data"});
  CHECK(r.body["code"] == code);
  CHECK(r.body["message"] == message);
  CHECK(r.body["apiVersion"] == api_version);
  CHECK(r.body["data"].is_array());
  REQUIRE(r.body["requestTime"].is_string());
  std::string time = r.body["requestTime"];
  CHECK(std::regex_match(time, iso));
  CHECK(seconds_from_now(time) <= 60);
}

// An error envelope carries no data.
void check_envelope_error(const Reply &r, int code, const std::string &message,
                          const std::string &api_version = "v0.0.1") {
  check_envelope(r, code, message, api_version);
  CHECK(r.body["data"] == json::array());
}

Account make_account(const std::string &prefix = "Env") {
  Account a{unique(prefix), "", kStrongPassword, "Display Name"};
  a.email = lower(a.username) + "@example.com";
  return a;
}

json sign_up_body(const Account &a) {
  return {{"username", a.username},
          {"email", a.email},
          {"password", a.password},
          {"display_name", a.display_name}};
}

Account sign_up(const LatchProcess &latch) {
  Account a = make_account();
  Reply r = latch.post("/api/v1/auth/signUp", sign_up_body(a));
  REQUIRE(r.status == 200);
  return a;
}

Reply login(const LatchProcess &latch, const std::string &identity, const std::string &password) {
  return latch.post("/api/v1/auth/login", {{"identity", identity}, {"password", password}});
}

// The one access token in a successful login's data.
std::string token_of(const Reply &r) {
  REQUIRE(r.body["data"].is_array());
  REQUIRE(r.body["data"].size() == 1);
  REQUIRE(r.body["data"][0].is_string());
  return r.body["data"][0];
}

} // namespace

// ---- login -----------------------------------------------------------------------------

TEST_CASE("login by email answers 200 Success with one access token in data") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Reply r = login(latch, a.email, a.password);
  check_envelope(r, 200, "Success");
  std::string token = token_of(r);
  json claims = jwt_payload(token);
  CHECK(claims["token_type"] == "access");
  CHECK(claims["email"] == a.email);
  CHECK(claims["username"] == a.username);
  REQUIRE(claims["exp"].is_number_integer());
  CHECK(claims["exp"].get<long long>() - claims["iat"].get<long long>() == 3600);
  // An access token of this server: accepted by a protected route.
  Reply me = latch.get("/api/v1/authorized/me", token);
  CHECK(me.status == 200);
  CHECK(me.body["claims"]["email"] == a.email);
}

TEST_CASE("login by username answers 200 Success, whatever the case of the name or email") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Reply by_name = login(latch, a.username, a.password);
  check_envelope(by_name, 200, "Success");
  CHECK(jwt_payload(token_of(by_name))["username"] == a.username);
  check_envelope(login(latch, upper(a.username), a.password), 200, "Success");
  check_envelope(login(latch, upper(a.email), a.password), 200, "Success");
}

TEST_CASE("login issues no refresh token: the one token in data is refused where a refresh token "
          "belongs") {
  LatchProcess latch;
  Account a = sign_up(latch);
  std::string token = token_of(login(latch, a.email, a.password));
  CHECK(jwt_payload(token)["token_type"] == "access");
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", token}}).status == 401);
}

TEST_CASE("login answers 400 when the identity or the password is missing") {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::string message = "Identity and password are required";
  check_envelope_error(latch.post("/api/v1/auth/login", {{"password", a.password}}), 400, message);
  check_envelope_error(latch.post("/api/v1/auth/login", {{"identity", a.email}}), 400, message);
  check_envelope_error(latch.post("/api/v1/auth/login", json::object()), 400, message);
  check_envelope_error(latch.post_raw("/api/v1/auth/login", "", "application/json"), 400, message);
  check_envelope_error(
      latch.post("/api/v1/auth/login", {{"identity", 42}, {"password", a.password}}), 400, message);
  check_envelope_error(latch.post("/api/v1/auth/login", {{"identity", a.email}, {"password", ""}}),
                       400, message);
}

TEST_CASE("login answers 404 User not found for an unknown email or username") {
  LatchProcess latch;
  sign_up(latch);
  check_envelope_error(login(latch, "nobody@example.com", kStrongPassword), 404, "User not found");
  check_envelope_error(login(latch, unique("nobody"), kStrongPassword), 404, "User not found");
}

TEST_CASE("login answers 401 Invalid password for a wrong password") {
  LatchProcess latch;
  Account a = sign_up(latch);
  check_envelope_error(login(latch, a.email, "Wr0ngPass!"), 401, "Invalid password");
  check_envelope_error(login(latch, a.username, lower(a.password)), 401, "Invalid password");
}

// ---- signUp ----------------------------------------------------------------------------

TEST_CASE("signUp answers 200 Success with the new user in data") {
  LatchProcess latch;
  Account a = make_account();
  json body = sign_up_body(a);
  body["profile_picture"] = "https://cdn.example.com/p.png";
  body["phone_number"] = "+33123456789";
  Reply r = latch.post("/api/v1/auth/signUp", body);
  check_envelope(r, 200, "Success");
  REQUIRE(r.body["data"].size() == 1);
  const json &user = r.body["data"][0];
  CHECK(keys(user) ==
        std::set<std::string>{"uuid", "display_name", "username", "email", "profile_picture"});
  static const std::regex uuid(
      R"(^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$)");
  REQUIRE(user["uuid"].is_string());
  CHECK(std::regex_match(user["uuid"].get<std::string>(), uuid));
  CHECK(user["display_name"] == a.display_name);
  CHECK(user["username"] == a.username);
  CHECK(user["email"] == a.email);
  CHECK(user["profile_picture"] == "https://cdn.example.com/p.png");
  // The uuid is the user's id in tokens.
  Reply in = login(latch, a.email, a.password);
  CHECK(jwt_payload(token_of(in))["uid"] == user["uuid"]);
}

TEST_CASE("signUp stores the email in lower case and answers an empty profile_picture when none is "
          "given") {
  LatchProcess latch;
  Account a = make_account();
  json body = sign_up_body(a);
  body["email"] = upper(a.email);
  Reply r = latch.post("/api/v1/auth/signUp", body);
  check_envelope(r, 200, "Success");
  REQUIRE(r.body["data"].size() == 1);
  CHECK(r.body["data"][0]["email"] == a.email);
  CHECK(r.body["data"][0]["profile_picture"] == "");
  check_envelope(login(latch, a.email, a.password), 200, "Success");
}

TEST_CASE("signUp answers 400 User is empty for an empty body") {
  LatchProcess latch;
  check_envelope_error(latch.post("/api/v1/auth/signUp", json::object()), 400, "User is empty");
  check_envelope_error(latch.post_raw("/api/v1/auth/signUp", "", "application/json"), 400,
                       "User is empty");
}

TEST_CASE("signUp answers 400 when a required field is missing") {
  LatchProcess latch;
  Account a = make_account();
  for (const char *name : {"username", "email", "password", "display_name"}) {
    CAPTURE(name);
    json body = sign_up_body(a);
    body.erase(name);
    check_envelope_error(latch.post("/api/v1/auth/signUp", body), 400,
                         std::string(name) + " is required");
  }
  // Nothing was created by the refused requests.
  check_envelope_error(login(latch, a.email, a.password), 404, "User not found");
}

TEST_CASE("signUp answers 400 Email is not valid for an address that is not local@domain") {
  LatchProcess latch;
  Account a = make_account();
  for (const char *email : {"plainaddress", "@example.com", "user@", "user@@example.com",
                            "us er@example.com", "user@.example.com", "user@example..com"}) {
    CAPTURE(email);
    json body = sign_up_body(a);
    body["email"] = email;
    check_envelope_error(latch.post("/api/v1/auth/signUp", body), 400, "Email is not valid");
  }
}

TEST_CASE("signUp answers 400 Password is not valid for each kind of weak password") {
  LatchProcess latch;
  Account a = make_account();
  for (const char *password : {
           "passw0rd!", // no upper-case letter
           "PASSW0RD!", // no lower-case letter
           "Password!", // no digit
           "Passw0rdd", // no special character
           "Passw0rd?", // ? is not one of !@#$%^&*
           "Pa0!abc",   // 7 characters
       }) {
    CAPTURE(password);
    json body = sign_up_body(a);
    body["password"] = password;
    check_envelope_error(latch.post("/api/v1/auth/signUp", body), 400, "Password is not valid");
  }
  // Each special character of the set is enough, and 8 characters are enough.
  for (char special : std::string("!@#$%^&*")) {
    Account b = make_account();
    b.password = std::string("Abcdef1") + special;
    CAPTURE(b.password);
    check_envelope(latch.post("/api/v1/auth/signUp", sign_up_body(b)), 200, "Success");
  }
}

TEST_CASE(
    "signUp answers 409 User already exists for a taken username or email, whatever its case") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Account b = make_account();
  json same_name = sign_up_body(b);
  same_name["username"] = upper(a.username);
  check_envelope_error(latch.post("/api/v1/auth/signUp", same_name), 409, "User already exists");
  json same_email = sign_up_body(b);
  same_email["email"] = upper(a.email);
  check_envelope_error(latch.post("/api/v1/auth/signUp", same_email), 409, "User already exists");
  // The original account is untouched.
  check_envelope(login(latch, a.email, a.password), 200, "Success");
}

TEST_CASE("signUp answers 400 for a field of the wrong type") {
  LatchProcess latch;
  Account a = make_account();
  json body = sign_up_body(a);
  body["profile_picture"] = 7;
  check_envelope_error(latch.post("/api/v1/auth/signUp", body), 400,
                       "profile_picture is not valid");
  body = sign_up_body(a);
  body["username"] = json::array({"x"});
  check_envelope_error(latch.post("/api/v1/auth/signUp", body), 400, "username is not valid");
}

// ---- the envelope everywhere -----------------------------------------------------------

TEST_CASE("LATCH_API_VERSION sets apiVersion in successes and errors") {
  LatchProcess latch({{}, {{"LATCH_API_VERSION", "v2.3.4"}}});
  Account a = make_account();
  check_envelope(latch.post("/api/v1/auth/signUp", sign_up_body(a)), 200, "Success", "v2.3.4");
  check_envelope(login(latch, a.email, a.password), 200, "Success", "v2.3.4");
  check_envelope_error(login(latch, a.email, "Wr0ngPass!"), 401, "Invalid password", "v2.3.4");
  check_envelope_error(latch.get("/api/v1/auth/xyz"), 404, "Not found", "v2.3.4");
}

TEST_CASE("an unknown /api/v1/auth path answers 404 in the envelope") {
  LatchProcess latch;
  check_envelope_error(latch.get("/api/v1/auth/xyz"), 404, "Not found");
  check_envelope_error(latch.post("/api/v1/auth/xyz", json::object()), 404, "Not found");
  check_envelope_error(latch.post("/api/v1/auth/signup", json::object()), 404, "Not found");
}

TEST_CASE("a wrong method on an envelope route answers 405 in the envelope") {
  LatchProcess latch;
  check_envelope_error(latch.get("/api/v1/auth/login"), 405, "Method not allowed");
  check_envelope_error(latch.get("/api/v1/auth/signUp"), 405, "Method not allowed");
}

TEST_CASE("malformed JSON answers 400 in the envelope on both routes") {
  LatchProcess latch;
  for (const char *path : {"/api/v1/auth/login", "/api/v1/auth/signUp"}) {
    CAPTURE(path);
    check_envelope_error(
        latch.post_raw(path, R"({"identity": "a@example.com",)", "application/json"), 400,
        "Invalid JSON body");
    check_envelope_error(latch.post_raw(path, R"(["identity"])", "application/json"), 400,
                         "Invalid JSON body");
    check_envelope_error(latch.post_raw(path, "{\"identity\": \"\xff\xfe\"}", "application/json"),
                         400, "Invalid JSON body");
  }
}

TEST_CASE("a body over 64 KiB answers 413 in the envelope on both routes") {
  LatchProcess latch;
  std::string big = R"({"identity": ")" + std::string(70 * 1024, 'a') + R"("})";
  for (const char *path : {"/api/v1/auth/login", "/api/v1/auth/signUp"}) {
    CAPTURE(path);
    check_envelope_error(latch.post_raw(path, big, "application/json"), 413, "Payload too large");
  }
}

TEST_CASE("a body that is not JSON answers 415 in the envelope") {
  LatchProcess latch;
  check_envelope_error(latch.post_raw("/api/v1/auth/login", "identity=a&password=b",
                                      "application/x-www-form-urlencoded"),
                       415, "Unsupported media type");
}

TEST_CASE("requestTime changes between answers and carries milliseconds") {
  LatchProcess latch;
  std::set<std::string> times;
  for (int i = 0; i < 5; ++i) {
    Reply r = latch.get("/api/v1/auth/xyz");
    check_envelope_error(r, 404, "Not found");
    times.insert(r.body["requestTime"].get<std::string>());
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  CHECK(times.size() > 1);
}
