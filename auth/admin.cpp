// The admin commands: their table, command-line parsing, and each command over the store.
#include "auth/admin.h"

#include "auth/identity.h"
#include "auth/password.h"
#include "auth/password_formats.h"
#include "auth/secure.h"
#include "auth/service.h"
#include "db/django_users.h"
#include "db/postgres_store.h"
#include "db/sqlite_store.h"

#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <sstream>

namespace latch {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct Context;
using Runner = int (*)(Context &);

struct Flag {
  std::string name;       // without the leading --
  std::string value_name; // empty: a switch
  std::string help;
  bool instead_of_operands = false; // given, the command takes no operands (--all for USER)
};

// What a command does to the database: reads only, it is opened read-only (SQLite
// SQLITE_OPEN_READONLY), so a user who may only read it can run the command, and nothing is
// migrated or created.
enum class Access { writes, reads };

struct Command {
  std::string group;    // user, sessions, backup, purge, secret, mail, doctor
  std::string name;     // the subcommand; empty for backup, purge and doctor
  std::string operands; // e.g. "USER"
  std::size_t operand_count = 0;
  std::vector<Flag> flags; // besides --db and --help
  std::string summary;     // one line, for latch help
  std::string details;     // for --help
  Runner run = nullptr;
  Access access = Access::writes;
};

const Flag kDbFlag{"db", "PATH", "the database (default ./auth.db) [LATCH_DB]"};
const Flag kDbPoolFlag{"db-pool", "N", "PostgreSQL: connections (default 4) [LATCH_DB_POOL]"};
const Flag kDbTimeoutFlag{"db-statement-timeout", "DURATION",
                          "PostgreSQL: each statement's time limit (default 5s) "
                          "[LATCH_DB_STATEMENT_TIMEOUT]"};
const Flag kJsonFlag{"json", "", "print JSON instead of text"};
const Flag kPasswordStdinFlag{"password-stdin", "",
                              "read the password from the first line of standard input; "
                              "without it a random one is made and printed once"};

struct Context {
  std::istream &in;
  std::ostream &out;
  std::ostream &err;
  const Command &command;
  std::vector<std::string> operands;
  std::map<std::string, std::string> flags; // given flags; "" for switches
  Config config;
  std::unique_ptr<db::Store> store;
  db::SqliteStore *sqlite = nullptr;     // store, when it is SQLite
  db::PostgresStore *postgres = nullptr; // store, when it is PostgreSQL
  // The same service as the APIs', so every rule is theirs: no token is issued here (a
  // throw-away key), and a mail would wait in the outbox for a server.
  std::unique_ptr<PasswordHasher> hasher;
  std::unique_ptr<TokenCodec> codec;
  std::unique_ptr<Mailer> mailer;
  std::unique_ptr<AuthService> service;

  bool has(const std::string &flag) const { return flags.count(flag) != 0; }
  std::string title() const {
    return "latch " + command.group + (command.name.empty() ? "" : " " + command.name);
  }
  int fail(int status, const std::string &message) {
    err << title() << ": " << message << "\n";
    return status;
  }
  std::int64_t now() const { return system_clock()(); }
  // Who runs the command, for the audit log: "cli:" and the OS user's name.
  Caller by() const {
    Caller who;
    const passwd *pw = getpwuid(getuid());
    who.actor = "cli:" + (pw ? std::string(pw->pw_name) : std::to_string(getuid()));
    return who;
  }
};

std::string iso_time(std::int64_t t) {
  std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// Prints rows under a header, each column as wide as its widest cell.
void print_table(std::ostream &out, const std::vector<std::vector<std::string>> &rows) {
  std::vector<std::size_t> width;
  for (const auto &row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], utf8_length(row[i]));
    }
  for (const auto &row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - utf8_length(row[i]) + 2, ' ');
    }
    out << line << "\n";
  }
}

db::PostgresStore::Options postgres_options(const Config &config) {
  db::PostgresStore::Options options;
  options.pool_size = config.db_pool;
  options.statement_timeout = std::chrono::milliseconds(config.db_statement_timeout_ms);
  return options;
}

int no_database(Context &c) {
  return c.fail(admin_failed, "no database at " + c.config.db_path +
                                  " (latch serve creates it; --db or LATCH_DB names another)");
}

// The database must exist and be Latch's: an admin command never makes one by mistake, nor
// writes a schema into another file. A command that only reads opens it read-only.
int open_store(Context &c) {
  const std::string &path = c.config.db_path;
  std::error_code ec;
  if (db::PostgresStore::is_uri(path)) {
    db::PostgresStore::Options options = postgres_options(c.config);
    options.migrate = c.command.access != Access::reads;
    auto pg = std::make_unique<db::PostgresStore>(path, options, username_rule());
    if (pg->schema_version() == 0)
      return c.fail(admin_failed, db::PostgresStore::redacted(path) +
                                      " holds no Latch schema (latch serve --db URI makes one)");
    c.postgres = pg.get();
    c.store = std::move(pg);
  } else {
    if (!fs::exists(path, ec)) return no_database(c);
    auto sqlite = std::make_unique<db::SqliteStore>(
        path,
        c.command.access == Access::reads ? db::SqliteStore::Open::read_only
                                          : db::SqliteStore::Open::existing,
        username_rule(),
        // LATCH_SQLITE_SYNC as the server has it: a
        // command's writes are as durable as its own.
        c.config.sqlite_sync == Config::SqliteSync::full ? db::SqliteStore::Sync::full
                                                         : db::SqliteStore::Sync::normal);
    c.sqlite = sqlite.get();
    c.store = std::move(sqlite);
  }
  c.hasher = std::make_unique<PasswordHasher>(c.config.argon2, 1, 1);
  c.codec = std::make_unique<TokenCodec>(secure::random_token(32));
  // Never started: mail a command enqueues waits in the outbox for a running server to send.
  c.mailer = std::make_unique<Mailer>(*c.store, Mailer::log(), MailPolicy{}, system_clock());
  c.service = std::make_unique<AuthService>(c.config, *c.store, *c.hasher, *c.codec, *c.mailer,
                                            system_clock());
  return admin_ok;
}

// Rows are read with this latch's queries, which know only its own schema: an older one is
// upgraded by whatever writes next, never by a command that only reads, so it is refused.
int require_current_schema(Context &c) {
  const int version = c.sqlite ? c.sqlite->schema_version() : c.postgres->schema_version();
  const int latest = c.sqlite ? db::SqliteStore::latest_schema_version()
                              : db::PostgresStore::latest_schema_version();
  if (version >= latest) return admin_ok;
  const std::string name =
      c.sqlite ? c.config.db_path : db::PostgresStore::redacted(c.config.db_path);
  return c.fail(admin_failed, name + " has Latch's schema version " + std::to_string(version) +
                                  ", older than this latch's " + std::to_string(latest) +
                                  ": latch serve, or any command that writes, upgrades it first");
}

// USER is an id, an email or a username. A text that is one user's email and another's
// username names nobody for sure, so it is refused rather than guessed.
int find_user(Context &c, const std::string &who, db::User &user) {
  if (auto u = c.service->find_user_by_id(who)) {
    user = *u;
    return admin_ok;
  }
  // Found as sign-in finds them: a look-alike spelling of a username names its user.
  std::optional<db::User> by_email;
  if (who.find('@') != std::string::npos) by_email = c.service->find_user_by_email(who);
  auto by_name = c.service->find_user_by_username(who);
  if (by_email && by_name && by_email->id != by_name->id)
    return c.fail(admin_usage, "'" + who + "' is the email of " + by_email->username +
                                   " and the username of another user; name the user by id (" +
                                   by_email->id + " or " + by_name->id + ")");
  if (!by_email && !by_name) return c.fail(admin_not_found, "no user '" + who + "'");
  user = by_email ? *by_email : *by_name;
  return admin_ok;
}

// The CLI's words for a password the service's rule refuses.
int password_failure(Context &c, std::optional<ErrorCode> problem) {
  if (problem == ErrorCode::password_too_long)
    return c.fail(admin_usage, "the password is longer than " +
                                   std::to_string(c.config.password_max_bytes) + " bytes");
  if (problem == ErrorCode::weak_password)
    return c.fail(admin_usage, "the password is shorter than " +
                                   std::to_string(c.config.password_min_length) +
                                   " characters (--password-min-length)");
  return admin_ok;
}

// The new password: from stdin (checked as sign-up checks one), or made here.
int new_password(Context &c, std::string &password, bool &generated) {
  generated = !c.has("password-stdin");
  if (generated) {
    password = secure::random_token(18); // 144 bits, 24 characters
    return admin_ok;
  }
  if (!std::getline(c.in, password)) return c.fail(admin_usage, "no password on standard input");
  if (!password.empty() && password.back() == '\r') password.pop_back();
  if (!secure::valid_utf8(password)) return c.fail(admin_usage, "the password is not UTF-8");
  // The APIs' rule (password_problem), checked before the database is opened.
  return password_failure(c, password_problem(c.config, password));
}

int count_active_sessions(const std::vector<db::Session> &sessions, std::int64_t now) {
  return static_cast<int>(std::count_if(sessions.begin(), sessions.end(), [&](const auto &s) {
    return !s.revoked && s.expires_at > now;
  }));
}

