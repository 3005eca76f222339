// PostgreSQL engine of db::Store (libpq): a small pool of connections, prepared statements,
// a statement timeout on every connection, and the change feed followed through LISTEN/NOTIFY.
#pragma once

#include "db/store.h"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

struct pg_conn;

namespace latch::db {

class PostgresStore final : public Store {
public:
  struct Options {
    std::size_t pool_size = 4; // connections for requests; wait_for_changes has one more
    // Every statement on every connection (SET statement_timeout); also how long a caller waits
    // for a free connection, and libpq's connect_timeout (rounded up to seconds).
    std::chrono::milliseconds statement_timeout{5000};
    // false: neither migrates nor writes at open (an admin command that only reads).
    bool migrate = true;
  };
  // Whether `db` names a PostgreSQL database (a postgres:// or postgresql:// URI) rather than
  // an SQLite file.
  static bool is_uri(const std::string &db);
  // The URI without what may be secret (user and password, the parameters after '?'), for logs.
  static std::string redacted(const std::string &uri);

  // Connects to the database at uri (any libpq connection URI) and applies db/postgres.sql's
  // migrations that it lacks, each in one transaction, under an advisory lock (two servers
  // starting together: the second waits, then finds nothing to do); then gives the rows that
  // lack one their username key by `rule`. Throws StoreError, whose text never holds the URI
  // (it may carry a password).
  explicit PostgresStore(const std::string &uri, Options options, UsernameRule rule = {});
  explicit PostgresStore(const std::string &uri) : PostgresStore(uri, Options{}) {}
  ~PostgresStore() override;
  PostgresStore(const PostgresStore &) = delete;
  PostgresStore &operator=(const PostgresStore &) = delete;

  int schema_version(); // 0: no Latch schema
  // The last migration in db/postgres.sql.
  static int latest_schema_version();

  // Admins (the console)
  bool insert_admin(const Admin &admin) override;
  std::optional<Admin> find_admin_by_email(const std::string &email_lower) override;
  std::vector<Admin> list_admins() override;
  std::int64_t count_admins() override;
  bool delete_admin(const std::string &email_lower) override;
  void insert_console_session(const ConsoleSession &session) override;
  std::optional<ConsoleSession> find_console_session(const std::string &token_hash) override;
  void touch_console_session(const std::string &token_hash, std::int64_t now,
                             std::int64_t expires_at) override;
  void delete_console_session(const std::string &token_hash) override;
  std::vector<User> page_users(const std::string &prefix, const std::optional<UserCursor> &after,
                               std::size_t limit) override;
  std::int64_t count_users() override;
  std::int64_t database_bytes() override;

  // Users
  std::optional<User> find_user_by_id(const std::string &id) override;
  std::optional<User> find_user_by_email(const std::string &email_lower) override;
  std::optional<User> find_user_by_username(const std::string &username) override;
  std::optional<User> find_user_by_username_key(const std::string &key) override;
  std::vector<User> list_users() override;
  InsertUserResult identity_taken(const User &user) override;
  InsertUserResult insert_user(const User &user, const Session *first_session = nullptr,
                               const OneTimeToken *confirmation = nullptr,
                               const OutgoingMail *confirmation_mail = nullptr) override;
  std::vector<ImportResult> import_users(const std::vector<User> &users, bool skip_taken,
                                         bool dry_run) override;
  RenameResult rename_user(const User &user, std::int64_t now) override;
  void update_password_hash(const std::string &user_id, const std::string &hash,
                            std::int64_t now) override;
  bool replace_password(const std::string &user_id, const std::string &hash,
                        std::int64_t now) override;
  void set_email_verified(const std::string &user_id, std::int64_t now) override;
  bool delete_user(const std::string &id) override;

  // Sessions
  void insert_session(const Session &session) override;
  std::optional<Session> find_session(const std::string &id) override;
  bool is_blacklisted(const std::string &jti) override;
  RotatedBatch rotate_refresh(const std::vector<Rotation> &batch) override;
  void revoke_session(const std::string &session_id, std::int64_t now) override;
  int revoke_user_sessions(const std::string &user_id, std::int64_t now) override;
  int revoke_all_sessions(std::int64_t now) override;
  void logout(const std::string &session_id, const std::string &access_jti,
              std::int64_t access_expires_at, std::int64_t now) override;
  std::vector<Session> list_sessions(const std::string &user_id) override;

