// README.md's "Differences from the original servers" table against the binary: each row's id
// names a check here, which starts the real server and proves what the row says Latch does
// (and, where the row names a flag, that the flag brings the original back). A row without a
// check, or a check without a row, fails: the table cannot drift from the product.
#include "support/latch_process.h"

#include "auth/apis/api.h"

#include <doctest/doctest.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

const std::string kPassword = "Passw0rd!2024";

// One row of the table, its cells as written (backticks kept), and the flag its last cell
// names (its first `--...` code span, split at spaces), if any.
struct Row {
  std::string id, apis, original, latch, why, original_back;
  std::vector<std::string> flag;
};

std::string trimmed(std::string s) {
  s.erase(0, s.find_first_not_of(' '));
  s.erase(s.find_last_not_of(' ') + 1);
  return s;
}

std::string unquoted(const std::string &cell) {
  return cell.size() >= 2 && cell.front() == '`' && cell.back() == '`'
             ? cell.substr(1, cell.size() - 2)
             : cell;
}

std::vector<std::string> flag_in(const std::string &cell) {
  const std::size_t open = cell.find("`--");
  if (open == std::string::npos) return {};
  const std::size_t close = cell.find('`', open + 1);
  REQUIRE_MESSAGE(close != std::string::npos, "an unclosed code span: " << cell);
  std::istringstream words(cell.substr(open + 1, close - open - 1));
  std::vector<std::string> out;
  for (std::string w; words >> w;)
    out.push_back(w);
  return out;
}

std::vector<Row> readme_differences() {
  std::ifstream in(LATCH_README);
  REQUIRE_MESSAGE(in, "cannot read " LATCH_README);
  std::vector<Row> rows;
  bool in_section = false, in_table = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("## ", 0) == 0) {
      if (in_section) break;
      in_section = line == "## Differences from the original servers";
      continue;
    }
    if (!in_section) continue;
    if (!in_table) {
      in_table = line.rfind("| id |", 0) == 0;
      continue;
    }
    if (line.rfind("|", 0) != 0) break; // the end of the table
    if (line.rfind("|---", 0) == 0) continue;
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');)
      cells.push_back(trimmed(cell));
    REQUIRE_MESSAGE(cells.size() == 6, "not six cells: " << line);
    rows.push_back(
        {unquoted(cells[0]), cells[1], cells[2], cells[3], cells[4], cells[5], flag_in(cells[5])});
  }
  REQUIRE_MESSAGE(!rows.empty(), "no differences table in README.md");
  return rows;
}

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

bool eventually(const std::function<bool()> &condition) {
  for (int i = 0; i < 100; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return condition();
}

struct Account {
  std::string username, email;
};

// Signed up through picflux, so every API signs it in (by email or by username).
Account sign_up(const LatchProcess &latch, const std::string &password = kPassword) {
  Account a{unique("diff"), ""};
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/auth/signup",
                       {{"email", a.email}, {"username", a.username}, {"password", password}});
  REQUIRE(r.status == 201);
  return a;
}

struct Pair {
  std::string access, refresh;
};

Pair sign_in(const LatchProcess &latch, const std::string &api, const Account &a) {
  Reply r;
  if (api == "picflux")
    r = latch.post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}});
  else if (api == "flask")
    r = latch.post("/auth/login", {{"username", a.username}, {"password", kPassword}});
  else if (api == "v1")
    r = latch.post("/api/v1/login", {{"email", a.email}, {"password", kPassword}});
  REQUIRE_MESSAGE(r.status == 200, api << ": " << r.text);
  return {r.body["access_token"], r.body["refresh_token"]};
}

// The refresh route of the API, with the refresh token as that API takes it.
Reply refresh(const LatchProcess &latch, const std::string &api, const std::string &token) {
  if (api == "picflux") return latch.post_raw("/api/auth/refresh", "", "", token);
  if (api == "flask") return latch.post_raw("/auth/refresh", "", "", token);
  return latch.post("/api/v1/refresh", {{"refresh_token", token}});
}

