// PostgreSQL implementation of Store: the pool, migrations, prepared statements, transactions.
#include "db/postgres_store.h"

#include "db/schema.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <sstream>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace latch::db {

namespace {

// The advisory locks (two-int form; 1279349827 is "LATC"): the feed's writers, one at a time
// (db/postgres.sql says why), and the migrations.
constexpr const char *kBeginFeed = "BEGIN; SELECT pg_advisory_xact_lock(1279349827, 1)";
constexpr const char *kMigrationLock = "SELECT pg_advisory_xact_lock(1279349827, 2)";

// One name per statement text, the same on every connection ("s1", "s2", ...).
std::string statement_name(const char *sql) {
  static std::mutex mutex;
  static std::unordered_map<std::string, std::string> names;
  std::lock_guard lock(mutex);
  auto [it, added] = names.try_emplace(sql, std::string());
  if (added) it->second = "s" + std::to_string(names.size());
  return it->second;
}

// Between two batches of a purge, a pause as long as the batch took, so other writers get the
// feed's lock at least half the time.
void pause_after(std::chrono::steady_clock::time_point batch_started) {
  const auto took = std::chrono::steady_clock::now() - batch_started;
  std::this_thread::sleep_for(
      std::max<std::chrono::steady_clock::duration>(took, std::chrono::milliseconds(1)));
}

// Whether a failure means the database cannot be reached now rather than that the statement
// is wrong: the connection is gone, or SQLSTATE class 08 (connection), 57014 (canceled: the
// statement timeout), 57P01-57P03 (shutting down, starting up), 55P03 (a lock not available).
bool unavailable(PGconn *pg, const PGresult *r) {
  if (PQstatus(pg) != CONNECTION_OK) return true;
  const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  if (!state) return true; // no answer from the server at all
  const std::string s = state;
  return s.rfind("08", 0) == 0 || s == "57014" || s.rfind("57P0", 0) == 0 || s == "55P03";
}

std::string trimmed(const char *message) {
  std::string s = message ? message : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' '))
    s.pop_back();
  return s;
}

} // namespace

// A bound value as text (libpq's text format), or NULL.
struct PostgresStore::Param {
  std::optional<std::string> value;
  Param(const std::string &v) : value(v) {}
  Param(const char *v) : value(std::string(v)) {}
  Param(std::int64_t v) : value(std::to_string(v)) {}
  Param(int v) : value(std::to_string(v)) {}
  Param(bool v) : value(v ? "t" : "f") {}
  Param(const std::optional<std::string> &v) : value(v) {}
  Param(const std::optional<std::int64_t> &v) {
    if (v) value = std::to_string(*v);
  }
};

// A statement's result; unique_violation() names the constraint a refused write broke.
class PostgresStore::Result {
public:
  explicit Result(PGresult *r, std::string unique = {}) : r_(r), unique_(std::move(unique)) {}
  ~Result() { PQclear(r_); }
  Result(Result &&o) noexcept : r_(std::exchange(o.r_, nullptr)), unique_(std::move(o.unique_)) {}
  Result(const Result &) = delete;
  Result &operator=(const Result &) = delete;

  int rows() const { return r_ ? PQntuples(r_) : 0; }
  bool is_null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col),
                       static_cast<std::size_t>(PQgetlength(r_, row, col)));
  }
  std::optional<std::string> optional_text(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return text(row, col);
  }
  std::int64_t integer(int row, int col) const {
    return is_null(row, col) ? 0 : std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
  }
  std::optional<std::int64_t> optional_integer(int row, int col) const {
    if (is_null(row, col)) return std::nullopt;
    return integer(row, col);
  }
  bool boolean(int row, int col) const { return PQgetvalue(r_, row, col)[0] == 't'; }
  // Rows an INSERT, UPDATE or DELETE changed.
  int affected() const { return r_ ? std::atoi(PQcmdTuples(r_)) : 0; }
  const std::string &unique_violation() const { return unique_; }

private:
  PGresult *r_;
  std::string unique_;
};

// One connection and the statements prepared on it.
struct PostgresStore::Conn {
  PGconn *pg = nullptr;
  int pid = 0;
  std::unordered_set<std::string> prepared;
  ~Conn() { PQfinish(pg); }

  // Runs a prepared statement (prepared here on first use). A unique violation is returned
  // (unique_violation() names the constraint) when allow_unique; any other failure throws.
  Result run(const char *sql, const std::vector<Param> &params, bool allow_unique = false) {
    const std::string name = statement_name(sql);
    if (!prepared.count(name)) {
      PGresult *p = PQprepare(pg, name.c_str(), sql, 0, nullptr);
      if (PQresultStatus(p) != PGRES_COMMAND_OK) {
        const std::string message = trimmed(p ? PQresultErrorMessage(p) : PQerrorMessage(pg));
        const bool down = unavailable(pg, p);
        PQclear(p);
        if (down) throw StoreUnavailable("postgres prepare: " + message);
        throw StoreError("postgres prepare: " + message);
      }
      PQclear(p);
      prepared.insert(name);
    }
    std::vector<const char *> values;
    values.reserve(params.size());
    for (const Param &p : params)
      values.push_back(p.value ? p.value->c_str() : nullptr);
    PGresult *r = PQexecPrepared(pg, name.c_str(), static_cast<int>(values.size()), values.data(),
                                 nullptr, nullptr, 0);
    const ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return Result(r);
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    if (allow_unique && state && std::strcmp(state, "23505") == 0) {
      const char *constraint = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
      std::string name_broken = constraint ? constraint : "unique";
      PQclear(r);
      return Result(nullptr, name_broken);
    }
    std::string message = trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    const bool down = unavailable(pg, r);
    PQclear(r);
    if (down) throw StoreUnavailable("postgres: " + message);
    throw StoreError("postgres: " + message);
  }
  // Runs SQL text with no parameters (BEGIN, COMMIT, a migration's statements).
  void exec(const char *sql) {
    PGresult *r = PQexec(pg, sql);
    const ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) {
      PQclear(r);
      return;
    }
    const std::string message = trimmed(r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
    const bool down = unavailable(pg, r);
    PQclear(r);
    if (down) throw StoreUnavailable("postgres: " + message);
    throw StoreError("postgres: " + message);
  }
};

// A connection taken from the pool, given back when it goes out of scope.
class PostgresStore::Lease {
public:
  Lease(PostgresStore &store, std::unique_ptr<Conn> conn) : store_(store), conn_(std::move(conn)) {}
  ~Lease() { store_.give_back(std::move(conn_)); }
  Lease(Lease &&) = delete; // returned as a prvalue only: never two owners of one slot
  Lease(const Lease &) = delete;
  Lease &operator=(const Lease &) = delete;
  Conn &operator*() const { return *conn_; }
  Conn *operator->() const { return conn_.get(); }

private:
  PostgresStore &store_;
  std::unique_ptr<Conn> conn_;
};

// BEGIN (with the feed's lock when `feed`); ROLLBACK unless commit() was called.
class PostgresStore::Transaction {
public:
  Transaction(Conn &c, bool feed) : c_(c) { c_.exec(feed ? kBeginFeed : "BEGIN"); }
  ~Transaction() {
    if (!done_ && PQstatus(c_.pg) == CONNECTION_OK) PQclear(PQexec(c_.pg, "ROLLBACK"));
  }
  Transaction(const Transaction &) = delete;
  Transaction &operator=(const Transaction &) = delete;
  void commit() {
    PGresult *r = PQexec(c_.pg, "COMMIT");
    // COMMIT of a transaction that failed answers ROLLBACK, without an error.
    const bool ok =
        PQresultStatus(r) == PGRES_COMMAND_OK && std::strcmp(PQcmdStatus(r), "COMMIT") == 0;
    std::string message = trimmed(PQresultErrorMessage(r));
    PQclear(r);
    done_ = true;
    if (!ok && PQstatus(c_.pg) != CONNECTION_OK)
      throw StoreUnavailable("postgres commit failed: " + message);
    if (!ok) throw StoreError("postgres commit failed" + (message.empty() ? "" : ": " + message));
  }

private:
  Conn &c_;
  bool done_ = false;
};

bool PostgresStore::is_uri(const std::string &db) {
  return db.rfind("postgres://", 0) == 0 || db.rfind("postgresql://", 0) == 0;
}

std::string PostgresStore::redacted(const std::string &uri) {
  const std::size_t scheme = uri.find("://");
  if (scheme == std::string::npos) return "postgresql";
  std::string rest = uri.substr(scheme + 3);
  rest = rest.substr(0, rest.find('?'));
  const std::size_t path = rest.find('/');
  const std::size_t at = rest.rfind('@', path);
  if (at != std::string::npos && (path == std::string::npos || at < path))
    rest = rest.substr(at + 1);
  return uri.substr(0, scheme + 3) + rest;
}

