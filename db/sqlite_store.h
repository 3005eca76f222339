// SQLite engine of db::Store: one connection, WAL, prepared statements cached per SQL text.
#pragma once

#include "db/store.h"

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <string>

struct sqlite3;
struct sqlite3_stmt;

namespace latch::db {

// A username that breaks the look-alike rule, in a row made before it (auth.db.sql migration 3).
struct UsernameConflict {
  std::string id, username;             // the newer of the pair, or the refused name
  std::string other_id, other_username; // the older look-alike; empty: the name itself is refused
  bool keyless = false;                 // signs in by its exact username only
};

class SqliteStore final : public Store {
public:
  enum class Open {
    create,    // latch serve: creates the file (mode 0600) if there is none, and migrates it
    existing,  // the file must exist and hold a Latch schema (refused before anything is
               // written: an empty or foreign database is not Latch's); migrates it
    read_only, // the same, opened SQLITE_OPEN_READONLY: never creates, migrates or writes
  };
  // When a commit is on disk (PRAGMA synchronous, with WAL). normal: the -wal is fsynced at
  // checkpoints only, so a commit survives a crash of the process but the last ones may be lost
  // at a power cut or OS crash (never half-applied); full: an fsync at every commit, so a commit
  // survives those too. Read-only connections write nothing and ignore it.
  enum class Sync { normal, full };
  // Opens the database at path as mode says; unless read-only, gives the rows that lack one
  // their username key by `rule` (backfill_username_keys; none without a rule). Throws
  // StoreError.
  explicit SqliteStore(const std::string &path, Open mode = Open::create, UsernameRule rule = {},
                       Sync sync = Sync::normal);
  ~SqliteStore() override;
  SqliteStore(const SqliteStore &) = delete;
  SqliteStore &operator=(const SqliteStore &) = delete;

  int schema_version();
  // PRAGMA synchronous as this store's connection has it: 1 NORMAL, 2 FULL.
  int synchronous();
  std::string integrity_check();
  // The last migration in auth.db.sql: the schema version this binary writes.
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
  // Look-alike pairs (one skeleton) and usernames the rule refuses, oldest first; the server
  // reports them at every start until latch user rename resolves them.
  std::vector<UsernameConflict> username_conflicts();

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

  // The change feed: the `changes` table the triggers of migration 4 write; another process's
  // commit is noticed through inotify on the -wal file.
  Snapshot snapshot(std::int64_t expired_by) override;
  std::optional<std::vector<Change>> changes_since(std::int64_t position,
                                                   std::size_t limit) override;
  void wait_for_changes(std::chrono::milliseconds timeout) override;

  // The outbox (migration 5)
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
  // Each kind of row in transactions of at most kPurgeBatch rows, so a purge of a million expired
  // sessions never holds the write lock for more than a few milliseconds.
  PurgeCounts purge_expired(std::int64_t now, std::int64_t keys_retired_before) override;
  void release_memory() override;
  // A passive checkpoint once the -wal file has been quiet for a second after changing (so the
  // main file alone holds every commit: copying it, or losing the -wal, loses nothing), and the
  // check that the file at the path is still the one open (device and inode): if it was
  // deleted or replaced, writes would go to a file nobody will read again, so this and ping()
  // throw StoreError saying so.
  void maintain() override;

  // Copies the whole database to a new file at path with SQLite's online backup API: one
  // consistent snapshot, taken while other connections keep reading and writing. The copy is
  // written to a temporary file (mode 0600) beside path and then moved into place, so path
  // never holds half a backup. Unless overwrite, an existing path is left alone and false is
  // returned. Throws StoreError.
  bool backup(const std::string &path, bool overwrite);

private:
  class Statement;
  class Transaction;
  Statement statement(const char *sql);
  void exec(const char *sql);
  void migrate();
  bool has_latch_schema();
  // Fills username_key and username_skeleton where they are NULL (rows from before migration
  // 3; SQLite cannot run ICU), oldest first, in one transaction; a row whose key an older row
  // holds gets only its skeleton.
  void backfill_username_keys();
  void backfill_locked();
  InsertUserResult identity_taken_locked(const User &user);
  InsertUserResult insert_user_row(const User &user); // or which UNIQUE constraint refused it
  static User read_user(const Statement &st);
  static Session read_session(const Statement &st);
  std::optional<User> find_user(const char *sql, const std::string &value);
  void insert_session_locked(const Session &session);
  void insert_one_time_token_locked(const OneTimeToken &token);
  void enqueue_mail_locked(const OutgoingMail &mail);
  static QueuedMail read_mail(const Statement &st, std::int64_t now);
  int delete_in_batches(const char *select_then_delete, std::int64_t bound);
  std::string replaced_message() const;
  void revoke_session_locked(const std::string &session_id, std::int64_t now);
  RotateOutcome rotate_refresh_locked(const Rotation &r);
  int revoke_user_sessions_locked(const std::string &user_id, std::int64_t now);
  std::vector<SigningKeyRow> signing_keys_locked();
  void insert_signing_key_locked(const SigningKeyRow &k);
  ConsumeResult consume_locked(const std::string &token_hash, TokenPurpose purpose,
                               std::int64_t now, std::string *user_id);

  static constexpr int kPurgeBatch = 100;
  static constexpr std::int64_t kChangeRetention = 5 * 60;        // seconds the change feed keeps
  static constexpr std::int64_t kFailedMailRetention = 7 * 86400; // seconds a failed mail stays

  std::string path_;
  UsernameRule username_rule_;
  bool read_only_ = false;
  sqlite3 *db_ = nullptr;
  std::mutex mutex_; // one connection, so every call holds it
  std::map<const char *, sqlite3_stmt *> cache_;
  std::mutex probe_mutex_;
  sqlite3 *probe_ = nullptr; // ping()'s own connection
  std::once_flag inotify_once_;
  int inotify_fd_ = -1;
  std::int64_t others_seen_ = -1; // PRAGMA data_version when wait_for_changes last returned
  std::int64_t data_version();    // changes only when another connection commits
  // maintain()'s state: the file opened, and the -wal as last seen and last checkpointed.
  std::uint64_t device_ = 0, inode_ = 0;
  std::atomic<bool> replaced_ = false;
  struct WalSeen {
    long long size = -1, mtime_ns = -1;
    std::chrono::steady_clock::time_point since{};
  } wal_seen_, wal_checkpointed_;
};

} // namespace latch::db
