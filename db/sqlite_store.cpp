// SQLite implementation of Store: migrations, prepared statements and transactions.
#include "db/sqlite_store.h"

#include "db/schema.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>
#include <utility>

namespace latch::db {

// A write lock that another connection held past the busy time-out is no fault of the
// database: the request may succeed if tried again, so it is StoreUnavailable (503), as a
// PostgreSQL statement past its time-out is. Anything else is a StoreError (500).
[[noreturn]] static void throw_sqlite(int rc, const std::string &message) {
  const int primary = rc & 0xff;
  if (primary == SQLITE_BUSY || primary == SQLITE_LOCKED) throw StoreUnavailable(message);
  throw StoreError(message);
}

// A cached prepared statement, reset and cleared when it goes out of scope.
class SqliteStore::Statement {
public:
  Statement(sqlite3 *db, sqlite3_stmt *stmt) : db_(db), stmt_(stmt) {}
  ~Statement() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Statement(const Statement &) = delete;
  Statement &operator=(const Statement &) = delete;

  Statement &bind(int i, const std::string &v) {
    check(sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement &bind(int i, const char *v) { return bind(i, std::string(v)); }
  Statement &bind(int i, std::int64_t v) {
    check(sqlite3_bind_int64(stmt_, i, v));
    return *this;
  }
  Statement &bind(int i, const std::optional<std::string> &v) {
    if (v) return bind(i, *v);
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }
  Statement &bind(int i, const std::optional<std::int64_t> &v) {
    if (v) return bind(i, *v);
    check(sqlite3_bind_null(stmt_, i));
    return *this;
  }

  // Steps once: true when a row is available.
  bool step() {
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    last_rc_ = rc;
    if ((rc & 0xff) == SQLITE_CONSTRAINT) return false;
    throw_sqlite(rc, std::string("sqlite step: ") + sqlite3_errmsg(db_));
  }
  bool constraint_failed() const { return (last_rc_ & 0xff) == SQLITE_CONSTRAINT; }
  // Steps a statement that returns no rows (BEGIN, COMMIT); anything but done throws.
  void run() {
    if (const int rc = sqlite3_step(stmt_); rc != SQLITE_DONE)
      throw_sqlite(rc, std::string("sqlite: ") + sqlite3_errmsg(db_));
  }

  std::string text(int col) const {
    const unsigned char *p = sqlite3_column_text(stmt_, col);
    return p ? std::string(reinterpret_cast<const char *>(p),
                           static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
             : std::string();
  }
  std::optional<std::string> optional_text(int col) const {
    if (sqlite3_column_type(stmt_, col) == SQLITE_NULL) return std::nullopt;
    return text(col);
  }
  std::int64_t integer(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

private:
  void check(int rc) {
    if (rc != SQLITE_OK) throw StoreError(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
  }
  sqlite3 *db_;
  sqlite3_stmt *stmt_;
  int last_rc_ = SQLITE_OK;
};

// BEGIN IMMEDIATE on construction; ROLLBACK unless commit() was called.
class SqliteStore::Transaction {
public:
  // Prepared once: sqlite3_exec would parse them again for every write.
  explicit Transaction(SqliteStore &s) : s_(s) { s_.statement("BEGIN IMMEDIATE").run(); }
  ~Transaction() {
    if (!done_) sqlite3_exec(s_.db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Transaction(const Transaction &) = delete;
  Transaction &operator=(const Transaction &) = delete;
  void commit() {
    s_.statement("COMMIT").run();
    done_ = true;
  }

private:
  SqliteStore &s_;
  bool done_ = false;
};

SqliteStore::SqliteStore(const std::string &path, Open mode, UsernameRule rule, Sync sync)
    : path_(path), username_rule_(std::move(rule)), read_only_(mode == Open::read_only) {
  if (path != ":memory:" && mode == Open::create) {
    // Create the file ourselves so it is 0600 from the first byte; SQLite gives its
    // -wal and -shm files the same mode.
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw StoreError("cannot open database file " + path + ": " + std::strerror(errno));
    ::close(fd);
  }
  int flags = SQLITE_OPEN_FULLMUTEX;
  if (mode == Open::read_only)
    flags |= SQLITE_OPEN_READONLY;
  else
    flags |= SQLITE_OPEN_READWRITE | (mode == Open::create ? SQLITE_OPEN_CREATE : 0);
  int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    db_ = nullptr;
    throw StoreError("cannot open database " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  try {
    bool latch_schema = false;
    try {
      latch_schema = mode == Open::create || has_latch_schema();
    } catch (const StoreError &e) {
      // A WAL database read by a user who may not write beside it: SQLite reads through the
      // -shm file, which exists while a server has the database open, and otherwise must be
      // created in the database's directory.
      if (mode == Open::read_only && ::access((path + "-shm").c_str(), F_OK) != 0)
        throw StoreError("cannot read " + path + " read-only: " + e.what() + " (the database " +
                         "is in WAL mode and has no " + path + "-shm, which this user may not " +
                         "create; run the command as the user that owns the database)");
      throw;
    }
    // Checked before anything is written: an empty file or another program's database is
    // refused rather than given a schema.
    if (!latch_schema)
      throw StoreError(path + " is not a Latch database (it holds no Latch schema; latch serve "
                              "--db FILE makes one in a new file)");
    if (mode == Open::read_only) {
      exec("PRAGMA query_only=ON"); // belt and braces: this connection never writes
    } else {
      exec("PRAGMA journal_mode=WAL");
      // With WAL, NORMAL survives a crash of the process, FULL a power cut too (Sync).
      exec(sync == Sync::full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
      exec("PRAGMA foreign_keys=ON");
      migrate();
      backfill_username_keys();
    }
  } catch (...) {
    for (auto &[sql, stmt] : cache_)
      sqlite3_finalize(stmt);
    cache_.clear();
    sqlite3_close(db_);
    db_ = nullptr;
    throw;
  }
  struct stat st {};
  if (path != ":memory:" && ::stat(path.c_str(), &st) == 0) {
    device_ = static_cast<std::uint64_t>(st.st_dev);
    inode_ = static_cast<std::uint64_t>(st.st_ino);
  }
}

SqliteStore::~SqliteStore() {
  for (auto &[sql, stmt] : cache_)
    sqlite3_finalize(stmt);
  if (db_) sqlite3_close(db_);
  if (probe_) sqlite3_close(probe_);
}

void SqliteStore::exec(const char *sql) {
  char *err = nullptr;
  if (const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, &err); rc != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw_sqlite(rc, "sqlite: " + msg);
  }
}

SqliteStore::Statement SqliteStore::statement(const char *sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end()) {
    sqlite3_stmt *stmt = nullptr;
    if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr) != SQLITE_OK)
      throw StoreError(std::string("sqlite prepare: ") + sqlite3_errmsg(db_));
    it = cache_.emplace(sql, stmt).first;
  }
  return Statement(db_, it->second);
}

void SqliteStore::migrate() {
  std::lock_guard lock(mutex_);
  for (const auto &m : parse_migrations(kSchemaSql)) {
    Transaction tx(*this);
    int current = 0;
    {
      Statement st = statement("PRAGMA user_version");
      if (st.step()) current = static_cast<int>(st.integer(0));
    }
    if (m.version <= current) continue;
    exec(m.sql.c_str());
    // PRAGMA takes no bound parameters; the version is our own integer, not input.
    exec(("PRAGMA user_version = " + std::to_string(m.version)).c_str());
    tx.commit();
  }
}

// A Latch database: its user_version names a migration and the tables the commands read exist.
bool SqliteStore::has_latch_schema() {
  std::lock_guard lock(mutex_);
  Statement st =
      statement("SELECT (SELECT user_version FROM pragma_user_version) >= 1 AND "
                "(SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('users', "
                "'sessions')) = 2");
  return st.step() && st.integer(0) == 1;
}

int SqliteStore::latest_schema_version() {
  static const int latest = parse_migrations(kSchemaSql).back().version;
  return latest;
}

int SqliteStore::schema_version() {
  std::lock_guard lock(mutex_);
  Statement st = statement("PRAGMA user_version");
  return st.step() ? static_cast<int>(st.integer(0)) : 0;
}

int SqliteStore::synchronous() {
  std::lock_guard lock(mutex_);
  Statement st = statement("PRAGMA synchronous");
  return st.step() ? static_cast<int>(st.integer(0)) : -1;
}

std::string SqliteStore::integrity_check() {
  std::lock_guard lock(mutex_);
  Statement st = statement("PRAGMA integrity_check");
  return st.step() ? st.text(0) : std::string();
}

InsertUserResult SqliteStore::insert_user(const User &u, const Session *first_session,
                                          const OneTimeToken *confirmation,
                                          const OutgoingMail *confirmation_mail) {
  std::lock_guard lock(mutex_);
  // The look-alike check and the insert in one transaction: the skeleton index is not unique,
  // so only this keeps two concurrent sign-ups (or a server and latch user add) apart. What
  // the user starts with goes in the same transaction: a sign-up is whole or not at all.
  Transaction tx(*this);
  if (InsertUserResult taken = identity_taken_locked(u); taken != InsertUserResult::ok)
    return taken;
  if (InsertUserResult taken = insert_user_row(u); taken != InsertUserResult::ok) return taken;
  if (first_session) insert_session_locked(*first_session);
  if (confirmation) insert_one_time_token_locked(*confirmation);
  if (confirmation_mail) enqueue_mail_locked(*confirmation_mail);
  tx.commit();
  return InsertUserResult::ok;
}

std::vector<ImportResult> SqliteStore::import_users(const std::vector<User> &users, bool skip_taken,
                                                    bool dry_run) {
  std::lock_guard lock(mutex_);
  // One transaction: a running server sees all of them at once or none (sign-in reads users
  // from the database, so no cache needs telling).
  Transaction tx(*this);
  std::vector<ImportResult> out;
  for (const User &u : users) {
    ImportResult result = ImportResult::inserted;
    {
      Statement st = statement("SELECT 1 FROM users WHERE id = ?1");
      st.bind(1, u.id);
      if (st.step()) result = ImportResult::id_taken;
    }
    if (result == ImportResult::inserted) {
      InsertUserResult taken = identity_taken_locked(u);
      if (taken == InsertUserResult::username_taken) result = ImportResult::username_taken;
      if (taken == InsertUserResult::email_taken) result = ImportResult::email_taken;
    }
    out.push_back(result);
    if (result != ImportResult::inserted) {
      if (!skip_taken) return out; // rolled back
      continue;
    }
    if (insert_user_row(u) != InsertUserResult::ok)
      throw StoreError("import: a user's row broke a constraint");
  }
  if (!dry_run) tx.commit();
  return out;
}

InsertUserResult SqliteStore::insert_user_row(const User &u) {
  Statement st = statement(
      "INSERT INTO users(id, username, email, password_hash, display_name, profile_picture, "
      "phone_number, email_verified, created_at, updated_at, username_key, username_skeleton, "
      "is_active) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)");
  st.bind(1, u.id).bind(2, u.username).bind(3, u.email).bind(4, u.password_hash);
  st.bind(5, u.display_name).bind(6, u.profile_picture).bind(7, u.phone_number);
  st.bind(8, static_cast<std::int64_t>(u.email_verified)).bind(9, u.created_at);
  st.bind(10, u.updated_at).bind(11, u.username_key).bind(12, u.username_skeleton);
  st.bind(13, static_cast<std::int64_t>(u.active));
  st.step();
  if (!st.constraint_failed()) return InsertUserResult::ok;
  return std::strstr(sqlite3_errmsg(db_), "users.email") ? InsertUserResult::email_taken
                                                         : InsertUserResult::username_taken;
}

InsertUserResult SqliteStore::identity_taken_locked(const User &u) {
  // ?1 the username as typed (ASCII case aside, which also finds rows without a key), ?2 its
  // key, ?3 its skeleton, ?4 the email. A username key and an email share one namespace.
  Statement st = statement(
      "SELECT (username = ?1 OR username_key = ?2 OR username_skeleton = ?3 OR email = ?2) "
      "FROM users WHERE id <> ?5 AND (username = ?1 OR username_key = ?2 OR "
      "username_skeleton = ?3 OR email = ?2 OR email = ?4 OR username_key = ?4 OR username = ?4) "
      "ORDER BY 1 DESC LIMIT 1");
  st.bind(1, u.username).bind(2, u.username_key).bind(3, u.username_skeleton).bind(4, u.email);
  st.bind(5, u.id);
  if (!st.step()) return InsertUserResult::ok;
  return st.integer(0) == 1 ? InsertUserResult::username_taken : InsertUserResult::email_taken;
}

InsertUserResult SqliteStore::identity_taken(const User &u) {
  std::lock_guard lock(mutex_);
  return identity_taken_locked(u);
}

RenameResult SqliteStore::rename_user(const User &u, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  {
    Statement st = statement("SELECT 1 FROM users WHERE id = ?1");
    st.bind(1, u.id);
    if (!st.step()) return RenameResult::not_found;
  }
  // Only the username changes: the user's own email does not count against it.
  User name_only = u;
  name_only.email.reset();
  if (identity_taken_locked(name_only) != InsertUserResult::ok) return RenameResult::taken;
  {
    Statement st = statement("UPDATE users SET username = ?2, username_key = ?3, "
                             "username_skeleton = ?4, updated_at = ?5 WHERE id = ?1");
    st.bind(1, u.id).bind(2, u.username).bind(3, u.username_key).bind(4, u.username_skeleton);
    st.bind(5, now);
    st.step();
    if (st.constraint_failed()) return RenameResult::taken;
  }
  // The old name's key may be free now: a look-alike that was waiting for it takes it.
  backfill_locked();
  tx.commit();
  return RenameResult::renamed;
}

void SqliteStore::backfill_username_keys() {
  if (!username_rule_) return;
  std::lock_guard lock(mutex_);
  {
    Statement st = statement("SELECT 1 FROM users WHERE username_key IS NULL LIMIT 1");
    if (!st.step()) return; // every row has its key: no write transaction at all
  }
  Transaction tx(*this);
  backfill_locked();
  tx.commit();
}

void SqliteStore::backfill_locked() {
  if (!username_rule_) return;
  struct Row {
    std::string id, username;
    bool has_skeleton = false;
  };
  std::vector<Row> rows;
  {
    // Oldest first, so of two look-alikes the older keeps the key.
    Statement st = statement("SELECT id, username, username_skeleton IS NOT NULL FROM users "
                             "WHERE username_key IS NULL ORDER BY created_at, rowid");
    while (st.step())
      rows.push_back({st.text(0), st.text(1), st.integer(2) != 0});
  }
  for (const Row &row : rows) {
    std::optional<UsernameKeys> keys = username_rule_(row.username);
    if (!keys) continue; // refused by the rule: signs in by its exact username until renamed
    bool held = false;
    {
      Statement st = statement("SELECT 1 FROM users WHERE username_key = ?1");
      st.bind(1, keys->key);
      held = st.step();
    }
    if (held && row.has_skeleton) continue;
    // A look-alike of an older row keeps no key but gets its skeleton, so that no new sign-up
    // can take its name either (and username_conflicts reports the pair).
    Statement st = statement(held ? "UPDATE users SET username_skeleton = ?3 WHERE id = ?1"
                                  : "UPDATE users SET username_key = ?2, username_skeleton = ?3 "
                                    "WHERE id = ?1");
    st.bind(1, row.id).bind(2, keys->key).bind(3, keys->skeleton);
    st.step();
  }
}

std::vector<UsernameConflict> SqliteStore::username_conflicts() {
  std::lock_guard lock(mutex_);
  std::vector<UsernameConflict> out;
  {
    // Pairs with one skeleton: the same key (the newer row has none) or confusable keys.
    Statement st = statement(
        "SELECT b.id, b.username, b.username_key IS NULL, a.id, a.username FROM users a "
        "JOIN users b ON b.username_skeleton = a.username_skeleton AND b.id <> a.id AND "
        "(a.created_at < b.created_at OR (a.created_at = b.created_at AND a.rowid < b.rowid)) "
        "ORDER BY b.created_at, b.rowid, a.created_at, a.rowid");
    while (st.step())
      out.push_back({st.text(0), st.text(1), st.text(3), st.text(4), st.integer(2) != 0});
  }
  {
    // Names the rule refuses have neither key nor skeleton (backfill_locked).
    Statement st = statement("SELECT id, username FROM users WHERE username_key IS NULL AND "
                             "username_skeleton IS NULL ORDER BY created_at, rowid");
    while (st.step())
      out.push_back({st.text(0), st.text(1), {}, {}, true});
  }
  return out;
}

#define LATCH_USER_COLUMNS                                                                         \
  "id, username, email, password_hash, display_name, profile_picture, phone_number, "              \
  "email_verified, created_at, updated_at, username_key, username_skeleton, is_active"

// Reads the current row of a statement that selected LATCH_USER_COLUMNS.
User SqliteStore::read_user(const Statement &st) {
  User u;
  u.id = st.text(0);
  u.username = st.text(1);
  u.email = st.optional_text(2);
  u.password_hash = st.text(3);
  u.display_name = st.text(4);
  u.profile_picture = st.text(5);
  u.phone_number = st.text(6);
  u.email_verified = st.integer(7) != 0;
  u.created_at = st.integer(8);
  u.updated_at = st.integer(9);
  u.username_key = st.optional_text(10);
  u.username_skeleton = st.optional_text(11);
  u.active = st.integer(12) != 0;
  return u;
}

std::optional<User> SqliteStore::find_user(const char *sql, const std::string &value) {
  std::lock_guard lock(mutex_);
  Statement st = statement(sql);
  st.bind(1, value);
  if (!st.step()) return std::nullopt;
  return read_user(st);
}

std::optional<User> SqliteStore::find_user_by_id(const std::string &id) {
  return find_user("SELECT " LATCH_USER_COLUMNS " FROM users WHERE id = ?1", id);
}

std::optional<User> SqliteStore::find_user_by_email(const std::string &email_lower) {
  return find_user("SELECT " LATCH_USER_COLUMNS " FROM users WHERE email = ?1", email_lower);
}

std::optional<User> SqliteStore::find_user_by_username(const std::string &username) {
  return find_user("SELECT " LATCH_USER_COLUMNS " FROM users WHERE username = ?1", username);
}

std::optional<User> SqliteStore::find_user_by_username_key(const std::string &key) {
  return find_user("SELECT " LATCH_USER_COLUMNS " FROM users WHERE username_key = ?1", key);
}

std::vector<User> SqliteStore::list_users() {
  std::lock_guard lock(mutex_);
  Statement st = statement("SELECT " LATCH_USER_COLUMNS " FROM users ORDER BY created_at, rowid");
  std::vector<User> out;
  while (st.step())
    out.push_back(read_user(st));
  return out;
}

bool SqliteStore::delete_user(const std::string &id) {
  std::lock_guard lock(mutex_);
  Statement st = statement("DELETE FROM users WHERE id = ?1");
  st.bind(1, id);
  st.step();
  return sqlite3_changes(db_) > 0;
}

bool SqliteStore::replace_password(const std::string &user_id, const std::string &hash,
                                   std::int64_t now) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  {
    Statement st = statement("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1");
    st.bind(1, user_id).bind(2, hash).bind(3, now);
    st.step();
  }
  if (sqlite3_changes(db_) == 0) return false; // rolled back: nothing was changed
  revoke_user_sessions_locked(user_id, now);
  {
    Statement st = statement("DELETE FROM one_time_tokens WHERE user_id = ?1 AND purpose = ?2");
    st.bind(1, user_id).bind(2, "reset");
    st.step();
  }
  tx.commit();
  return true;
}

void SqliteStore::update_password_hash(const std::string &user_id, const std::string &hash,
                                       std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE id = ?1");
  st.bind(1, user_id).bind(2, hash).bind(3, now);
  st.step();
}

void SqliteStore::set_email_verified(const std::string &user_id, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("UPDATE users SET email_verified = 1, updated_at = ?2 WHERE id = ?1");
  st.bind(1, user_id).bind(2, now);
  st.step();
}

void SqliteStore::insert_session_locked(const Session &s) {
  Statement st = statement("INSERT INTO sessions(id, user_id, api, refresh_jti, created_at, "
                           "expires_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, NULL)");
  st.bind(1, s.id).bind(2, s.user_id).bind(3, s.api);
  st.bind(4, s.refresh_jti.empty() ? std::nullopt : std::optional<std::string>(s.refresh_jti));
  st.bind(5, s.created_at).bind(6, s.expires_at);
  st.step();
  if (st.constraint_failed()) throw StoreError("session insert violated a constraint");
}

void SqliteStore::insert_session(const Session &s) {
  std::lock_guard lock(mutex_);
  insert_session_locked(s);
}

// A session from the columns id, user_id, api, refresh_jti, created_at, expires_at, revoked_at.
Session SqliteStore::read_session(const Statement &st) {
  Session s;
  s.id = st.text(0);
  s.user_id = st.text(1);
  s.api = st.text(2);
  s.refresh_jti = st.text(3);
  s.created_at = st.integer(4);
  s.expires_at = st.integer(5);
  s.revoked = !st.is_null(6);
  return s;
}

std::optional<Session> SqliteStore::find_session(const std::string &id) {
  std::lock_guard lock(mutex_);
  // Joined with users: a session whose user row is gone (deleted by a tool that had foreign
  // keys off, so nothing cascaded) counts as no session.
  Statement st = statement("SELECT s.id, s.user_id, s.api, s.refresh_jti, s.created_at, "
                           "s.expires_at, s.revoked_at FROM sessions s "
                           "JOIN users u ON u.id = s.user_id WHERE s.id = ?1");
  st.bind(1, id);
  if (!st.step()) return std::nullopt;
  return read_session(st);
}

RotatedBatch SqliteStore::rotate_refresh(const std::vector<Rotation> &batch) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  RotatedBatch out;
  // The write lock is held from here to the commit: the triggers' rows in between are this
  // batch's alone.
  auto feed_position = [this] {
    Statement st = statement("SELECT COALESCE(MAX(position), 0) FROM changes");
    return st.step() ? st.integer(0) : 0;
  };
  out.feed_from = feed_position();
  out.outcomes.reserve(batch.size());
  // In order, so a token presented twice rotates once and then counts as replayed or reused.
  for (const Rotation &r : batch)
    out.outcomes.push_back(rotate_refresh_locked(r));
  out.feed_to = feed_position();
  tx.commit();
  return out;
}

RotateOutcome SqliteStore::rotate_refresh_locked(const Rotation &r) {
  std::string current, previous;
  std::optional<std::int64_t> rotated_at;
  {
    Statement st = statement("SELECT s.refresh_jti, s.revoked_at, s.expires_at, "
                             "s.previous_refresh_jti, s.rotated_at FROM sessions s "
                             "JOIN users u ON u.id = s.user_id WHERE s.id = ?1 AND s.user_id = ?2");
    st.bind(1, r.session_id).bind(2, r.user_id);
    if (!st.step() || !st.is_null(1) || st.integer(2) <= r.now) return {RotateResult::gone, {}};
    current = st.text(0);
    previous = st.text(3);
    if (!st.is_null(4)) rotated_at = st.integer(4);
  }
  if (!current.empty() && current == r.old_jti) {
    // The session lives as long as the newest token issued in it.
    if (r.new_jti == r.old_jti) {
      Statement st =
          statement("UPDATE sessions SET expires_at = MAX(expires_at, ?2) WHERE id = ?1");
      st.bind(1, r.session_id).bind(2, r.new_expires_at);
      st.step();
    } else {
      // The replaced token is remembered, one step back only, for the reuse interval.
      Statement st = statement("UPDATE sessions SET refresh_jti = ?2, previous_refresh_jti = ?3, "
                               "rotated_at = ?4, expires_at = MAX(expires_at, ?5) WHERE id = ?1");
      st.bind(1, r.session_id).bind(2, r.new_jti).bind(3, r.old_jti).bind(4, r.now);
      st.bind(5, r.new_expires_at);
      st.step();
    }
    return {RotateResult::rotated, r.new_jti};
  }
  // The token the last rotation replaced, again within the interval (either side of it, for a
  // server whose clock is a little behind another's): the same client racing itself, not theft.
  // It gets the token that rotation issued, so the session does not fork.
  if (r.reuse_interval > 0 && !previous.empty() && previous == r.old_jti && rotated_at &&
      r.now - *rotated_at <= r.reuse_interval && *rotated_at - r.now <= r.reuse_interval) {
    Statement st =
        statement("UPDATE sessions SET expires_at = ?2 WHERE id = ?1 AND expires_at < ?2");
    st.bind(1, r.session_id).bind(2, r.new_expires_at);
    st.step();
    return {RotateResult::replayed, current};
  }
  // An already-rotated refresh token came back: treat it as stolen (RFC 9700 4.14.2).
  revoke_session_locked(r.session_id, r.now);
  return {RotateResult::reused, {}};
}

void SqliteStore::revoke_session_locked(const std::string &session_id, std::int64_t now) {
  Statement st = statement("UPDATE sessions SET revoked_at = ?2 "
                           "WHERE id = ?1 AND revoked_at IS NULL");
  st.bind(1, session_id).bind(2, now);
  st.step();
}

void SqliteStore::revoke_session(const std::string &session_id, std::int64_t now) {
  std::lock_guard lock(mutex_);
  revoke_session_locked(session_id, now);
}

std::vector<Session> SqliteStore::list_sessions(const std::string &user_id) {
  std::lock_guard lock(mutex_);
  Statement st =
      statement("SELECT id, user_id, api, refresh_jti, created_at, expires_at, "
                "revoked_at FROM sessions WHERE user_id = ?1 ORDER BY created_at, rowid");
  st.bind(1, user_id);
  std::vector<Session> out;
  while (st.step()) {
    out.push_back(read_session(st));
  }
  return out;
}

int SqliteStore::revoke_user_sessions_locked(const std::string &user_id, std::int64_t now) {
  Statement st = statement("UPDATE sessions SET revoked_at = ?2 "
                           "WHERE user_id = ?1 AND revoked_at IS NULL");
  st.bind(1, user_id).bind(2, now);
  st.step();
  return sqlite3_changes(db_);
}

int SqliteStore::revoke_user_sessions(const std::string &user_id, std::int64_t now) {
  std::lock_guard lock(mutex_);
  return revoke_user_sessions_locked(user_id, now);
}

int SqliteStore::revoke_all_sessions(std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("UPDATE sessions SET revoked_at = ?1 WHERE revoked_at IS NULL");
  st.bind(1, now);
  st.step();
  return sqlite3_changes(db_);
}

void SqliteStore::logout(const std::string &session_id, const std::string &access_jti,
                         std::int64_t access_expires_at, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  {
    Statement st = statement("INSERT INTO token_blacklist(jti, expires_at) VALUES (?1, ?2) "
                             "ON CONFLICT(jti) DO NOTHING");
    st.bind(1, access_jti).bind(2, access_expires_at);
    st.step();
  }
  revoke_session_locked(session_id, now);
  tx.commit();
}

bool SqliteStore::is_blacklisted(const std::string &jti) {
  std::lock_guard lock(mutex_);
  Statement st = statement("SELECT 1 FROM token_blacklist WHERE jti = ?1");
  st.bind(1, jti);
  return st.step();
}

void SqliteStore::insert_one_time_token_locked(const OneTimeToken &t) {
  Statement st = statement("INSERT INTO one_time_tokens(token_hash, user_id, purpose, expires_at) "
                           "VALUES (?1, ?2, ?3, ?4)");
  st.bind(1, t.token_hash).bind(2, t.user_id).bind(3, purpose_name(t.purpose));
  st.bind(4, t.expires_at);
  st.step();
  if (st.constraint_failed()) throw StoreError("one-time token insert violated a constraint");
}

void SqliteStore::insert_one_time_token(const OneTimeToken &t, const OutgoingMail *mail) {
  std::lock_guard lock(mutex_);
  if (!mail) return insert_one_time_token_locked(t);
  Transaction tx(*this); // the token and the mail carrying its link: both or neither
  insert_one_time_token_locked(t);
  enqueue_mail_locked(*mail);
  tx.commit();
}

ConsumeResult SqliteStore::consume_locked(const std::string &token_hash, TokenPurpose purpose,
                                          std::int64_t now, std::string *user_id) {
  Statement st = statement("DELETE FROM one_time_tokens WHERE token_hash = ?1 AND purpose = ?2 "
                           "RETURNING user_id, expires_at");
  st.bind(1, token_hash).bind(2, purpose_name(purpose));
  if (!st.step()) return ConsumeResult::invalid;
  std::string uid = st.text(0);
  std::int64_t expires_at = st.integer(1);
  while (st.step()) {
  }
  if (expires_at <= now) return ConsumeResult::expired;
  if (user_id) *user_id = std::move(uid);
  return ConsumeResult::ok;
}

ConsumeResult SqliteStore::consume_one_time_token(const std::string &token_hash,
                                                  TokenPurpose purpose, std::int64_t now,
                                                  std::string *user_id) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  ConsumeResult r = consume_locked(token_hash, purpose, now, user_id);
  tx.commit();
  return r;
}

ConsumeResult SqliteStore::reset_password(const std::string &token_hash,
                                          const std::string &new_hash, std::int64_t now,
                                          std::string *user_id) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  std::string uid;
  ConsumeResult r = consume_locked(token_hash, TokenPurpose::reset, now, &uid);
  if (r == ConsumeResult::ok) {
    {
      Statement st = statement("UPDATE users SET password_hash = ?2, updated_at = ?3 "
                               "WHERE id = ?1");
      st.bind(1, uid).bind(2, new_hash).bind(3, now);
      st.step();
    }
    revoke_user_sessions_locked(uid, now); // a password reset ends every session of the user
    {
      // Any other outstanding reset links for the user die with this one.
      Statement st = statement("DELETE FROM one_time_tokens WHERE user_id = ?1 AND purpose = ?2");
      st.bind(1, uid).bind(2, "reset");
      st.step();
    }
    if (user_id) *user_id = uid;
  }
  tx.commit();
  return r;
}

// The outbox's columns, for QueuedMail (read_mail).
#define LATCH_MAIL_COLUMNS                                                                         \
  "o.id, o.recipient, o.subject, o.body, o.token_hash, o.link_expires_at, o.state, o.attempts, "   \
  "o.created_at, o.queued_at, o.next_attempt_at, o.lease_until, o.updated_at, o.last_error, "      \
  "o.token_at"
// Whether a mail may still be sent at ?1: the token it links to exists and neither it nor the
// link has expired.
#define LATCH_MAIL_LINK_LIVE                                                                       \
  "((o.token_hash IS NULL OR EXISTS (SELECT 1 FROM one_time_tokens t WHERE t.token_hash = "        \
  "o.token_hash AND t.expires_at > ?1)) AND (o.link_expires_at IS NULL OR o.link_expires_at > "    \
  "?1))"

// Deletes, in transactions of at most kPurgeBatch rows each, the rows the statement names (?1
// bound to `bound`, ?2 to the batch size), releasing the connection between batches so requests
// are never held up behind a long purge; returns how many.
namespace {
// Between two batches of a purge, a pause as long as the batch took: other writers (this
// process's requests, an admin command, another server) find the write lock free at least half
// the time, and their busy handlers get in instead of starving behind back-to-back batches.
void pause_after(std::chrono::steady_clock::time_point batch_started) {
  const auto took = std::chrono::steady_clock::now() - batch_started;
  std::this_thread::sleep_for(
      std::max<std::chrono::steady_clock::duration>(took, std::chrono::milliseconds(1)));
}
} // namespace

int SqliteStore::delete_in_batches(const char *select_then_delete, std::int64_t bound) {
  int total = 0;
  for (;;) {
    const auto started = std::chrono::steady_clock::now();
    int n = 0;
    {
      std::lock_guard lock(mutex_);
      Transaction tx(*this);
      Statement st = statement(select_then_delete);
      st.bind(1, bound).bind(2, static_cast<std::int64_t>(kPurgeBatch));
      st.step();
      n = sqlite3_changes(db_);
      tx.commit();
    }
    total += n;
    if (n < kPurgeBatch) return total;
    pause_after(started);
  }
}

PurgeCounts SqliteStore::purge_expired(std::int64_t now, std::int64_t keys_retired_before) {
  PurgeCounts c;
  // A revoked session only needs to outlive the access tokens issued in it; a missing
  // session is as good as a revoked one, so expired ones can go.
  c.sessions = delete_in_batches("DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions "
                                 "WHERE expires_at <= ?1 LIMIT ?2)",
                                 now);
  c.blacklist = delete_in_batches("DELETE FROM token_blacklist WHERE rowid IN (SELECT rowid FROM "
                                  "token_blacklist WHERE expires_at <= ?1 LIMIT ?2)",
                                  now);
  c.one_time_tokens = delete_in_batches("DELETE FROM one_time_tokens WHERE rowid IN (SELECT rowid "
                                        "FROM one_time_tokens WHERE expires_at <= ?1 LIMIT ?2)",
                                        now);
  c.signing_keys = purge_signing_keys(keys_retired_before);
  // Console sessions past their idle expiry (the console refuses them already).
  delete_in_batches("DELETE FROM console_sessions WHERE rowid IN (SELECT rowid FROM "
                    "console_sessions WHERE expires_at <= ?1 LIMIT ?2)",
                    now);
  // Mail: rows whose link died (a running server's sender drops those first, and logs them)
  // and failed rows past their retention. A row a sender holds is left to it.
  c.mail = delete_in_batches("DELETE FROM outbox WHERE rowid IN (SELECT o.rowid FROM outbox o "
                             "WHERE o.lease_until <= ?1 AND NOT " LATCH_MAIL_LINK_LIVE " LIMIT ?2)",
                             now) +
           delete_in_batches("DELETE FROM outbox WHERE rowid IN (SELECT rowid FROM outbox WHERE "
                             "state = 'failed' AND updated_at <= ?1 LIMIT ?2)",
                             now - kFailedMailRetention);
  c.sign_in_failures = delete_in_batches("DELETE FROM sign_in_failures WHERE rowid IN (SELECT "
                                         "rowid FROM sign_in_failures WHERE expires_at <= ?1 "
                                         "LIMIT ?2)",
                                         now);
  // The change feed keeps a few minutes; a reader further behind takes a new snapshot.
  for (bool first = true;; first = false) {
    if (!first) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::lock_guard lock(mutex_);
    Transaction tx(*this);
    // The oldest rows, up to the first one younger than the retention (positions follow
    // time, so no index on `at` is needed), and never the newest: positions go on from it
    // (auth.db.sql, migration 9).
    std::int64_t upto = 0;
    {
      Statement st = statement("SELECT position, at FROM changes WHERE position < "
                               "(SELECT MAX(position) FROM changes) ORDER BY position LIMIT ?1");
      st.bind(1, static_cast<std::int64_t>(kPurgeBatch));
      while (st.step() && st.integer(1) <= now - kChangeRetention)
        upto = st.integer(0);
    }
    if (upto == 0) break;
    {
      Statement st = statement("DELETE FROM changes WHERE position <= ?1");
      st.bind(1, upto);
      st.step();
    }
    {
      Statement st = statement("UPDATE change_floor SET position = MAX(position, ?1)");
      st.bind(1, upto);
      st.step();
    }
    tx.commit();
  }
  return c;
}

// --- the outbox ----------------------------------------------------------------------------

// The current row of a statement that selected LATCH_MAIL_COLUMNS, then LATCH_MAIL_LINK_LIVE.
QueuedMail SqliteStore::read_mail(const Statement &st, std::int64_t now) {
  QueuedMail m;
  m.id = st.integer(0);
  m.mail.recipient = st.text(1);
  m.mail.subject = st.text(2);
  m.mail.body = st.text(3);
  m.mail.token_hash = st.optional_text(4);
  if (!st.is_null(5)) m.mail.link_expires_at = st.integer(5);
  m.attempts = static_cast<int>(st.integer(7));
  m.mail.created_at = st.integer(8);
  m.queued_at = st.integer(9);
  m.next_attempt_at = st.integer(10);
  m.lease_until = st.integer(11);
  m.updated_at = st.integer(12);
  m.last_error = st.text(13);
  m.mail.token_at = static_cast<std::size_t>(std::max<std::int64_t>(0, st.integer(14)));
  m.link_live = st.integer(15) != 0;
  if (st.text(6) == "failed")
    m.state = MailState::failed;
  else
    m.state = m.lease_until > now ? MailState::sending : MailState::queued;
  return m;
}

void SqliteStore::enqueue_mail_locked(const OutgoingMail &m) {
  Statement st = statement(
      "INSERT INTO outbox(recipient, subject, body, token_hash, token_at, link_expires_at, "
      "created_at, queued_at, next_attempt_at, updated_at) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?7, ?7)");
  st.bind(1, m.recipient).bind(2, m.subject).bind(3, m.body).bind(4, m.token_hash);
  st.bind(5, static_cast<std::int64_t>(m.token_at)).bind(6, m.link_expires_at);
  st.bind(7, m.created_at);
  st.step();
  // A refused row (a trigger, a CHECK) must fail the transaction it is part of, token and all.
  if (st.constraint_failed()) throw StoreError("outbox insert violated a constraint");
}

void SqliteStore::enqueue_mail(const OutgoingMail &m) {
  std::lock_guard lock(mutex_);
  enqueue_mail_locked(m);
}

std::optional<QueuedMail> SqliteStore::take_mail(std::int64_t now, std::int64_t lease_seconds,
                                                 const std::string &fresh_token_hash) {
  static const char *kDue = "SELECT o.id FROM outbox o WHERE o.state = 'queued' AND "
                            "o.next_attempt_at <= ?1 AND o.lease_until <= ?1 "
                            "ORDER BY o.next_attempt_at, o.id LIMIT 1";
  std::lock_guard lock(mutex_);
  {
    // Read first: an idle sender looks every second and should take no write lock to see
    // that nothing is due.
    Statement st = statement(kDue);
    st.bind(1, now);
    if (!st.step()) return std::nullopt;
  }
  // The claim is one write transaction: of two senders on one database, one takes the row and
  // the other finds it leased.
  Transaction tx(*this);
  std::int64_t id = 0;
  {
    Statement st = statement(kDue);
    st.bind(1, now);
    if (!st.step()) return std::nullopt;
    id = st.integer(0);
  }
  {
    Statement st = statement("UPDATE outbox SET lease_until = ?2, attempts = attempts + 1, "
                             "updated_at = ?1 WHERE id = ?3");
    st.bind(1, now).bind(2, now + lease_seconds).bind(3, id);
    st.step();
  }
  QueuedMail m;
  {
    Statement st = statement("SELECT " LATCH_MAIL_COLUMNS ", " LATCH_MAIL_LINK_LIVE
                             " FROM outbox o WHERE o.id = ?2");
    st.bind(1, now).bind(2, id);
    if (!st.step()) return std::nullopt;
    m = read_mail(st, now);
  }
  if (m.link_live && m.mail.token_hash) {
    // The token is made now, by the sender, so the outbox never holds one (auth.db.sql).
    Statement token = statement("UPDATE one_time_tokens SET token_hash = ?2 WHERE token_hash = ?1");
    token.bind(1, *m.mail.token_hash).bind(2, fresh_token_hash);
    token.step();
    Statement mail = statement("UPDATE outbox SET token_hash = ?2 WHERE id = ?1");
    mail.bind(1, id).bind(2, fresh_token_hash);
    mail.step();
    m.mail.token_hash = fresh_token_hash;
  }
  tx.commit();
  return m;
}

void SqliteStore::mail_sent(std::int64_t id) {
  std::lock_guard lock(mutex_);
  Statement st = statement("DELETE FROM outbox WHERE id = ?1");
  st.bind(1, id);
  st.step();
}

bool SqliteStore::mail_deferred(std::int64_t id, int attempt, std::int64_t next_attempt_at,
                                const std::string &error, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("UPDATE outbox SET next_attempt_at = ?3, lease_until = 0, "
                           "last_error = ?4, updated_at = ?5 "
                           "WHERE id = ?1 AND attempts = ?2 AND state = 'queued'");
  st.bind(1, id).bind(2, static_cast<std::int64_t>(attempt)).bind(3, next_attempt_at);
  st.bind(4, error).bind(5, now);
  st.step();
  return sqlite3_changes(db_) > 0;
}

bool SqliteStore::mail_failed(std::int64_t id, int attempt, const std::string &error,
                              std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("UPDATE outbox SET state = 'failed', lease_until = 0, "
                           "last_error = ?3, updated_at = ?4 WHERE id = ?1 AND attempts = ?2");
  st.bind(1, id).bind(2, static_cast<std::int64_t>(attempt)).bind(3, error).bind(4, now);
  st.step();
  return sqlite3_changes(db_) > 0;
}

void SqliteStore::release_mail(std::int64_t id, int attempt) {
  std::lock_guard lock(mutex_);
  Statement st = statement("UPDATE outbox SET lease_until = 0 WHERE id = ?1 AND attempts = ?2");
  st.bind(1, id).bind(2, static_cast<std::int64_t>(attempt));
  st.step();
}

std::vector<QueuedMail> SqliteStore::drop_undeliverable(std::int64_t now) {
  static const char *kDead =
      "SELECT " LATCH_MAIL_COLUMNS ", 0 FROM outbox o "
      "WHERE o.lease_until <= ?1 AND NOT " LATCH_MAIL_LINK_LIVE " ORDER BY o.id";
  std::lock_guard lock(mutex_);
  std::vector<QueuedMail> dead;
  {
    Statement st = statement(kDead); // read first, as take_mail does
    st.bind(1, now);
    if (!st.step()) return dead;
  }
  Transaction tx(*this);
  {
    Statement st = statement(kDead);
    st.bind(1, now);
    while (st.step())
      dead.push_back(read_mail(st, now));
  }
  for (const QueuedMail &m : dead) {
    Statement st = statement("DELETE FROM outbox WHERE id = ?1");
    st.bind(1, m.id);
    st.step();
  }
  tx.commit();
  return dead;
}

std::vector<QueuedMail> SqliteStore::list_mail(std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("SELECT " LATCH_MAIL_COLUMNS ", " LATCH_MAIL_LINK_LIVE
                           " FROM outbox o ORDER BY o.id");
  st.bind(1, now);
  std::vector<QueuedMail> out;
  while (st.step())
    out.push_back(read_mail(st, now));
  return out;
}

int SqliteStore::retry_mail(std::optional<std::int64_t> id, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("UPDATE outbox SET state = 'queued', attempts = 0, queued_at = ?1, "
                           "next_attempt_at = ?1, updated_at = ?1 "
                           "WHERE lease_until <= ?1 AND (?2 IS NULL OR id = ?2)");
  st.bind(1, now).bind(2, id);
  st.step();
  return sqlite3_changes(db_);
}

int SqliteStore::drop_mail(std::optional<std::int64_t> id) {
  std::lock_guard lock(mutex_);
  Statement st = statement("DELETE FROM outbox WHERE ?1 IS NULL OR id = ?1");
  st.bind(1, id);
  st.step();
  return sqlite3_changes(db_);
}

MailCounts SqliteStore::mail_counts(std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("SELECT state, lease_until > ?1, count(*) FROM outbox "
                           "GROUP BY state, lease_until > ?1");
  st.bind(1, now);
  MailCounts c;
  while (st.step()) {
    const int n = static_cast<int>(st.integer(2));
    if (st.text(0) == "failed") {
      c.failed += n;
      continue;
    }
    c.queued += n;
    if (st.integer(1) != 0) c.sending += n;
  }
  return c;
}

ChangeFeed::Snapshot SqliteStore::snapshot(std::int64_t expired_by) {
  std::lock_guard lock(mutex_);
  exec("BEGIN"); // one read transaction: the rows and the position agree
  struct End {
    SqliteStore &s;
    ~End() { sqlite3_exec(s.db_, "COMMIT", nullptr, nullptr, nullptr); }
  } end{*this};
  Snapshot out;
  {
    Statement st = statement("SELECT COALESCE(MAX(position), 0) FROM changes");
    if (st.step()) out.position = st.integer(0);
  }
  {
    // Joined with users: a session whose user row is gone (deleted by a tool that had foreign
    // keys off, so nothing cascaded) is no session.
    Statement st = statement("SELECT s.id, s.user_id, s.api, s.refresh_jti, s.created_at, "
                             "s.expires_at, s.revoked_at FROM sessions s "
                             "JOIN users u ON u.id = s.user_id WHERE s.revoked_at IS NULL "
                             "AND s.expires_at > ?1");
    st.bind(1, expired_by);
    while (st.step())
      out.sessions.push_back(read_session(st));
  }
  {
    Statement st = statement("SELECT jti, expires_at FROM token_blacklist WHERE expires_at > ?1");
    st.bind(1, expired_by);
    while (st.step())
      out.blacklist.emplace_back(st.text(0), st.integer(1));
  }
  return out;
}

std::optional<std::vector<ChangeFeed::Change>> SqliteStore::changes_since(std::int64_t position,
                                                                          std::size_t limit) {
  std::lock_guard lock(mutex_);
  exec("BEGIN");
  struct End {
    SqliteStore &s;
    ~End() { sqlite3_exec(s.db_, "COMMIT", nullptr, nullptr, nullptr); }
  } end{*this};
  {
    Statement st = statement("SELECT position FROM change_floor");
    if (st.step() && st.integer(0) > position) return std::nullopt; // pruned past the reader
  }
  // Each change with the state of what it names now: the session if it is live, the
  // blacklist entry's expiry.
  Statement st = statement(
      "SELECT c.position, c.kind, c.key, s.id, s.user_id, s.api, s.refresh_jti, s.created_at, "
      "s.expires_at, s.revoked_at, u.id, b.expires_at, cu.id FROM changes c "
      "LEFT JOIN sessions s ON c.kind = 1 AND s.id = c.key "
      "LEFT JOIN users u ON u.id = s.user_id "
      "LEFT JOIN token_blacklist b ON c.kind = 2 AND b.jti = c.key "
      "LEFT JOIN users cu ON c.kind = 3 AND cu.id = c.key "
      "WHERE c.position > ?1 ORDER BY c.position LIMIT ?2");
  st.bind(1, position).bind(2, static_cast<std::int64_t>(limit));
  std::vector<Change> out;
  while (st.step()) {
    Change c;
    c.position = st.integer(0);
    switch (st.integer(1)) {
    case 1: c.kind = Change::Kind::session; break;
    case 2: c.kind = Change::Kind::blacklist; break;
    case 3: c.kind = Change::Kind::user; break;
    default: c.kind = Change::Kind::signing_keys; break;
    }
    c.key = st.text(2);
    if (c.kind == Change::Kind::session && !st.is_null(3) && st.is_null(9) && !st.is_null(10)) {
      Session s;
      s.id = st.text(3);
      s.user_id = st.text(4);
      s.api = st.text(5);
      s.refresh_jti = st.text(6);
      s.created_at = st.integer(7);
      s.expires_at = st.integer(8);
      c.session = std::move(s);
    }
    if (c.kind == Change::Kind::blacklist && !st.is_null(11)) c.blacklisted_until = st.integer(11);
    if (c.kind == Change::Kind::user) c.user_exists = !st.is_null(12);
    out.push_back(std::move(c));
  }
  return out;
}

void SqliteStore::wait_for_changes(std::chrono::milliseconds timeout) {
  // Another connection's commit changes PRAGMA data_version; this connection's own do not (its
  // writers already put them in memory). Looked at every kChangePoll: an inotify watch on the
  // -wal file woke this thread at every page this server itself wrote, which cost a refresh
  // more than the look costs a hundred times a second.
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (others_seen_ < 0) others_seen_ = data_version();
  for (;;) {
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::milliseconds(0)) break;
    std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, kChangePoll));
    if (const std::int64_t now_seen = data_version(); now_seen != others_seen_) {
      others_seen_ = now_seen;
      return;
    }
  }
}