PostgresStore::PostgresStore(const std::string &uri, Options options, UsernameRule rule)
    : uri_(uri), options_(options), username_rule_(std::move(rule)) {
  if (options_.pool_size == 0) options_.pool_size = 1;
  // Connected when first leased; the first is connected now, so a wrong URI fails at start.
  idle_.resize(options_.pool_size);
  idle_.back() = connect();
  if (!options_.migrate) return;
  migrate();
  backfill_username_keys();
}

PostgresStore::~PostgresStore() {
  if (listen_) PQfinish(listen_);
}

std::unique_ptr<PostgresStore::Conn> PostgresStore::connect() {
  const std::string timeout =
      std::to_string(std::max<long long>(1, (options_.statement_timeout.count() + 999) / 1000));
  // The URI's own parameters come after these, so it may set its connect_timeout too.
  const char *keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char *values[] = {timeout.c_str(), "latch", uri_.c_str(), nullptr};
  auto c = std::make_unique<Conn>();
  c->pg = PQconnectdbParams(keys, values, 1);
  if (!c->pg) throw StoreError("cannot connect to PostgreSQL: out of memory");
  // libpq's message names the host and the reason, never the password.
  if (PQstatus(c->pg) != CONNECTION_OK)
    throw StoreUnavailable("cannot connect to PostgreSQL: " + trimmed(PQerrorMessage(c->pg)));
  // The server's notices ("already exists, skipping") are not ours to print: failures come
  // back as errors.
  PQsetNoticeProcessor(
      c->pg, [](void *, const char *) {}, nullptr);
  // Every statement is bounded: a stopped or stuck server is an error in time, never a hang.
  c->exec(
      ("SET statement_timeout = " + std::to_string(options_.statement_timeout.count())).c_str());
  c->pid = PQbackendPID(c->pg);
  {
    std::lock_guard lock(pool_mutex_);
    own_pids_.insert(c->pid);
  }
  return c;
}

PostgresStore::Lease PostgresStore::lease() {
  std::unique_ptr<Conn> c;
  {
    std::unique_lock lock(pool_mutex_);
    if (!pool_cv_.wait_for(lock, options_.statement_timeout, [this] { return !idle_.empty(); }))
      throw StoreUnavailable("no PostgreSQL connection came free in time (pool of " +
                             std::to_string(options_.pool_size) + ")");
    c = std::move(idle_.back());
    idle_.pop_back();
    ++out_;
  }
  // A connection the server closed (a restart, a time-out) is made again here: the store
  // reconnects by itself.
  if (!c || PQstatus(c->pg) != CONNECTION_OK) {
    if (c) {
      std::lock_guard lock(pool_mutex_);
      own_pids_.erase(c->pid);
    }
    c.reset();
    try {
      c = connect();
    } catch (...) {
      give_back(nullptr);
      throw;
    }
  }
  return Lease(*this, std::move(c));
}

void PostgresStore::give_back(std::unique_ptr<Conn> conn) {
  // A connection left inside a transaction (an error mid-way whose ROLLBACK failed) is not
  // handed to the next caller.
  if (conn && PQtransactionStatus(conn->pg) != PQTRANS_IDLE) {
    std::lock_guard lock(pool_mutex_);
    own_pids_.erase(conn->pid);
    conn.reset();
  }
  {
    std::lock_guard lock(pool_mutex_);
    idle_.push_back(std::move(conn));
    --out_;
  }
  pool_cv_.notify_one();
}

void PostgresStore::migrate() {
  Lease c = lease();
  for (const auto &m : parse_migrations(kPostgresSchemaSql)) {
    // One transaction per migration, holding the migrations' lock: a second server starting
    // now waits here, then sees the version this one wrote.
    Transaction tx(*c, false);
    c->exec(kMigrationLock);
    c->exec("CREATE TABLE IF NOT EXISTS latch_schema (version integer NOT NULL)");
    Result v = c->run("SELECT version FROM latch_schema", {});
    if (v.rows() == 0) c->exec("INSERT INTO latch_schema(version) VALUES (0)");
    const int current = v.rows() ? static_cast<int>(v.integer(0, 0)) : 0;
    if (m.version <= current) continue;
    c->exec(m.sql.c_str());
    c->run("UPDATE latch_schema SET version = $1", {m.version});
    tx.commit();
  }
}

int PostgresStore::latest_schema_version() {
  static const int latest = parse_migrations(kPostgresSchemaSql).back().version;
  return latest;
}

int PostgresStore::schema_version() {
  Lease c = lease();
  if (c->run("SELECT to_regclass('latch_schema') IS NULL", {}).boolean(0, 0)) return 0;
  Result r = c->run("SELECT version FROM latch_schema", {});
  return r.rows() ? static_cast<int>(r.integer(0, 0)) : 0;
}

int PostgresStore::write(const char *sql, const std::vector<Param> &params) {
  Lease c = lease();
  Transaction tx(*c, true);
  const int n = c->run(sql, params).affected();
  tx.commit();
  return n;
}

// --- users ---------------------------------------------------------------------------------

#define LATCH_USER_COLUMNS                                                                         \
  "id, username, email, password_hash, display_name, profile_picture, phone_number, "              \
  "email_verified, created_at, updated_at, username_key, username_skeleton, is_active"
// SQLite's COLLATE NOCASE on users.username: ASCII case aside (db/postgres.sql's index).
#define LATCH_NOCASE(x) "lower(" x "::text COLLATE \"C\")"

namespace {
User read_user(const PostgresStore::Result &r, int row) {
  User u;
  u.id = r.text(row, 0);
  u.username = r.text(row, 1);
  u.email = r.optional_text(row, 2);
  u.password_hash = r.text(row, 3);
  u.display_name = r.text(row, 4);
  u.profile_picture = r.text(row, 5);
  u.phone_number = r.text(row, 6);
  u.email_verified = r.boolean(row, 7);
  u.created_at = r.integer(row, 8);
  u.updated_at = r.integer(row, 9);
  u.username_key = r.optional_text(row, 10);
  u.username_skeleton = r.optional_text(row, 11);
  u.active = r.boolean(row, 12);
  return u;
}

// A session from the columns id, user_id, api, refresh_jti, created_at, expires_at, revoked_at.
Session read_session(const PostgresStore::Result &r, int row) {
  Session s;
  s.id = r.text(row, 0);
  s.user_id = r.text(row, 1);
  s.api = r.text(row, 2);
  s.refresh_jti = r.text(row, 3);
  s.created_at = r.integer(row, 4);
  s.expires_at = r.integer(row, 5);
  s.revoked = !r.is_null(row, 6);
  return s;
}
} // namespace

std::optional<User> PostgresStore::find_user(const char *sql, const std::string &value) {
  // PostgreSQL's text holds no NUL byte and libpq sends a value cut at the first one, so
  // "ann\0x" would find ann: a value with one names nobody, as on SQLite.
  if (value.find('\0') != std::string::npos) return std::nullopt;
  Lease c = lease();
  Result r = c->run(sql, {value});
  if (r.rows() == 0) return std::nullopt;
  return read_user(r, 0);
}

std::optional<User> PostgresStore::find_user_by_id(const std::string &id) {
  return find_user("SELECT " LATCH_USER_COLUMNS " FROM users WHERE id = $1", id);
}

std::optional<User> PostgresStore::find_user_by_email(const std::string &email_lower) {
  return find_user("SELECT " LATCH_USER_COLUMNS " FROM users WHERE email = $1", email_lower);
}

std::optional<User> PostgresStore::find_user_by_username(const std::string &username) {
  return find_user("SELECT " LATCH_USER_COLUMNS
                   " FROM users WHERE " LATCH_NOCASE("username") " = " LATCH_NOCASE("$1"),
                   username);
}

std::optional<User> PostgresStore::find_user_by_username_key(const std::string &key) {
  return find_user("SELECT " LATCH_USER_COLUMNS " FROM users WHERE username_key = $1", key);
}

std::vector<User> PostgresStore::list_users() {
  Lease c = lease();
  Result r = c->run("SELECT " LATCH_USER_COLUMNS " FROM users ORDER BY created_at, row_order", {});
  std::vector<User> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(read_user(r, i));
  return out;
}

