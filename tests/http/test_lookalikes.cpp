// Look-alike identities are one account, through every API, the admin CLI and an old database:
// a username taken through one API is taken in each of its look-alike spellings through every
// other, sign-in reads a username as sign-up keys it, and the CLI agrees with the APIs.
#include "support/latch_process.h"

#include "auth/password.h"
#include "db/schema.h"

#include <doctest/doctest.h>

#include <sqlite3.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

// Strong enough for envelope, short enough for picflux.
const std::string kPassword = "Passw0rd!2024";

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

// Each API's sign-up, and how it says "taken" and "bad username" in its own shape.
struct SignUpApi {
  std::string name;
  std::function<Reply(const LatchProcess &, const std::string &username, const std::string &email)>
      sign_up;
  int created = 0;
  json taken;        // the whole body of a 409
  json bad_username; // the whole body of a 400 (envelope: its message; see check)
};

json envelope_body(const Reply &r) {
  json b = r.body;
  b.erase("requestTime"); // the one field that changes per answer
  return b;
}

const std::vector<SignUpApi> &apis() {
  static const std::vector<SignUpApi> all = {
      {"picflux",
       [](const LatchProcess &l, const std::string &u, const std::string &e) {
         return l.post("/api/auth/signup",
                       {{"email", e}, {"username", u}, {"password", kPassword}});
       },
       201,
       {{"statusCode", 409},
        {"message", "Username or email is already in use"},
        {"error", "Conflict"}},
       {{"statusCode", 400}, {"message", {"username is invalid"}}, {"error", "Bad Request"}}},
      {"simplejwt",
       [](const LatchProcess &l, const std::string &u, const std::string &e) {
         return l.post("/auth/register", {{"username", u}, {"password", kPassword}, {"email", e}});
       },
       201,
       {{"detail", "User already exists"}},
       {{"username", {"Enter a valid value."}}}},
      {"flask",
       [](const LatchProcess &l, const std::string &u, const std::string &e) {
         return l.post("/auth/signup", {{"username", u}, {"email", e}, {"password", kPassword}});
       },
       201,
       {{"message", "User already exists."}},
       {{"message", "Missing required fields."}}},
      {"v1",
       [](const LatchProcess &l, const std::string &u, const std::string &e) {
         return l.post("/api/v1/register?sendEmail=false",
                       {{"email", e}, {"username", u}, {"password", kPassword}});
       },
       201,
       {{"error", "user already exists"}},
       {{"error", "invalid username"}}},
      {"envelope",
       [](const LatchProcess &l, const std::string &u, const std::string &e) {
         return l.post("/api/v1/auth/signUp", {{"username", u},
                                               {"email", e},
                                               {"password", kPassword},
                                               {"display_name", "Look Alike"}});
       },
       200,
       {{"code", 409},
        {"message", "User already exists"},
        {"apiVersion", "v0.0.1"},
        {"data", json::array()}},
       {{"code", 400},
        {"message", "username is not valid"},
        {"apiVersion", "v0.0.1"},
        {"data", json::array()}}},
  };
  return all;
}

void check_answer(const SignUpApi &api, const Reply &r, int status, const json &body) {
  CHECK(r.status == status);
  CHECK((api.name == "envelope" ? envelope_body(r) : r.body) == body);
}