std::int64_t SqliteStore::data_version() {
  std::lock_guard lock(mutex_);
  Statement st = statement("PRAGMA data_version");
  return st.step() ? st.integer(0) : 0;
}

void SqliteStore::maintain() {
  if (path_ == ":memory:") return;
  struct stat st {};
  const bool present = ::stat(path_.c_str(), &st) == 0;
  if (!present || static_cast<std::uint64_t>(st.st_dev) != device_ ||
      static_cast<std::uint64_t>(st.st_ino) != inode_) {
    replaced_ = true;
    throw StoreError(replaced_message());
  }
  replaced_ = false;
  if (read_only_) return;
  // The -wal file: checkpoint once it has stood still for a second since it last changed.
  struct stat wal {};
  if (::stat((path_ + "-wal").c_str(), &wal) != 0 || wal.st_size == 0) return;
  const long long size = wal.st_size;
  const long long mtime =
      static_cast<long long>(wal.st_mtim.tv_sec) * 1'000'000'000LL + wal.st_mtim.tv_nsec;
  const auto now = std::chrono::steady_clock::now();
  if (size != wal_seen_.size || mtime != wal_seen_.mtime_ns) {
    wal_seen_ = {size, mtime, now};
    return;
  }
  if (now - wal_seen_.since < std::chrono::seconds(1)) return;
  if (size == wal_checkpointed_.size && mtime == wal_checkpointed_.mtime_ns) return; // done
  int frames = 0, copied = 0;
  {
    std::lock_guard lock(mutex_);
    if (sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied) !=
        SQLITE_OK)
      return; // a reader or writer elsewhere: next time
  }
  if (frames == copied) wal_checkpointed_ = wal_seen_; // everything is in the main file
}