json user_json(const db::User &u) {
  return {{"id", u.id},
          {"username", u.username},
          {"email", u.email ? json(*u.email) : json(nullptr)},
          {"email_verified", u.email_verified},
          {"is_active", u.active},
          {"display_name", u.display_name},
          {"created_at", u.created_at},
          {"updated_at", u.updated_at}};
}

const char *session_state(const db::Session &s, std::int64_t now) {
  if (s.revoked) return "revoked";
  return s.expires_at <= now ? "expired" : "active";
}

// --- user ---------------------------------------------------------------------------------

// The username and email rules of every API's sign-up (set_identity), in the CLI's words.
int set_identity_or_fail(Context &c, db::User &u, const std::string &username,
                         const std::optional<std::string> &email) {
  Status ok = set_identity(u, username, email);
  if (ok) return admin_ok;
  if (ok.error().code == ErrorCode::invalid_email)
    return c.fail(admin_usage, "'" + *email + "' " + describe(canonical_email(*email).refusal));
  return c.fail(admin_usage,
                "the username '" + visible_username(username) + "' " +
                    describe(canonical_username(username).refusal) +
                    " (a username is 1 to 150 characters without spaces, controls, invisible or "
                    "bidirectional control characters)");
}

const char *taken_message(db::InsertUserResult taken) {
  return taken == db::InsertUserResult::email_taken
             ? "the email is taken (as an email or a username)"
             : "the username is taken, or looks like one that is (or like an email)";
}

int user_add(Context &c) {
  // The rules are sign-up's (set_identity, password_problem), told before anything is opened.
  db::User checked;
  std::optional<std::string> email;
  if (c.has("email")) email = c.flags["email"];
  if (int rc = set_identity_or_fail(c, checked, c.operands[0], email)) return rc;
  std::string password;
  bool generated = false;
  if (int rc = new_password(c, password, generated)) return rc;
  if (int rc = open_store(c)) return rc;
  auto made = c.service->sign_up({c.operands[0], email, password, "", "", ""}, c.by());
  if (!made) {
    const Error &e = made.error();
    if (e.code == ErrorCode::user_exists)
      return c.fail(admin_failed,
                    taken_message(e.detail == "email" ? db::InsertUserResult::email_taken
                                                      : db::InsertUserResult::username_taken));
    if (e.code == ErrorCode::weak_password || e.code == ErrorCode::password_too_long)
      return password_failure(c, e.code);
    return c.fail(admin_failed, "cannot add the user");
  }
  const db::User &u = made->user;
  c.out << "added user " << u.username << " (" << u.id << ")\n";
  if (generated) c.out << "password: " << password << "\n";
  return admin_ok;
}

int user_list(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  auto users = c.service->list_users();
  if (c.has("json")) {
    json all = json::array();
    for (const auto &u : users)
      all.push_back(user_json(u));
    c.out << all.dump(2) << "\n";
    return admin_ok;
  }
  std::vector<std::vector<std::string>> rows = {{"ID", "USERNAME", "EMAIL", "VERIFIED", "CREATED"}};
  for (const auto &u : users)
    rows.push_back({u.id, u.username, u.email.value_or("-"), u.email_verified ? "yes" : "no",
                    iso_time(u.created_at)});
  print_table(c.out, rows);
  return admin_ok;
}

int user_show(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  db::User u;
  if (int rc = find_user(c, c.operands[0], u)) return rc;
  auto sessions = c.service->list_sessions(u.id);
  int active = count_active_sessions(sessions, c.now());
  if (c.has("json")) {
    json j = user_json(u);
    j["active_sessions"] = active;
    c.out << j.dump(2) << "\n";
    return admin_ok;
  }
  print_table(c.out, {{"id:", u.id},
                      {"username:", u.username},
                      {"email:", u.email.value_or("-")},
                      {"email verified:", u.email_verified ? "yes" : "no"},
                      {"active:", u.active ? "yes" : "no (imported inactive: cannot sign in)"},
                      {"display name:", u.display_name.empty() ? "-" : u.display_name},
                      {"created:", iso_time(u.created_at)},
                      {"updated:", iso_time(u.updated_at)},
                      {"active sessions:", std::to_string(active)}});
  return admin_ok;
}

int user_delete(Context &c) {
  if (int rc = open_store(c)) return rc;
  db::User u;
  if (int rc = find_user(c, c.operands[0], u)) return rc;
  if (!c.service->delete_user(u, c.by()))
    return c.fail(admin_not_found, "no user '" + c.operands[0] + "'");
  c.out << "deleted user " << u.username << " (" << u.id
        << "); its sessions and tokens are gone with it\n";
  return admin_ok;
}

int user_set_password(Context &c) {
  std::string password;
  bool generated = false;
  if (int rc = new_password(c, password, generated)) return rc;
  if (int rc = open_store(c)) return rc;
  db::User u;
  if (int rc = find_user(c, c.operands[0], u)) return rc;
  if (Status done = c.service->set_password(u, password, c.by()); !done) {
    if (done.error().code == ErrorCode::user_not_found)
      return c.fail(admin_not_found, "no user '" + c.operands[0] + "'");
    if (int rc = password_failure(c, done.error().code)) return rc;
    return c.fail(admin_failed, "cannot set the password");
  }
  c.out << "new password set for " << u.username << "; every session of the user is ended\n";
  if (generated) c.out << "password: " << password << "\n";
  return admin_ok;
}

int user_rename(Context &c) {
  if (int rc = open_store(c)) return rc;
  db::User u;
  if (int rc = find_user(c, c.operands[0], u)) return rc;
  db::User checked; // sign-up's rule, in the CLI's words
  if (int rc = set_identity_or_fail(c, checked, c.operands[1], std::nullopt)) return rc;
  if (Status done = c.service->rename_user(u, c.operands[1], c.by()); !done) {
    if (done.error().code == ErrorCode::user_exists)
      return c.fail(admin_failed, taken_message(db::InsertUserResult::username_taken));
    return c.fail(admin_not_found, "no user '" + c.operands[0] + "'");
  }
  c.out << "renamed " << visible_username(u.username) << " to " << c.operands[1] << " (" << u.id
        << "); tokens issued before keep the old name until they are refreshed\n";
  return admin_ok;
}

int user_verify_email(Context &c) {
  if (int rc = open_store(c)) return rc;
  db::User u;
  if (int rc = find_user(c, c.operands[0], u)) return rc;
  if (!u.email) return c.fail(admin_failed, "user " + u.username + " has no email address");
  if (u.email_verified) {
    c.out << "the email of " << u.username << " (" << *u.email << ") was already verified\n";
    return admin_ok;
  }
  c.service->mark_email_verified(u, c.by());
  c.out << "the email of " << u.username << " (" << *u.email << ") is now verified\n";
  return admin_ok;
}

// --- user import / export ------------------------------------------------------------------

// Unix seconds from ISO 8601 as Django and most exports write it: "2024-05-01", or that with
// "T" or " ", "HH:MM[:SS[.fraction]]" and an optional "Z" or "+HH:MM" / "-HH:MM"; no offset is
// UTC (Django with USE_TZ stores UTC).
std::optional<std::int64_t> parse_iso8601(const std::string &text) {
  auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
    if (at + n > text.size()) return std::nullopt;
    int v = 0;
    for (std::size_t i = at; i < at + n; ++i) {
      if (!std::isdigit(static_cast<unsigned char>(text[i]))) return std::nullopt;
      v = v * 10 + (text[i] - '0');
    }
    return v;
  };
  auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2);
  if (!year || !month || !day || text[4] != '-' || text[7] != '-') return std::nullopt;
  std::tm tm{};
  tm.tm_year = *year - 1900;
  tm.tm_mon = *month - 1;
  tm.tm_mday = *day;
  std::size_t at = 10;
  int offset = 0;
  if (at < text.size()) {
    if (text[at] != 'T' && text[at] != ' ') return std::nullopt;
    auto hour = digits(at + 1, 2), minute = digits(at + 4, 2);
    if (!hour || !minute || text[at + 3] != ':') return std::nullopt;
    tm.tm_hour = *hour;
    tm.tm_min = *minute;
    at += 6;
    if (at < text.size() && text[at] == ':') {
      auto second = digits(at + 1, 2);
      if (!second) return std::nullopt;
      tm.tm_sec = *second;
      at += 3;
      if (at < text.size() && text[at] == '.') {
        ++at;
        const std::size_t start = at;
        while (at < text.size() && std::isdigit(static_cast<unsigned char>(text[at])))
          ++at;
        if (at == start) return std::nullopt;
      }
    }
    if (at < text.size() && text[at] == 'Z') {
      ++at;
    } else if (at < text.size() && (text[at] == '+' || text[at] == '-')) {
      auto oh = digits(at + 1, 2), om = digits(at + 4, 2);
      if (!oh || !om || text[at + 3] != ':') return std::nullopt;
      offset = (text[at] == '-' ? -1 : 1) * (*oh * 3600 + *om * 60);
      at += 6;
    }
  }
  if (at != text.size()) return std::nullopt;
  if (*month < 1 || *month > 12 || *day < 1 || *day > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60)
    return std::nullopt;
  return static_cast<std::int64_t>(timegm(&tm)) - offset;
}

