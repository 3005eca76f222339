// The admin commands (latch user, sessions, backup, purge, secret, mail) run against the
// database of a running server, and their effect seen through its HTTP APIs.
#include "support/latch_process.h"

#include "auth/secure.h"
#include "db/schema.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

using namespace latch::test;
namespace fs = std::filesystem;

namespace {

const std::string kPassword = "password123";

std::string slurp(const std::string &path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Cli {
  int status = -1;
  std::string out, err;
};

// Runs build/latch ARGS with input on its stdin, stdout and stderr kept apart. LATCH_DB and
// LATCH_JWT_SECRET are unset unless env sets them; argon2 is cheap, as for the test servers.
// runner, if given, is the command that runs latch (e.g. setpriv as another user).
Cli cli(const std::vector<std::string> &args, const std::map<std::string, std::string> &env = {},
        const std::string &input = "", const std::vector<std::string> &runner = {}) {
  TempDir dir;
  const std::string in_path = dir.file("in"), out_path = dir.file("out"),
                    err_path = dir.file("err");
  std::ofstream(in_path) << input;
  std::map<std::string, std::string> all = {{"LATCH_ARGON2_MEMORY_KIB", "64"},
                                            {"LATCH_ARGON2_ITERATIONS", "1"}};
  for (const auto &[k, v] : env)
    all[k] = v;
  // Everything the child needs is made here: after fork it only opens files and execs, so a
  // thread of the test holding a lock (malloc's) at fork time cannot hang it.
  std::vector<std::string> argv = runner, envp;
  argv.push_back(LATCH_BINARY);
  argv.insert(argv.end(), args.begin(), args.end());
  for (char **e = environ; *e; ++e) {
    std::string entry = *e, name = entry.substr(0, entry.find('='));
    if (name != "LATCH_DB" && name != "LATCH_JWT_SECRET" && !all.count(name)) envp.push_back(entry);
  }
  for (const auto &[k, v] : all)
    envp.push_back(k + "=" + v);
  std::vector<char *> c_argv, c_envp;
  for (auto &a : argv)
    c_argv.push_back(a.data());
  c_argv.push_back(nullptr);
  for (auto &e : envp)
    c_envp.push_back(e.data());
  c_envp.push_back(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int in = open(in_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (in < 0 || out < 0 || err < 0) _exit(127);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execve(c_argv[0], c_argv.data(), c_envp.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out_path), slurp(err_path)};
}

// An admin command on the running server's database.
Cli admin(const LatchProcess &latch, std::vector<std::string> args, const std::string &input = "",
          const std::map<std::string, std::string> &env = {}) {
  args.push_back("--db");
  args.push_back(latch.db_path());
  return cli(args, env, input);
}

bool contains(const std::string &text, const std::string &part) {
  return text.find(part) != std::string::npos;
}

struct Account {
  std::string username, email, password = kPassword;
  std::string access, refresh; // of the session its sign-up opened
};

// Signs up through picflux: one session with an access and a refresh token.
Account sign_up(const LatchProcess &latch) {
  Account a;
  a.username = unique("adm");
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/auth/signup",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  REQUIRE(r.status == 201);
  a.access = r.body["access_token"].get<std::string>();
  a.refresh = r.body["refresh_token"].get<std::string>();
  return a;
}

int sign_in(const LatchProcess &latch, const std::string &email, const std::string &password) {
  return latch.post("/api/auth/signin", {{"email", email}, {"password", password}}).status;
}

json jwt_header(const std::string &token) {
  auto bytes = latch::secure::base64url_decode(token.substr(0, token.find('.')));
  return bytes ? json::parse(*bytes, nullptr, false) : json();
}

std::string generated_password(const std::string &out) {
  static const std::regex line(R"(password: (\S+))");
  std::smatch m;
  return std::regex_search(out, m, line) ? m[1].str() : std::string();
}

std::string hs256(const std::string &secret, const std::string &header, const json &payload) {
  std::string input = latch::secure::base64url_encode(header) + "." +
                      latch::secure::base64url_encode(payload.dump());
  return input + "." + latch::secure::base64url_encode(latch::secure::hmac_sha256(secret, input));
}

// A new SQLite file holding what sql writes into it (SQLite takes an empty file for a new
// database).
void make_sqlite_file(const std::string &path, const std::string &sql) {
  std::ofstream(path).close();
  sql_exec(path, sql);
}

// An SQLite database with migration 1 alone, as the release before key rings left it, and
// what extra_sql adds.
void make_old_database(const std::string &path, const std::string &extra_sql = "") {
  std::string schema = latch::db::kSchemaSql;
  std::string first = schema.substr(0, schema.find("-- migration 2"));
  make_sqlite_file(path, "BEGIN;" + first + extra_sql + "PRAGMA user_version = 1; COMMIT;");
}

// The number of the last "-- migration N" block of auth.db.sql.
int latest_migration() {
  const std::string marker = "\n-- migration ";
  const std::string schema = latch::db::kSchemaSql;
  return std::stoi(schema.substr(schema.rfind(marker) + marker.size()));
}

const std::vector<std::vector<std::string>> &every_command() {
  static const std::vector<std::vector<std::string>> all = {{"user", "add"},
                                                            {"user", "list"},
                                                            {"user", "show"},
                                                            {"user", "delete"},
                                                            {"user", "set-password"},
                                                            {"user", "verify-email"},
                                                            {"user", "import"},
                                                            {"user", "export"},
                                                            {"sessions", "list"},
                                                            {"sessions", "revoke"},
                                                            {"backup"},
                                                            {"purge"},
                                                            {"secret", "rotate"},
                                                            {"secret", "list"},
                                                            {"mail", "list"},
                                                            {"mail", "retry"},
                                                            {"mail", "drop"},
                                                            {"doctor"}};
  return all;
}

} // namespace

TEST_CASE("latch help lists every admin command and what the exit statuses mean") {
  CommandResult r = run_latch({"help"});
  CHECK(r.status == 0);
  for (const auto &command : every_command()) {
    std::string text = "latch " + command[0] + (command.size() > 1 ? " " + command[1] : "");
    CAPTURE(text);
    CHECK(contains(r.output, text));
  }
  CHECK(contains(r.output, "--password-stdin"));
  CHECK(contains(r.output, "0 done"));
  CHECK(contains(r.output, "1 failed"));
  CHECK(contains(r.output, "2 usage"));
  CHECK(contains(r.output, "3 not found"));
}

TEST_CASE("every admin command answers --help with its usage, --db and the exit statuses") {
  for (auto command : every_command()) {
    std::string name = command[0] + (command.size() > 1 ? " " + command[1] : "");
    CAPTURE(name);
    command.push_back("--help");
    Cli r = cli(command);
    CHECK(r.status == 0);
    CHECK(contains(r.out, "Usage: latch " + name));
    CHECK(contains(r.out, "--db PATH"));
    CHECK(contains(r.out, "Exit status"));
  }
  Cli group = cli({"user", "--help"});
  CHECK(group.status == 0);
  CHECK(contains(group.out, "latch user set-password USER"));
}

TEST_CASE("bad command lines exit 2 with a message on stderr and change nothing") {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::vector<std::vector<std::string>> bad = {
      {"user"},
      {"user", "frobnicate"},
      {"sessions"},
      {"secret"},
      {"secret", "show"},
      {"user", "list", "--no-such-flag"},
      {"user", "list", "extra"},
      {"user", "show"},
      {"user", "show", a.username, "another"},
      {"user", "delete"},
      {"user", "add"},
      {"user", "add", "someone", "--email"},
      {"user", "list", "--json=yes"},
      {"sessions", "revoke"},
      {"backup"},
      {"backup", "a.db", "b.db"},
      {"purge", "now"},
      {"secret", "rotate", "--force"},
      {"secret", "rotate", "--retire-now=yes"},
      {"user", "delete", "-x"},
      {"sessions", "revoke", "--all", a.username},
      {"sessions", "revoke", a.username, "--all"},
      {"doctor", "extra"},
      {"mail"},
      {"mail", "send"},
      {"mail", "retry"},
      {"mail", "retry", "abc"},
      {"mail", "retry", "--all", "3"},
      {"mail", "drop", "0"},
      {"mail", "drop", "-1"},
      {"mail", "list", "3"},
  };
  for (const auto &args : bad) {
    std::string line;
    for (const auto &a_ : args)
      line += a_ + " ";
    CAPTURE(line);
    Cli r = admin(latch, args);
    CHECK(r.status == 2);
    CHECK(r.out.empty());
    CHECK_FALSE(r.err.empty());
  }
  CHECK(sign_in(latch, a.email, kPassword) == 200);
  CHECK(latch.get("/auth/getuser", a.access).status == 200);
}

TEST_CASE("an admin command on a database that does not exist exits 1 and creates none") {
  if (skip_on_postgres("a missing or garbage SQLite file as --db (test_postgres_ops: a URI that "
                       "reaches nothing)"))
    return;
  TempDir dir;
  const std::string missing = dir.file("missing.db");
  for (const std::vector<std::string> &args :
       {std::vector<std::string>{"user", "list"}, {"purge"}, {"secret", "rotate"}}) {
    std::vector<std::string> with_db = args;
    with_db.insert(with_db.end(), {"--db", missing});
    Cli r = cli(with_db);
    CHECK(r.status == 1);
    CHECK(contains(r.err, "no database at " + missing));
  }
  CHECK_FALSE(fs::exists(missing));

  const std::string garbage = dir.file("garbage.db");
  std::ofstream(garbage) << std::string(8192, 'x');
  Cli r = cli({"user", "list", "--db", garbage});
  CHECK(r.status == 1);
  CHECK_FALSE(r.err.empty());
}

TEST_CASE("LATCH_DB names the database as it does for serve, and --db wins over it") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Cli by_env = cli({"user", "list"}, {{"LATCH_DB", latch.db_path()}});
  CHECK(by_env.status == 0);
  CHECK(contains(by_env.out, a.username));
  TempDir dir;
  Cli flag_wins =
      cli({"user", "list", "--db", dir.file("other.db")}, {{"LATCH_DB", latch.db_path()}});
  CHECK(flag_wins.status == 1);
  Cli equals_form = cli({"user", "list", "--db=" + latch.db_path()});
  CHECK(equals_form.status == 0);
  CHECK(contains(equals_form.out, a.username));
}

TEST_CASE("user add with --password-stdin makes a user who signs in through every API") {
  LatchProcess latch;
  const std::string name = unique("added");
  const std::string email = lower(name) + "@example.com";
  Cli r = admin(latch, {"user", "add", name, "--email", upper(email), "--password-stdin"},
                "s3cret-enough\n");
  CHECK(r.status == 0);
  CHECK(contains(r.out, "added user " + name));
  CHECK_FALSE(contains(r.out, "password:")); // nothing generated, nothing printed
  CHECK(sign_in(latch, email, "s3cret-enough") == 200);
  CHECK(latch.post("/auth/token", {{"username", name}, {"password", "s3cret-enough"}}).status ==
        200);
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", "s3cret-enough"}}).status ==
        200);
  CHECK(latch.post("/api/v1/auth/login", {{"identity", name}, {"password", "s3cret-enough"}})
            .status == 200);
  CHECK(sign_in(latch, email, "s3cret-enough\n") == 401); // the newline is not the password
}