std::string SqliteStore::replaced_message() const {
  return "the database file " + path_ +
         " is not the one open: it was deleted or replaced while Latch ran, so what is written "
         "now goes to a file nobody will read again; restart latch (and check what replaced it)";
}

void SqliteStore::ping() {
  if (replaced_) throw StoreError(replaced_message());
  std::lock_guard lock(probe_mutex_);
  // A connection of its own with a short busy time-out: never queued behind the requests'
  // connection, and a write lock held elsewhere shows as "not ready" within a second.
  if (!probe_) {
    const int flags = read_only_ ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE;
    if (sqlite3_open_v2(path_.c_str(), &probe_, flags | SQLITE_OPEN_NOMUTEX, nullptr) !=
        SQLITE_OK) {
      std::string msg = probe_ ? sqlite3_errmsg(probe_) : "out of memory";
      sqlite3_close(probe_);
      probe_ = nullptr;
      throw StoreError("cannot open the database: " + msg);
    }
    sqlite3_busy_timeout(probe_, 500);
  }
  auto run = [this](const char *sql) {
    char *err = nullptr;
    if (sqlite3_exec(probe_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "unknown error";
      sqlite3_free(err);
      sqlite3_exec(probe_, "ROLLBACK", nullptr, nullptr, nullptr);
      throw StoreError(msg);
    }
  };
  // The tables requests use are there (not renamed or dropped behind the server's back).
  run("SELECT 1 FROM users, sessions, token_blacklist, one_time_tokens, signing_keys LIMIT 0");
  if (read_only_) return;
  // Whether a write could commit now: the write lock, taken and given back.
  run("BEGIN IMMEDIATE");
  run("ROLLBACK");
}

std::vector<SigningKeyRow> SqliteStore::signing_keys_locked() {
  Statement st = statement(
      "SELECT kid, secret, created_at, retired_at, legacy, alg, activated_at FROM signing_keys "
      "ORDER BY retired_at IS NOT NULL, activated_at IS NULL, created_at DESC, rowid DESC");
  std::vector<SigningKeyRow> out;
  while (st.step()) {
    SigningKeyRow k;
    k.kid = st.text(0);
    k.secret = st.text(1);
    k.created_at = st.integer(2);
    if (!st.is_null(3)) k.retired_at = st.integer(3);
    k.legacy = st.integer(4) != 0;
    k.alg = st.text(5);
    if (!st.is_null(6)) k.activated_at = st.integer(6);
    out.push_back(std::move(k));
  }
  return out;
}

std::vector<SigningKeyRow> SqliteStore::signing_keys() {
  std::lock_guard lock(mutex_);
  return signing_keys_locked();
}

void SqliteStore::insert_signing_key_locked(const SigningKeyRow &k) {
  Statement st = statement(
      "INSERT INTO signing_keys(kid, secret, created_at, retired_at, legacy, alg, activated_at) "
      "VALUES (?1, ?2, ?3, NULL, ?4, ?5, ?6)");
  st.bind(1, k.kid).bind(2, k.secret).bind(3, k.created_at);
  st.bind(4, static_cast<std::int64_t>(k.legacy)).bind(5, k.alg);
  if (k.activated_at) st.bind(6, *k.activated_at);
  st.step();
  if (st.constraint_failed()) throw StoreError("signing key insert violated a constraint");
}

std::vector<SigningKeyRow> SqliteStore::ensure_signing_key(const SigningKeyRow &first_key) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  bool has_signing_key = false;
  {
    Statement st = statement("SELECT 1 FROM signing_keys WHERE retired_at IS NULL AND "
                             "activated_at IS NOT NULL LIMIT 1");
    has_signing_key = st.step();
  }
  if (!has_signing_key) {
    SigningKeyRow k = first_key;
    if (!k.activated_at) k.activated_at = k.created_at;
    insert_signing_key_locked(k);
  }
  auto keys = signing_keys_locked();
  tx.commit();
  return keys;
}

