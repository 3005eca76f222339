// One user store and one token across all five APIs; persistence, revocation and purging.
#include "support/latch_process.h"

#include "auth/secure.h"

#include <doctest/doctest.h>

#include <sys/stat.h>

#include <chrono>
#include <thread>

using namespace latch::test;

namespace {

struct Account {
  std::string username, email, password;
};

Account register_v1(const LatchProcess &latch, const std::string &email_case = "") {
  Account a{unique("Cross"), "", "password123"};
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", email_case.empty() ? a.email : email_case},
                        {"username", a.username},
                        {"password", a.password}});
  REQUIRE(r.status == 201);
  return a;
}

std::string picflux_access(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/api/auth/signin", {{"email", a.email}, {"password", a.password}});
  REQUIRE(r.status == 200);
  return r.body["access_token"];
}

long long count_rows(const std::string &db_path, const std::string &table) {
  // test-only, fixed table names; an SQLite file or the test PostgreSQL (LATCH_TEST_DB=postgres)
  return std::stoll(sql_value(db_path, "SELECT COUNT(*) FROM " + table));
}

} // namespace

TEST_CASE("a user registered through v1 signs in through every other API") {
  LatchProcess latch;
  Account a = register_v1(latch);

  CHECK(latch.post("/api/auth/signin", {{"email", a.email}, {"password", a.password}}).status ==
        200);
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 200);
  CHECK(latch.post("/auth/login", {{"username", a.username}, {"password", a.password}}).status ==
        200);
  CHECK(latch.post("/auth/token", {{"username", a.username}, {"password", a.password}}).status ==
        200);
  CHECK(
      latch.post("/api/v1/auth/login", {{"identity", a.email}, {"password", a.password}}).status ==
      200);
  CHECK(latch.post("/api/v1/auth/login", {{"identity", a.username}, {"password", a.password}})
            .status == 200);
}

TEST_CASE("a simplejwt user without an email signs in where a username suffices, not by email") {
  LatchProcess latch;
  std::string name = unique("noemail");
  REQUIRE(latch.post("/auth/register", {{"username", name}, {"password", "password123"}}).status ==
          201);
  CHECK(latch.post("/auth/login", {{"username", name}, {"password", "password123"}}).status == 200);
  CHECK(
      latch.post("/api/v1/auth/login", {{"identity", name}, {"password", "password123"}}).status ==
      200);
  CHECK(
      latch
          .post("/api/auth/signin", {{"email", name + "@example.com"}, {"password", "password123"}})
          .status == 401);
}

TEST_CASE("usernames are case-insensitive and emails are stored lower-case") {
  LatchProcess latch;
  std::string name = unique("Case");
  Account a = register_v1(latch, "");
  // The same username in another case is taken, through another API.
  Reply dup = latch.post("/auth/signup", {{"username", lower(a.username)},
                                          {"email", unique("other") + "@example.com"},
                                          {"password", "password123"}});
  CHECK(dup.status == 409);
  // An email registered in mixed case signs in lower-case, and the claim is lower-case.
  std::string mixed = name + "@Example.COM";
  REQUIRE(latch
              .post("/api/v1/register?sendEmail=false",
                    {{"email", mixed}, {"username", name}, {"password", "password123"}})
              .status == 201);
  Reply in = latch.post("/api/auth/signin", {{"email", lower(mixed)}, {"password", "password123"}});
  REQUIRE(in.status == 200);
  CHECK(jwt_payload(in.body["access_token"])["email"] == lower(mixed));
  CHECK(
      latch.post("/auth/token", {{"username", lower(name)}, {"password", "password123"}}).status ==
      200);
}

TEST_CASE("an access token from one API works on every API's protected routes") {
  LatchProcess latch;
  Account a = register_v1(latch);
  std::string access = picflux_access(latch, a);

  Reply getuser = latch.get("/auth/getuser", access);
  CHECK(getuser.status == 200);
  CHECK(getuser.body["username"] == a.username);
  Reply me = latch.get("/api/v1/authorized/me", access);
  CHECK(me.status == 200);
  CHECK(me.body["claims"]["email"] == a.email);
  CHECK(latch.post("/auth/token/verify", {{"token", access}}).status == 200);
  CHECK(latch.post("/api/v1/verify", {{"token", access}}).status == 200);
  // Logging out through flask ends it everywhere.
  CHECK(latch.post_raw("/auth/logout", "", "application/json", access).status == 200);
  CHECK(latch.get("/auth/getuser", access).status == 401);
  CHECK(latch.get("/api/v1/authorized/me", access).status == 401);
  CHECK(latch.post_raw("/api/auth/logout", "", "application/json", access).status == 401);
}

TEST_CASE("tokens carry every claim SPEC.md lists") {
  LatchProcess latch;
  Account a = register_v1(latch);
  Reply r = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  REQUIRE(r.status == 200);
  json access = jwt_payload(r.body["access_token"]);
  json refresh = jwt_payload(r.body["refresh_token"]);
  for (const char *claim :
       {"sub", "uid", "user_id", "email", "username", "token_type", "jti", "sid", "iat", "exp"}) {
    CAPTURE(claim);
    CHECK(access.contains(claim));
    CHECK(refresh.contains(claim));
  }
  CHECK(access["sub"] == access["uid"]);
  CHECK(access["sub"] == access["user_id"]);
  CHECK(access["token_type"] == "access");
  CHECK(refresh["token_type"] == "refresh");
  CHECK(access["sid"] == refresh["sid"]);
  CHECK(access["jti"] != refresh["jti"]);
}