TEST_CASE("user add without --password-stdin prints a generated password once, and it works") {
  LatchProcess latch;
  const std::string name = unique("gen");
  Cli r = admin(latch, {"user", "add", name});
  CHECK(r.status == 0);
  const std::string password = generated_password(r.out);
  REQUIRE(password.size() >= 16);
  CHECK(r.out.find("password: ") == r.out.rfind("password: "));
  Reply token = latch.post("/auth/token", {{"username", name}, {"password", password}});
  CHECK(token.status == 200);
  // Stored as an argon2id hash, never as the text printed.
  std::string hash =
      sql_value(latch.db_path(), "SELECT password_hash FROM users WHERE username = '" + name + "'");
  CHECK(hash.rfind("$argon2id$", 0) == 0);
  CHECK_FALSE(contains(hash, password));
}

TEST_CASE("user add refuses a taken name with 1, and a bad username, email or password with 2") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Cli taken = admin(latch, {"user", "add", upper(a.username), "--password-stdin"}, "password123\n");
  CHECK(taken.status == 1);
  CHECK(contains(taken.err, "taken"));
  Cli email_taken = admin(latch, {"user", "add", unique("x"), "--email", a.email});
  CHECK(email_taken.status == 1);

  CHECK(admin(latch, {"user", "add", "has space"}).status == 2);
  CHECK(admin(latch, {"user", "add", unique("x"), "--email", "not-an-email"}).status == 2);
  Cli short_password = admin(latch, {"user", "add", unique("x"), "--password-stdin"}, "short\n");
  CHECK(short_password.status == 2);
  CHECK(contains(short_password.err, "shorter than 8"));
  CHECK(admin(latch, {"user", "add", unique("x"), "--password-stdin"}, "").status == 2);
  Cli stricter = admin(latch, {"user", "add", unique("x"), "--password-stdin"}, "password123\n",
                       {{"LATCH_PASSWORD_MIN_LENGTH", "12"}});
  CHECK(stricter.status == 2);
  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM users") == "1");
}