void SqliteStore::rotate_signing_key(const SigningKeyRow &next, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  {
    // The standby key too: the new key signs at once, so nothing is left waiting to.
    Statement st = statement("UPDATE signing_keys SET retired_at = ?1, activated_at = "
                             "coalesce(activated_at, ?1) WHERE retired_at IS NULL");
    st.bind(1, now);
    st.step();
  }
  SigningKeyRow k = next;
  k.legacy = false;
  if (!k.activated_at) k.activated_at = now;
  insert_signing_key_locked(k);
  tx.commit();
}

void SqliteStore::add_standby_key(const SigningKeyRow &next) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  {
    // It signed nothing, so nothing needs it.
    Statement st = statement("DELETE FROM signing_keys WHERE retired_at IS NULL AND "
                             "activated_at IS NULL");
    st.step();
  }
  SigningKeyRow k = next;
  k.legacy = false;
  k.activated_at.reset();
  insert_signing_key_locked(k);
  tx.commit();
}

bool SqliteStore::activate_signing_key(const std::string &kid, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  {
    Statement st = statement("SELECT 1 FROM signing_keys WHERE kid = ?1 AND retired_at IS NULL "
                             "AND activated_at IS NULL");
    st.bind(1, kid);
    if (!st.step()) return false;
  }
  {
    Statement st = statement("UPDATE signing_keys SET retired_at = ?1 WHERE retired_at IS NULL "
                             "AND activated_at IS NOT NULL");
    st.bind(1, now);
    st.step();
  }
  {
    Statement st = statement("UPDATE signing_keys SET activated_at = ?2 WHERE kid = ?1");
    st.bind(1, kid).bind(2, now);
    st.step();
  }
  tx.commit();
  return true;
}