TEST_CASE(
    "a refresh token rotated through one API and reused through another revokes the session") {
  // Strict, so the replay just after the rotation is theft (test_refresh_reuse.cpp has the
  // interval, across APIs too).
  LatchProcess latch({{"--refresh-reuse-interval", "0"}, {}});
  Account a = register_v1(latch);
  Reply in = latch.post("/api/auth/signin", {{"email", a.email}, {"password", a.password}});
  REQUIRE(in.status == 200);
  std::string first = in.body["refresh_token"];
  Reply rotated = latch.post("/auth/token/refresh", {{"refresh", first}});
  REQUIRE(rotated.status == 200);
  std::string second = rotated.body["refresh"];
  CHECK(second != first);
  // The rotated-away token comes back: theft. Every token of the session dies.
  Reply replay = latch.post_raw("/api/auth/refresh", "", "application/json", first);
  CHECK(replay.status == 401);
  CHECK(latch.post("/auth/token/refresh", {{"refresh", second}}).status == 401);
  CHECK(latch.get("/auth/getuser", std::string(rotated.body["access"])).status == 401);
}

TEST_CASE("users, sessions and the generated signing secret survive a restart") {
  TempDir dir;
  std::string db = dir.path() + "/auth.db";
  Account a;
  std::string access, refresh;
  {
    LatchProcess first({}, db);
    a = register_v1(first);
    Reply r = first.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
    REQUIRE(r.status == 200);
    access = r.body["access_token"];
    refresh = r.body["refresh_token"];
  }
  LatchProcess second({}, db);
  CHECK(second.get("/api/v1/authorized/me", access).status == 200);
  CHECK(second.post("/api/v1/refresh", {{"refresh_token", refresh}}).status == 200);
  CHECK(second.post("/api/auth/signin", {{"email", a.email}, {"password", a.password}}).status ==
        200);
}

TEST_CASE("LATCH_JWT_SECRET signs the tokens, and tokens under another secret are refused") {
  TempDir dir;
  std::string db = dir.path() + "/auth.db";
  const std::string secret = "an-operator-chosen-secret-of-32+chars!";
  std::string access;
  {
    LatchProcess latch({{}, {{"LATCH_JWT_SECRET", secret}}}, db);
    Account a = register_v1(latch);
    access = picflux_access(latch, a);
    size_t dot = access.rfind('.');
    std::string expected =
        latch::secure::base64url_encode(latch::secure::hmac_sha256(secret, access.substr(0, dot)));
    CHECK(access.substr(dot + 1) == expected);
  }
  LatchProcess other({{}, {{"LATCH_JWT_SECRET", secret + "-changed"}}}, db);
  CHECK(other.get("/auth/getuser", access).status == 401);
}

TEST_CASE("the database file is created with mode 0600") {
  if (skip_on_postgres("the mode of the SQLite file (PostgreSQL keeps no file of Latch's)")) return;
  LatchProcess latch;
  struct stat st {};
  REQUIRE(stat(latch.db_path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("a password reset through flask ends the sessions opened through other APIs") {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  Account a = register_v1(latch);
  std::string access = picflux_access(latch, a);
  Reply forgot = latch.post("/auth/forget-password", {{"email", a.email}});
  REQUIRE(forgot.status == 200);
  Reply reset = latch.post("/auth/reset-password", {{"reset_token", forgot.body["reset_token"]},
                                                    {"new_password", "newpassword456"}});
  REQUIRE(reset.status == 200);
  CHECK(latch.get("/auth/getuser", access).status == 401);
  CHECK(latch.post("/api/v1/auth/login", {{"identity", a.email}, {"password", "newpassword456"}})
            .status == 200);
  CHECK(
      latch.post("/api/v1/auth/login", {{"identity", a.email}, {"password", a.password}}).status ==
      401);
}

TEST_CASE("expired blacklist entries, sessions and reset tokens are purged automatically") {
  LatchProcess latch(
      {{"--purge-interval", "1", "--v1-access-ttl", "1", "--v1-refresh-ttl", "1",
        "--reset-token-ttl", "1", "--reset-token-in-response", "--purge-margin", "0"},
       {}});
  Account a = register_v1(latch);
  Reply in = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  REQUIRE(in.status == 200);
  REQUIRE(
      latch.post_raw("/api/v1/logout", "", "application/json", std::string(in.body["access_token"]))
          .status == 200);
  REQUIRE(latch.post("/auth/forget-password", {{"email", a.email}}).status == 200);
  CHECK(count_rows(latch.db_path(), "token_blacklist") == 1);
  // The answered token, and the mailed link's (the outbox holds none: the sender makes it).
  CHECK(count_rows(latch.db_path(), "one_time_tokens") == 2);
  CHECK(count_rows(latch.db_path(), "sessions") == 1);
  // Everything above lives one second; the purge runs every second.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline &&
         count_rows(latch.db_path(), "token_blacklist") +
                 count_rows(latch.db_path(), "one_time_tokens") +
                 count_rows(latch.db_path(), "sessions") >
             0)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(count_rows(latch.db_path(), "token_blacklist") == 0);
  CHECK(count_rows(latch.db_path(), "one_time_tokens") == 0);
  CHECK(count_rows(latch.db_path(), "sessions") == 0);
  CHECK(count_rows(latch.db_path(), "users") == 1);
}
