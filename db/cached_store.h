// The server's Store: another Store (SQLite) stays the record, and what every token check
// asks (is the session live, is the access token blacklisted) is answered from memory, so a
// token check touches no database.
//
// The memory is loaded at construction and changed by every write made through this class,
// after the record has committed. Writes by other processes (the admin commands) are noticed
// through the record's data_version: a request that starts more than kFreshness after such a
// commit sees it, because the first check after that window asks the record and reloads.
#pragma once

#include "db/store.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>

namespace latch::db {

class CachedStore final : public Store {
public:
  // How stale the memory may be about other processes' writes.
  static constexpr std::chrono::milliseconds kFreshness{1};
  // Users kept for refresh (the token check needs none); past this many the cache starts over.
  static constexpr std::size_t kMaxCachedUsers = 1024;

  // Loads the sessions and the blacklist from record. Throws StoreError.
  explicit CachedStore(Store &record);

  // Sessions and blacklist entries held in memory (for tests and /metrics).
  struct Sizes {
    std::size_t sessions = 0, blacklist = 0, users = 0;
  };
  Sizes sizes();

  std::optional<std::string> get_setting(const std::string &key) override;
  std::string put_setting_if_absent(const std::string &key, const std::string &value) override;

  InsertUserResult insert_user(const User &user) override;
  std::optional<User> find_user_by_id(const std::string &id) override;
  std::optional<User> find_user_by_email(const std::string &email_lower) override;
  std::optional<User> find_user_by_username(const std::string &username) override;
  std::optional<User> find_user_by_username_key(const std::string &key) override;
  InsertUserResult identity_taken(const User &user) override;
  RenameResult rename_user(const User &user, std::int64_t now) override;
  void update_password_hash(const std::string &user_id, const std::string &hash,
                            std::int64_t now) override;
  std::vector<User> list_users() override;
  bool delete_user(const std::string &id) override;
  bool replace_password(const std::string &user_id, const std::string &hash,
                        std::int64_t now) override;

  void insert_session(const Session &session) override;
  std::optional<Session> find_session(const std::string &id) override;
  // Group commit: a rotation waits in a queue; the first caller to find no batch running
  // commits every queued rotation in one transaction (rotate_refresh_batch) and updates the
  // memory, and each caller returns only after the commit that holds its rotation.
  RotateResult rotate_refresh(const std::string &session_id, const std::string &user_id,
                              const std::string &old_jti, const std::string &new_jti,
                              std::int64_t new_expires_at, std::int64_t now) override;
  std::vector<RotateResult> rotate_refresh_batch(const std::vector<Rotation> &batch) override;
  void revoke_session(const std::string &session_id, std::int64_t now) override;
  std::vector<Session> list_sessions(const std::string &user_id) override;
  std::int64_t count_active_sessions(std::int64_t now) override;
  int revoke_user_sessions(const std::string &user_id, std::int64_t now) override;
  void logout(const std::string &session_id, const std::string &access_jti,
              std::int64_t access_expires_at, std::int64_t now) override;
  bool is_blacklisted(const std::string &jti) override;
  std::vector<Session> unrevoked_sessions() override;
  std::vector<std::pair<std::string, std::int64_t>> blacklist() override;

  void insert_one_time_token(const std::string &token_hash, const std::string &user_id,
                             TokenPurpose purpose, std::int64_t expires_at) override;
  ConsumeResult consume_one_time_token(const std::string &token_hash, TokenPurpose purpose,
                                       std::int64_t now, std::string *user_id) override;
  ConsumeResult reset_password(const std::string &token_hash, const std::string &new_hash,
                               std::int64_t now, std::string *user_id) override;
  void set_email_verified(const std::string &user_id, std::int64_t now) override;

  PurgeCounts purge_expired(std::int64_t now) override;

  std::vector<SigningKeyRow> signing_keys() override;
  std::vector<SigningKeyRow> ensure_signing_key(const SigningKeyRow &first_key) override;
  void rotate_signing_key(const SigningKeyRow &next, std::int64_t now) override;
  int purge_signing_keys(std::int64_t retired_before) override;
  std::int64_t data_version() override;

private:
  // What a token check needs of a session.
  struct LiveSession {
    std::string user_id;
    std::string api;
    std::string refresh_jti;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;
  };

  // Reloads from the record if another process committed since the last look, unless that
  // look is younger than kFreshness.
  void sync();
  // With write_mutex_ held: reads the record and replaces the memory.
  void reload_locked();
  void forget_user_locked(const std::string &user_id, bool and_sessions);

  Store &record_;
  // Held across "write the record, then change the memory" and across a reload, so a reload
  // never drops a change made in between. Writes are serialised by the record anyway.
  std::mutex write_mutex_;
  std::int64_t seen_version_ = 0;                   // guarded by write_mutex_
  std::atomic<std::int64_t> checked_at_ns_{0};      // steady clock of the last look
  std::shared_mutex memory_mutex_;                  // readers: token checks
  std::unordered_map<std::string, LiveSession> sessions_;
  std::unordered_map<std::string, std::int64_t> blacklist_; // jti -> expires_at
  std::unordered_map<std::string, User> users_;

  // Rotations waiting for, or in, a group commit.
  struct PendingRotation {
    Rotation rotation;
    RotateResult result = RotateResult::gone;
    std::optional<std::string> error; // the batch failed: none of it was committed
    bool done = false;
  };
  std::mutex rotation_mutex_; // guards the three below
  std::condition_variable rotation_done_;
  std::vector<PendingRotation *> rotation_queue_;
  bool rotation_running_ = false;
};

} // namespace latch::db