InsertUserResult PostgresStore::identity_taken_locked(Conn &c, const User &u) {
  // $1 the username as typed (ASCII case aside, which also finds rows without a key), $2 its
  // key, $3 its skeleton, $4 the email. A username key and an email share one namespace.
  Result
      r = c.run("SELECT coalesce(" LATCH_NOCASE("username") " = " LATCH_NOCASE(
                    "$1") " OR username_key = $2::text OR username_skeleton = $3::text OR email = "
                          "$2::text, "
                          "false) FROM users WHERE id <> $5::text AND (" LATCH_NOCASE("username") " = " LATCH_NOCASE(
                              "$1") " OR username_key = $2 OR "
                                    "username_skeleton = $3 OR email = $2 OR "
                                    "email = $4::text OR username_key = $4 "
                                    "OR " LATCH_NOCASE("username") " = " LATCH_NOCASE(
                                        "$4") ") "
                                              "ORDER BY 1 DESC LIMIT 1",
                {u.username, u.username_key, u.username_skeleton, u.email, u.id});
  if (r.rows() == 0) return InsertUserResult::ok;
  return r.boolean(0, 0) ? InsertUserResult::username_taken : InsertUserResult::email_taken;
}

InsertUserResult PostgresStore::identity_taken(const User &u) {
  Lease c = lease();
  return identity_taken_locked(*c, u);
}

InsertUserResult PostgresStore::insert_user_row(Conn &c, const User &u) {
  Result r = c.run("INSERT INTO users(id, username, email, password_hash, display_name, "
                   "profile_picture, phone_number, email_verified, created_at, updated_at, "
                   "username_key, username_skeleton, is_active) VALUES ($1, $2, $3, $4, $5, $6, "
                   "$7, $8, $9, $10, $11, $12, $13)",
                   {u.id, u.username, u.email, u.password_hash, u.display_name, u.profile_picture,
                    u.phone_number, u.email_verified, u.created_at, u.updated_at, u.username_key,
                    u.username_skeleton, u.active},
                   true);
  if (r.unique_violation().empty()) return InsertUserResult::ok;
  return r.unique_violation() == "users_email_key" ? InsertUserResult::email_taken
                                                   : InsertUserResult::username_taken;
}

InsertUserResult PostgresStore::insert_user(const User &u, const Session *first_session,
                                            const OneTimeToken *confirmation,
                                            const OutgoingMail *confirmation_mail) {
  Lease c = lease();
  // The look-alike check and the insert under the feed's lock: the skeleton index is not
  // unique, so only this keeps two concurrent sign-ups (on any server) apart.
  Transaction tx(*c, true);
  if (InsertUserResult taken = identity_taken_locked(*c, u); taken != InsertUserResult::ok)
    return taken;
  if (InsertUserResult taken = insert_user_row(*c, u); taken != InsertUserResult::ok) return taken;
  if (first_session) insert_session_locked(*c, *first_session);
  if (confirmation) insert_one_time_token_locked(*c, *confirmation);
  if (confirmation_mail) enqueue_mail_locked(*c, *confirmation_mail);
  tx.commit();
  return InsertUserResult::ok;
}

std::vector<ImportResult> PostgresStore::import_users(const std::vector<User> &users,
                                                      bool skip_taken, bool dry_run) {
  Lease c = lease();
  Transaction tx(*c, true);
  std::vector<ImportResult> out;
  for (const User &u : users) {
    ImportResult result = ImportResult::inserted;
    if (c->run("SELECT 1 FROM users WHERE id = $1", {u.id}).rows() > 0)
      result = ImportResult::id_taken;
    if (result == ImportResult::inserted) {
      InsertUserResult taken = identity_taken_locked(*c, u);
      if (taken == InsertUserResult::username_taken) result = ImportResult::username_taken;
      if (taken == InsertUserResult::email_taken) result = ImportResult::email_taken;
    }
    out.push_back(result);
    if (result != ImportResult::inserted) {
      if (!skip_taken) return out; // rolled back
      continue;
    }
    if (insert_user_row(*c, u) != InsertUserResult::ok)
      throw StoreError("import: a user's row broke a constraint");
  }
  if (!dry_run) tx.commit();
  return out;
}

RenameResult PostgresStore::rename_user(const User &u, std::int64_t now) {
  Lease c = lease();
  Transaction tx(*c, true);
  if (c->run("SELECT 1 FROM users WHERE id = $1", {u.id}).rows() == 0)
    return RenameResult::not_found;
  // Only the username changes: the user's own email does not count against it.
  User name_only = u;
  name_only.email.reset();
  if (identity_taken_locked(*c, name_only) != InsertUserResult::ok) return RenameResult::taken;
  Result r = c->run("UPDATE users SET username = $2, username_key = $3, username_skeleton = $4, "
                    "updated_at = $5 WHERE id = $1",
                    {u.id, u.username, u.username_key, u.username_skeleton, now}, true);
  if (!r.unique_violation().empty()) return RenameResult::taken;
  // The old name's key may be free now: a look-alike that was waiting for it takes it.
  backfill_locked(*c);
  tx.commit();
  return RenameResult::renamed;
}

void PostgresStore::backfill_username_keys() {
  if (!username_rule_) return;
  Lease c = lease();
  if (c->run("SELECT 1 FROM users WHERE username_key IS NULL LIMIT 1", {}).rows() == 0) return;
  Transaction tx(*c, true);
  backfill_locked(*c);
  tx.commit();
}

void PostgresStore::backfill_locked(Conn &c) {
  if (!username_rule_) return;
  // Oldest first, so of two look-alikes the older keeps the key.
  Result rows = c.run("SELECT id, username, username_skeleton IS NOT NULL FROM users "
                      "WHERE username_key IS NULL ORDER BY created_at, row_order",
                      {});
  for (int i = 0; i < rows.rows(); ++i) {
    std::optional<UsernameKeys> keys = username_rule_(rows.text(i, 1));
    if (!keys) continue; // refused by the rule: signs in by its exact username until renamed
    const bool held = c.run("SELECT 1 FROM users WHERE username_key = $1", {keys->key}).rows() > 0;
    if (held && rows.boolean(i, 2)) continue;
    if (held)
      c.run("UPDATE users SET username_skeleton = $2 WHERE id = $1",
            {rows.text(i, 0), keys->skeleton});
    else
      c.run("UPDATE users SET username_key = $2, username_skeleton = $3 WHERE id = $1",
            {rows.text(i, 0), keys->key, keys->skeleton});
  }
}

bool PostgresStore::delete_user(const std::string &id) {
  return write("DELETE FROM users WHERE id = $1", {id}) > 0;
}

bool PostgresStore::replace_password(const std::string &user_id, const std::string &hash,
                                     std::int64_t now) {
  Lease c = lease();
  Transaction tx(*c, true);
  if (c->run("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
             {user_id, hash, now})
          .affected() == 0)
    return false; // rolled back: nothing was changed
  revoke_user_sessions_locked(*c, user_id, now);
  c->run("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = 'reset'", {user_id});
  tx.commit();
  return true;
}

void PostgresStore::update_password_hash(const std::string &user_id, const std::string &hash,
                                         std::int64_t now) {
  write("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1", {user_id, hash, now});
}

void PostgresStore::set_email_verified(const std::string &user_id, std::int64_t now) {
  write("UPDATE users SET email_verified = true, updated_at = $2 WHERE id = $1", {user_id, now});
}

// --- sessions ------------------------------------------------------------------------------

void PostgresStore::insert_session_locked(Conn &c, const Session &s) {
  Result r =
      c.run("INSERT INTO sessions(id, user_id, api, refresh_jti, created_at, expires_at) "
            "VALUES ($1, $2, $3, $4, $5, $6)",
            {s.id, s.user_id, s.api,
             s.refresh_jti.empty() ? std::nullopt : std::optional<std::string>(s.refresh_jti),
             s.created_at, s.expires_at},
            true);
  if (!r.unique_violation().empty()) throw StoreError("session insert violated a constraint");
}

void PostgresStore::insert_session(const Session &s) {
  Lease c = lease();
  Transaction tx(*c, true);
  insert_session_locked(*c, s);
  tx.commit();
}

std::optional<Session> PostgresStore::find_session(const std::string &id) {
  Lease c = lease();
  Result r = c->run("SELECT s.id, s.user_id, s.api, s.refresh_jti, s.created_at, s.expires_at, "
                    "s.revoked_at FROM sessions s JOIN users u ON u.id = s.user_id "
                    "WHERE s.id = $1",
                    {id});
  if (r.rows() == 0) return std::nullopt;
  return read_session(r, 0);
}

namespace {
// The feed's position as a follower counts it: the newest row, or the last pruned when the
// prune took every row.
constexpr const char *kFeedPosition =
    "SELECT GREATEST((SELECT COALESCE(MAX(position), 0) FROM changes), "
    "(SELECT position FROM change_floor))";
} // namespace