// One line of an import file as an ImportedUser, or why not.
std::string user_from_json(const json &j, ImportedUser &u) {
  static const std::set<std::string> known = {
      "id",           "username",        "email",        "password_hash",
      "display_name", "profile_picture", "phone_number", "email_verified",
      "created_at",   "is_active"};
  if (!j.is_object()) return "not a JSON object";
  for (const auto &[key, value] : j.items())
    if (!known.count(key)) return "unknown field '" + key + "'";
  auto text = [&](const char *key, std::string &out, bool required) -> std::string {
    if (!j.contains(key) || j[key].is_null())
      return required ? std::string("no ") + key : std::string();
    if (!j[key].is_string()) return std::string(key) + " is not a string";
    out = j[key].get<std::string>();
    if (!secure::valid_utf8(out)) return std::string(key) + " is not UTF-8";
    return "";
  };
  auto flag = [&](const char *key, bool &out) -> std::string {
    if (!j.contains(key) || j[key].is_null()) return "";
    if (!j[key].is_boolean()) return std::string(key) + " is not true or false";
    out = j[key].get<bool>();
    return "";
  };
  std::string email, id;
  for (auto problem :
       {text("username", u.username, true), text("password_hash", u.password_hash, true),
        text("email", email, false), text("display_name", u.display_name, false),
        text("profile_picture", u.profile_picture, false),
        text("phone_number", u.phone_number, false), flag("email_verified", u.email_verified),
        flag("is_active", u.active)})
    if (!problem.empty()) return problem;
  if (!email.empty()) u.email = email; // "" is no email, as Django's blank one
  if (j.contains("id") && !j["id"].is_null()) {
    // Another system's integer or text id: kept only if it is a UUID (import_users).
    if (j["id"].is_string())
      u.id = j["id"].get<std::string>();
    else if (!j["id"].is_number_integer())
      return "id is not a string or an integer";
  }
  if (j.contains("created_at") && !j["created_at"].is_null()) {
    const json &t = j["created_at"];
    if (t.is_number_integer() && t.get<std::int64_t>() >= 0) {
      u.created_at = t.get<std::int64_t>();
    } else if (t.is_string()) {
      u.created_at = parse_iso8601(t.get<std::string>());
      if (!u.created_at) return "created_at is not ISO 8601 (2024-05-01T12:00:00Z)";
    } else {
      return "created_at is not Unix seconds or an ISO 8601 text";
    }
  }
  return "";
}

int read_import_file(Context &c, std::vector<ImportedUser> &users) {
  const std::string &file = c.operands[0];
  std::ifstream in_file;
  if (file != "-") {
    in_file.open(file);
    if (!in_file) return c.fail(admin_failed, "cannot read " + file);
  }
  std::istream &in = file == "-" ? c.in : in_file;
  std::string line;
  for (std::size_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue; // blank
    const std::string where = "line " + std::to_string(n);
    json j = json::parse(line, nullptr, false);
    if (j.is_discarded()) return c.fail(admin_usage, where + ": not JSON; nothing imported");
    ImportedUser u;
    u.where = where;
    if (std::string problem = user_from_json(j, u); !problem.empty())
      return c.fail(admin_usage, where + ": " + problem + "; nothing imported");
    users.push_back(std::move(u));
  }
  return admin_ok;
}

int read_django(Context &c, std::vector<ImportedUser> &users) {
  for (auto &row : db::read_django_users(c.flags["from-django"])) {
    ImportedUser u;
    u.where = "auth_user id " + std::to_string(row.id);
    u.username = std::move(row.username);
    if (!row.email.empty()) u.email = std::move(row.email);
    u.password_hash = std::move(row.password);
    u.active = row.is_active;
    u.created_at = parse_iso8601(row.date_joined);
    if (!u.created_at)
      return c.fail(admin_usage, u.where + ": date_joined '" + row.date_joined +
                                     "' is not a date; nothing imported");
    users.push_back(std::move(u));
  }
  return admin_ok;
}

int user_import(Context &c) {
  bool skip = false;
  if (c.has("on-conflict")) {
    if (c.flags["on-conflict"] != "fail" && c.flags["on-conflict"] != "skip")
      return c.fail(admin_usage, "--on-conflict MODE is fail or skip");
    skip = c.flags["on-conflict"] == "skip";
  }
  const bool dry_run = c.has("dry-run");
  std::vector<ImportedUser> users;
  if (c.has("from-django")) {
    if (int rc = read_django(c, users)) return rc;
  } else if (int rc = read_import_file(c, users)) {
    return rc;
  }
  if (int rc = open_store(c)) return rc;
  ImportReport report = c.service->import_users(users, skip, dry_run, c.by());
  if (report.refused)
    return c.fail(admin_usage,
                  users[*report.refused].where + ": " + report.why + "; nothing imported");
  const char *verb = dry_run ? "would import " : "imported ";
  if (dry_run)
    for (const auto &u : report.imported)
      c.out << "would import " << u.username << " (" << u.id << ", "
            << password_formats::name(*password_formats::check(u.password_hash).format)
            << (u.active ? "" : ", inactive") << ")\n";
  for (std::size_t i : report.skipped)
    c.out << (dry_run ? "would skip " : "skipped ") << users[i].where << " (" << users[i].username
          << "): an existing user holds its id, username or email\n";
  c.out << verb << report.imported.size() << " user" << (report.imported.size() == 1 ? "" : "s")
        << (report.skipped.empty() ? "" : ", skipped " + std::to_string(report.skipped.size()))
        << (dry_run ? "; nothing was written" : "") << "\n";
  return admin_ok;
}

// In the order a reader expects (ordered_json keeps it).
nlohmann::ordered_json export_json(const db::User &u) {
  return {{"id", u.id},
          {"username", u.username},
          {"email", u.email ? nlohmann::ordered_json(*u.email) : nlohmann::ordered_json(nullptr)},
          {"password_hash", u.password_hash},
          {"display_name", u.display_name},
          {"profile_picture", u.profile_picture},
          {"phone_number", u.phone_number},
          {"email_verified", u.email_verified},
          {"is_active", u.active},
          {"created_at", u.created_at}};
}

int user_export(Context &c) {
  const std::string &file = c.operands[0];
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  auto users = c.service->list_users();
  std::ostringstream lines;
  for (const auto &u : users)
    lines << export_json(u).dump() << "\n";
  if (file == "-") {
    c.out << lines.str();
    return admin_ok;
  }
  // Password hashes: readable by the owner only, and never written over an existing file.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return c.fail(admin_failed, "cannot create " + file + " (it must not exist)");
  const std::string text = lines.str();
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  written = ::close(fd) == 0 && written;
  if (!written) return c.fail(admin_failed, "cannot write " + file);
  c.out << "exported " << users.size() << " user" << (users.size() == 1 ? "" : "s") << " to "
        << file << "\n";
  return admin_ok;
}

// --- sessions -----------------------------------------------------------------------------

int sessions_list(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  db::User u;
  if (int rc = find_user(c, c.operands[0], u)) return rc;
  auto sessions = c.service->list_sessions(u.id);
  const std::int64_t now = c.now();
  if (c.has("json")) {
    json all = json::array();
    for (const auto &s : sessions)
      all.push_back({{"id", s.id},
                     {"api", s.api},
                     {"created_at", s.created_at},
                     {"expires_at", s.expires_at},
                     {"state", session_state(s, now)}});
    c.out << all.dump(2) << "\n";
    return admin_ok;
  }
  std::vector<std::vector<std::string>> rows = {{"SESSION", "API", "CREATED", "EXPIRES", "STATE"}};
  for (const auto &s : sessions)
    rows.push_back(
        {s.id, s.api, iso_time(s.created_at), iso_time(s.expires_at), session_state(s, now)});
  print_table(c.out, rows);
  return admin_ok;
}

int sessions_revoke(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (c.has("all")) {
    int n = c.service->revoke_all_sessions(c.by());
    c.out << "revoked " << n << " session" << (n == 1 ? "" : "s") << " of every user\n";
    return admin_ok;
  }
  db::User u;
  if (int rc = find_user(c, c.operands[0], u)) return rc;
  int n = c.service->revoke_sessions(u, c.by());
  c.out << "revoked " << n << " session" << (n == 1 ? "" : "s") << " of " << u.username << "\n";
  return admin_ok;
}

// --- backup, purge, secret ----------------------------------------------------------------

int backup(Context &c) {
  const std::string &file = c.operands[0];
  if (file.empty()) return c.fail(admin_usage, "FILE is empty");
  if (db::PostgresStore::is_uri(c.config.db_path))
    return c.fail(admin_usage, "backup copies an SQLite database; back PostgreSQL up with pg_dump");
  const std::string &db = c.config.db_path;
  std::error_code file_ec;
  const fs::path target = fs::weakly_canonical(file, file_ec);
  for (const char *suffix : {"", "-wal", "-shm", "-journal"}) {
    std::error_code ec;
    const fs::path part = fs::weakly_canonical(db + suffix, ec);
    bool same = !file_ec && !ec && target == part;
    if (!same && fs::exists(file, ec) && fs::exists(db + suffix, ec))
      same = fs::equivalent(file, db + suffix, ec);
    if (same) return c.fail(admin_usage, file + " is the database itself");
  }
  if (int rc = open_store(c)) return rc;
  if (!c.sqlite->backup(file, c.has("force")))
    return c.fail(admin_failed, file + " exists; --force replaces it");
  c.out << "backed up " << db << " to " << file << "\n";
  return admin_ok;
}