// ASCII letters and digits as their fullwidth forms (U+FF01..U+FF5E).
std::string fullwidth(const std::string &ascii) {
  std::string out;
  for (unsigned char c : ascii) {
    if (c < 0x21 || c > 0x7e) {
      out += static_cast<char>(c);
      continue;
    }
    const unsigned cp = c + 0xFEE0u;
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return out;
}

std::string replace_first(std::string s, const std::string &from, const std::string &to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

struct Spelling {
  std::string why, text;
};

// Spellings of base ("admin" + "é" + a unique tail) with the same key or the same skeleton.
std::vector<Spelling> same_account(const std::string &base) {
  return {{"upper case", upper(base)},
          {"fullwidth", fullwidth(base)},
          {"decomposed é", replace_first(base, "\u00E9", "e\u0301")},
          {"upper case É", replace_first(base, "\u00E9", "\u00C9")},
          {"Cyrillic а", replace_first(base, "a", "\u0430")},
          {"rn for m", replace_first(base, "m", "rn")}};
}

// Spellings with a character the rule refuses outright.
std::vector<Spelling> refused(const std::string &base) {
  return {{"zero-width space", replace_first(base, "m", "m\u200B")},
          {"no-break space", replace_first(base, "m", "m\u00A0")},
          {"soft hyphen", replace_first(base, "m", "m\u00AD")},
          {"BOM", "\uFEFF" + base},
          {"right-to-left override", replace_first(base, "m", "m\u202E")},
          {"trailing zero-width joiner", base + "\u200D"}};
}

std::string sub_of(const Reply &r, const std::string &field) {
  REQUIRE(r.body.is_object());
  const json &token = r.body[field];
  REQUIRE(token.is_string());
  return jwt_payload(token.get<std::string>())["sub"].get<std::string>();
}

std::string password_hash(const std::string &password) {
  latch::PasswordParams params;
  params.memory_kib = 64;
  params.iterations = 1;
  latch::PasswordHasher hasher(params, 1, 1);
  auto h = hasher.hash(password);
  REQUIRE(h.ok());
  return h.value();
}

void exec_sql(const std::string &path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char *err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

CommandResult admin(const std::string &db, std::vector<std::string> args) {
  args.push_back("--db");
  args.push_back(db);
  return run_latch(args, {{"LATCH_ARGON2_MEMORY_KIB", "64"}, {"LATCH_ARGON2_ITERATIONS", "1"}});
}

} // namespace

TEST_CASE("a username taken through one API is taken through every other in each look-alike "
          "spelling") {
  LatchProcess latch;
  for (const SignUpApi &origin : apis()) {
    CAPTURE(origin.name);
    const std::string base = unique("admin\u00E9"), email = unique("owner") + "@example.com";
    REQUIRE(origin.sign_up(latch, base, email).status == origin.created);
    for (const SignUpApi &other : apis()) {
      if (other.name == origin.name) continue;
      CAPTURE(other.name);
      for (const Spelling &s : same_account(base)) {
        CAPTURE(s.why);
        check_answer(other, other.sign_up(latch, s.text, unique("x") + "@example.com"), 409,
                     other.taken);
      }
      for (const Spelling &s : refused(base)) {
        CAPTURE(s.why);
        check_answer(other, other.sign_up(latch, s.text, unique("x") + "@example.com"), 400,
                     other.bad_username);
      }
      // The owner's email as a username, and the owner's email in upper case.
      CAPTURE("email as username");
      check_answer(other, other.sign_up(latch, email, unique("x") + "@example.com"), 409,
                   other.taken);
      check_answer(other, other.sign_up(latch, unique("fresh"), upper(email)), 409, other.taken);
    }
  }
  // Nothing above made an account: one per API.
  auto listed =
      json::parse(admin(latch.db_path(), {"user", "list", "--json"}).output, nullptr, false);
  REQUIRE(listed.is_array());
  CHECK(listed.size() == apis().size());
}

TEST_CASE("a username that is another user's email, or an email that is a username, is taken") {
  LatchProcess latch;
  // simplejwt users may have a username with an @ and no email.
  const std::string name_like_email = unique("boss") + "@example.com";
  REQUIRE(latch.post("/auth/register", {{"username", name_like_email}, {"password", kPassword}})
              .status == 201);
  for (const SignUpApi &api : apis()) {
    if (api.name == "simplejwt") continue;
    CAPTURE(api.name);
    check_answer(api, api.sign_up(latch, unique("chief"), upper(name_like_email)), 409, api.taken);
  }
  // JSON escapes are read as the characters they stand for: \uff41 is a fullwidth a.
  Reply escaped =
      latch.post_raw("/auth/register",
                     R"({"username":")" + replace_first(name_like_email, "b", "\\uff42") +
                         R"(","password":")" + kPassword + R"("})",
                     "application/json");
  CHECK(escaped.status == 409);
  CHECK(escaped.body == json{{"detail", "User already exists"}});
}