RotatedBatch PostgresStore::rotate_refresh(const std::vector<Rotation> &batch) {
  Lease c = lease();
  // The feed's lock is held from here to the commit: the triggers' rows in between are this
  // batch's alone, and a rotation of the same token on another server waits for this one.
  Transaction tx(*c, true);
  RotatedBatch out;
  out.feed_from = c->run(kFeedPosition, {}).integer(0, 0);
  out.outcomes.reserve(batch.size());
  for (const Rotation &r : batch)
    out.outcomes.push_back(rotate_refresh_locked(*c, r));
  out.feed_to = c->run(kFeedPosition, {}).integer(0, 0);
  tx.commit();
  return out;
}

RotateOutcome PostgresStore::rotate_refresh_locked(Conn &c, const Rotation &r) {
  Result s = c.run("SELECT s.refresh_jti, s.revoked_at, s.expires_at, s.previous_refresh_jti, "
                   "s.rotated_at FROM sessions s JOIN users u ON u.id = s.user_id "
                   "WHERE s.id = $1 AND s.user_id = $2 FOR UPDATE OF s",
                   {r.session_id, r.user_id});
  if (s.rows() == 0 || !s.is_null(0, 1) || s.integer(0, 2) <= r.now)
    return {RotateResult::gone, {}};
  const std::string current = s.text(0, 0), previous = s.text(0, 3);
  const std::optional<std::int64_t> rotated_at = s.optional_integer(0, 4);
  if (!current.empty() && current == r.old_jti) {
    // The session lives as long as the newest token issued in it.
    if (r.new_jti == r.old_jti)
      c.run("UPDATE sessions SET expires_at = GREATEST(expires_at, $2) WHERE id = $1",
            {r.session_id, r.new_expires_at});
    else
      c.run("UPDATE sessions SET refresh_jti = $2, previous_refresh_jti = $3, rotated_at = $4, "
            "expires_at = GREATEST(expires_at, $5) WHERE id = $1",
            {r.session_id, r.new_jti, r.old_jti, r.now, r.new_expires_at});
    return {RotateResult::rotated, r.new_jti};
  }
  // The token the last rotation replaced, again within the interval: the same client racing
  // itself, not theft (SqliteStore::rotate_refresh_locked).
  if (r.reuse_interval > 0 && !previous.empty() && previous == r.old_jti && rotated_at &&
      r.now - *rotated_at <= r.reuse_interval && *rotated_at - r.now <= r.reuse_interval) {
    c.run("UPDATE sessions SET expires_at = $2 WHERE id = $1 AND expires_at < $2",
          {r.session_id, r.new_expires_at});
    return {RotateResult::replayed, current};
  }
  // An already-rotated refresh token came back: treat it as stolen (RFC 9700 4.14.2).
  c.run("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        {r.session_id, r.now});
  return {RotateResult::reused, {}};
}

void PostgresStore::revoke_session(const std::string &session_id, std::int64_t now) {
  write("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
        {session_id, now});
}

int PostgresStore::revoke_user_sessions_locked(Conn &c, const std::string &user_id,
                                               std::int64_t now) {
  return c
      .run("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
           {user_id, now})
      .affected();
}

int PostgresStore::revoke_user_sessions(const std::string &user_id, std::int64_t now) {
  return write("UPDATE sessions SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
               {user_id, now});
}

int PostgresStore::revoke_all_sessions(std::int64_t now) {
  return write("UPDATE sessions SET revoked_at = $1 WHERE revoked_at IS NULL", {now});
}

void PostgresStore::logout(const std::string &session_id, const std::string &access_jti,
                           std::int64_t access_expires_at, std::int64_t now) {
  Lease c = lease();
  Transaction tx(*c, true);
  c->run("INSERT INTO token_blacklist(jti, expires_at) VALUES ($1, $2) ON CONFLICT (jti) DO "
         "NOTHING",
         {access_jti, access_expires_at});
  c->run("UPDATE sessions SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
         {session_id, now});
  tx.commit();
}

std::vector<Session> PostgresStore::list_sessions(const std::string &user_id) {
  Lease c = lease();
  Result r = c->run("SELECT id, user_id, api, refresh_jti, created_at, expires_at, revoked_at "
                    "FROM sessions WHERE user_id = $1 ORDER BY created_at, row_order",
                    {user_id});
  std::vector<Session> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(read_session(r, i));
  return out;
}

bool PostgresStore::is_blacklisted(const std::string &jti) {
  Lease c = lease();
  return c->run("SELECT 1 FROM token_blacklist WHERE jti = $1", {jti}).rows() > 0;
}

// --- one-time tokens -----------------------------------------------------------------------

void PostgresStore::insert_one_time_token_locked(Conn &c, const OneTimeToken &t) {
  Result r = c.run("INSERT INTO one_time_tokens(token_hash, user_id, purpose, expires_at) "
                   "VALUES ($1, $2, $3, $4)",
                   {t.token_hash, t.user_id, purpose_name(t.purpose), t.expires_at}, true);
  if (!r.unique_violation().empty())
    throw StoreError("one-time token insert violated a constraint");
}

void PostgresStore::insert_one_time_token(const OneTimeToken &t, const OutgoingMail *mail) {
  Lease c = lease();
  Transaction tx(*c, false); // the token and the mail carrying its link: both or neither
  insert_one_time_token_locked(*c, t);
  if (mail) enqueue_mail_locked(*c, *mail);
  tx.commit();
}

ConsumeResult PostgresStore::consume_locked(Conn &c, const std::string &token_hash,
                                            TokenPurpose purpose, std::int64_t now,
                                            std::string *user_id) {
  // One statement: of two requests with one token, the second finds it gone.
  Result r = c.run("DELETE FROM one_time_tokens WHERE token_hash = $1 AND purpose = $2 "
                   "RETURNING user_id, expires_at",
                   {token_hash, purpose_name(purpose)});
  if (r.rows() == 0) return ConsumeResult::invalid;
  if (r.integer(0, 1) <= now) return ConsumeResult::expired;
  if (user_id) *user_id = r.text(0, 0);
  return ConsumeResult::ok;
}

ConsumeResult PostgresStore::consume_one_time_token(const std::string &token_hash,
                                                    TokenPurpose purpose, std::int64_t now,
                                                    std::string *user_id) {
  Lease c = lease();
  return consume_locked(*c, token_hash, purpose, now, user_id);
}

ConsumeResult PostgresStore::reset_password(const std::string &token_hash,
                                            const std::string &new_hash, std::int64_t now,
                                            std::string *user_id) {
  Lease c = lease();
  Transaction tx(*c, true);
  std::string uid;
  ConsumeResult r = consume_locked(*c, token_hash, TokenPurpose::reset, now, &uid);
  if (r == ConsumeResult::ok) {
    c->run("UPDATE users SET password_hash = $2, updated_at = $3 WHERE id = $1",
           {uid, new_hash, now});
    revoke_user_sessions_locked(*c, uid, now); // a password reset ends every session
    c->run("DELETE FROM one_time_tokens WHERE user_id = $1 AND purpose = 'reset'", {uid});
    if (user_id) *user_id = uid;
  }
  tx.commit();
  return r;
}

// --- signing keys --------------------------------------------------------------------------

std::vector<SigningKeyRow> PostgresStore::signing_keys_locked(Conn &c) {
  Result r = c.run("SELECT kid, secret, created_at, retired_at, legacy, alg, activated_at FROM "
                   "signing_keys ORDER BY retired_at IS NOT NULL, activated_at IS NULL, "
                   "created_at DESC, row_order DESC",
                   {});
  std::vector<SigningKeyRow> out;
  for (int i = 0; i < r.rows(); ++i) {
    SigningKeyRow k;
    k.kid = r.text(i, 0);
    k.secret = r.text(i, 1);
    k.created_at = r.integer(i, 2);
    k.retired_at = r.optional_integer(i, 3);
    k.legacy = r.boolean(i, 4);
    k.alg = r.text(i, 5);
    k.activated_at = r.optional_integer(i, 6);
    out.push_back(std::move(k));
  }
  return out;
}

std::vector<SigningKeyRow> PostgresStore::signing_keys() {
  Lease c = lease();
  return signing_keys_locked(*c);
}

void PostgresStore::insert_signing_key_locked(Conn &c, const SigningKeyRow &k) {
  Result r = c.run("INSERT INTO signing_keys(kid, secret, created_at, retired_at, legacy, alg, "
                   "activated_at) VALUES ($1, $2, $3, NULL, $4, $5, $6)",
                   {k.kid, k.secret, k.created_at, k.legacy, k.alg, k.activated_at}, true);
  if (!r.unique_violation().empty()) throw StoreError("signing key insert violated a constraint");
}

std::vector<SigningKeyRow> PostgresStore::ensure_signing_key(const SigningKeyRow &first_key) {
  Lease c = lease();
  // Under the feed's lock: of two servers starting on an empty database, one makes the key
  // and the other finds it.
  Transaction tx(*c, true);
  if (c->run("SELECT 1 FROM signing_keys WHERE retired_at IS NULL AND activated_at IS NOT NULL "
             "LIMIT 1",
             {})
          .rows() == 0) {
    SigningKeyRow k = first_key;
    if (!k.activated_at) k.activated_at = k.created_at;
    insert_signing_key_locked(*c, k);
  }
  auto keys = signing_keys_locked(*c);
  tx.commit();
  return keys;
}

void PostgresStore::rotate_signing_key(const SigningKeyRow &next, std::int64_t now) {
  Lease c = lease();
  Transaction tx(*c, true);
  // The standby key too: the new key signs at once, so nothing is left waiting to.
  c->run("UPDATE signing_keys SET retired_at = $1, activated_at = coalesce(activated_at, $1) "
         "WHERE retired_at IS NULL",
         {now});
  SigningKeyRow k = next;
  k.legacy = false;
  if (!k.activated_at) k.activated_at = now;
  insert_signing_key_locked(*c, k);
  tx.commit();
}

void PostgresStore::add_standby_key(const SigningKeyRow &next) {
  Lease c = lease();
  Transaction tx(*c, true);
  c->run("DELETE FROM signing_keys WHERE retired_at IS NULL AND activated_at IS NULL", {});
  SigningKeyRow k = next;
  k.legacy = false;
  k.activated_at.reset();
  insert_signing_key_locked(*c, k);
  tx.commit();
}

bool PostgresStore::activate_signing_key(const std::string &kid, std::int64_t now) {
  Lease c = lease();
  Transaction tx(*c, true);
  if (c->run("SELECT 1 FROM signing_keys WHERE kid = $1 AND retired_at IS NULL AND "
             "activated_at IS NULL",
             {kid})
          .rows() == 0)
    return false;
  c->run("UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL AND activated_at IS "
         "NOT NULL",
         {now});
  c->run("UPDATE signing_keys SET activated_at = $2 WHERE kid = $1", {kid, now});
  tx.commit();
  return true;
}

int PostgresStore::purge_signing_keys(std::int64_t retired_before) {
  return write("DELETE FROM signing_keys WHERE retired_at IS NOT NULL AND retired_at <= $1",
               {retired_before});
}

// --- the change feed -----------------------------------------------------------------------

ChangeFeed::Snapshot PostgresStore::snapshot(std::int64_t expired_by) {
  Lease c = lease();
  // One snapshot of the database: the rows and the position agree.
  Transaction tx(*c, false);
  c->exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
  Snapshot out;
  out.position = c->run(kFeedPosition, {}).integer(0, 0);
  Result s = c->run("SELECT s.id, s.user_id, s.api, s.refresh_jti, s.created_at, s.expires_at, "
                    "s.revoked_at FROM sessions s JOIN users u ON u.id = s.user_id "
                    "WHERE s.revoked_at IS NULL AND s.expires_at > $1",
                    {expired_by});
  out.sessions.reserve(static_cast<std::size_t>(s.rows()));
  for (int i = 0; i < s.rows(); ++i)
    out.sessions.push_back(read_session(s, i));
  Result b =
      c->run("SELECT jti, expires_at FROM token_blacklist WHERE expires_at > $1", {expired_by});
  for (int i = 0; i < b.rows(); ++i)
    out.blacklist.emplace_back(b.text(i, 0), b.integer(i, 1));
  tx.commit();
  return out;
}

std::optional<std::vector<ChangeFeed::Change>> PostgresStore::changes_since(std::int64_t position,
                                                                            std::size_t limit) {
  Lease c = lease();
  // Each change with the state of what it names now, in one statement (one snapshot).
  Result r = c->run(
      "SELECT c.position, c.kind, c.key, s.id, s.user_id, s.api, s.refresh_jti, s.created_at, "
      "s.expires_at, s.revoked_at, u.id, b.expires_at, cu.id FROM changes c "
      "LEFT JOIN sessions s ON c.kind = 1 AND s.id = c.key "
      "LEFT JOIN users u ON u.id = s.user_id "
      "LEFT JOIN token_blacklist b ON c.kind = 2 AND b.jti = c.key "
      "LEFT JOIN users cu ON c.kind = 3 AND cu.id = c.key "
      "WHERE c.position > $1 ORDER BY c.position LIMIT $2",
      {position, static_cast<std::int64_t>(limit)});
  // The floor after the rows: it only rises, so if it is at or below `position` now, no row
  // after `position` had been pruned when they were read.
  if (c->run("SELECT position FROM change_floor", {}).integer(0, 0) > position) return std::nullopt;
  std::vector<Change> out;
  out.reserve(static_cast<std::size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) {
    Change ch;
    ch.position = r.integer(i, 0);
    switch (r.integer(i, 1)) {
    case 1: ch.kind = Change::Kind::session; break;
    case 2: ch.kind = Change::Kind::blacklist; break;
    case 3: ch.kind = Change::Kind::user; break;
    default: ch.kind = Change::Kind::signing_keys; break;
    }
    ch.key = r.text(i, 2);
    if (ch.kind == Change::Kind::session && !r.is_null(i, 3) && r.is_null(i, 9) &&
        !r.is_null(i, 10)) {
      Session s;
      s.id = r.text(i, 3);
      s.user_id = r.text(i, 4);
      s.api = r.text(i, 5);
      s.refresh_jti = r.text(i, 6);
      s.created_at = r.integer(i, 7);
      s.expires_at = r.integer(i, 8);
      ch.session = std::move(s);
    }
    if (ch.kind == Change::Kind::blacklist && !r.is_null(i, 11))
      ch.blacklisted_until = r.integer(i, 11);
    if (ch.kind == Change::Kind::user) ch.user_exists = !r.is_null(i, 12);
    out.push_back(std::move(ch));
  }
  return out;
}

void PostgresStore::wait_for_changes(std::chrono::milliseconds timeout) {
  std::lock_guard lock(listen_mutex_);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  // The listening connection, made again after PostgreSQL went away. Notifications sent while
  // it was gone are lost: the caller reads the feed after each wait anyway.
  if (!listen_ || PQstatus(listen_) != CONNECTION_OK) {
    if (listen_) PQfinish(listen_);
    listen_ = nullptr;
    try {
      auto c = connect();
      {
        std::lock_guard pool_lock(pool_mutex_);
        own_pids_.erase(c->pid); // its own pid never notifies
      }
      c->exec("LISTEN latch_changes");
      listen_ = std::exchange(c->pg, nullptr);
    } catch (const StoreError &) {
      std::this_thread::sleep_until(deadline);
      return;
    }
  }
  for (;;) {
    bool others = false;
    if (PQconsumeInput(listen_) == 0) return; // the connection broke: made again next time
    while (PGnotify *n = PQnotifies(listen_)) {
      {
        // This process's own commits are in its memory already (its writers catch up).
        std::lock_guard pool_lock(pool_mutex_);
        if (!own_pids_.count(n->be_pid)) others = true;
      }
      PQfreemem(n);
    }
    if (others) return;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{PQsocket(listen_), POLLIN, 0};
    if (left.count() <= 0 || p.fd < 0 || ::poll(&p, 1, static_cast<int>(left.count())) <= 0) return;
  }
}

// --- the outbox ----------------------------------------------------------------------------

#define LATCH_MAIL_COLUMNS                                                                         \
  "o.id, o.recipient, o.subject, o.body, o.token_hash, o.link_expires_at, o.state, o.attempts, "   \
  "o.created_at, o.queued_at, o.next_attempt_at, o.lease_until, o.updated_at, o.last_error, "      \
  "o.token_at"
// Whether a mail may still be sent at $1: its token exists and neither it nor the link expired.
#define LATCH_MAIL_LINK_LIVE                                                                       \
  "((o.token_hash IS NULL OR EXISTS (SELECT 1 FROM one_time_tokens t WHERE t.token_hash = "        \
  "o.token_hash AND t.expires_at > $1::bigint)) AND (o.link_expires_at IS NULL OR "                \
  "o.link_expires_at > $1::bigint))"

namespace {
// A row selected as LATCH_MAIL_COLUMNS, then LATCH_MAIL_LINK_LIVE.
QueuedMail read_mail(const PostgresStore::Result &r, int i, std::int64_t now) {
  QueuedMail m;
  m.id = r.integer(i, 0);
  m.mail.recipient = r.text(i, 1);
  m.mail.subject = r.text(i, 2);
  m.mail.body = r.text(i, 3);
  m.mail.token_hash = r.optional_text(i, 4);
  m.mail.link_expires_at = r.optional_integer(i, 5);
  m.attempts = static_cast<int>(r.integer(i, 7));
  m.mail.created_at = r.integer(i, 8);
  m.queued_at = r.integer(i, 9);
  m.next_attempt_at = r.integer(i, 10);
  m.lease_until = r.integer(i, 11);
  m.updated_at = r.integer(i, 12);
  m.last_error = r.text(i, 13);
  m.mail.token_at = static_cast<std::size_t>(std::max<std::int64_t>(0, r.integer(i, 14)));
  m.link_live = r.boolean(i, 15);
  if (r.text(i, 6) == "failed")
    m.state = MailState::failed;
  else
    m.state = m.lease_until > now ? MailState::sending : MailState::queued;
  return m;
}
} // namespace

void PostgresStore::enqueue_mail_locked(Conn &c, const OutgoingMail &m) {
  c.run("INSERT INTO outbox(recipient, subject, body, token_hash, token_at, link_expires_at, "
        "created_at, queued_at, next_attempt_at, updated_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $7, $7)",
        {m.recipient, m.subject, m.body, m.token_hash, static_cast<std::int64_t>(m.token_at),
         m.link_expires_at, m.created_at});
}

void PostgresStore::enqueue_mail(const OutgoingMail &m) {
  Lease c = lease();
  enqueue_mail_locked(*c, m);
}

std::optional<QueuedMail> PostgresStore::take_mail(std::int64_t now, std::int64_t lease_seconds,
                                                   const std::string &fresh_token_hash) {
  static const char *kDue = "SELECT o.id FROM outbox o WHERE o.state = 'queued' AND "
                            "o.next_attempt_at <= $1 AND o.lease_until <= $1 "
                            "ORDER BY o.next_attempt_at, o.id LIMIT 1";
  Lease c = lease();
  // Read first: an idle sender looks every second and should take no lock to see that
  // nothing is due.
  if (c->run(kDue, {now}).rows() == 0) return std::nullopt;
  // The claim: of two senders (on any server), one locks the row and the other skips it.
  Transaction tx(*c, false);
  Result due = c->run("SELECT o.id FROM outbox o WHERE o.state = 'queued' AND "
                      "o.next_attempt_at <= $1 AND o.lease_until <= $1 "
                      "ORDER BY o.next_attempt_at, o.id LIMIT 1 FOR UPDATE SKIP LOCKED",
                      {now});
  if (due.rows() == 0) return std::nullopt;
  const std::int64_t id = due.integer(0, 0);
  c->run("UPDATE outbox SET lease_until = $2, attempts = attempts + 1, updated_at = $1 "
         "WHERE id = $3",
         {now, now + lease_seconds, id});
  Result r = c->run("SELECT " LATCH_MAIL_COLUMNS ", " LATCH_MAIL_LINK_LIVE
                    " FROM outbox o WHERE o.id = $2",
                    {now, id});
  if (r.rows() == 0) return std::nullopt;
  QueuedMail m = read_mail(r, 0, now);
  if (m.link_live && m.mail.token_hash) {
    // The token is made now, by the sender, so the outbox never holds one.
    c->run("UPDATE one_time_tokens SET token_hash = $2 WHERE token_hash = $1",
           {*m.mail.token_hash, fresh_token_hash});
    c->run("UPDATE outbox SET token_hash = $2 WHERE id = $1", {id, fresh_token_hash});
    m.mail.token_hash = fresh_token_hash;
  }
  tx.commit();
  return m;
}

void PostgresStore::mail_sent(std::int64_t id) {
  Lease c = lease();
  c->run("DELETE FROM outbox WHERE id = $1", {id});
}

bool PostgresStore::mail_deferred(std::int64_t id, int attempt, std::int64_t next_attempt_at,
                                  const std::string &error, std::int64_t now) {
  Lease c = lease();
  return c->run("UPDATE outbox SET next_attempt_at = $3, lease_until = 0, last_error = $4, "
                "updated_at = $5 WHERE id = $1 AND attempts = $2 AND state = 'queued'",
                {id, attempt, next_attempt_at, error, now})
             .affected() > 0;
}

bool PostgresStore::mail_failed(std::int64_t id, int attempt, const std::string &error,
                                std::int64_t now) {
  Lease c = lease();
  return c->run("UPDATE outbox SET state = 'failed', lease_until = 0, last_error = $3, "
                "updated_at = $4 WHERE id = $1 AND attempts = $2",
                {id, attempt, error, now})
             .affected() > 0;
}

void PostgresStore::release_mail(std::int64_t id, int attempt) {
  Lease c = lease();
  c->run("UPDATE outbox SET lease_until = 0 WHERE id = $1 AND attempts = $2", {id, attempt});
}

std::vector<QueuedMail> PostgresStore::drop_undeliverable(std::int64_t now) {
  Lease c = lease();
  // One statement: what it deletes is what it returns.
  Result r = c->run("DELETE FROM outbox o WHERE o.lease_until <= $1 AND NOT " LATCH_MAIL_LINK_LIVE
                    " RETURNING " LATCH_MAIL_COLUMNS ", false",
                    {now});
  std::vector<QueuedMail> dead;
  for (int i = 0; i < r.rows(); ++i)
    dead.push_back(read_mail(r, i, now));
  std::sort(dead.begin(), dead.end(),
            [](const QueuedMail &a, const QueuedMail &b) { return a.id < b.id; });
  return dead;
}

std::vector<QueuedMail> PostgresStore::list_mail(std::int64_t now) {
  Lease c = lease();
  Result r = c->run(
      "SELECT " LATCH_MAIL_COLUMNS ", " LATCH_MAIL_LINK_LIVE " FROM outbox o ORDER BY o.id", {now});
  std::vector<QueuedMail> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(read_mail(r, i, now));
  return out;
}

int PostgresStore::retry_mail(std::optional<std::int64_t> id, std::int64_t now) {
  Lease c = lease();
  return c
      ->run("UPDATE outbox SET state = 'queued', attempts = 0, queued_at = $1, "
            "next_attempt_at = $1, updated_at = $1 "
            "WHERE lease_until <= $1 AND ($2::bigint IS NULL OR id = $2)",
            {now, id})
      .affected();
}

int PostgresStore::drop_mail(std::optional<std::int64_t> id) {
  Lease c = lease();
  return c->run("DELETE FROM outbox WHERE $1::bigint IS NULL OR id = $1", {id}).affected();
}

MailCounts PostgresStore::mail_counts(std::int64_t now) {
  Lease c = lease();
  Result r = c->run("SELECT state, lease_until > $1, count(*) FROM outbox "
                    "GROUP BY state, lease_until > $1",
                    {now});
  MailCounts m;
  for (int i = 0; i < r.rows(); ++i) {
    const int n = static_cast<int>(r.integer(i, 2));
    if (r.text(i, 0) == "failed") {
      m.failed += n;
      continue;
    }
    m.queued += n;
    if (r.boolean(i, 1)) m.sending += n;
  }
  return m;
}

// --- the whole database --------------------------------------------------------------------

void PostgresStore::ping() {
  std::lock_guard lock(probe_mutex_);
  const auto limit =
      std::min<std::chrono::milliseconds>(options_.statement_timeout, std::chrono::seconds(2));
  const auto deadline = std::chrono::steady_clock::now() + limit;
  if (!probe_ || PQstatus(probe_->pg) != CONNECTION_OK) {
    probe_.reset();
    probe_ = connect();
  }
  // The tables requests use are there, and the server takes writes (not a standby). Sent
  // without waiting, then waited for up to the limit: the server's statement_timeout cannot
  // fire when the server itself no longer answers.
  PGconn *pg = probe_->pg;
  if (!PQsendQuery(pg, "SELECT 1 FROM users, sessions, token_blacklist, one_time_tokens, "
                       "signing_keys LIMIT 0; SELECT pg_is_in_recovery()")) {
    const std::string message = trimmed(PQerrorMessage(pg));
    probe_.reset();
    throw StoreUnavailable("postgres: " + message);
  }
  while (PQisBusy(pg)) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd fd{PQsocket(pg), POLLIN, 0};
    if (left.count() <= 0 || ::poll(&fd, 1, static_cast<int>(left.count())) == 0) {
      probe_.reset(); // a late answer is never read: the next ping connects afresh
      throw StoreUnavailable("PostgreSQL did not answer within " + std::to_string(limit.count()) +
                             " ms");
    }
    if (!PQconsumeInput(pg)) {
      const std::string message = trimmed(PQerrorMessage(pg));
      probe_.reset();
      throw StoreUnavailable("postgres: " + message);
    }
  }
  bool standby = false;
  std::string error;
  bool down = false;
  while (PGresult *r = PQgetResult(pg)) {
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
      standby = standby || (PQntuples(r) > 0 && PQgetvalue(r, 0, 0)[0] == 't');
    } else if (error.empty()) {
      error = trimmed(PQresultErrorMessage(r));
      down = unavailable(pg, r);
    }
    PQclear(r);
  }
  if (!error.empty()) {
    if (down) throw StoreUnavailable("postgres: " + error);
    throw StoreError("postgres: " + error);
  }
  if (standby) throw StoreError("the PostgreSQL server is a read-only standby (in recovery)");
}