TEST_CASE("latch user add and sign-up accept and refuse the same usernames, emails and "
          "passwords: one rule, in the service") {
  // Each candidate goes to flask's sign-up on one server and to `latch user add` on another
  // database; both must decide alike. A rule that only one of them applied would show here.
  struct Candidate {
    std::string what, username, email, password;
  };
  const std::string n = unique("r");
  const std::vector<Candidate> candidates = {
      {"an ordinary user", n + "a", n + "a@example.com", "password123"},
      {"a username with a space", n + " b", n + "b@example.com", "password123"},
      {"a zero-width space", n + "\u200Bc", n + "c@example.com", "password123"},
      {"a right-to-left override", n + "\u202Ed", n + "d@example.com", "password123"},
      {"fullwidth letters", n + "\uFF45", n + "e@example.com", "password123"},
      {"a username of 300 letters", n + std::string(300, 'f'), n + "f@example.com", "password123"},
      {"an email without a domain dot", n + "g", n + "g@localhost", "password123"},
      {"an email with two @", n + "h", n + "h@x@example.com", "password123"},
      {"an email whose label starts with -", n + "i", n + "i@-example.com", "password123"},
      {"a password of 7 characters", n + "j", n + "j@example.com", "1234567"},
      {"a password of 8 characters", n + "k", n + "k@example.com", "12345678"},
      {"a password of 8 characters, 4 of them emoji", n + "l", n + "l@example.com",
       "ab\U0001F600\U0001F600\U0001F600\U0001F600cd"},
      {"a password of 2,000 bytes", n + "m", n + "m@example.com", std::string(2000, 'p')},
      {"a username that is another user's email", n + "a@example.com", n + "n@example.com",
       "password123"},
  };
  LatchProcess api, cli_server;
  for (const Candidate &c : candidates) {
    INFO(c.what);
    Reply signed_up = api.post(
        "/auth/signup", {{"username", c.username}, {"email", c.email}, {"password", c.password}});
    const bool api_accepts = signed_up.status == 201;
    if (!api_accepts) CHECK(signed_up.status / 100 == 4);
    Cli added =
        admin(cli_server, {"user", "add", c.username, "--email", c.email, "--password-stdin"},
              c.password + "\n");
    const bool cli_accepts = added.status == 0;
    INFO("API: " << signed_up.status << " " << signed_up.text << "; CLI: " << added.status << " "
                 << added.err);
    CHECK(api_accepts == cli_accepts);
  }
}

TEST_CASE("user list prints every user as a table or as JSON, never a password hash") {
  LatchProcess latch;
  Account a = sign_up(latch), b = sign_up(latch);
  Cli table = admin(latch, {"user", "list"});
  CHECK(table.status == 0);
  CHECK(contains(table.out, "USERNAME"));
  CHECK(contains(table.out, a.username));
  CHECK(contains(table.out, b.email));
  CHECK_FALSE(contains(table.out, "argon2"));

  Cli j = admin(latch, {"user", "list", "--json"});
  CHECK(j.status == 0);
  json users = json::parse(j.out, nullptr, false);
  REQUIRE(users.is_array());
  REQUIRE(users.size() == 2);
  CHECK(users[0]["username"] == a.username);
  CHECK(users[0]["email"] == a.email);
  CHECK(users[0]["email_verified"] == false);
  CHECK(users[1]["username"] == b.username);
  CHECK(users[0]["id"] == jwt_payload(a.access)["sub"]);
  CHECK_FALSE(contains(j.out, "argon2"));
  CHECK_FALSE(users[0].contains("password_hash"));
}