TEST_CASE("sign-in reads a look-alike spelling as sign-up keyed it, and refuses what it refused") {
  LatchProcess latch;
  const std::string base = unique("admin\u00E9"), email = unique("Owner") + "@Example.com";
  Reply made = latch.post("/api/auth/signup",
                          {{"email", email}, {"username", base}, {"password", kPassword}});
  REQUIRE(made.status == 201);
  const std::string id = sub_of(made, "access_token");

  // The same key: every API that signs in by username signs this user in.
  for (const std::string &spelling :
       {base, upper(base), fullwidth(base), replace_first(base, "\u00E9", "e\u0301")}) {
    CAPTURE(spelling);
    CHECK(sub_of(latch.post("/auth/token", {{"username", spelling}, {"password", kPassword}}),
                 "access") == id);
    CHECK(sub_of(latch.post("/auth/login", {{"username", spelling}, {"password", kPassword}}),
                 "access_token") == id);
    Reply env = latch.post("/api/v1/auth/login", {{"identity", spelling}, {"password", kPassword}});
    REQUIRE(env.status == 200);
    CHECK(jwt_payload(env.body["data"][0].get<std::string>())["sub"] == id);
  }
  // Emails in any case sign in; their claim is the stored, lower-cased address.
  for (const std::string &spelling : {email, upper(email), lower(email)}) {
    CAPTURE(spelling);
    Reply v1 = latch.post("/api/v1/login", {{"email", spelling}, {"password", kPassword}});
    CHECK(sub_of(v1, "access_token") == id);
    CHECK(jwt_payload(v1.body["access_token"].get<std::string>())["email"] == lower(email));
    CHECK(sub_of(latch.post("/api/auth/signin", {{"email", spelling}, {"password", kPassword}}),
                 "access_token") == id);
  }

  // A confusable (another key) or a refused spelling names nobody: each API's "unknown user",
  // never another account and never a 500.
  std::vector<std::string> nobody = {replace_first(base, "a", "\u0430"),
                                     replace_first(base, "m", "rn")};
  for (const Spelling &s : refused(base))
    nobody.push_back(s.text);
  for (const std::string &spelling : nobody) {
    CAPTURE(spelling);
    Reply sj = latch.post("/auth/token", {{"username", spelling}, {"password", kPassword}});
    CHECK(sj.status == 401);
    CHECK(sj.body == json{{"detail", "No active account found with the given credentials"}});
    Reply fl = latch.post("/auth/login", {{"username", spelling}, {"password", kPassword}});
    CHECK(fl.status == 401);
    CHECK(fl.body == json{{"message", "Invalid credentials."}});
    Reply env = latch.post("/api/v1/auth/login", {{"identity", spelling}, {"password", kPassword}});
    CHECK(env.status == 404);
    CHECK(env.body["message"] == "User not found");
  }
  // A fullwidth email is no email: picflux says so, v1 finds nobody.
  Reply pf = latch.post("/api/auth/signin", {{"email", fullwidth(email)}, {"password", kPassword}});
  CHECK(pf.status == 400);
  CHECK(pf.body["message"] == json::array({"email must be an email"}));
  CHECK(latch.post("/api/v1/login", {{"email", fullwidth(email)}, {"password", kPassword}}).body ==
        json{{"error", "invalid credentials"}});
}