int PostgresStore::delete_in_batches(const char *sql, std::int64_t bound) {
  int total = 0;
  for (;;) {
    const auto started = std::chrono::steady_clock::now();
    const int n = write(sql, {bound, static_cast<std::int64_t>(kPurgeBatch)});
    total += n;
    if (n < kPurgeBatch) return total;
    pause_after(started);
  }
}

PurgeCounts PostgresStore::purge_expired(std::int64_t now, std::int64_t keys_retired_before) {
  PurgeCounts pc;
  pc.sessions = delete_in_batches("DELETE FROM sessions WHERE id IN (SELECT id FROM sessions "
                                  "WHERE expires_at <= $1 LIMIT $2)",
                                  now);
  pc.blacklist = delete_in_batches("DELETE FROM token_blacklist WHERE jti IN (SELECT jti FROM "
                                   "token_blacklist WHERE expires_at <= $1 LIMIT $2)",
                                   now);
  pc.one_time_tokens =
      delete_in_batches("DELETE FROM one_time_tokens WHERE token_hash IN (SELECT token_hash FROM "
                        "one_time_tokens WHERE expires_at <= $1 LIMIT $2)",
                        now);
  pc.signing_keys = purge_signing_keys(keys_retired_before);
  // Console sessions past their idle expiry (the console refuses them already).
  delete_in_batches("DELETE FROM console_sessions WHERE token_hash IN (SELECT token_hash FROM "
                    "console_sessions WHERE expires_at <= $1 LIMIT $2)",
                    now);
  pc.mail = delete_in_batches("DELETE FROM outbox WHERE id IN (SELECT o.id FROM outbox o WHERE "
                              "o.lease_until <= $1 AND NOT " LATCH_MAIL_LINK_LIVE " LIMIT $2)",
                              now) +
            delete_in_batches("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE "
                              "state = 'failed' AND updated_at <= $1 LIMIT $2)",
                              now - kFailedMailRetention);
  pc.sign_in_failures = delete_in_batches(
      "DELETE FROM sign_in_failures WHERE (group_key, item_key) IN (SELECT group_key, item_key "
      "FROM sign_in_failures WHERE expires_at <= $1 LIMIT $2)",
      now);
  // The change feed keeps a few minutes: the oldest rows, up to the first one younger than
  // the retention; the floor records the last position pruned.
  for (bool first = true;; first = false) {
    if (!first) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    Lease c = lease();
    Transaction tx(*c, true);
    Result r = c->run("SELECT position, at FROM changes ORDER BY position LIMIT $1",
                      {static_cast<std::int64_t>(kPurgeBatch)});
    std::int64_t upto = 0;
    for (int i = 0; i < r.rows() && r.integer(i, 1) <= now - kChangeRetention; ++i)
      upto = r.integer(i, 0);
    if (upto == 0) break;
    c->run("DELETE FROM changes WHERE position <= $1", {upto});
    c->run("UPDATE change_floor SET position = GREATEST(position, $1)", {upto});
    tx.commit();
  }
  return pc;
}