TEST_CASE("user show finds a user by id, email or username, and exits 3 for nobody") {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::string id = jwt_payload(a.access)["sub"].get<std::string>();
  for (const std::string &who : {id, a.email, upper(a.email), a.username, upper(a.username)}) {
    CAPTURE(who);
    Cli r = admin(latch, {"user", "show", who, "--json"});
    CHECK(r.status == 0);
    json u = json::parse(r.out, nullptr, false);
    CHECK(u["id"] == id);
    CHECK(u["username"] == a.username);
    CHECK(u["active_sessions"] == 1);
  }
  Cli text = admin(latch, {"user", "show", a.username});
  CHECK(text.status == 0);
  CHECK(contains(text.out, id));
  CHECK(contains(text.out, a.email));

  Cli nobody = admin(latch, {"user", "show", "nobody@example.com"});
  CHECK(nobody.status == 3);
  CHECK(contains(nobody.err, "no user 'nobody@example.com'"));
  CHECK(nobody.out.empty());
}

TEST_CASE("user show refuses a text that is one user's email and another's username") {
  LatchProcess latch;
  Account a = sign_up(latch);
  // A username may contain '@', but not another user's email: user add refuses it.
  Cli refused = admin(latch, {"user", "add", a.email, "--password-stdin"}, "password123\n");
  CHECK(refused.status == 1);
  CHECK(contains(refused.err, "taken"));
  // A database from before that rule may hold such a pair (no key, as migration 3 left it).
  CHECK(sql_exec(latch.db_path(), "INSERT INTO users(id, username, password_hash, created_at, "
                                  "updated_at) VALUES ('legacy', '" +
                                      a.email + "', 'x', 0, 0)") == 1);
  Cli r = admin(latch, {"user", "show", a.email});
  CHECK(r.status == 2);
  CHECK(contains(r.err, "by id"));
  Cli deleted = admin(latch, {"user", "delete", a.email});
  CHECK(deleted.status == 2);
  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM users") == "2");
}

namespace {

// Polls (up to 5 s) until the running server refuses the access token; returns the last status.
// A write by another process (an admin command) reaches a running server through the change
// log within milliseconds (db/session_cache.h), not in the same instant the command exits.
int status_once_refused(const LatchProcess &latch, const std::string &access) {
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (std::chrono::steady_clock::now() < deadline) {
    status = latch.get("/auth/getuser", access).status;
    if (status != 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return status;
}

} // namespace

TEST_CASE("user delete removes the user: the running server refuses its tokens within moments") {
  LatchProcess latch;
  Account a = sign_up(latch), bystander = sign_up(latch);
  REQUIRE(latch.get("/auth/getuser", a.access).status == 200);
  Cli r = admin(latch, {"user", "delete", a.username});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "deleted user " + a.username));
  CHECK(status_once_refused(latch, a.access) == 401);
  CHECK(latch.get("/api/v1/authorized/me", a.access).status == 401);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", a.refresh).status == 401);
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", a.refresh}}).status == 401);
  CHECK(sign_in(latch, a.email, kPassword) == 401);
  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM sessions WHERE user_id = '" +
                                       jwt_payload(a.access)["sub"].get<std::string>() + "'") ==
        "0");
  CHECK(latch.get("/auth/getuser", bystander.access).status == 200);

  Cli again = admin(latch, {"user", "delete", a.username});
  CHECK(again.status == 3);
  // The name is free again.
  CHECK(admin(latch, {"user", "add", a.username, "--password-stdin"}, "password123\n").status == 0);
}

TEST_CASE("sessions list shows each session of the user with its API and state") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Reply second = latch.post("/api/v1/login", {{"email", a.email}, {"password", kPassword}});
  REQUIRE(second.status == 200);
  REQUIRE(latch.post_raw("/api/auth/logout", "", "application/json", a.access).status == 200);

  Cli j = admin(latch, {"sessions", "list", a.email, "--json"});
  CHECK(j.status == 0);
  json sessions = json::parse(j.out, nullptr, false);
  REQUIRE(sessions.is_array());
  REQUIRE(sessions.size() == 2);
  CHECK(sessions[0]["id"] == jwt_payload(a.access)["sid"]);
  CHECK(sessions[0]["api"] == "picflux");
  CHECK(sessions[0]["state"] == "revoked");
  CHECK(sessions[1]["api"] == "v1");
  CHECK(sessions[1]["state"] == "active");

  Cli table = admin(latch, {"sessions", "list", a.username});
  CHECK(table.status == 0);
  CHECK(contains(table.out, "revoked"));
  CHECK(contains(table.out, "active"));
  CHECK_FALSE(contains(table.out, a.refresh));
  CHECK(admin(latch, {"sessions", "list", "nobody"}).status == 3);
}

TEST_CASE("sessions revoke ends every session: the server refuses the user's tokens") {
  LatchProcess latch;
  Account a = sign_up(latch), bystander = sign_up(latch);
  Reply second = latch.post("/auth/token", {{"username", a.username}, {"password", kPassword}});
  REQUIRE(second.status == 200);
  Cli r = admin(latch, {"sessions", "revoke", a.username});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "revoked 2 sessions"));
  CHECK(status_once_refused(latch, a.access) == 401);
  CHECK(latch.get("/auth/getuser", second.body["access"].get<std::string>()).status == 401);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", a.refresh).status == 401);
  CHECK(latch.post("/auth/token/refresh", {{"refresh", second.body["refresh"]}}).status == 401);
  CHECK(latch.get("/auth/getuser", bystander.access).status == 200);
  // The account itself is fine: a new sign-in works.
  CHECK(sign_in(latch, a.email, kPassword) == 200);
  CHECK(admin(latch, {"sessions", "revoke", "nobody"}).status == 3);
}