int SqliteStore::purge_signing_keys(std::int64_t retired_before) {
  std::lock_guard lock(mutex_);
  Statement st = statement("DELETE FROM signing_keys "
                           "WHERE retired_at IS NOT NULL AND retired_at <= ?1");
  st.bind(1, retired_before);
  st.step();
  return sqlite3_changes(db_);
}

void SqliteStore::release_memory() {
  std::lock_guard lock(mutex_);
  sqlite3_db_release_memory(db_);
}

bool SqliteStore::backup(const std::string &path, bool overwrite) {
  std::lock_guard lock(mutex_);
  if (!overwrite && ::access(path.c_str(), F_OK) == 0) return false;
  // mkstemp creates the file with mode 0600 (the copy holds password hashes and keys).
  std::string tmp = path + ".tmp-XXXXXX";
  int fd = ::mkstemp(tmp.data());
  if (fd < 0) throw StoreError("cannot create " + tmp + ": " + std::strerror(errno));
  ::close(fd);
  struct Cleanup {
    std::string path;
    sqlite3 *db = nullptr;
    bool keep = false;
    ~Cleanup() {
      if (db) sqlite3_close(db);
      if (!keep) {
        ::unlink(path.c_str());
        ::unlink((path + "-journal").c_str());
      }
    }
  } cleanup{tmp};

  if (sqlite3_open_v2(tmp.c_str(), &cleanup.db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
    throw StoreError("cannot open " + tmp + ": " +
                     (cleanup.db ? sqlite3_errmsg(cleanup.db) : "out of memory"));
  sqlite3_backup *b = sqlite3_backup_init(cleanup.db, "main", db_, "main");
  if (!b) throw StoreError(std::string("sqlite backup: ") + sqlite3_errmsg(cleanup.db));
  // All pages in one step: one read transaction, so the copy is one consistent snapshot. In
  // WAL mode readers do not block writers, so a running server keeps serving meanwhile.
  int rc = SQLITE_OK;
  for (int attempt = 0; attempt < 200; ++attempt) {
    rc = sqlite3_backup_step(b, -1);
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED) break;
    sqlite3_sleep(50);
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE) throw StoreError(std::string("sqlite backup: ") + sqlite3_errstr(rc));
  // The copy is one self-contained file: no -wal beside it to forget.
  char *err = nullptr;
  if (sqlite3_exec(cleanup.db, "PRAGMA journal_mode=DELETE", nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown error";
    sqlite3_free(err);
    throw StoreError("sqlite backup: " + msg);
  }
  sqlite3_close(cleanup.db);
  cleanup.db = nullptr;
  if (int f = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC); f >= 0) {
    ::fsync(f);
    ::close(f);
  }

  if (overwrite) {
    if (::rename(tmp.c_str(), path.c_str()) != 0)
      throw StoreError("cannot write " + path + ": " + std::strerror(errno));
    cleanup.keep = true;
    return true;
  }
  // link() fails if path appeared meanwhile: never overwrites without being asked to.
  if (::link(tmp.c_str(), path.c_str()) != 0) {
    if (errno == EEXIST) return false;
    throw StoreError("cannot write " + path + ": " + std::strerror(errno));
  }
  return true;
}

// --- sign-in failures ------------------------------------------------------------------------

std::vector<FailureCount> SqliteStore::failure_counts(const std::string &group,
                                                      const std::string &item, std::int64_t now) {
  std::lock_guard lock(mutex_);
  Statement st = statement("SELECT item_key, count, expires_at, stamp FROM sign_in_failures "
                           "WHERE group_key = ?1 AND item_key IN ('', ?2) AND expires_at > ?3");
  st.bind(1, group).bind(2, item).bind(3, now);
  std::vector<FailureCount> out;
  while (st.step())
    out.push_back({st.text(0), static_cast<int>(st.integer(1)), st.integer(2), st.text(3)});
  return out;
}

void SqliteStore::add_failure(const std::string &group, const std::string &item,
                              const std::string &stamp, std::int64_t now, std::int64_t window) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  for (const std::string &key : {std::string(), item}) {
    // A window that ended starts again at this failure.
    Statement st =
        statement("INSERT INTO sign_in_failures(group_key, item_key, count, expires_at, stamp) "
                  "VALUES (?1, ?2, 1, ?4 + ?5, ?3) ON CONFLICT(group_key, item_key) DO UPDATE SET "
                  "count = CASE WHEN expires_at > ?4 THEN count + 1 ELSE 1 END, "
                  "expires_at = CASE WHEN expires_at > ?4 THEN expires_at ELSE ?4 + ?5 END, "
                  "stamp = excluded.stamp");
    st.bind(1, group).bind(2, key).bind(3, stamp).bind(4, now).bind(5, window);
    st.step();
  }
  tx.commit();
}