  // One-time tokens
  void insert_one_time_token(const OneTimeToken &token,
                             const OutgoingMail *mail = nullptr) override;
  ConsumeResult consume_one_time_token(const std::string &token_hash, TokenPurpose purpose,
                                       std::int64_t now, std::string *user_id) override;
  ConsumeResult reset_password(const std::string &token_hash, const std::string &new_hash,
                               std::int64_t now, std::string *user_id) override;

  // Signing keys
  std::vector<SigningKeyRow> signing_keys() override;
  std::vector<SigningKeyRow> ensure_signing_key(const SigningKeyRow &first_key) override;
  void rotate_signing_key(const SigningKeyRow &next, std::int64_t now) override;
  void add_standby_key(const SigningKeyRow &next) override;
  bool activate_signing_key(const std::string &kid, std::int64_t now) override;
  int purge_signing_keys(std::int64_t retired_before) override;

  // The change feed: the `changes` table the triggers write (db/postgres.sql); another
  // server's commit is noticed through LISTEN latch_changes on a connection of its own.
  Snapshot snapshot(std::int64_t expired_by) override;
  std::optional<std::vector<Change>> changes_since(std::int64_t position,
                                                   std::size_t limit) override;
  void wait_for_changes(std::chrono::milliseconds timeout) override;

  // The outbox
  void enqueue_mail(const OutgoingMail &mail) override;
  std::optional<QueuedMail> take_mail(std::int64_t now, std::int64_t lease_seconds,
                                      const std::string &fresh_token_hash) override;
  void mail_sent(std::int64_t id) override;
  bool mail_deferred(std::int64_t id, int attempt, std::int64_t next_attempt_at,
                     const std::string &error, std::int64_t now) override;
  bool mail_failed(std::int64_t id, int attempt, const std::string &error,
                   std::int64_t now) override;
  void release_mail(std::int64_t id, int attempt) override;
  std::vector<QueuedMail> drop_undeliverable(std::int64_t now) override;
  std::vector<QueuedMail> list_mail(std::int64_t now) override;
  int retry_mail(std::optional<std::int64_t> id, std::int64_t now) override;
  int drop_mail(std::optional<std::int64_t> id) override;
  MailCounts mail_counts(std::int64_t now) override;

  // The whole database
  void ping() override;
  PurgeCounts purge_expired(std::int64_t now, std::int64_t keys_retired_before) override;

  class Result; // public for the helpers in postgres_store.cpp
  struct Param;

private:
  struct Conn;
  class Lease;
  class Transaction;

  Lease lease();
  std::unique_ptr<Conn> connect();
  void give_back(std::unique_ptr<Conn> conn);
  void migrate();
  void backfill_username_keys();
  void backfill_locked(Conn &c);
  InsertUserResult identity_taken_locked(Conn &c, const User &user);
  InsertUserResult insert_user_row(Conn &c, const User &user);
  std::optional<User> find_user(const char *sql, const std::string &value);
  void insert_session_locked(Conn &c, const Session &session);
  void insert_one_time_token_locked(Conn &c, const OneTimeToken &token);
  void enqueue_mail_locked(Conn &c, const OutgoingMail &mail);
  RotateOutcome rotate_refresh_locked(Conn &c, const Rotation &r);
  int revoke_user_sessions_locked(Conn &c, const std::string &user_id, std::int64_t now);
  std::vector<SigningKeyRow> signing_keys_locked(Conn &c);
  void insert_signing_key_locked(Conn &c, const SigningKeyRow &k);
  ConsumeResult consume_locked(Conn &c, const std::string &token_hash, TokenPurpose purpose,
                               std::int64_t now, std::string *user_id);
  // One statement that writes the feed (or users' identities), in a transaction of its own
  // that holds the feed's lock; returns the rows it changed.
  int write(const char *sql, const std::vector<Param> &params);
  int delete_in_batches(const char *sql, std::int64_t bound);

  static constexpr int kPurgeBatch = 100;
  static constexpr std::int64_t kChangeRetention = 5 * 60;
  static constexpr std::int64_t kFailedMailRetention = 7 * 86400;

  std::string uri_;
  Options options_;
  UsernameRule username_rule_;

  std::mutex pool_mutex_;
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<Conn>> idle_; // connected or not yet
  std::size_t out_ = 0;                     // leased now
  std::set<int> own_pids_;                  // backends of this pool: their NOTIFYs are ours

  std::mutex listen_mutex_;
  pg_conn *listen_ = nullptr; // LISTEN latch_changes
};

} // namespace latch::db