// Whether a pair works: its access token at two APIs' protected routes, its refresh token at
// the API that issued it. All or nothing, or the check fails.
bool pair_works(const LatchProcess &latch, const std::string &api, const Pair &p) {
  const int getuser = latch.get("/auth/getuser", p.access).status;
  const int me = latch.get("/api/v1/authorized/me", p.access).status;
  const int refreshed = refresh(latch, api, p.refresh).status;
  CAPTURE(api);
  CHECK(getuser == me);
  CHECK(getuser == refreshed);
  return getuser == 200;
}

std::string flask_reset_token(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/auth/forget-password", {{"email", a.email}});
  REQUIRE(r.status == 200);
  REQUIRE(r.body["reset_token"].is_string());
  return r.body["reset_token"];
}

// ---- one check a row -----------------------------------------------------------------------

void password_length(const Row &row) {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  const std::string seven = "1234567";
  const std::string u = unique("pw");
  Reply picflux = latch.post("/api/auth/signup",
                             {{"email", u + "@example.com"}, {"username", u}, {"password", seven}});
  CHECK(picflux.status == 400);
  CHECK(picflux.body["message"] ==
        json::array({"password must be longer than or equal to 8 characters"}));
  Reply flask = latch.post("/auth/signup",
                           {{"username", u}, {"email", u + "@example.com"}, {"password", seven}});
  CHECK(flask.status == 400);
  CHECK(flask.body == json{{"message", "Password must be at least 8 characters."}});
  Reply v1 = latch.post("/api/v1/register?sendEmail=false",
                        {{"email", u + "@example.com"}, {"username", u}, {"password", "123456"}});
  CHECK(v1.status == 400);
  CHECK(v1.body == json{{"error", "password must be at least 8 characters"}});
  // At reset too.
  Account a = sign_up(latch);
  Reply reset = latch.post("/auth/reset-password",
                           {{"reset_token", flask_reset_token(latch, a)}, {"new_password", seven}});
  CHECK(reset.status == 400);

  // The flag: v1's documented example password signs up and in.
  LatchProcess original({row.flag, {}});
  const std::string e = unique("v1") + "@example.com";
  Reply made = original.post("/api/v1/register?sendEmail=false",
                             {{"email", e}, {"username", unique("v1")}, {"password", "123456"}});
  CHECK(made.status == 201);
  CHECK(original.post("/api/v1/login", {{"email", e}, {"password", "123456"}}).status == 200);
  Reply five =
      original.post("/api/v1/register?sendEmail=false", {{"email", unique("v1") + "@example.com"},
                                                         {"username", unique("v1")},
                                                         {"password", "12345"}});
  CHECK(five.status == 400);
  CHECK(five.body == json{{"error", "password must be at least 6 characters"}});
}

void picflux_wrong_password(const Row &) {
  LatchProcess latch;
  Account a = sign_up(latch);
  Reply wrong =
      latch.post("/api/auth/signin", {{"email", a.email}, {"password", "wrong-password"}});
  CHECK(wrong.status == 401);
  CHECK(wrong.body ==
        json{{"statusCode", 401}, {"message", "Invalid credentials"}, {"error", "Unauthorized"}});
  CHECK_FALSE(wrong.body.contains("access_token"));
  CHECK(latch.post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}}).status ==
        200);
}

void logout_revokes(const Row &) {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::map<std::string, std::string> logout = {
      {"picflux", "/api/auth/logout"}, {"flask", "/auth/logout"}, {"v1", "/api/v1/logout"}};
  for (const auto &[api, path] : logout) {
    CAPTURE(api);
    Pair p = sign_in(latch, api, a), other = sign_in(latch, api, a);
    REQUIRE(latch.get("/auth/getuser", p.access).status == 200);
    // picflux rotates its refresh token: this pair's is first presented after the logout.
    if (api != "picflux") REQUIRE(pair_works(latch, api, p));
    REQUIRE(latch.post_raw(path, "", "application/json", p.access).status == 200);
    CHECK_FALSE(pair_works(latch, api, p));
    CHECK(latch.get("/auth/getuser", other.access).status == 200); // only that session
  }
}