void SqliteStore::clear_failures(const std::string &group, const std::string &item) {
  std::lock_guard lock(mutex_);
  Statement st = statement("DELETE FROM sign_in_failures WHERE group_key = ?1 AND item_key = ?2");
  st.bind(1, group).bind(2, item);
  st.step();
}

void SqliteStore::lift_failures(const std::vector<std::string> &groups) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  for (const std::string &group : groups) {
    Statement st = statement("DELETE FROM sign_in_failures WHERE group_key = ?1");
    st.bind(1, group);
    st.step();
  }
  tx.commit();
}

void SqliteStore::restamp_failures(const std::vector<std::string> &groups, const std::string &from,
                                   const std::string &to) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  for (const std::string &group : groups) {
    Statement st =
        statement("UPDATE sign_in_failures SET stamp = ?3 WHERE group_key = ?1 AND stamp = ?2");
    st.bind(1, group).bind(2, from).bind(3, to);
    st.step();
  }
  tx.commit();
}

// --- the audit log -------------------------------------------------------------------------

void SqliteStore::append_audit(const std::vector<AuditEvent> &events) {
  if (events.empty()) return;
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  for (const AuditEvent &e : events) {
    Statement st = statement("INSERT INTO audit_log(at, event, user_id, identifier, api, address, "
                             "user_agent, request_id, actor, detail) "
                             "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    st.bind(1, e.at).bind(2, e.event).bind(3, e.user_id).bind(4, e.identifier).bind(5, e.api);
    st.bind(6, e.address).bind(7, e.user_agent).bind(8, e.request_id).bind(9, e.actor);
    st.bind(10, e.detail);
    st.step();
    if (st.constraint_failed()) throw StoreError("sqlite: audit event refused");
  }
  tx.commit();
}

std::vector<AuditEvent> SqliteStore::query_audit(const AuditQuery &q) {
  // Only the filters given, so each shape of query has the plan its index gives: one text (and
  // one prepared statement, cached by its address) for each of the 16 sets of filters.
  static const std::array<std::string, 16> kQueries = [] {
    std::array<std::string, 16> texts;
    for (std::size_t m = 0; m < texts.size(); ++m) {
      std::string sql = "SELECT id, at, event, user_id, identifier, api, address, user_agent, "
                        "request_id, actor, detail FROM audit_log WHERE 1";
      if (m & 1) sql += " AND user_id = ?1";
      if (m & 2) sql += " AND event = ?2";
      if (m & 4) sql += " AND at >= ?3";
      if (m & 8) sql += " AND id < ?4";
      texts[m] = sql + " ORDER BY id DESC LIMIT ?5";
    }
    return texts;
  }();
  const std::size_t shape =
      (q.user_id ? 1 : 0) | (q.event ? 2 : 0) | (q.since ? 4 : 0) | (q.before_id ? 8 : 0);
  std::lock_guard lock(mutex_);
  Statement st = statement(kQueries[shape].c_str());
  if (q.user_id) st.bind(1, *q.user_id);
  if (q.event) st.bind(2, *q.event);
  if (q.since) st.bind(3, *q.since);
  if (q.before_id) st.bind(4, *q.before_id);
  st.bind(5, static_cast<std::int64_t>(q.limit));
  std::vector<AuditEvent> out;
  while (st.step()) {
    AuditEvent e;
    e.id = st.integer(0);
    e.at = st.integer(1);
    e.event = st.text(2);
    e.user_id = st.optional_text(3);
    e.identifier = st.text(4);
    e.api = st.text(5);
    e.address = st.text(6);
    e.user_agent = st.text(7);
    e.request_id = st.text(8);
    e.actor = st.text(9);
    e.detail = st.text(10);
    out.push_back(std::move(e));
  }
  return out;
}

int SqliteStore::purge_audit(std::int64_t at_or_before) {
  return delete_in_batches("DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log "
                           "WHERE at <= ?1 LIMIT ?2)",
                           at_or_before);
}

// --- Admins (the console) ------------------------------------------------------------------

bool SqliteStore::insert_admin(const Admin &a) {
  std::lock_guard lock(mutex_);
  Statement st =
      statement("INSERT INTO admins(id, email, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)");
  st.bind(1, a.id).bind(2, a.email).bind(3, a.password_hash).bind(4, a.created_at);
  st.step();
  return !st.constraint_failed();
}

std::optional<Admin> SqliteStore::find_admin_by_email(const std::string &email_lower) {
  std::lock_guard lock(mutex_);
  Statement st =
      statement("SELECT id, email, password_hash, created_at FROM admins WHERE email = ?1");
  st.bind(1, email_lower);
  if (!st.step()) return std::nullopt;
  return Admin{st.text(0), st.text(1), st.text(2), st.integer(3)};
}

std::vector<Admin> SqliteStore::list_admins() {
  std::lock_guard lock(mutex_);
  Statement st = statement(
      "SELECT id, email, password_hash, created_at FROM admins ORDER BY created_at, rowid");
  std::vector<Admin> out;
  while (st.step())
    out.push_back({st.text(0), st.text(1), st.text(2), st.integer(3)});
  return out;
}

std::int64_t SqliteStore::count_admins() {
  std::lock_guard lock(mutex_);
  Statement st = statement("SELECT count(*) FROM admins");
  return st.step() ? st.integer(0) : 0;
}

bool SqliteStore::delete_admin(const std::string &email_lower) {
  std::lock_guard lock(mutex_);
  Statement st = statement("DELETE FROM admins WHERE email = ?1"); // sessions cascade
  st.bind(1, email_lower);
  st.step();
  return sqlite3_changes(db_) > 0;
}

void SqliteStore::insert_console_session(const ConsoleSession &s) {
  std::lock_guard lock(mutex_);
  Statement st = statement("INSERT INTO console_sessions(token_hash, admin_id, csrf_token, "
                           "created_at, last_seen_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)");
  st.bind(1, s.token_hash)
      .bind(2, s.admin_id)
      .bind(3, s.csrf_token)
      .bind(4, s.created_at)
      .bind(5, s.last_seen_at)
      .bind(6, s.expires_at);
  st.step();
  if (st.constraint_failed()) throw StoreError("console session not stored (constraint)");
}

std::optional<ConsoleSession> SqliteStore::find_console_session(const std::string &token_hash) {
  std::lock_guard lock(mutex_);
  Statement st = statement(
      "SELECT s.token_hash, s.admin_id, a.email, s.csrf_token, s.created_at, s.last_seen_at, "
      "s.expires_at FROM console_sessions s JOIN admins a ON a.id = s.admin_id "
      "WHERE s.token_hash = ?1");
  st.bind(1, token_hash);
  if (!st.step()) return std::nullopt;
  return ConsoleSession{st.text(0),    st.text(1),    st.text(2),   st.text(3),
                        st.integer(4), st.integer(5), st.integer(6)};
}

void SqliteStore::touch_console_session(const std::string &token_hash, std::int64_t now,
                                        std::int64_t expires_at) {
  std::lock_guard lock(mutex_);
  Statement st = statement(
      "UPDATE console_sessions SET last_seen_at = ?2, expires_at = ?3 WHERE token_hash = ?1");
  st.bind(1, token_hash).bind(2, now).bind(3, expires_at);
  st.step();
}

void SqliteStore::delete_console_session(const std::string &token_hash) {
  std::lock_guard lock(mutex_);
  Statement st = statement("DELETE FROM console_sessions WHERE token_hash = ?1");
  st.bind(1, token_hash);
  st.step();
}

std::vector<User> SqliteStore::page_users(const std::string &prefix,
                                          const std::optional<UserCursor> &after,
                                          std::size_t limit) {
  std::lock_guard lock(mutex_);
  // One text per shape, so each is prepared once and each uses its index: the prefix as a
  // range on the unique indexes of username_key and email (binary order), the page as a range
  // on users_created.
  const char *sql = nullptr;
  if (prefix.empty())
    sql = after ? "SELECT " LATCH_USER_COLUMNS " FROM users WHERE (created_at, id) < (?3, ?4) "
                  "ORDER BY created_at DESC, id DESC LIMIT ?5"
                : "SELECT " LATCH_USER_COLUMNS " FROM users "
                  "ORDER BY created_at DESC, id DESC LIMIT ?5";
  else
    sql = after ? "SELECT " LATCH_USER_COLUMNS " FROM users WHERE ((username_key >= ?1 AND "
                  "username_key < ?2) OR (email >= ?1 AND email < ?2)) AND (created_at, id) < "
                  "(?3, ?4) ORDER BY created_at DESC, id DESC LIMIT ?5"
                : "SELECT " LATCH_USER_COLUMNS " FROM users WHERE (username_key >= ?1 AND "
                  "username_key < ?2) OR (email >= ?1 AND email < ?2) "
                  "ORDER BY created_at DESC, id DESC LIMIT ?5";
  Statement st = statement(sql);
  if (!prefix.empty()) st.bind(1, prefix).bind(2, prefix + "\xF4\x8F\xBF\xBF"); // past U+10FFFF
  if (after) st.bind(3, after->created_at).bind(4, after->id);
  st.bind(5, static_cast<std::int64_t>(limit));
  std::vector<User> out;
  while (st.step())
    out.push_back(read_user(st));
  return out;
}

std::int64_t SqliteStore::count_users() {
  std::lock_guard lock(mutex_);
  Statement st = statement("SELECT count(*) FROM users");
  return st.step() ? st.integer(0) : 0;
}

std::int64_t SqliteStore::database_bytes() {
  std::lock_guard lock(mutex_);
  std::int64_t pages = 0, size = 0;
  {
    Statement st = statement("PRAGMA page_count");
    if (st.step()) pages = st.integer(0);
  }
  {
    Statement st = statement("PRAGMA page_size");
    if (st.step()) size = st.integer(0);
  }
  return pages * size;
}

} // namespace latch::db