TEST_CASE("user set-password ends the sessions; the old password fails and the new one works") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Cli too_short = admin(latch, {"user", "set-password", a.username, "--password-stdin"}, "short\n");
  CHECK(too_short.status == 2);
  CHECK(latch.get("/auth/getuser", a.access).status == 200); // nothing changed

  Cli r = admin(latch, {"user", "set-password", a.email, "--password-stdin"}, "a-new-password\n");
  CHECK(r.status == 0);
  CHECK(status_once_refused(latch, a.access) == 401);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", a.refresh).status == 401);
  CHECK(sign_in(latch, a.email, kPassword) == 401);
  CHECK(sign_in(latch, a.email, "a-new-password") == 200);

  Cli generated = admin(latch, {"user", "set-password", a.username});
  CHECK(generated.status == 0);
  const std::string password = generated_password(generated.out);
  REQUIRE_FALSE(password.empty());
  CHECK(sign_in(latch, a.email, "a-new-password") == 401);
  CHECK(sign_in(latch, a.email, password) == 200);

  CHECK(admin(latch, {"user", "set-password", "nobody", "--password-stdin"}, "password123\n")
            .status == 3);
}

TEST_CASE("user verify-email lets an unconfirmed user log in through v1 with "
          "--require-verified-email") {
  LatchProcess latch({{"--require-verified-email"}, {}});
  const std::string name = unique("ver");
  const std::string email = lower(name) + "@example.com";
  REQUIRE(latch
              .post("/api/v1/register?sendEmail=false",
                    {{"email", email}, {"username", name}, {"password", kPassword}})
              .status == 201);
  Reply refused = latch.post("/api/v1/login", {{"email", email}, {"password", kPassword}});
  CHECK(refused.status == 401);
  CHECK(refused.body == json{{"error", "email not verified"}});

  Cli r = admin(latch, {"user", "verify-email", email});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "verified"));
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", kPassword}}).status == 200);
  CHECK(admin(latch, {"user", "verify-email", name}).status == 0); // again: still fine

  // simplejwt users have no email to verify.
  const std::string no_email = unique("nomail");
  REQUIRE(latch.post("/auth/register", {{"username", no_email}, {"password", kPassword}}).status ==
          201);
  Cli without = admin(latch, {"user", "verify-email", no_email});
  CHECK(without.status == 1);
  CHECK(contains(without.err, "no email"));
  CHECK(admin(latch, {"user", "verify-email", "nobody@example.com"}).status == 3);
}

TEST_CASE("backup writes a consistent copy while the server keeps serving, and overwrites only "
          "with --force") {
  if (skip_on_postgres(
          "backup copies an SQLite file (test_postgres: it refuses a URI and names pg_dump)"))
    return;
  LatchProcess latch;
  for (int i = 0; i < 5; ++i)
    sign_up(latch);
  // Sign-ups go on during the backup.
  std::atomic<bool> stop{false};
  std::atomic<int> served{0}, failed{0};
  std::thread traffic([&] {
    while (!stop) {
      std::string name = unique("bk");
      Reply r = latch.post(
          "/api/auth/signup",
          {{"email", lower(name) + "@example.com"}, {"username", name}, {"password", kPassword}});
      (r.status == 201 ? served : failed)++;
    }
  });
  TempDir dir;
  const std::string file = dir.file("backup.db");
  Cli r = admin(latch, {"backup", file});
  while (served < 3 && failed == 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  stop = true;
  traffic.join();
  CHECK(r.status == 0);
  CHECK(contains(r.out, file));
  CHECK(failed == 0);
  CHECK(served >= 3);

  CHECK(sql_value(file, "PRAGMA integrity_check") == "ok");
  CHECK(std::stoi(sql_value(file, "SELECT count(*) FROM users")) >= 5);
  CHECK(sql_value(file, "PRAGMA journal_mode") == "delete");
  CHECK(sql_value(file, "SELECT count(*) FROM signing_keys") == "1");
  struct stat st {};
  REQUIRE(stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  const std::string users_in_copy = sql_value(file, "SELECT count(*) FROM users");
  Cli again = admin(latch, {"backup", file});
  CHECK(again.status == 1);
  CHECK(contains(again.err, "--force"));
  CHECK(sql_value(file, "SELECT count(*) FROM users") == users_in_copy);
  Cli forced = admin(latch, {"backup", file, "--force"});
  CHECK(forced.status == 0);
  CHECK(sql_value(file, "SELECT count(*) FROM users") ==
        sql_value(latch.db_path(), "SELECT count(*) FROM users"));

  Cli itself = admin(latch, {"backup", latch.db_path(), "--force"});
  CHECK(itself.status == 2);
  Cli no_dir = admin(latch, {"backup", dir.file("no/such/dir/b.db")});
  CHECK(no_dir.status == 1);
  sign_up(latch); // still serving
}

TEST_CASE("purge deletes expired rows now and prints the counts") {
  LatchProcess latch({{"--envelope-access-ttl", "1"}, {}});
  Account a = sign_up(latch);
  Reply r = latch.post("/api/v1/auth/login", {{"identity", a.email}, {"password", kPassword}});
  REQUIRE(r.status == 200); // an envelope session: it lives 1 second
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  Cli purged = admin(latch, {"purge", "--margin", "0"});
  CHECK(purged.status == 0);
  CHECK(contains(purged.out, "sessions: 1\n"));
  CHECK(contains(purged.out, "blacklisted tokens: 0\n"));
  CHECK(contains(purged.out, "one-time tokens: 0\n"));
  CHECK(contains(purged.out, "signing keys: 0\n"));
  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM sessions") == "1"); // the live one stays
  Cli again = admin(latch, {"purge", "--margin", "0"});
  CHECK(contains(again.out, "sessions: 0\n"));
  CHECK(latch.get("/auth/getuser", a.access).status == 200);
}

TEST_CASE("secret rotate: old tokens stay valid and new sign-ins carry the new kid within "
          "two seconds") {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::string old_kid = jwt_header(a.access).value("kid", "");
  REQUIRE_FALSE(old_kid.empty());
  CHECK(jwt_header(a.refresh)["kid"] == old_kid);

  Cli r = admin(latch, {"secret", "rotate"});
  REQUIRE(r.status == 0);
  static const std::regex new_key(R"(new signing key: ([A-Za-z0-9_-]+))");
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, new_key));
  const std::string new_kid = m[1].str();
  CHECK(new_kid != old_kid);
  CHECK(contains(r.out, "retired: " + old_kid));

  std::string fresh;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (std::chrono::steady_clock::now() < deadline) {
    Reply in = latch.post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}});
    REQUIRE(in.status == 200);
    fresh = in.body["access_token"].get<std::string>();
    if (jwt_header(fresh)["kid"] == new_kid) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(jwt_header(fresh)["kid"] == new_kid);
  CHECK(latch.get("/auth/getuser", fresh).status == 200);
  // Tokens signed with the retired key still work, refresh tokens included.
  CHECK(latch.get("/auth/getuser", a.access).status == 200);
  Reply refreshed = latch.post_raw("/api/auth/refresh", "", "application/json", a.refresh);
  CHECK(refreshed.status == 200);
  CHECK(jwt_header(refreshed.body.value("access_token", "")).value("kid", "") == new_kid);

  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM signing_keys WHERE retired_at IS NULL") ==
        "1");
  CHECK(sql_value(latch.db_path(), "SELECT kid FROM signing_keys WHERE retired_at IS NULL") ==
        new_kid);
  // And after a restart too: the retired key is kept in the database.
  const std::string path = latch.db_path();
  latch.stop();
  LatchProcess restarted({}, path);
  CHECK(restarted.get("/auth/getuser", fresh).status == 200);
  CHECK(restarted.get("/auth/getuser", a.access).status == 200);
  Reply old_session = restarted.post_raw("/api/auth/refresh", "", "application/json",
                                         refreshed.body.value("refresh_token", ""));
  CHECK(old_session.status == 200);
}