int purge(Context &c) {
  std::optional<std::int64_t> margin; // --purge-margin's, as the server purges
  if (c.has("margin")) {
    auto d = c.flags["margin"] == "0" ? std::optional<std::int64_t>(0)
                                      : parse_duration(c.flags["margin"]);
    if (!d) return c.fail(admin_usage, "--margin must be 0 or a duration such as 90s, 15m or 1h");
    margin = *d;
  }
  if (int rc = open_store(c)) return rc;
  // The service's purge, as the server runs it every --purge-interval.
  db::PurgeCounts n = c.service->purge_expired(margin);
  c.service->record("admin_purge", c.by());
  c.out << "sessions: " << n.sessions << "\n"
        << "blacklisted tokens: " << n.blacklist << "\n"
        << "one-time tokens: " << n.one_time_tokens << "\n"
        << "signing keys: " << n.signing_keys << "\n"
        << "mail: " << n.mail << "\n"
        << "audit events: " << n.audit << "\n";
  return admin_ok;
}

int secret_rotate(Context &c) {
  if (!c.config.jwt_secret.empty())
    return c.fail(admin_usage,
                  "LATCH_JWT_SECRET is set: it is the only signing key, so there is no key "
                  "ring to rotate. Change the variable instead (tokens signed with the old "
                  "value stop working), or unset it to use keys kept in the database");
  if (!c.config.jwt_private_key.empty())
    return c.fail(admin_usage, "LATCH_JWT_PRIVATE_KEY is set: that key is the only signing key, "
                               "so there is no key ring to rotate; unset it to use keys kept in "
                               "the database");
  std::optional<JwtAlg> alg;
  if (c.has("alg")) {
    alg = jwt_alg_from_name(c.flags["alg"]);
    if (!alg) return c.fail(admin_usage, "--alg must be HS256, EdDSA, ES256 or RS256");
  } else if (!c.config.jwt_alg.empty()) {
    alg = configured_alg(c.config);
  }
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  if (!alg) {
    // Neither --alg nor LATCH_JWT_ALG: the active key's alg, so a shell without the server's
    // environment never turns an EdDSA deployment back to HS256 by accident.
    auto rows = c.store->signing_keys();
    alg = !rows.empty() && !rows.front().standby() && !rows.front().retired_at
              ? jwt_alg_from_name(rows.front().alg).value_or(JwtAlg::HS256)
              : JwtAlg::HS256;
  }
  const std::int64_t now = c.now();
  const std::int64_t until = now + signing_key_retention(c.config);
  auto report_retired = [&](const std::vector<db::SigningKeyRow> &before) {
    for (const auto &k : before)
      if (k.activated_at && !k.retired_at)
        c.out << "retired: " << k.kid << " (verifies the tokens it signed until " << iso_time(until)
              << ", and is published until then)\n";
  };
  if (c.has("retire-now")) {
    // A leak: a fresh key signs at once and every other one, the standby key too, is deleted.
    db::SigningKeyRow next = new_signing_key(now, *alg);
    auto before = c.service->rotate_signing_key(next, true, c.by());
    c.out << "new signing key: " << next.kid << " (" << next.alg << ")\n";
    for (const auto &k : before)
      c.out << "deleted: " << k.kid << " (every token it signed is refused from now on)\n";
    c.out << "a server running without LATCH_JWT_SECRET signs with the new key and refuses "
             "the old keys' tokens within 2 seconds\n";
    return admin_ok;
  }
  auto before = c.store->signing_keys();
  auto standby = std::find_if(before.begin(), before.end(),
                              [](const db::SigningKeyRow &k) { return k.standby(); });
  const bool same_alg =
      standby != before.end() && (!c.has("alg") || standby->alg == jwt_alg_name(*alg));
  if (standby != before.end() && same_alg) {
    const std::int64_t due = standby->created_at + c.config.standby_period;
    if (!c.has("activate") && now < due)
      return c.fail(admin_usage, "the standby key " + standby->kid + " (" + standby->alg +
                                     ") is published but may sign only from " + iso_time(due) +
                                     " (--standby-period), when verifiers that cache the JWKS "
                                     "have it; run this again then, or now with --activate");
    if (!c.service->activate_signing_key(standby->kid, c.by()))
      return c.fail(admin_failed, "the standby key " + standby->kid + " was changed meanwhile");
    c.out << "activated: " << standby->kid << " (" << standby->alg << ")\n";
    report_retired(before);
    c.out << "a server running without LATCH_JWT_SECRET signs with it within 2 seconds\n";
    return admin_ok;
  }
  db::SigningKeyRow next = new_signing_key(now, *alg);
  // An HS256 key is never published, so nothing needs to learn of it before it signs.
  if (c.has("activate") || *alg == JwtAlg::HS256) {
    c.service->rotate_signing_key(next, false, c.by());
    c.out << "new signing key: " << next.kid << " (" << next.alg << ")\n";
    report_retired(before);
    for (const auto &k : before)
      if (k.standby()) c.out << "retired: " << k.kid << " (a standby key, never signed)\n";
    c.out << "a server running without LATCH_JWT_SECRET signs with it within 2 seconds\n";
    return admin_ok;
  }
  c.service->add_standby_key(next, c.by());
  c.out << "standby key: " << next.kid << " (" << next.alg
        << "), published at /.well-known/jwks.json at once; it signs nothing until "
           "`latch secret rotate` from "
        << iso_time(now + c.config.standby_period) << " (or --activate now)\n";
  if (standby != before.end()) c.out << "replaced standby key: " << standby->kid << "\n";
  return admin_ok;
}

const char *key_state(const db::SigningKeyRow &k) {
  if (k.retired_at) return "retired";
  return k.activated_at ? "active" : "standby";
}

// --- audit ---------------------------------------------------------------------------------

int audit(Context &c) {
  db::AuditQuery q;
  if (c.has("since")) {
    auto d = parse_duration(c.flags["since"]);
    if (!d) return c.fail(admin_usage, "--since must be a duration such as 90s, 15m, 1h or 14d");
    q.since = c.now() - *d;
  }
  if (c.has("limit")) {
    const std::string &v = c.flags["limit"];
    if (v.empty() || v.size() > 7 || !std::all_of(v.begin(), v.end(), ::isdigit) || v == "0")
      return c.fail(admin_usage, "--limit must be a number from 1 to 9999999");
    q.limit = std::stoul(v);
  }
  if (c.has("event")) q.event = c.flags["event"];
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  if (c.has("user")) {
    // A user that exists by its id, email or username; else the text is taken as the id of a
    // user deleted since (its events stay).
    const std::string &who = c.flags["user"];
    std::optional<db::User> u = c.service->find_user_by_id(who);
    if (!u && who.find('@') != std::string::npos) u = c.service->find_user_by_email(who);
    if (!u) u = c.service->find_user_by_username(who);
    q.user_id = u ? u->id : who;
  }
  const auto events = c.store->query_audit(q);
  if (c.has("json")) {
    json all = json::array();
    for (const auto &e : events)
      all.push_back(audit_event_json(e));
    c.out << all.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return admin_ok;
  }
  std::vector<std::vector<std::string>> rows = {
      {"TIME", "EVENT", "USER", "IDENTIFIER", "API", "ADDRESS", "ACTOR", "DETAIL", "REQUEST"}};
  auto or_dash = [](const std::string &v) { return v.empty() ? std::string("-") : v; };
  for (const auto &e : events)
    rows.push_back({iso_time(e.at), e.event, e.user_id.value_or("-"), or_dash(e.identifier),
                    or_dash(e.api), or_dash(e.address), or_dash(e.actor), or_dash(e.detail),
                    or_dash(e.request_id)});
  print_table(c.out, rows);
  return admin_ok;
}

int secret_list(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  const std::int64_t retention = signing_key_retention(c.config);
  auto keys = c.store->signing_keys();
  // Never the secret or the private key: kid, state, alg and times only.
  if (c.has("json")) {
    json all = json::array();
    for (const auto &k : keys)
      all.push_back(
          {{"kid", k.kid},
           {"state", key_state(k)},
           {"alg", k.alg},
           {"created_at", k.created_at},
           {"activated_at", k.activated_at ? json(*k.activated_at) : json(nullptr)},
           {"verifies_until", k.retired_at ? json(*k.retired_at + retention) : json(nullptr)}});
    c.out << all.dump(2) << "\n";
    return admin_ok;
  }
  std::vector<std::vector<std::string>> rows = {
      {"KID", "STATE", "ALG", "CREATED", "VERIFIES UNTIL"}};
  for (const auto &k : keys)
    rows.push_back({k.kid, key_state(k), k.alg, iso_time(k.created_at),
                    k.retired_at ? iso_time(*k.retired_at + retention) : "-"});
  print_table(c.out, rows);
  if (!c.config.jwt_secret.empty() || !c.config.jwt_private_key.empty())
    c.out << "(LATCH_JWT_SECRET or LATCH_JWT_PRIVATE_KEY is set: a server signs with that key, "
             "not these)\n";
  return admin_ok;
}

// --- mail ---------------------------------------------------------------------------------