// --- sign-in failures ------------------------------------------------------------------------

std::vector<FailureCount> PostgresStore::failure_counts(const std::string &group,
                                                        const std::string &item, std::int64_t now) {
  Lease c = lease();
  Result r = c->run("SELECT item_key, count, expires_at, stamp FROM sign_in_failures "
                    "WHERE group_key = $1 AND item_key IN ('', $2) AND expires_at > $3",
                    {group, item, now});
  std::vector<FailureCount> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.text(i, 0), static_cast<int>(r.integer(i, 1)), r.integer(i, 2), r.text(i, 3)});
  return out;
}

void PostgresStore::add_failure(const std::string &group, const std::string &item,
                                const std::string &stamp, std::int64_t now, std::int64_t window) {
  Lease c = lease();
  Transaction tx(*c, false);
  // The group's own count first, then the item's: every writer locks them in one order.
  for (const std::string &key : {std::string(), item})
    c->run("INSERT INTO sign_in_failures AS f(group_key, item_key, count, expires_at, stamp) "
           "VALUES ($1, $2, 1, $4::bigint + $5::bigint, $3) "
           "ON CONFLICT (group_key, item_key) DO UPDATE SET "
           "count = CASE WHEN f.expires_at > $4::bigint THEN f.count + 1 ELSE 1 END, "
           "expires_at = CASE WHEN f.expires_at > $4::bigint THEN f.expires_at "
           "ELSE $4::bigint + $5::bigint END, stamp = excluded.stamp",
           {group, key, stamp, now, window});
  tx.commit();
}