TEST_CASE("a token whose kid names no key of the ring gets 401, signed with any key") {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::string kid = jwt_header(a.access)["kid"].get<std::string>();
  const std::string secret =
      sql_value(latch.db_path(), "SELECT secret FROM signing_keys WHERE kid = '" + kid + "'");
  REQUIRE_FALSE(secret.empty());
  json claims = jwt_payload(a.access);
  claims["jti"] = latch::secure::random_token(16);
  auto header = [](const std::string &k) {
    return R"({"alg":"HS256","typ":"JWT","kid":")" + k + R"("})";
  };
  // The control: signed by hand with the real key and kid, it is accepted.
  CHECK(latch.get("/auth/getuser", hs256(secret, header(kid), claims)).status == 200);
  CHECK(latch.get("/auth/getuser", hs256(secret, header("no-such-key"), claims)).status == 401);
  CHECK(
      latch.get("/auth/getuser", hs256(secret, R"({"alg":"HS256","typ":"JWT"})", claims)).status ==
      401); // no kid: only a key migrated from jwt_secret checks those
  CHECK(latch.get("/auth/getuser", hs256("", header("../../../../dev/null"), claims)).status ==
        401);
}

TEST_CASE("a database from before key rings keeps accepting its tokens, which carry no kid") {
  if (skip_on_postgres(
          "an SQLite file from before key rings (PostgreSQL databases had them from the start)"))
    return;
  TempDir dir;
  const std::string path = dir.file("auth.db");
  const std::string old_secret = "a-secret-from-the-release-before-0123456789";
  // Migration 1 alone, and the secret where that release kept it.
  make_old_database(path, "INSERT INTO settings VALUES ('jwt_secret', '" + old_secret + "');");
  LatchProcess latch({}, path);
  Account a = sign_up(latch);
  const std::string kid = jwt_header(a.access)["kid"].get<std::string>();
  CHECK(sql_value(path, "SELECT secret FROM signing_keys WHERE kid = '" + kid + "'") == old_secret);
  CHECK(sql_value(path, "SELECT count(*) FROM settings WHERE key = 'jwt_secret'") == "0");
  // A token as the old release signed it: no kid.
  json claims = jwt_payload(a.access);
  const std::string old_token = hs256(old_secret, R"({"alg":"HS256","typ":"JWT"})", claims);
  CHECK(latch.get("/auth/getuser", old_token).status == 200);
  REQUIRE(admin(latch, {"secret", "rotate"}).status == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  CHECK(latch.get("/auth/getuser", old_token).status == 200);
  CHECK(latch.get("/auth/getuser", a.access).status == 200);
}

TEST_CASE("secret rotate with LATCH_JWT_SECRET set exits 2, says why and changes nothing") {
  const std::string secret = "admin-cli-test-secret-0123456789abcdefgh";
  LatchProcess latch({{}, {{"LATCH_JWT_SECRET", secret}}});
  Account a = sign_up(latch);
  CHECK_FALSE(jwt_header(a.access).contains("kid"));
  Cli r = admin(latch, {"secret", "rotate"}, "", {{"LATCH_JWT_SECRET", secret}});
  CHECK(r.status == 2);
  CHECK(contains(r.err, "LATCH_JWT_SECRET"));
  CHECK(r.out.empty());
  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM signing_keys") == "0");
  CHECK(latch.get("/auth/getuser", a.access).status == 200);
}

namespace {

// latch run as nobody (uid and gid 65534, no other groups): file modes then apply, as they do
// not to root.
const std::vector<std::string> kAsNobody = {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534",
                                            "--clear-groups"};

} // namespace

TEST_CASE("secret rotate --retire-now: the running server refuses every token signed before") {
  LatchProcess latch;
  Account a = sign_up(latch);
  Reply v1 = latch.post("/api/v1/login", {{"email", a.email}, {"password", kPassword}});
  REQUIRE(v1.status == 200);
  const std::string old_kid = jwt_header(a.access).value("kid", "");
  REQUIRE(latch.get("/auth/getuser", a.access).status == 200);

  Cli help = cli({"secret", "rotate", "--help"});
  CHECK(contains(help.out, "--retire-now"));
  CHECK(contains(help.out, "refused"));

  Cli r = admin(latch, {"secret", "rotate", "--retire-now"});
  REQUIRE(r.status == 0);
  CHECK(contains(r.out, "deleted: " + old_kid));
  static const std::regex new_key(R"(new signing key: ([A-Za-z0-9_-]+))");
  std::smatch m;
  REQUIRE(std::regex_search(r.out, m, new_key));
  const std::string new_kid = m[1].str();

  CHECK(status_once_refused(latch, a.access) == 401);
  CHECK(latch.get("/api/v1/authorized/me", v1.body["access_token"].get<std::string>()).status ==
        401);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", a.refresh).status == 401);
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", v1.body["refresh_token"]}}).status == 401);
  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM signing_keys") == "1");
  CHECK(sql_value(latch.db_path(), "SELECT kid FROM signing_keys") == new_kid);
  // Signing in again works, with the new key.
  Reply in = latch.post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}});
  REQUIRE(in.status == 200);
  const std::string fresh = in.body["access_token"].get<std::string>();
  CHECK(jwt_header(fresh)["kid"] == new_kid);
  CHECK(latch.get("/auth/getuser", fresh).status == 200);
  // And after a restart the old tokens stay refused.
  const std::string path = latch.db_path();
  latch.stop();
  LatchProcess restarted({}, path);
  CHECK(restarted.get("/auth/getuser", a.access).status == 401);
  CHECK(restarted.get("/auth/getuser", fresh).status == 200);
}