const char *mail_state(db::MailState s) {
  switch (s) {
  case db::MailState::queued: return "queued";
  case db::MailState::sending: return "sending";
  case db::MailState::failed: return "failed";
  }
  return "?";
}

// When the mail is next tried, as the list shows it.
std::string mail_next(const db::QueuedMail &m, std::int64_t now) {
  if (m.state == db::MailState::failed) return "-";
  if (m.state == db::MailState::sending) return "now";
  return m.next_attempt_at <= now ? "due" : iso_time(m.next_attempt_at);
}

// An outbox id: a positive whole number.
int mail_id(Context &c, std::int64_t &id) {
  const std::string &text = c.operands[0];
  const bool digits =
      !text.empty() && text.size() <= 18 &&
      std::all_of(text.begin(), text.end(), [](unsigned char ch) { return std::isdigit(ch); });
  if (!digits || std::stoll(text) == 0)
    return c.fail(admin_usage,
                  "ID must be a mail's number, as latch mail list shows it, not '" + text + "'");
  id = std::stoll(text);
  return admin_ok;
}

// The row with this id, if any (for the words of retry and drop).
std::optional<db::QueuedMail> find_mail(Context &c, std::int64_t id) {
  for (auto &m : c.store->list_mail(c.now()))
    if (m.id == id) return m;
  return std::nullopt;
}

// Addresses yes (an operator sees them in latch user list too), bodies never: they hold links.
int mail_list(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  const std::int64_t now = c.now();
  auto mails = c.store->list_mail(now);
  if (c.has("json")) {
    json all = json::array();
    for (const auto &m : mails)
      all.push_back({{"id", m.id},
                     {"state", mail_state(m.state)},
                     {"to", m.mail.recipient},
                     {"subject", m.mail.subject},
                     {"attempts", m.attempts},
                     {"created_at", m.mail.created_at},
                     {"next_attempt_at",
                      m.state == db::MailState::failed ? json(nullptr) : json(m.next_attempt_at)},
                     {"link_expires_at",
                      m.mail.link_expires_at ? json(*m.mail.link_expires_at) : json(nullptr)},
                     {"link_live", m.link_live},
                     {"last_error", m.last_error}});
    c.out << all.dump(2) << "\n";
    return admin_ok;
  }
  if (mails.empty()) {
    c.out << "the outbox is empty: every mail was sent\n";
    return admin_ok;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "STATE", "TO", "SUBJECT", "ATTEMPTS", "NEXT", "LAST ERROR", "CREATED"}};
  for (const auto &m : mails)
    rows.push_back({std::to_string(m.id), mail_state(m.state), m.mail.recipient, m.mail.subject,
                    std::to_string(m.attempts), mail_next(m, now),
                    m.last_error.empty() ? "-" : m.last_error, iso_time(m.mail.created_at)});
  print_table(c.out, rows);
  return admin_ok;
}

int mail_retry(Context &c) {
  if (int rc = open_store(c)) return rc;
  const std::int64_t now = c.now();
  if (c.has("all")) {
    const int n = c.store->retry_mail(std::nullopt, now);
    c.service->record("admin_retry_mail", c.by(), std::nullopt, "all: " + std::to_string(n));
    c.out << n << " mail" << (n == 1 ? "" : "s")
          << " due now; a running server sends them within a second\n";
    return admin_ok;
  }
  std::int64_t id = 0;
  if (int rc = mail_id(c, id)) return rc;
  auto mail = find_mail(c, id);
  if (!mail) return c.fail(admin_not_found, "no mail " + std::to_string(id) + " in the outbox");
  const int retried = c.store->retry_mail(id, now);
  c.service->record("admin_retry_mail", c.by(), std::nullopt,
                    "mail " + std::to_string(id) + (retried ? "" : " (being sent)"));
  if (retried == 0) {
    c.out << "mail " << id << " to " << mail->mail.recipient << " is being sent now\n";
    return admin_ok;
  }
  c.out << "mail " << id << " to " << mail->mail.recipient
        << " is due now; a running server sends it within a second"
        << (mail->link_live ? "" : " (its link no longer works, so it will be dropped unsent)")
        << "\n";
  return admin_ok;
}

int mail_drop(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (c.has("all")) {
    const int n = c.store->drop_mail(std::nullopt);
    c.service->record("admin_drop_mail", c.by(), std::nullopt, "all: " + std::to_string(n));
    c.out << "dropped " << n << " mail" << (n == 1 ? "" : "s") << " unsent\n";
    return admin_ok;
  }
  std::int64_t id = 0;
  if (int rc = mail_id(c, id)) return rc;
  auto mail = find_mail(c, id);
  if (!mail || c.store->drop_mail(id) == 0)
    return c.fail(admin_not_found, "no mail " + std::to_string(id) + " in the outbox");
  c.service->record("admin_drop_mail", c.by(), std::nullopt, "mail " + std::to_string(id));
  c.out << "dropped mail " << id << " to " << mail->mail.recipient << " unsent\n";
  return admin_ok;
}

// --- doctor -------------------------------------------------------------------------------

std::string octal_mode(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

std::string user_name(uid_t uid) {
  struct passwd pw {};
  struct passwd *found = nullptr;
  char buf[1024];
  if (getpwuid_r(uid, &pw, buf, sizeof buf, &found) == 0 && found) return found->pw_name;
  return "uid " + std::to_string(uid);
}

int doctor(Context &c) {
  const std::string &path = c.config.db_path;
  std::error_code ec;
  int problems = 0;
  auto fine = [&](const std::string &line) { c.out << "ok   " << line << "\n"; };
  auto fix = [&](const std::string &line) {
    c.out << "fix  " << line << "\n";
    ++problems;
  };
  auto verdict = [&] {
    if (problems == 0)
      c.out << "all is fine\n";
    else
      c.out << problems << " thing" << (problems == 1 ? "" : "s") << " to fix\n";
    return problems == 0 ? admin_ok : admin_failed;
  };
  if (db::PostgresStore::is_uri(path)) {
    // PostgreSQL: no files to look at; whether it answers, takes writes, holds this latch's
    // schema, and its feed and tables can be read.
    const std::string name = db::PostgresStore::redacted(path);
    std::unique_ptr<db::PostgresStore> pg;
    try {
      db::PostgresStore::Options options = postgres_options(c.config);
      options.migrate = false;
      pg = std::make_unique<db::PostgresStore>(path, options);
      fine(name + ": reachable");
    } catch (const std::exception &e) {
      fix(std::string(e.what()) + " (is PostgreSQL running, and the URI right?)");
      return verdict();
    }
    try {
      const int version = pg->schema_version();
      const int latest = db::PostgresStore::latest_schema_version();
      const std::string v = std::to_string(version), l = std::to_string(latest);
      if (version == 0) {
        fix("no Latch schema in this database: latch migrate --db URI (or latch serve) makes it");
        return verdict();
      }
      if (version > latest)
        fix("schema version " + v + " is newer than this latch's (" + l +
            "): run the latch release that wrote it");
      else if (version < latest)
        fix("schema version " + v + ", older than this latch's " + l + ": latch migrate");
      else
        fine("a Latch database, schema version " + v);
      if (version != latest) return verdict();
      pg->ping();
      fine("the server takes writes (not a standby) and the tables are there");
      const auto snapshot = pg->snapshot(c.now());
      if (!pg->changes_since(snapshot.position, 1))
        fix("the change feed does not reach its own position " + std::to_string(snapshot.position));
      else
        fine("change feed at position " + std::to_string(snapshot.position) + ": " +
             std::to_string(snapshot.sessions.size()) + " live sessions, " +
             std::to_string(snapshot.blacklist.size()) + " blacklisted tokens");
      const auto mail = pg->mail_counts(c.now());
      fine(std::to_string(pg->list_users().size()) + " users, " +
           std::to_string(pg->signing_keys().size()) + " signing keys, " +
           std::to_string(mail.queued) + " mails queued, " + std::to_string(mail.failed) +
           " failed");
    } catch (const std::exception &e) {
      fix(e.what());
    }
    return verdict();
  }
  if (!fs::exists(path, ec)) return no_database(c);

  const uid_t me = ::geteuid();
  for (const char *suffix : {"", "-wal", "-shm"}) {
    const std::string file = path + suffix;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
      fine(file + ": none (SQLite makes it while the database is open)");
      continue;
    }
    const int before = problems;
    if (!S_ISREG(st.st_mode)) fix(file + ": not a regular file");
    if (st.st_mode & 077)
      fix(file + ": mode " + octal_mode(st.st_mode) + " lets other users read" +
          (st.st_mode & 022 ? " or change" : "") + " it: chmod 600 " + file);
    std::string owner = user_name(st.st_uid);
    if (st.st_uid != me && me != 0)
      fix(file + ": owned by " + owner + ", not by " + user_name(me) +
          " who runs this: run latch as " + owner + ", or chown " + user_name(me) + " " + file);
    if (problems == before)
      fine(file + ": mode " + octal_mode(st.st_mode) + ", owned by " + owner +
           (st.st_uid == me ? "" : " (root runs this: the server must run as " + owner + ")"));
  }

  try {
    auto sqlite = std::make_unique<db::SqliteStore>(path, db::SqliteStore::Open::read_only);
    c.sqlite = sqlite.get();
    c.store = std::move(sqlite);
  } catch (const std::exception &e) {
    fix(e.what());
  }
  if (c.store) {
    try {
      const int version = c.sqlite->schema_version();
      const int latest = db::SqliteStore::latest_schema_version();
      const std::string v = std::to_string(version), l = std::to_string(latest);
      if (version > latest)
        fix("schema version " + v + " is newer than this latch's (" + l +
            "): run the latch release that wrote it");
      else
        fine("a Latch database, schema version " + v +
             (version == latest ? "" : " (latch serve upgrades it to " + l + ")"));
      const std::string integrity = c.sqlite->integrity_check();
      if (integrity == "ok")
        fine("PRAGMA integrity_check: ok");
      else
        fix("PRAGMA integrity_check: " + integrity + " (restore the latest backup)");
    } catch (const std::exception &e) {
      fix(std::string(e.what()) + " (restore the latest backup)");
    }
  }
  return verdict();
}