namespace latch::db {

// --- latch store copy ------------------------------------------------------------------------

namespace {

// A statement built at run time (not cached: the cache is keyed by the text's address).
struct OwnStatement {
  sqlite3_stmt *stmt = nullptr;
  OwnStatement(sqlite3 *db, const std::string &sql) {
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK)
      throw StoreError(std::string("sqlite prepare: ") + sqlite3_errmsg(db));
  }
  ~OwnStatement() { sqlite3_finalize(stmt); }
  OwnStatement(const OwnStatement &) = delete;
  OwnStatement &operator=(const OwnStatement &) = delete;
};

} // namespace

std::vector<CopiedTable> SqliteStore::dump_tables() {
  std::lock_guard lock(mutex_);
  exec("BEGIN"); // one read transaction: every table as of one moment
  struct End {
    sqlite3 *db;
    ~End() { sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr); }
  } end{db_};
  std::vector<CopiedTable> out;
  for (const CopyTable &t : copy_tables()) {
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < t.columns.size(); ++i)
      sql += std::string(i ? ", " : "") + t.columns[i].name;
    sql += std::string(" FROM ") + t.name + " ORDER BY " + t.sqlite_order;
    OwnStatement st(db_, sql);
    CopiedTable table{t.name, {}};
    int rc = 0;
    while ((rc = sqlite3_step(st.stmt)) == SQLITE_ROW) {
      std::vector<CopyValue> row;
      for (int i = 0; i < static_cast<int>(t.columns.size()); ++i) {
        if (sqlite3_column_type(st.stmt, i) == SQLITE_NULL) {
          row.emplace_back();
        } else if (t.columns[i].kind == CopyColumn::Kind::boolean) {
          row.emplace_back(sqlite3_column_int64(st.stmt, i) ? "1" : "0");
        } else {
          const unsigned char *p = sqlite3_column_text(st.stmt, i);
          row.emplace_back(std::string(reinterpret_cast<const char *>(p),
                                       static_cast<size_t>(sqlite3_column_bytes(st.stmt, i))));
        }
      }
      table.rows.push_back(std::move(row));
    }
    if (rc != SQLITE_DONE) throw StoreError(std::string("sqlite step: ") + sqlite3_errmsg(db_));
    out.push_back(std::move(table));
  }
  return out;
}