void reset_revokes(const Row &) {
  // The reset tokens are answered (--reset-token-in-response) only to reach them without mail;
  // two resets of one account within a minute pass the mail limit (--mail-limit 0).
  LatchProcess latch({{"--reset-token-in-response", "--mail-limit", "0"}, {}});
  Account a = sign_up(latch);
  std::vector<std::pair<std::string, Pair>> before;
  for (const char *api : {"picflux", "flask", "v1"})
    before.emplace_back(api, sign_in(latch, api, a));
  REQUIRE(latch
              .post("/auth/reset-password",
                    {{"reset_token", flask_reset_token(latch, a)}, {"new_password", kPassword}})
              .status == 200);
  for (const auto &[api, p] : before)
    CHECK_FALSE(pair_works(latch, api, p));

  // v1's reset route likewise.
  Pair v1 = sign_in(latch, "v1", a);
  REQUIRE(pair_works(latch, "v1", v1));
  REQUIRE(latch
              .post("/api/v1/password-reset-confirm?token=" + flask_reset_token(latch, a),
                    {{"new_password", kPassword}, {"new_password_confirm", kPassword}})
              .status == 200);
  CHECK_FALSE(pair_works(latch, "v1", v1));
}

void flask_reset_mailed(const Row &row) {
  LatchProcess latch;
  Account a = sign_up(latch);
  Reply r = latch.post("/auth/forget-password", {{"email", a.email}});
  CHECK(r.status == 200);
  CHECK(r.body == json{{"message", "Password reset link sent."}});
  CHECK(eventually([&] { return contains(latch.log(), "/reset-password?token="); }));
  CHECK_FALSE(contains(latch.log(), "--reset-token-in-response"));

  LatchProcess original({row.flag, {}});
  CHECK(contains(original.log(), "warning: --reset-token-in-response is on"));
  Account b = sign_up(original);
  Reply answered = original.post("/auth/forget-password", {{"email", b.email}});
  CHECK(answered.status == 200);
  REQUIRE(answered.body["reset_token"].is_string());
  CHECK(original
            .post("/auth/reset-password",
                  {{"reset_token", answered.body["reset_token"]}, {"new_password", "another-pw-9"}})
            .status == 200);
}

void v1_reset_unknown(const Row &) {
  LatchProcess latch;
  Account a = sign_up(latch);
  const json said = {{"message", "if the account exists, a reset link has been sent"}};
  for (const json &body : {json{{"email", a.email}, {"username", a.username}},
                           json{{"email", "nobody-" + a.email}, {"username", a.username}},
                           json{{"email", a.email}, {"username", "nobody-" + a.username}},
                           json{{"email", "nobody@example.com"}, {"username", "nobody"}}}) {
    CAPTURE(body.dump());
    Reply r = latch.post("/api/v1/password-reset", body);
    CHECK(r.status == 200);
    CHECK(r.body == said);
  }
}

void flask_token_401(const Row &) {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::string access = sign_in(latch, "flask", a).access;
  const std::string other = sign_in(latch, "v1", sign_up(latch)).access;
  Reply segments = latch.post_raw("/auth/logout", "", "application/json", "abc");
  CHECK(segments.status == 401);
  CHECK(segments.body == json{{"msg", "Not enough segments"}});
  // Its header and claims under another token's signature.
  const std::string forged = access.substr(0, access.rfind('.')) + other.substr(other.rfind('.'));
  Reply signature = latch.post_raw("/auth/logout", "", "application/json", forged);
  CHECK(signature.status == 401);
  CHECK(signature.body == json{{"msg", "Signature verification failed"}});
  CHECK(latch.post_raw("/auth/logout", "", "application/json", access).status == 200);
}

void v1_verify_token_path(const Row &) {
  LatchProcess latch;
  const std::string access = sign_in(latch, "v1", sign_up(latch)).access;
  Reply documented = latch.post("/api/v1/verify", {{"token", access}});
  Reply original = latch.post("/api/v1/verify-token", {{"token", access}});
  CHECK(documented.status == 200);
  CHECK(original.status == 200);
  CHECK(original.text == documented.text);
  CHECK(original.body["token"] == jwt_payload(access));
}