TEST_CASE("sessions revoke --all ends every session of every user: the running server refuses "
          "their tokens") {
  LatchProcess latch;
  Account a = sign_up(latch), b = sign_up(latch);
  Reply c = latch.post("/auth/token", {{"username", b.username}, {"password", kPassword}});
  REQUIRE(c.status == 200);
  const std::string c_access = c.body["access"].get<std::string>();
  REQUIRE(latch.get("/auth/getuser", c_access).status == 200);

  Cli r = admin(latch, {"sessions", "revoke", "--all"});
  CHECK(r.status == 0);
  CHECK(contains(r.out, "revoked 3 sessions of every user"));
  CHECK(status_once_refused(latch, a.access) == 401);
  CHECK(latch.get("/auth/getuser", b.access).status == 401);
  CHECK(latch.get("/auth/getuser", c_access).status == 401);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", a.refresh).status == 401);
  CHECK(latch.post("/auth/token/refresh", {{"refresh", c.body["refresh"]}}).status == 401);
  CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM sessions WHERE revoked_at IS NULL") ==
        "0");
  // The accounts are fine: signing in again works.
  CHECK(sign_in(latch, a.email, kPassword) == 200);
  CHECK(sign_in(latch, b.email, kPassword) == 200);

  Cli help = cli({"sessions", "revoke", "--help"});
  CHECK(contains(help.out, "Usage: latch sessions revoke (USER | --all)"));
}