bool SqliteStore::load_tables(const std::vector<CopiedTable> &tables, bool replace) {
  std::lock_guard lock(mutex_);
  Transaction tx(*this);
  bool empty = true;
  for (const CopyTable &t : copy_tables()) {
    OwnStatement st(db_, std::string("SELECT EXISTS (SELECT 1 FROM ") + t.name + ")");
    if (sqlite3_step(st.stmt) == SQLITE_ROW && sqlite3_column_int64(st.stmt, 0)) empty = false;
  }
  if (!empty && !replace) return false;
  // Children first, so no foreign key is left dangling for a moment.
  for (auto t = copy_tables().rbegin(); t != copy_tables().rend(); ++t)
    exec((std::string("DELETE FROM ") + t->name).c_str());
  for (const CopiedTable &data : tables) {
    auto spec = std::find_if(copy_tables().begin(), copy_tables().end(),
                             [&](const CopyTable &t) { return data.name == t.name; });
    if (spec == copy_tables().end()) throw StoreError("no table " + data.name + " to copy to");
    std::string sql = std::string("INSERT INTO ") + spec->name + " (", values;
    for (std::size_t i = 0; i < spec->columns.size(); ++i) {
      sql += std::string(i ? ", " : "") + spec->columns[i].name;
      values += std::string(i ? ", ?" : "?");
    }
    sql += ") VALUES (" + values + ")";
    OwnStatement st(db_, sql);
    for (const auto &row : data.rows) {
      if (row.size() != spec->columns.size())
        throw StoreError("a row of " + data.name + " is short");
      for (int i = 0; i < static_cast<int>(row.size()); ++i) {
        int rc = SQLITE_OK;
        if (!row[i])
          rc = sqlite3_bind_null(st.stmt, i + 1);
        else if (spec->columns[i].kind == CopyColumn::Kind::text)
          rc = sqlite3_bind_text(st.stmt, i + 1, row[i]->data(), static_cast<int>(row[i]->size()),
                                 SQLITE_TRANSIENT);
        else
          rc = sqlite3_bind_int64(st.stmt, i + 1, std::strtoll(row[i]->c_str(), nullptr, 10));
        if (rc != SQLITE_OK) throw StoreError(std::string("sqlite bind: ") + sqlite3_errmsg(db_));
      }
      if (sqlite3_step(st.stmt) != SQLITE_DONE)
        throw StoreError("sqlite: " + data.name + ": " + sqlite3_errmsg(db_));
      sqlite3_reset(st.stmt);
      sqlite3_clear_bindings(st.stmt);
    }
  }
  tx.commit();
  return true;
}

} // namespace latch::db