// --- migrate, store copy ---------------------------------------------------------------------

int migrate(Context &c) {
  const std::string &path = c.config.db_path;
  int before = 0, after = 0;
  std::string name = path;
  if (db::PostgresStore::is_uri(path)) {
    // Also an empty database: the schema made before any server starts. Under the advisory
    // lock, so a server starting now waits for it (or it for the server).
    name = db::PostgresStore::redacted(path);
    db::PostgresStore::Options options = postgres_options(c.config);
    options.migrate = false;
    before = db::PostgresStore(path, options).schema_version();
    options.migrate = true;
    after = db::PostgresStore(path, options, username_rule()).schema_version();
  } else {
    std::error_code ec;
    if (!fs::exists(path, ec)) return no_database(c);
    before = db::SqliteStore(path, db::SqliteStore::Open::read_only).schema_version();
    after =
        db::SqliteStore(path, db::SqliteStore::Open::existing, username_rule()).schema_version();
  }
  if (before == after)
    c.out << name << ": schema version " << after << ", nothing to migrate\n";
  else
    c.out << name << ": migrated from schema version " << before << " to " << after << "\n";
  return admin_ok;
}

struct Opened {
  std::unique_ptr<db::Store> store;
  db::Copyable *copyable = nullptr;
  std::string name; // without a password
};

// The source of a copy, only read: SQLite opened read-only, PostgreSQL never migrated.
Opened open_source(Context &c, const std::string &where) {
  Opened o;
  int version = 0, latest = 0;
  if (db::PostgresStore::is_uri(where)) {
    db::PostgresStore::Options options = postgres_options(c.config);
    options.migrate = false;
    auto pg = std::make_unique<db::PostgresStore>(where, options);
    version = pg->schema_version();
    latest = db::PostgresStore::latest_schema_version();
    o.name = db::PostgresStore::redacted(where);
    o.copyable = pg.get();
    o.store = std::move(pg);
  } else {
    std::error_code ec;
    if (!fs::exists(where, ec)) throw std::runtime_error("no database at " + where);
    auto sqlite = std::make_unique<db::SqliteStore>(where, db::SqliteStore::Open::read_only);
    version = sqlite->schema_version();
    latest = db::SqliteStore::latest_schema_version();
    o.name = where;
    o.copyable = sqlite.get();
    o.store = std::move(sqlite);
  }
  if (version == 0) throw std::runtime_error(o.name + " holds no Latch schema");
  if (version != latest)
    throw std::runtime_error(o.name + " has Latch's schema version " + std::to_string(version) +
                             ", not this latch's " + std::to_string(latest) +
                             ": latch migrate --db " + o.name + " first");
  return o;
}

// The destination, made and migrated if need be.
Opened open_destination(Context &c, const std::string &where) {
  Opened o;
  if (db::PostgresStore::is_uri(where)) {
    auto pg =
        std::make_unique<db::PostgresStore>(where, postgres_options(c.config), username_rule());
    o.name = db::PostgresStore::redacted(where);
    o.copyable = pg.get();
    o.store = std::move(pg);
  } else {
    auto sqlite = std::make_unique<db::SqliteStore>(
        where, db::SqliteStore::Open::create, username_rule(),
        c.config.sqlite_sync == Config::SqliteSync::full ? db::SqliteStore::Sync::full
                                                         : db::SqliteStore::Sync::normal);
    o.name = where;
    o.copyable = sqlite.get();
    o.store = std::move(sqlite);
  }
  return o;
}

int store_copy(Context &c) {
  if (!c.has("from") || !c.has("to")) return c.fail(admin_usage, "give --from and --to");
  const std::string from = c.flags["from"], to = c.flags["to"];
  if (from.empty() || to.empty()) return c.fail(admin_usage, "--from and --to must not be empty");
  std::error_code ec;
  if (from == to || (!db::PostgresStore::is_uri(from) && !db::PostgresStore::is_uri(to) &&
                     fs::exists(to, ec) && fs::equivalent(from, to, ec)))
    return c.fail(admin_usage, "--from and --to name the same database");
  Opened source = open_source(c, from);
  const auto tables = source.copyable->dump_tables();
  Opened destination = open_destination(c, to);
  if (!destination.copyable->load_tables(tables, c.has("replace")))
    return c.fail(admin_failed, destination.name +
                                    " holds data already; --replace deletes it and copies over it");
  c.out << "copied " << source.name << " to " << destination.name << ":";
  for (std::size_t i = 0; i < tables.size(); ++i)
    c.out << (i ? "," : "") << " " << tables[i].rows.size() << " " << tables[i].name;
  c.out << "\n";
  return admin_ok;
}

// --- admin (the console's admins) -----------------------------------------------------------

int admin_add(Context &c) {
  if (!canonical_email(c.operands[0]))
    return c.fail(admin_usage, "'" + c.operands[0] + "' is not an email address");
  std::string password;
  bool generated = false;
  if (int rc = new_password(c, password, generated)) return rc;
  if (int rc = open_store(c)) return rc;
  auto made = c.service->add_admin(c.operands[0], password);
  if (!made) {
    if (made.error().code == ErrorCode::user_exists)
      return c.fail(admin_failed, "an admin with that email exists");
    if (int rc = password_failure(c, made.error().code)) return rc;
    return c.fail(admin_failed, "cannot add the admin");
  }
  c.out << "added admin " << made->email << "; the console is at /_/\n";
  if (generated) c.out << "password: " << password << "\n";
  return admin_ok;
}

int admin_list(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (int rc = require_current_schema(c)) return rc;
  auto admins = c.service->list_admins();
  if (c.has("json")) {
    json all = json::array();
    for (const auto &a : admins)
      all.push_back({{"email", a.email}, {"created_at", a.created_at}});
    c.out << all.dump(2) << "\n";
    return admin_ok;
  }
  std::vector<std::vector<std::string>> rows = {{"EMAIL", "CREATED"}};
  for (const auto &a : admins)
    rows.push_back({a.email, iso_time(a.created_at)});
  print_table(c.out, rows);
  return admin_ok;
}

int admin_delete(Context &c) {
  if (int rc = open_store(c)) return rc;
  if (!c.service->delete_admin(c.operands[0]))
    return c.fail(admin_not_found, "no admin '" + c.operands[0] + "'");
  c.out << "deleted admin " << lower_ascii(c.operands[0]) << "; its console sessions are ended\n";
  return admin_ok;
}