void PostgresStore::clear_failures(const std::string &group, const std::string &item) {
  Lease c = lease();
  c->run("DELETE FROM sign_in_failures WHERE group_key = $1 AND item_key = $2", {group, item});
}

void PostgresStore::lift_failures(const std::vector<std::string> &groups) {
  Lease c = lease();
  Transaction tx(*c, false);
  for (const std::string &group : groups)
    c->run("DELETE FROM sign_in_failures WHERE group_key = $1", {group});
  tx.commit();
}

void PostgresStore::restamp_failures(const std::vector<std::string> &groups,
                                     const std::string &from, const std::string &to) {
  Lease c = lease();
  Transaction tx(*c, false);
  for (const std::string &group : groups)
    c->run("UPDATE sign_in_failures SET stamp = $3 WHERE group_key = $1 AND stamp = $2",
           {group, from, to});
  tx.commit();
}

// --- the audit log -------------------------------------------------------------------------

void PostgresStore::append_audit(const std::vector<AuditEvent> &events) {
  if (events.empty()) return;
  Lease c = lease();
  Transaction tx(*c, false);
  for (const AuditEvent &e : events)
    c->run("INSERT INTO audit_log(at, event, user_id, identifier, api, address, user_agent, "
           "request_id, actor, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
           {e.at, e.event, e.user_id, e.identifier, e.api, e.address, e.user_agent, e.request_id,
            e.actor, e.detail});
  tx.commit();
}

std::vector<AuditEvent> PostgresStore::query_audit(const AuditQuery &q) {
  // Only the filters given, so each shape of query has the plan its index gives.
  std::string sql = "SELECT id, at, event, user_id, identifier, api, address, user_agent, "
                    "request_id, actor, detail FROM audit_log WHERE true";
  std::vector<Param> params;
  auto add = [&](const char *condition, Param p) {
    params.push_back(std::move(p));
    sql += std::string(" AND ") + condition + std::to_string(params.size());
  };
  if (q.user_id) add("user_id = $", *q.user_id);
  if (q.event) add("event = $", *q.event);
  if (q.since) add("at >= $", *q.since);
  if (q.before_id) add("id < $", *q.before_id);
  params.push_back(static_cast<std::int64_t>(q.limit));
  sql += " ORDER BY id DESC LIMIT $" + std::to_string(params.size());
  Lease c = lease();
  Result r = c->run(sql.c_str(), params);
  std::vector<AuditEvent> out;
  for (int i = 0; i < r.rows(); ++i) {
    AuditEvent e;
    e.id = r.integer(i, 0);
    e.at = r.integer(i, 1);
    e.event = r.text(i, 2);
    e.user_id = r.optional_text(i, 3);
    e.identifier = r.text(i, 4);
    e.api = r.text(i, 5);
    e.address = r.text(i, 6);
    e.user_agent = r.text(i, 7);
    e.request_id = r.text(i, 8);
    e.actor = r.text(i, 9);
    e.detail = r.text(i, 10);
    out.push_back(std::move(e));
  }
  return out;
}

int PostgresStore::purge_audit(std::int64_t at_or_before) {
  return delete_in_batches("DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log "
                           "WHERE at <= $1 LIMIT $2)",
                           at_or_before);
}

// --- Admins (the console) ------------------------------------------------------------------