void v1_verify_token(const Row &row) {
  LatchProcess latch;
  const json user = {
      {"email", unique("v") + "@example.com"}, {"username", unique("v")}, {"password", kPassword}};
  Reply plain = latch.post("/api/v1/register", user);
  CHECK(plain.status == 201);
  CHECK(plain.body == json{{"message", "registered"}});

  LatchProcess original({row.flag, {}});
  CHECK(contains(original.log(), "warning: --verify-token-in-response is on"));
  Reply r = original.post("/api/v1/register", user);
  CHECK(r.status == 201);
  CHECK(r.body["message"] == "registered");
  REQUIRE(r.body["verifyToken"].is_string());
  Reply confirmed =
      original.get("/api/v1/verify?token=" + r.body["verifyToken"].get<std::string>());
  CHECK(confirmed.status == 200);
  CHECK(confirmed.body == json{{"message", "email verified"}});
}

void envelope_500(const Row &) {
  LatchProcess latch;
  // A store failure with a telling cause ("no such table: users", on PostgreSQL 'relation
  // "users" does not exist'), as a broken database would give.
  sql_exec(latch.db_path(), "ALTER TABLE users RENAME TO users_hidden_away");
  const std::string u = unique("env");
  Reply r = latch.post("/api/v1/auth/signUp", {{"username", u},
                                               {"email", u + "@example.com"},
                                               {"password", kPassword},
                                               {"display_name", "En"}});
  CHECK(r.status == 500);
  CHECK(r.body["code"] == 500);
  CHECK(r.body["message"] == "Server error");
  CHECK(r.body["data"] == json::array());
  CHECK_FALSE(contains(r.text, "table"));
  CHECK_FALSE(contains(r.text, "users"));
}

struct Check {
  bool takes_flag; // the row names a flag that brings the original back, and the check uses it
  void (*run)(const Row &);
};

const std::map<std::string, Check> &checks() {
  static const std::map<std::string, Check> all = {
      {"password-length", {true, password_length}},
      {"picflux-wrong-password", {false, picflux_wrong_password}},
      {"logout-revokes", {false, logout_revokes}},
      {"reset-revokes", {false, reset_revokes}},
      {"flask-reset-mailed", {true, flask_reset_mailed}},
      {"v1-reset-unknown", {false, v1_reset_unknown}},
      {"flask-token-401", {false, flask_token_401}},
      {"v1-verify-token-path", {false, v1_verify_token_path}},
      {"v1-verify-token", {true, v1_verify_token}},
      {"envelope-500", {false, envelope_500}},
  };
  return all;
}

} // namespace

TEST_CASE("README.md's differences table has a check for each row and a row for each check") {
  std::set<std::string> known_apis;
  for (const latch::apis::ApiRow &row : latch::apis::api_rows())
    known_apis.insert(row.name);
  std::set<std::string> ids;
  for (const Row &row : readme_differences()) {
    CAPTURE(row.id);
    CHECK_MESSAGE(ids.insert(row.id).second, "two rows with one id");
    auto check = checks().find(row.id);
    CHECK_MESSAGE(check != checks().end(), "a row without a check in test_differences.cpp");
    if (check != checks().end())
      CHECK_MESSAGE(check->second.takes_flag == !row.flag.empty(),
                    (row.flag.empty() ? "the row names no flag, but its check wants one"
                                      : "the row names a flag its check does not try"));
    for (const std::string &cell : {row.original, row.latch, row.why, row.original_back})
      CHECK_MESSAGE(!cell.empty(), "an empty cell");
    std::istringstream apis(row.apis);
    for (std::string api; std::getline(apis, api, ',');)
      CHECK_MESSAGE(known_apis.count(trimmed(api)), "no API called " << trimmed(api));
  }
  for (const auto &[id, check] : checks())
    CHECK_MESSAGE(ids.count(id), "a check without a row in README.md: " << id);
}

TEST_CASE("each row of README.md's differences table holds for the binary") {
  for (const Row &row : readme_differences()) {
    auto check = checks().find(row.id);
    if (check == checks().end()) continue; // the test above fails for it
    INFO("README.md's differences row `" << row.id << "`: " << row.latch);
    check->second.run(row);
  }
}