const std::vector<Command> &commands() {
  static const std::vector<Command> table = {
      {"user",
       "add",
       "USERNAME",
       1,
       {{"email", "EMAIL", "the user's email address (stored lower-case)"}, kPasswordStdinFlag},
       "add a user",
       "Adds a user, checked as sign-up checks one (LATCH_PASSWORD_MIN_LENGTH included).\n",
       user_add},
      {"user",
       "list",
       "",
       0,
       {kJsonFlag},
       "list every user",
       "Lists every user, oldest first. Reads the database only (opened read-only).\n",
       user_list,
       Access::reads},
      {"user",
       "show",
       "USER",
       1,
       {kJsonFlag},
       "show one user",
       "Shows one user and how many sessions it has open. USER is an id, an email or a "
       "username.\nReads the database only (opened read-only).\n",
       user_show,
       Access::reads},
      {"user",
       "delete",
       "USER",
       1,
       {},
       "delete a user and its sessions",
       "Deletes the user; its sessions, refresh tokens and reset links go with it, so its\n"
       "tokens are refused from now on, by a running server too.\n",
       user_delete},
      {"user",
       "set-password",
       "USER",
       1,
       {kPasswordStdinFlag},
       "set a new password; ends the user's sessions",
       "Sets a new password and ends every session of the user, as a password reset does.\n",
       user_set_password},
      {"user",
       "rename",
       "USER NEW_USERNAME",
       2,
       {},
       "give the user another username",
       "Gives the user another username, checked as sign-up checks one: refused if it is, or\n"
       "looks like, another user's username or email. It resolves a pair of look-alike\n"
       "usernames the server reports at start (from before look-alikes were refused).\n",
       user_rename},
      {"user",
       "verify-email",
       "USER",
       1,
       {},
       "mark the user's email as verified",
       "Marks the user's email as verified, as opening the v1 confirmation link does\n"
       "(for --require-verified-email).\n",
       user_verify_email},
      {"user",
       "import",
       "FILE",
       1,
       {{"dry-run", "", "check everything and print what would be imported; write nothing"},
        {"on-conflict", "MODE",
         "fail (the default) or skip: what a user whose id, username or email an existing user "
         "holds does"},
        {"from-django", "DB", "read Django's auth_user from the SQLite database DB (read-only)",
         true}},
       "import users with the password hashes they have",
       "Imports users from FILE (JSON Lines; - for standard input), one object a line:\n"
       "username and password_hash required; email, display_name, profile_picture,\n"
       "phone_number, email_verified, is_active, created_at (Unix seconds or ISO 8601) and id\n"
       "(kept if it is a UUID) optional. The hashes of argon2, bcrypt, Django, Werkzeug and\n"
       "crypt(5) are kept as they are, and replaced with argon2id at each user's first sign-in.\n"
       "All or nothing: a bad line (unknown hash format, parameters past the bounds in\n"
       "SECURITY.md, a bad email, a duplicate) imports nothing and exits 2 naming it. A running\n"
       "server sees the users at once.\n",
       user_import},
      {"user",
       "export",
       "FILE",
       1,
       {},
       "write every user to FILE as JSON Lines, hashes as stored",
       "Writes every user to FILE (created with mode 0600; - for standard output) as the JSON\n"
       "Lines `latch user import` reads, password hashes as stored.\n"
       "Reads the database only (opened read-only).\n",
       user_export,
       Access::reads},
      {"sessions",
       "list",
       "USER",
       1,
       {kJsonFlag},
       "list the user's sessions",
       "Lists the user's sessions: active, revoked, or expired and not purged yet. Reads the\n"
       "database only (opened read-only).\n",
       sessions_list,
       Access::reads},
      {"sessions",
       "revoke",
       "USER",
       1,
       {{"all", "", "every session of every user (instead of USER)", true}},
       "end every session of the user, or of everyone",
       "Ends every session of the user, or with --all of every user: their access and refresh\n"
       "tokens are refused from now on, by a running server too. Users sign in again.\n",
       sessions_revoke},
      {"backup",
       "",
       "FILE",
       1,
       {{"force", "", "replace FILE if it exists"}},
       "copy the database to FILE while it serves",
       "Copies the database to FILE (mode 0600, one self-contained file) with SQLite's online\n"
       "backup API: one consistent snapshot, taken while the server keeps serving. An\n"
       "existing FILE is left alone unless --force. Reads the database only (opened\n"
       "read-only). The copy holds the signing keys and every live session: keep it as\n"
       "secret as the database (README: Backups says what to do if one leaks).\n",
       backup,
       Access::reads},
      {"purge",
       "",
       "",
       0,
       {{"margin", "DURATION",
         "delete what expired longer ago than this (default 1h; 0: everything expired)"}},
       "delete expired rows now and print how many",
       "Deletes expired sessions, blacklist entries and one-time tokens, and retired signing\n"
       "keys no token can need any more, as the server does every --purge-interval. Token\n"
       "lifetimes come from the same LATCH_* variables as the server's. As the server's, the\n"
       "purge leaves what expired within the last hour (--margin): a wall clock stepped\n"
       "forward by up to that destroys nothing still valid.\n",
       purge},
      {"secret",
       "rotate",
       "",
       0,
       {{"activate", "", "make the standby key (or, without one, a new key) sign now"},
        {"alg", "ALG",
         "the new key's algorithm: HS256, EdDSA, ES256 or RS256 (default LATCH_JWT_ALG, else "
         "the active key's)"},
        {"retire-now", "",
         "delete the previous keys at once: every token they signed is refused, so every user "
         "signs in again (after a leaked key or backup)"}},
       "make a new signing key; tokens already issued stay valid",
       "Makes a new signing key. An EdDSA, ES256 or RS256 key starts as the standby key: it is\n"
       "published at /.well-known/jwks.json at once but signs nothing; the next rotate after\n"
       "--standby-period (LATCH_STANDBY_PERIOD, default 10m), or rotate --activate, makes it\n"
       "the signing key, so services that cache the JWKS know it before its first token. An\n"
       "HS256 key is never published and signs at once. Tokens name their key in the kid\n"
       "header, so the ones signed with the previous key stay valid until they expire; that\n"
       "key is published and purged once none can be left. A running server notices within a\n"
       "second. Changing the algorithm (--alg, or LATCH_JWT_ALG) is one such rotation.\n"
       "Refused (exit 2) when LATCH_JWT_SECRET or LATCH_JWT_PRIVATE_KEY is set: that is then\n"
       "the only key. With --retire-now a new key signs at once and every other key stops\n"
       "verifying: they are deleted, and every token they signed, access and refresh, is\n"
       "refused from now on (by a running server within 2 seconds), so every user must sign\n"
       "in again. For a key that leaked.\n",
       secret_rotate},
      {"secret",
       "list",
       "",
       0,
       {kJsonFlag},
       "list the signing keys: kid, state, alg",
       "Lists the signing keys: the active one (it signs), the standby one (published, signs\n"
       "after the next rotate) and the retired ones (they verify the tokens they signed until\n"
       "the time shown, then are purged). Never a secret or private key. Reads the database\n"
       "only (opened read-only).\n",
       secret_list,
       Access::reads},
      {"mail",
       "list",
       "",
       0,
       {kJsonFlag},
       "list the mail waiting to be sent, and failed mail",
       "Lists the outbox: mail waiting to be sent (queued, or sending now) and mail that failed\n"
       "(SMTP 5xx, or temporary failures past --mail-give-up), oldest first, with its attempts,\n"
       "next attempt and last error. Shows each recipient's address, never a mail's text (it\n"
       "holds a reset or confirmation link). Sent mail is not kept. Reads the database only\n"
       "(opened read-only).\n",
       mail_list,
       Access::reads},
      {"mail",
       "retry",
       "ID",
       1,
       {{"all", "", "every mail in the outbox (instead of ID)", true}},
       "send a failed or waiting mail now",
       "Makes the mail due now, with its attempts and --mail-give-up counted afresh: a failed\n"
       "mail is tried again, a waiting one is not left to its backoff. A running server sends\n"
       "it within a second. A mail whose link expired is still dropped unsent.\n",
       mail_retry},
      {"mail",
       "drop",
       "ID",
       1,
       {{"all", "", "every mail in the outbox (instead of ID)", true}},
       "delete a mail unsent",
       "Deletes the mail from the outbox: it is never sent. The link it carries still works\n"
       "until it expires, if the user has it some other way.\n",
       mail_drop},
      {"audit",
       "",
       "",
       0,
       {{"user", "USER", "only this user's events (an id, an email or a username)"},
        {"event", "NAME", "only events of this kind (sign_in_failed, admin_delete_user...)"},
        {"since", "DURATION", "only events of the last DURATION (15m, 1h, 7d)"},
        {"limit", "N", "at most N events (default 100)"},
        kJsonFlag},
       "print the audit log, newest first",
       "Prints the audit log, newest first: sign-ups, sign-ins and failed ones with the reason,\n"
       "lockouts, refresh-token reuse, logouts, password resets, email confirmations and every\n"
       "admin action with who did it (README: Audit log). Never a password, a token or a link.\n"
       "Events older than --audit-retention (default 90d) are purged. Reads the database only\n"
       "(opened read-only).\n",
       audit,
       Access::reads},
      {"admin",
       "add",
       "EMAIL",
       1,
       {kPasswordStdinFlag},
       "add an admin of the console at /_/",
       "Adds an admin of the console (/_/), apart from the users: it signs in there with\n"
       "EMAIL and the password (the users' password rule). The console answers once an\n"
       "admin exists, unless the server runs with --console off.\n",
       admin_add},
      {"admin",
       "list",
       "",
       0,
       {kJsonFlag},
       "list the console's admins",
       "Lists the console's admins, oldest first. Reads the database only (opened read-only).\n",
       admin_list,
       Access::reads},
      {"admin",
       "delete",
       "EMAIL",
       1,
       {},
       "delete an admin; its console sessions end",
       "Deletes the admin; every console session it has ends at once, on every server.\n",
       admin_delete},
      {"doctor",
       "",
       "",
       0,
       {},
       "check the database's files, schema and integrity",
       "Checks the database file and its -wal and -shm: that no other user may read or write\n"
       "them (mode 0600) and that the user running this owns them; that the file is a Latch\n"
       "database (its schema version); and SQLite's integrity_check. Prints each check as ok\n"
       "or fix, with what to do. Reads the database only (opened read-only). Exit status 0\n"
       "when all is fine, 1 when something needs fixing.\n",
       doctor,
       Access::reads},
      {"migrate",
       "",
       "",
       0,
       {},
       "apply the schema's pending migrations now",
       "Applies the migrations this latch has and the database lacks, each in one transaction,\n"
       "as latch serve does at start; PostgreSQL under its advisory lock, so servers starting\n"
       "at the same time wait. On PostgreSQL it also makes the schema in an empty database.\n"
       "Prints the schema version before and after.\n",
       migrate},
      {"store",
       "copy",
       "",
       0,
       {{"from", "SOURCE", "the database to copy: an SQLite file or a postgres:// URI (only read)"},
        {"to", "DEST", "the database to copy to: an SQLite file (made if missing) or a URI"},
        {"replace", "", "delete what DEST holds and copy over it"}},
       "copy every user, session and signing key to another database",
       "Copies everything the store holds from SOURCE to DEST, SQLite or PostgreSQL either way:\n"
       "users with their password hashes, sessions, the blacklist, one-time tokens, the signing\n"
       "keys with their states, settings and the mail outbox, so tokens issued before the move\n"
       "stay valid after it. DEST is migrated first, then written in one transaction. SOURCE is\n"
       "only read, as one snapshot; stop the servers on it first, or what they write after the\n"
       "snapshot stays behind. A DEST that holds any row is refused unless --replace. Prints\n"
       "how many rows of each table it copied. --db is not used.\n",
       store_copy},
  };
  return table;
}