TEST_CASE("v1 password-reset and flask forget-password find the user by any spelling of its keys") {
  // Two resets of one account a moment apart: the per-account mail limit is not what this tests.
  LatchProcess latch({{"--reset-token-in-response", "--mail-limit", "0"}, {}});
  const std::string base = unique("admin\u00E9"), email = unique("reset") + "@example.com";
  REQUIRE(
      latch.post("/auth/signup", {{"username", base}, {"email", email}, {"password", kPassword}})
          .status == 201);
  Reply forgot = latch.post("/auth/forget-password", {{"email", upper(email)}});
  CHECK(forgot.status == 200);
  CHECK(forgot.body["reset_token"].is_string());
  CHECK(latch.post("/auth/forget-password", {{"email", fullwidth(email)}}).status == 404);

  // v1 answers the same either way; the mails in the log (one queue, in order) tell which
  // requests sent a link. A last request for another user marks the end of the queue.
  const std::string marker = unique("marker"), marker_email = marker + "@example.com";
  REQUIRE(latch
              .post("/auth/signup",
                    {{"username", marker}, {"email", marker_email}, {"password", kPassword}})
              .status == 201);
  REQUIRE(latch.post("/api/v1/password-reset", {{"email", email}, {"username", fullwidth(base)}})
              .status == 200);
  REQUIRE(latch
              .post("/api/v1/password-reset",
                    {{"email", email}, {"username", replace_first(base, "a", "\u0430")}})
              .status == 200);
  REQUIRE(latch.post("/api/v1/password-reset", {{"email", marker_email}, {"username", marker}})
              .status == 200);
  auto mails_to = [&](const std::string &to) {
    const std::string log = latch.log(), line = "To: " + to + "\n";
    std::size_t n = 0;
    for (std::size_t at = log.find(line); at != std::string::npos; at = log.find(line, at + 1))
      ++n;
    return n;
  };
  for (int i = 0; i < 250 && mails_to(marker_email) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  REQUIRE(mails_to(marker_email) == 1);
  // flask's and the fullwidth spelling's; the Cyrillic one is another name, so no mail.
  CHECK(mails_to(email) == 2);
}

TEST_CASE("a database with look-alike users from before the rule: both sign in, the log says so, "
          "latch user rename fixes it") {
  TempDir dir;
  const std::string path = dir.file("auth.db");
  const std::string older = "admin", newer = "\uFF41\uFF44\uFF4D\uFF49\uFF4E"; // fullwidth
  {
    // The release before migration 3 (user_version 2): usernames as typed, no keys.
    std::string schema = latch::db::kSchemaSql;
    exec_sql(path, "BEGIN;" + schema.substr(0, schema.find("-- migration 3")) +
                       "INSERT INTO users(id, username, email, password_hash, created_at, "
                       "updated_at) VALUES ('u-older', '" +
                       older + "', 'old@example.com', '" + password_hash("older-password") +
                       "', 1000, 1000), ('u-newer', '" + newer + "', 'new@example.com', '" +
                       password_hash("newer-password") +
                       "', 2000, 2000); PRAGMA user_version = 2; COMMIT;");
  }
  auto token_sub = [](const LatchProcess &l, const std::string &name, const std::string &pw) {
    Reply r = l.post("/auth/token", {{"username", name}, {"password", pw}});
    REQUIRE(r.status == 200);
    return jwt_payload(r.body["access"].get<std::string>())["sub"].get<std::string>();
  };
  {
    LatchProcess latch({}, path);
    // Each signs in by its exact username; other spellings of the key reach the older one.
    CHECK(token_sub(latch, older, "older-password") == "u-older");
    CHECK(token_sub(latch, newer, "newer-password") == "u-newer");
    CHECK(token_sub(latch, "ADMIN", "older-password") == "u-older");
    CHECK(token_sub(latch, "\uFF21DMIN", "older-password") == "u-older");
    CHECK(
        latch.post("/api/v1/login", {{"email", "new@example.com"}, {"password", "newer-password"}})
            .status == 200);
    const std::string log = latch.log();
    CHECK(contains(log, "latch: users \"admin\" (u-older) and \"" + newer +
                            "\" (u-newer) have look-alike usernames"));
    CHECK(contains(log, "rename one with `latch user rename`"));
    // No third account can take the name meanwhile.
    CHECK(latch.post("/auth/register", {{"username", "Admin"}, {"password", kPassword}}).status ==
          409);

    // The CLI names them as sign-in does, and renames the newer one while the server runs.
    CommandResult show = admin(path, {"user", "show", newer, "--json"});
    REQUIRE(show.status == 0);
    CHECK(contains(show.output, "u-newer"));
    CHECK(contains(admin(path, {"user", "show", "ADMIN", "--json"}).output, "u-older"));
    CommandResult taken = admin(path, {"user", "rename", newer, "\u0430dmin"});
    CHECK(taken.status == 1);
    CHECK(contains(taken.output, "taken"));
    CommandResult bad = admin(path, {"user", "rename", newer, "admin\u200B2"});
    CHECK(bad.status == 2);
    CHECK(contains(bad.output, "invisible"));
    CommandResult renamed = admin(path, {"user", "rename", newer, "root"});
    REQUIRE(renamed.status == 0);
    CHECK(token_sub(latch, "ROOT", "newer-password") == "u-newer");
    CHECK(latch.post("/auth/token", {{"username", newer}, {"password", "newer-password"}}).status ==
          401);
  }
  LatchProcess again({}, path);
  CHECK_FALSE(contains(again.log(), "look-alike"));
  CHECK(token_sub(again, older, "older-password") == "u-older");
  CHECK(token_sub(again, "root", "newer-password") == "u-newer");
}

TEST_CASE("latch user add and the APIs accept and refuse the same usernames and emails") {
  LatchProcess latch;
  // A property, not a name: each case makes a fresh name with it, one for the API, one for
  // the CLI, so neither sees the other's as taken.
  struct Case {
    std::string why;
    std::function<std::string(const std::string &)> name;
    bool valid;
  };
  const std::vector<Case> cases = {
      {"plain", [](const std::string &u) { return u; }, true},
      {"accented", [](const std::string &u) { return u + "\u00E9"; }, true},
      {"an @", [](const std::string &u) { return u + "@example.com"; }, true},
      {"Cyrillic", [](const std::string &u) { return "\u0436" + u; }, true},
      {"150 characters", [](const std::string &u) { return u + std::string(150 - u.size(), 'z'); },
       true},
      {"151 characters", [](const std::string &u) { return u + std::string(151 - u.size(), 'z'); },
       false},
      {"zero-width space", [](const std::string &u) { return u + "\u200B"; }, false},
      {"no-break space", [](const std::string &u) { return u + "\u00A0z"; }, false},
      {"soft hyphen", [](const std::string &u) { return u + "\u00ADz"; }, false},
      {"BOM", [](const std::string &u) { return "\uFEFF" + u; }, false},
      {"right-to-left override", [](const std::string &u) { return u + "\u202Ez"; }, false},
      {"space", [](const std::string &u) { return u + " z"; }, false},
      {"tab", [](const std::string &u) { return u + "\tz"; }, false},
      {"private use", [](const std::string &u) { return u + "\uE000"; }, false},
  };
  for (const Case &c : cases) {
    CAPTURE(c.why);
    Reply api = latch.post("/auth/register",
                           {{"username", c.name(unique("api"))}, {"password", kPassword}});
    CommandResult cli = admin(latch.db_path(), {"user", "add", c.name(unique("cli"))});
    CHECK(api.status == (c.valid ? 201 : 400));
    CHECK(cli.status == (c.valid ? 0 : 2));
  }
  // Emails: the WHATWG rule in both.
  for (const auto &[email, valid] :
       std::vector<std::pair<std::string, bool>>{{"@localhost", true},
                                                 {"@sub-domain.example", true},
                                                 {"@b..c", false},
                                                 {"@-b.c", false},
                                                 {"@b_c.d", false},
                                                 {"\u00E4@x.y", false}}) {
    CAPTURE(email);
    const std::string api_email = (email[0] == '@' ? unique("api") : "") + email;
    const std::string cli_email = (email[0] == '@' ? unique("cli") : unique("cli") + "-") + email;
    Reply api =
        latch.post("/api/v1/register?sendEmail=false",
                   {{"email", api_email}, {"username", unique("e")}, {"password", kPassword}});
    CommandResult cli = admin(latch.db_path(), {"user", "add", unique("e"), "--email", cli_email});
    CHECK(api.status == (valid ? 201 : 400));
    CHECK(cli.status == (valid ? 0 : 2));
  }
  // Taken is taken both ways: a name added by one is taken, in a look-alike spelling, by the other.
  const std::string by_api = unique("admin"), by_cli = unique("admin");
  REQUIRE(latch.post("/auth/register", {{"username", by_api}, {"password", kPassword}}).status ==
          201);
  REQUIRE(
      admin(latch.db_path(), {"user", "add", by_cli, "--email", by_cli + "@example.com"}).status ==
      0);
  for (const std::string &spelling :
       {fullwidth(by_api), upper(by_api), replace_first(by_api, "a", "\u0430")}) {
    CAPTURE(spelling);
    CommandResult cli = admin(latch.db_path(), {"user", "add", spelling});
    CHECK(cli.status == 1);
    CHECK(contains(cli.output, "taken"));
  }
  for (const std::string &spelling :
       {fullwidth(by_cli), upper(by_cli), replace_first(by_cli, "a", "\u0430"),
        by_cli + "@EXAMPLE.com"}) {
    CAPTURE(spelling);
    CHECK(latch.post("/auth/register", {{"username", spelling}, {"password", kPassword}}).status ==
          409);
  }
  CommandResult email_clash =
      admin(latch.db_path(), {"user", "add", unique("e"), "--email", by_cli + "@example.com"});
  CHECK(email_clash.status == 1);
}

TEST_CASE("every API's sign-up takes the emails an <input type=email> takes, and only those") {
  // WHATWG HTML's "valid email address" examples, with each rule's edge: a dotless domain (as
  // user@localhost), hyphens and + in their places, and a label of 63 characters, not 64.
  const std::vector<std::string> valid = {"user@localhost", "a.b-c+d@ex-ample.com", "x@y",
                                          "a@" + std::string(63, 'b') + ".com"};
  const std::vector<std::pair<std::string, std::string>> invalid = {
      {"two @", "a@b@c"},
      {"a label starting with a hyphen", "a@-b.com"},
      {"nothing before the @", "@x"},
      {"a space", "a b@c"},
      {"a label of 64 characters", "a@" + std::string(64, 'b') + ".com"}};
  const std::map<std::string, json> bad_email = {
      {"picflux",
       {{"statusCode", 400}, {"message", {"email must be an email"}}, {"error", "Bad Request"}}},
      {"simplejwt", {{"email", {"Enter a valid email address."}}}},
      {"flask", {{"message", "Invalid email address."}}},
      {"v1", {{"error", "invalid email"}}},
      {"envelope",
       {{"code", 400},
        {"message", "Email is not valid"},
        {"apiVersion", "v0.0.1"},
        {"data", json::array()}}}};
  REQUIRE(bad_email.size() == apis().size());
  for (const SignUpApi &api : apis()) {
    CAPTURE(api.name);
    LatchProcess latch; // each API its own store, so every API signs up the very same addresses
    for (const std::string &email : valid) {
      CAPTURE(email);
      Reply r = api.sign_up(latch, unique("em"), email);
      CHECK(r.status == api.created);
      // Stored as typed (lower-case already), so it signs in by it.
      CHECK(
          latch.post("/api/v1/auth/login", {{"identity", email}, {"password", kPassword}}).status ==
          200);
    }
    for (const auto &[why, email] : invalid) {
      CAPTURE(why);
      check_answer(api, api.sign_up(latch, unique("em"), email), 400, bad_email.at(api.name));
    }
  }
}