TEST_CASE("doctor says what is fine and what to fix: exit 0 when all is fine, 1 otherwise") {
  if (skip_on_postgres("doctor on a file: its modes, WAL and integrity_check (test_postgres_ops: "
                       "doctor on PostgreSQL)"))
    return;
  LatchProcess latch;
  sign_up(latch);
  const std::string db = latch.db_path();
  Cli fine = admin(latch, {"doctor"});
  CHECK(fine.status == 0);
  CHECK(contains(fine.out, "ok   " + db + ": mode 0600"));
  CHECK(contains(fine.out, "ok   " + db + "-wal: mode 0600"));
  CHECK(contains(fine.out, "ok   " + db + "-shm: mode 0600"));
  CHECK(contains(fine.out, "ok   a Latch database, schema version"));
  CHECK(contains(fine.out, "ok   PRAGMA integrity_check: ok"));
  CHECK(contains(fine.out, "all is fine"));
  CHECK_FALSE(contains(fine.out, "fix"));

  REQUIRE(chmod((db + "-wal").c_str(), 0640) == 0);
  Cli loose = admin(latch, {"doctor"});
  CHECK(loose.status == 1);
  CHECK(contains(loose.out, "fix  " + db + "-wal: mode 0640"));
  CHECK(contains(loose.out, "chmod 600 " + db + "-wal"));
  CHECK(contains(loose.out, "ok   " + db + ": mode 0600"));
  CHECK(contains(loose.out, "1 thing to fix"));
  REQUIRE(chmod((db + "-wal").c_str(), 0600) == 0);

  // A damaged copy: the damage is named.
  TempDir dir;
  const std::string copy = dir.file("copy.db");
  REQUIRE(admin(latch, {"backup", copy}).status == 0);
  {
    std::fstream f(copy, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    const std::string junk(4096, '\xff');
    f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
  }
  Cli damaged = cli({"doctor", "--db", copy});
  CHECK(damaged.status == 1);
  CHECK(contains(damaged.out, "fix  "));
  CHECK_FALSE(contains(damaged.out, "integrity_check: ok"));

  Cli missing = cli({"doctor", "--db", dir.file("none.db")});
  CHECK(missing.status == 1);
  CHECK(contains(missing.err, "no database at"));
  CHECK_FALSE(fs::exists(dir.file("none.db")));
}

TEST_CASE("an admin command refuses a file that is not a Latch database and writes nothing into "
          "it") {
  if (skip_on_postgres("an empty file and a foreign SQLite file as --db")) return;
  TempDir dir;
  const std::string empty = dir.file("empty.db"), foreign = dir.file("foreign.db");
  std::ofstream(empty).close();
  make_sqlite_file(foreign, "CREATE TABLE notes(text); INSERT INTO notes VALUES ('mine');");
  const std::vector<std::vector<std::string>> commands = {{"user", "list"},
                                                          {"user", "show", "x"},
                                                          {"user", "add", "x", "--password-stdin"},
                                                          {"user", "delete", "x"},
                                                          {"sessions", "list", "x"},
                                                          {"sessions", "revoke", "--all"},
                                                          {"purge"},
                                                          {"secret", "rotate"},
                                                          {"backup", dir.file("copy.db")},
                                                          {"doctor"}};
  for (const std::string &db : {empty, foreign}) {
    for (auto args : commands) {
      args.insert(args.end(), {"--db", db});
      std::string line;
      for (const auto &arg : args)
        line += arg + " ";
      CAPTURE(line);
      Cli r = cli(args, {}, "password123\n");
      CHECK(r.status == 1);
      CHECK(contains(r.out + r.err, db + " is not a Latch database"));
    }
  }
  CHECK(fs::file_size(empty) == 0);
  CHECK(sql_value(foreign, "SELECT group_concat(name) FROM sqlite_master") == "notes");
  CHECK(sql_value(foreign, "PRAGMA user_version") == "0");
  CHECK(sql_value(foreign, "PRAGMA journal_mode") == "delete");
  CHECK_FALSE(fs::exists(dir.file("copy.db")));
}

TEST_CASE("read-only commands open the database read-only and never migrate it") {
  if (skip_on_postgres("an older SQLite file, opened read-only")) return;
  TempDir dir;
  const std::string path = dir.file("old.db");
  make_old_database(path);
  REQUIRE(chmod(path.c_str(), 0600) == 0);
  // backup and doctor read any Latch schema; the others read with this latch's queries, and
  // refuse an older schema rather than upgrade it.
  const std::vector<std::pair<std::vector<std::string>, int>> commands = {
      {{"user", "list"}, 1},
      {{"sessions", "list", "nobody"}, 1},
      {{"user", "show", "nobody"}, 1},
      {{"backup", dir.file("copy.db")}, 0},
      {{"doctor"}, 0},
      {{"mail", "list"}, 1}};
  for (const auto &[args, status] : commands) {
    std::vector<std::string> with_db = args;
    with_db.insert(with_db.end(), {"--db", path});
    Cli r = cli(with_db);
    CAPTURE(args[0]);
    CAPTURE(r.err);
    CHECK(r.status == status);
    if (status == 1) CHECK(contains(r.err, "older than this latch's"));
    CHECK(sql_value(path, "PRAGMA user_version") == "1");
    CHECK(sql_value(path, "SELECT count(*) FROM sqlite_master WHERE name = 'signing_keys'") == "0");
  }
  // A command that writes upgrades it, as latch serve does; then the readers read it.
  REQUIRE(cli({"user", "add", "someone", "--password-stdin", "--db", path}, {}, "password123\n")
              .status == 0);
  CHECK(sql_value(path, "PRAGMA user_version") == std::to_string(latest_migration()));
  CHECK(cli({"user", "list", "--db", path}).status == 0);
}

TEST_CASE("read-only commands work for a user who may read the database but not write it") {
  if (skip_on_postgres("file modes of the SQLite file and its WAL")) return;
  if (geteuid() != 0) {
    MESSAGE("skipped: running a command as another user needs root");
    return;
  }
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::string db = latch.db_path();
  REQUIRE(fs::exists(db + "-shm")); // a WAL database: a reader needs the server's -shm
  // nobody may pass through the directory and read the files, and write none of them.
  REQUIRE(chmod(fs::path(db).parent_path().c_str(), 0711) == 0);
  for (const char *suffix : {"", "-wal", "-shm"})
    REQUIRE(chmod((db + suffix).c_str(), 0644) == 0);

  Cli list = cli({"user", "list", "--db", db}, {}, "", kAsNobody);
  CAPTURE(list.err);
  CHECK(list.status == 0);
  CHECK(contains(list.out, a.username));
  Cli show = cli({"user", "show", a.email, "--db", db}, {}, "", kAsNobody);
  CHECK(show.status == 0);
  CHECK(contains(show.out, a.username));
  Cli sessions = cli({"sessions", "list", a.username, "--db", db}, {}, "", kAsNobody);
  CHECK(sessions.status == 0);
  CHECK(contains(sessions.out, "active"));
  // doctor reads it too, and says what is wrong with these files for this user.
  Cli doctor = cli({"doctor", "--db", db}, {}, "", kAsNobody);
  CHECK(doctor.status == 1);
  CHECK(contains(doctor.out, "fix  " + db + ": mode 0644"));
  CHECK(contains(doctor.out, "chmod 600 " + db));
  CHECK(contains(doctor.out, "fix  " + db + ": owned by root, not by nobody"));
  CHECK(contains(doctor.out, "ok   a Latch database"));
  CHECK(contains(doctor.out, "ok   PRAGMA integrity_check: ok"));
  TempDir out;
  REQUIRE(chown(out.path().c_str(), 65534, 65534) == 0);
  Cli backup = cli({"backup", out.file("copy.db"), "--db", db}, {}, "", kAsNobody);
  CAPTURE(backup.err);
  CHECK(backup.status == 0);
  CHECK(sql_value(out.file("copy.db"), "SELECT count(*) FROM users") == "1");

  // A command that writes still needs write access.
  Cli add =
      cli({"user", "add", "x", "--password-stdin", "--db", db}, {}, "password123\n", kAsNobody);
  CHECK(add.status == 1);
  CHECK(sql_value(db, "SELECT count(*) FROM users") == "1");
  CHECK(latch.get("/auth/getuser", a.access).status == 200);
}