std::string usage_line(const Command &c) {
  std::string line = "latch " + c.group + (c.name.empty() ? "" : " " + c.name);
  std::string operands = c.operands;
  for (const auto &f : c.flags)
    if (f.instead_of_operands) operands = "(" + operands + " | --" + f.name + ")";
  if (!operands.empty()) line += " " + operands;
  for (const auto &f : c.flags)
    if (!f.instead_of_operands)
      line += " [--" + f.name + (f.value_name.empty() ? "" : " " + f.value_name) + "]";
  return line;
}

const char *kExitStatuses =
    "Exit status: 0 done; 1 failed (database missing, unusable or not Latch's, name taken, FILE\n"
    "exists; doctor: something to fix); 2 usage (bad flags, arguments or password; secret rotate\n"
    "with LATCH_JWT_SECRET); 3 not found (no user matches USER, no mail has ID).\n";

std::string command_help(const Command &c) {
  std::ostringstream out;
  out << "Usage: " << usage_line(c) << " [--db PATH]\n\n" << c.details << "\nFlags:\n";
  std::vector<Flag> flags = c.flags;
  flags.push_back(kDbFlag);
  flags.push_back(kDbPoolFlag);
  flags.push_back(kDbTimeoutFlag);
  for (const auto &f : flags) {
    std::string left = "  --" + f.name + (f.value_name.empty() ? "" : " " + f.value_name);
    out << left << std::string(left.size() < 24 ? 24 - left.size() : 1, ' ');
    // The help text wrapped at 100 columns, under its first line.
    std::istringstream words(f.help);
    std::size_t column = std::max<std::size_t>(24, left.size() + 1);
    bool first_word = true;
    for (std::string word; words >> word; first_word = false) {
      if (!first_word && column + 1 + word.size() > 100) {
        out << "\n" << std::string(24, ' ');
        column = 24;
      } else if (!first_word) {
        out << ' ';
        ++column;
      }
      out << word;
      column += word.size();
    }
    out << "\n";
  }
  out << "\n" << kExitStatuses;
  return out.str();
}

std::string group_help(const std::string &group) {
  std::ostringstream out;
  out << "Usage:\n";
  for (const auto &c : commands())
    if (c.group == group) out << "  " << usage_line(c) << "\n";
  out << "\nEach takes --db PATH (or LATCH_DB) and --help.\n";
  return out.str();
}

} // namespace

std::vector<std::string> database_permission_warnings(const std::string &db_path) {
  std::vector<std::string> lines;
  for (const char *suffix : {"", "-wal", "-shm"}) {
    const std::string file = db_path + suffix;
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0 || (st.st_mode & 077) == 0) continue;
    lines.push_back(file + " has mode " + octal_mode(st.st_mode) + ": other users may read" +
                    (st.st_mode & 022 ? " or change" : "") +
                    " it (password hashes, signing keys, sessions); fix: chmod 600 " + file);
  }
  return lines;
}

bool is_admin_command(const std::string &command) {
  return std::any_of(commands().begin(), commands().end(),
                     [&](const Command &c) { return c.group == command; });
}

std::string admin_help() {
  std::ostringstream out;
  out << "\nAdministration (the same database; safe while the server runs; each command takes\n"
         "--db PATH or LATCH_DB, and --help):\n";
  for (const auto &c : commands()) {
    std::string left = "  " + usage_line(c);
    out << left;
    if (left.size() < 56)
      out << std::string(56 - left.size(), ' ');
    else
      out << "\n" << std::string(56, ' ');
    out << c.summary << "\n";
  }
  out << "USER is an id, an email or a username.\n" << kExitStatuses;
  return out.str();
}

int run_admin(const std::vector<std::string> &args, std::istream &in, std::ostream &out,
              std::ostream &err, const EnvLookup &env) {
  if (args.empty() || !is_admin_command(args[0])) {
    err << "latch: not an admin command\n";
    return admin_usage;
  }
  const std::string &group = args[0];
  const bool has_subcommands =
      std::any_of(commands().begin(), commands().end(),
                  [&](const auto &c) { return c.group == group && !c.name.empty(); });
  std::size_t first = 1;
  const Command *command = nullptr;
  if (has_subcommands) {
    if (args.size() < 2) {
      err << "latch " << group << ": which command?\n\n" << group_help(group);
      return admin_usage;
    }
    if (args[1] == "--help" || args[1] == "-h" || args[1] == "help") {
      out << group_help(group);
      return admin_ok;
    }
    for (const auto &c : commands())
      if (c.group == group && c.name == args[1]) command = &c;
    if (!command) {
      err << "latch " << group << ": unknown command '" << args[1] << "'\n\n" << group_help(group);
      return admin_usage;
    }
    first = 2;
  } else {
    for (const auto &c : commands())
      if (c.group == group) command = &c;
  }

  Context c{in, out, err, *command, {}, {}, {}, {}, {}, {}, {}, {}, {}, {}};
  auto usage = [&](const std::string &message) {
    err << c.title() << ": " << message << "\nUsage: " << usage_line(*command)
        << " [--db PATH] (see --help)\n";
    return admin_usage;
  };
  // --help anywhere before "--" wins over everything else on the line.
  for (std::size_t i = first; i < args.size() && args[i] != "--"; ++i) {
    if (args[i] == "--help" || args[i] == "-h") {
      out << command_help(*command);
      return admin_ok;
    }
  }
  bool operands_only = false;
  std::vector<Flag> flags = command->flags;
  flags.push_back(kDbFlag);
  flags.push_back(kDbPoolFlag);
  flags.push_back(kDbTimeoutFlag);
  for (std::size_t i = first; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (operands_only || arg.size() < 2 || arg[0] != '-') {
      c.operands.push_back(arg);
      continue;
    }
    if (arg == "--") {
      operands_only = true;
      continue;
    }
    if (arg.rfind("--", 0) != 0) return usage("unknown flag " + arg);
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name.resize(eq);
      has_value = true;
    }
    auto flag =
        std::find_if(flags.begin(), flags.end(), [&](const Flag &f) { return f.name == name; });
    if (flag == flags.end()) return usage("unknown flag --" + name);
    if (flag->value_name.empty()) {
      if (has_value) return usage("--" + name + " takes no value");
    } else if (!has_value) {
      if (i + 1 >= args.size())
        return usage("--" + name + " needs a value (" + flag->value_name + ")");
      value = args[++i];
    }
    c.flags[name] = value;
  }
  std::size_t operand_count = command->operand_count;
  std::string missing = command->operands;
  for (const auto &f : command->flags) {
    if (!f.instead_of_operands) continue;
    missing += " or --" + f.name;
    if (!c.has(f.name)) continue;
    if (!c.operands.empty())
      return usage("give " + command->operands + " or --" + f.name + ", not both");
    operand_count = 0;
  }
  if (c.operands.size() != operand_count) {
    if (c.operands.size() < operand_count) return usage("missing " + missing);
    return usage("unexpected argument '" + c.operands[operand_count] + "'");
  }

  // The same configuration as serve (LATCH_DB, LATCH_JWT_SECRET, password rules, lifetimes).
  std::vector<std::string> config_args;
  for (const char *name : {"db", "db-pool", "db-statement-timeout"})
    if (c.has(name))
      config_args.insert(config_args.end(), {std::string("--") + name, c.flags[name]});
  auto loaded = load_config(config_args, env);
  if (auto *message = std::get_if<std::string>(&loaded)) return c.fail(admin_usage, *message);
  c.config = std::get<Config>(std::move(loaded));

  try {
    return command->run(c);
  } catch (const std::exception &e) {
    return c.fail(admin_failed, e.what());
  }
}

void report_username_conflicts(db::SqliteStore &store, std::ostream &err) {
  auto quoted = [](const std::string &id, const std::string &name) {
    return "\"" + visible_username(name) + "\" (" + id + ")";
  };
  for (const auto &conflict : store.username_conflicts()) {
    if (conflict.other_id.empty()) {
      err << "latch: user " << quoted(conflict.id, conflict.username) << " has a username that "
          << describe(canonical_username(conflict.username).refusal)
          << "; it signs in only by that exact username; rename it with `latch user rename`\n";
      continue;
    }
    err << "latch: users " << quoted(conflict.other_id, conflict.other_username) << " and "
        << quoted(conflict.id, conflict.username) << " have look-alike usernames"
        << (conflict.keyless ? " (the second signs in only by its exact username)" : "")
        << "; rename one with `latch user rename`\n";
  }
}

int run_admin(const std::vector<std::string> &args, std::ostream &out, std::ostream &err) {
  return run_admin(args, std::cin, out, err, process_env());
}

} // namespace latch