bool PostgresStore::insert_admin(const Admin &a) {
  Lease c = lease();
  Result r = c->run("INSERT INTO admins(id, email, password_hash, created_at) "
                    "VALUES ($1, $2, $3, $4)",
                    {a.id, a.email, a.password_hash, a.created_at}, true);
  return r.unique_violation().empty();
}

std::optional<Admin> PostgresStore::find_admin_by_email(const std::string &email_lower) {
  Lease c = lease();
  Result r = c->run("SELECT id, email, password_hash, created_at FROM admins WHERE email = $1",
                    {email_lower});
  if (r.rows() == 0) return std::nullopt;
  return Admin{r.text(0, 0), r.text(0, 1), r.text(0, 2), r.integer(0, 3)};
}

std::vector<Admin> PostgresStore::list_admins() {
  Lease c = lease();
  Result r =
      c->run("SELECT id, email, password_hash, created_at FROM admins ORDER BY created_at, id", {});
  std::vector<Admin> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), r.integer(i, 3)});
  return out;
}

std::int64_t PostgresStore::count_admins() {
  Lease c = lease();
  return c->run("SELECT count(*) FROM admins", {}).integer(0, 0);
}

bool PostgresStore::delete_admin(const std::string &email_lower) {
  return write("DELETE FROM admins WHERE email = $1", {email_lower}) > 0; // sessions cascade
}

void PostgresStore::insert_console_session(const ConsoleSession &s) {
  write("INSERT INTO console_sessions(token_hash, admin_id, csrf_token, created_at, "
        "last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        {s.token_hash, s.admin_id, s.csrf_token, s.created_at, s.last_seen_at, s.expires_at});
}

std::optional<ConsoleSession> PostgresStore::find_console_session(const std::string &token_hash) {
  Lease c = lease();
  Result r = c->run(
      "SELECT s.token_hash, s.admin_id, a.email, s.csrf_token, s.created_at, s.last_seen_at, "
      "s.expires_at FROM console_sessions s JOIN admins a ON a.id = s.admin_id "
      "WHERE s.token_hash = $1",
      {token_hash});
  if (r.rows() == 0) return std::nullopt;
  return ConsoleSession{r.text(0, 0),    r.text(0, 1),    r.text(0, 2),   r.text(0, 3),
                        r.integer(0, 4), r.integer(0, 5), r.integer(0, 6)};
}

void PostgresStore::touch_console_session(const std::string &token_hash, std::int64_t now,
                                          std::int64_t expires_at) {
  write("UPDATE console_sessions SET last_seen_at = $2, expires_at = $3 WHERE token_hash = $1",
        {token_hash, now, expires_at});
}

void PostgresStore::delete_console_session(const std::string &token_hash) {
  write("DELETE FROM console_sessions WHERE token_hash = $1", {token_hash});
}

std::vector<User> PostgresStore::page_users(const std::string &prefix,
                                            const std::optional<UserCursor> &after,
                                            std::size_t limit) {
  // One text per shape, each served by its index: the prefix as a byte-wise range (the
  // text_pattern_ops operators, whose indexes db/postgres.sql migration 4 makes, so a generic
  // plan uses them too), the page as a range on users_created.
  const std::string upto = prefix + "\xF4\x8F\xBF\xBF"; // past U+10FFFF
  const auto n = static_cast<std::int64_t>(limit);
  Lease c = lease();
  Result r = [&] {
    if (prefix.empty())
      return after ? c->run("SELECT " LATCH_USER_COLUMNS " FROM users WHERE (created_at, id) < "
                            "($1::bigint, $2::text) ORDER BY created_at DESC, id DESC LIMIT $3",
                            {after->created_at, after->id, n})
                   : c->run("SELECT " LATCH_USER_COLUMNS
                            " FROM users ORDER BY created_at DESC, id DESC LIMIT $1",
                            {n});
    return after ? c->run("SELECT " LATCH_USER_COLUMNS " FROM users WHERE ((username_key ~>=~ "
                          "$1 AND username_key ~<~ $2) OR (email ~>=~ $1 AND email ~<~ $2)) AND "
                          "(created_at, id) < ($3::bigint, $4::text) "
                          "ORDER BY created_at DESC, id DESC LIMIT $5",
                          {prefix, upto, after->created_at, after->id, n})
                 : c->run("SELECT " LATCH_USER_COLUMNS " FROM users WHERE (username_key ~>=~ $1 "
                          "AND username_key ~<~ $2) OR (email ~>=~ $1 AND email ~<~ $2) "
                          "ORDER BY created_at DESC, id DESC LIMIT $3",
                          {prefix, upto, n});
  }();
  std::vector<User> out;
  for (int i = 0; i < r.rows(); ++i)
    out.push_back(read_user(r, i));
  return out;
}

std::int64_t PostgresStore::count_users() {
  Lease c = lease();
  return c->run("SELECT count(*) FROM users", {}).integer(0, 0);
}

std::int64_t PostgresStore::database_bytes() {
  Lease c = lease();
  return c->run("SELECT pg_database_size(current_database())", {}).integer(0, 0);
}

} // namespace latch::db

namespace latch::db {

// --- latch store copy ------------------------------------------------------------------------

std::vector<CopiedTable> PostgresStore::dump_tables() {
  Lease c = lease();
  // One snapshot for every table, and nothing written.
  c->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  struct End {
    Conn &c;
    ~End() {
      if (PQstatus(c.pg) == CONNECTION_OK) PQclear(PQexec(c.pg, "COMMIT"));
    }
  } end{*c};
  std::vector<CopiedTable> out;
  for (const CopyTable &t : copy_tables()) {
    std::string sql = "SELECT ";
    for (std::size_t i = 0; i < t.columns.size(); ++i) {
      sql += i ? ", " : "";
      sql += t.columns[i].name;
      if (t.columns[i].kind == CopyColumn::Kind::boolean) sql += "::int";
    }
    sql += std::string(" FROM ") + t.name + " ORDER BY " + t.postgres_order;
    Result r = c->run(sql.c_str(), {});
    CopiedTable table{t.name, {}};
    for (int i = 0; i < r.rows(); ++i) {
      std::vector<CopyValue> row;
      for (int col = 0; col < static_cast<int>(t.columns.size()); ++col)
        row.push_back(r.optional_text(i, col));
      table.rows.push_back(std::move(row));
    }
    out.push_back(std::move(table));
  }
  return out;
}

bool PostgresStore::load_tables(const std::vector<CopiedTable> &tables, bool replace) {
  Lease c = lease();
  Transaction tx(*c, true); // the triggers write the feed
  bool empty = true;
  for (const CopyTable &t : copy_tables()) {
    const std::string sql = std::string("SELECT EXISTS (SELECT 1 FROM ") + t.name + ")";
    if (c->run(sql.c_str(), {}).boolean(0, 0)) empty = false;
  }
  if (!empty && !replace) return false;
  // Children first, so no foreign key is left dangling for a moment.
  for (auto t = copy_tables().rbegin(); t != copy_tables().rend(); ++t)
    c->exec((std::string("DELETE FROM ") + t->name).c_str());
  for (const CopiedTable &data : tables) {
    auto spec = std::find_if(copy_tables().begin(), copy_tables().end(),
                             [&](const CopyTable &t) { return data.name == t.name; });
    if (spec == copy_tables().end()) throw StoreError("no table " + data.name + " to copy to");
    std::string sql = std::string("INSERT INTO ") + spec->name + " (", values;
    for (std::size_t i = 0; i < spec->columns.size(); ++i) {
      sql += std::string(i ? ", " : "") + spec->columns[i].name;
      values += std::string(i ? ", $" : "$") + std::to_string(i + 1);
      if (spec->columns[i].kind == CopyColumn::Kind::boolean) values += "::int::boolean";
      if (spec->columns[i].kind == CopyColumn::Kind::integer) values += "::bigint";
    }
    // The outbox's ids are kept (latch mail names them), past its identity column.
    sql += ") OVERRIDING SYSTEM VALUE VALUES (" + values + ")";
    for (const auto &row : data.rows) {
      if (row.size() != spec->columns.size())
        throw StoreError("a row of " + data.name + " is short");
      std::vector<Param> params;
      for (const auto &v : row)
        params.emplace_back(v);
      c->run(sql.c_str(), params);
    }
  }
  // New outbox rows and audit events are numbered after the copied ones.
  for (const std::string table : {"outbox", "audit_log"})
    c->exec(("SELECT setval(pg_get_serial_sequence('" + table + "', 'id'), COALESCE((SELECT " +
             "max(id) FROM " + table + "), 0) + 1, false)")
                .c_str());
  tx.commit();
  return true;
}

} // namespace latch::db
