// Revocation state in memory, the record in the wrapped Store.
#include "db/cached_store.h"

#include <malloc.h>

#include <algorithm>
#include <iterator>

namespace latch::db {

namespace {

std::int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

} // namespace

CachedStore::CachedStore(Store &record) : record_(record) {
  std::lock_guard lock(write_mutex_);
  reload_locked();
}

void CachedStore::reload_locked() {
  // The version first: a commit between it and the reads is seen again at the next look.
  seen_version_ = record_.data_version();
  std::unordered_map<std::string, LiveSession> sessions;
  for (Session &s : record_.unrevoked_sessions())
    sessions.emplace(std::move(s.id), LiveSession{std::move(s.user_id), std::move(s.api),
                                                  std::move(s.refresh_jti), s.created_at,
                                                  s.expires_at});
  std::unordered_map<std::string, std::int64_t> blacklist;
  for (auto &[jti, expires_at] : record_.blacklist()) blacklist.emplace(std::move(jti), expires_at);
  {
    std::unique_lock memory(memory_mutex_);
    sessions_.swap(sessions);
    blacklist_.swap(blacklist);
    users_.clear();
  }
  // The scan above read every session page into SQLite's cache and left the old maps and its
  // rows to free: at start on a database of thousands of sessions, MBs that idle would keep.
  sessions.clear();
  blacklist.clear();
  record_.release_memory();
  malloc_trim(0);
}

void CachedStore::sync() {
  const std::int64_t started = steady_ns();
  const std::int64_t window = std::chrono::nanoseconds(kFreshness).count();
  if (started - checked_at_ns_.load(std::memory_order_acquire) < window) return;
  std::lock_guard lock(write_mutex_);
  if (started - checked_at_ns_.load(std::memory_order_acquire) < window) return; // just looked
  // Any commit before `started` shows in this data_version.
  if (record_.data_version() != seen_version_) reload_locked();
  checked_at_ns_.store(started, std::memory_order_release);
}

void CachedStore::forget_user_locked(const std::string &user_id, bool and_sessions) {
  std::unique_lock memory(memory_mutex_);
  users_.erase(user_id);
  if (!and_sessions) return;
  for (auto it = sessions_.begin(); it != sessions_.end();)
    it = it->second.user_id == user_id ? sessions_.erase(it) : std::next(it);
}

CachedStore::Sizes CachedStore::sizes() {
  std::shared_lock memory(memory_mutex_);
  return {sessions_.size(), blacklist_.size(), users_.size()};
}

// Answered from memory.

std::optional<Session> CachedStore::find_session(const std::string &id) {
  sync();
  std::shared_lock memory(memory_mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt; // unknown, revoked, or its user deleted
  const LiveSession &l = it->second;
  return Session{id, l.user_id, l.api, l.refresh_jti, l.created_at, l.expires_at, false};
}

bool CachedStore::is_blacklisted(const std::string &jti) {
  sync();
  std::shared_lock memory(memory_mutex_);
  return blacklist_.count(jti) != 0;
}

std::optional<User> CachedStore::find_user_by_id(const std::string &id) {
  sync();
  {
    std::shared_lock memory(memory_mutex_);
    if (auto it = users_.find(id); it != users_.end()) return it->second;
  }
  std::lock_guard lock(write_mutex_); // so no change to this user lands between read and store
  auto user = record_.find_user_by_id(id);
  if (user) {
    std::unique_lock memory(memory_mutex_);
    if (users_.size() >= kMaxCachedUsers) users_.clear();
    users_.emplace(id, *user);
  }
  return user;
}

// Writes: the record first, then the memory, both under write_mutex_.

void CachedStore::update_password_hash(const std::string &user_id, const std::string &hash,
                                       std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  record_.update_password_hash(user_id, hash, now);
  forget_user_locked(user_id, false);
}

bool CachedStore::delete_user(const std::string &id) {
  std::lock_guard lock(write_mutex_);
  bool deleted = record_.delete_user(id);
  forget_user_locked(id, true); // its sessions went with it
  return deleted;
}

bool CachedStore::replace_password(const std::string &user_id, const std::string &hash,
                                   std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  bool replaced = record_.replace_password(user_id, hash, now);
  if (replaced) forget_user_locked(user_id, true); // every session revoked
  return replaced;
}

void CachedStore::set_email_verified(const std::string &user_id, std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  record_.set_email_verified(user_id, now);
  forget_user_locked(user_id, false);
}

RenameResult CachedStore::rename_user(const User &user, std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  RenameResult r = record_.rename_user(user, now);
  forget_user_locked(user.id, false); // refreshes name the user by its new username
  return r;
}

ConsumeResult CachedStore::reset_password(const std::string &token_hash,
                                          const std::string &new_hash, std::int64_t now,
                                          std::string *user_id) {
  std::lock_guard lock(write_mutex_);
  std::string who;
  ConsumeResult r = record_.reset_password(token_hash, new_hash, now, &who);
  if (r == ConsumeResult::ok) forget_user_locked(who, true); // every session revoked
  if (user_id) *user_id = who;
  return r;
}

void CachedStore::insert_session(const Session &s) {
  std::lock_guard lock(write_mutex_);
  record_.insert_session(s);
  std::unique_lock memory(memory_mutex_);
  sessions_.insert_or_assign(s.id,
                             LiveSession{s.user_id, s.api, s.refresh_jti, s.created_at, s.expires_at});
}

RotateResult CachedStore::rotate_refresh(const std::string &session_id, const std::string &user_id,
                                         const std::string &old_jti, const std::string &new_jti,
                                         std::int64_t new_expires_at, std::int64_t now) {
  PendingRotation mine{Rotation{session_id, user_id, old_jti, new_jti, new_expires_at, now}, {}, {}, false};
  std::unique_lock queue(rotation_mutex_);
  rotation_queue_.push_back(&mine);
  while (!mine.done) {
    if (rotation_running_) {
      rotation_done_.wait(queue);
      continue;
    }
    // No batch is running: this caller commits what is queued, its own rotation included.
    // Those that queue meanwhile form the next batch.
    rotation_running_ = true;
    std::vector<PendingRotation *> batch;
    batch.swap(rotation_queue_);
    queue.unlock();
    std::vector<Rotation> rotations;
    rotations.reserve(batch.size());
    for (PendingRotation *p : batch) rotations.push_back(p->rotation);
    try {
      std::vector<RotateResult> results = rotate_refresh_batch(rotations);
      for (std::size_t i = 0; i < batch.size(); ++i) batch[i]->result = results.at(i);
    } catch (const std::exception &e) {
      for (PendingRotation *p : batch) p->error = e.what();
    }
    queue.lock();
    for (PendingRotation *p : batch) p->done = true;
    rotation_running_ = false;
    rotation_done_.notify_all();
  }
  if (mine.error) throw StoreError(*mine.error);
  return mine.result;
}

std::vector<RotateResult> CachedStore::rotate_refresh_batch(const std::vector<Rotation> &batch) {
  std::lock_guard lock(write_mutex_);
  std::vector<RotateResult> results = record_.rotate_refresh_batch(batch);
  std::unique_lock memory(memory_mutex_);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    auto it = sessions_.find(batch[i].session_id);
    if (it == sessions_.end()) continue;
    if (results.at(i) != RotateResult::rotated) {
      sessions_.erase(it); // reuse revoked it, or it is gone
    } else {
      it->second.refresh_jti = batch[i].new_jti;
      it->second.expires_at = std::max(it->second.expires_at, batch[i].new_expires_at);
    }
  }
  return results;
}

void CachedStore::revoke_session(const std::string &session_id, std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  record_.revoke_session(session_id, now);
  std::unique_lock memory(memory_mutex_);
  sessions_.erase(session_id);
}

int CachedStore::revoke_user_sessions(const std::string &user_id, std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  int n = record_.revoke_user_sessions(user_id, now);
  forget_user_locked(user_id, true);
  return n;
}

void CachedStore::logout(const std::string &session_id, const std::string &access_jti,
                         std::int64_t access_expires_at, std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  record_.logout(session_id, access_jti, access_expires_at, now);
  std::unique_lock memory(memory_mutex_);
  sessions_.erase(session_id);
  blacklist_.emplace(access_jti, access_expires_at);
}

PurgeCounts CachedStore::purge_expired(std::int64_t now) {
  std::lock_guard lock(write_mutex_);
  PurgeCounts c = record_.purge_expired(now);
  // The same rule as the record's: gone once expires_at <= now.
  std::unique_lock memory(memory_mutex_);
  std::erase_if(sessions_, [now](const auto &entry) { return entry.second.expires_at <= now; });
  std::erase_if(blacklist_, [now](const auto &entry) { return entry.second <= now; });
  return c;
}

// Passed through to the record.

std::optional<std::string> CachedStore::get_setting(const std::string &key) {
  return record_.get_setting(key);
}
std::string CachedStore::put_setting_if_absent(const std::string &key, const std::string &value) {
  return record_.put_setting_if_absent(key, value);
}
InsertUserResult CachedStore::insert_user(const User &user) { return record_.insert_user(user); }
std::optional<User> CachedStore::find_user_by_email(const std::string &email_lower) {
  return record_.find_user_by_email(email_lower);
}
std::optional<User> CachedStore::find_user_by_username(const std::string &username) {
  return record_.find_user_by_username(username);
}
std::optional<User> CachedStore::find_user_by_username_key(const std::string &key) {
  return record_.find_user_by_username_key(key);
}
InsertUserResult CachedStore::identity_taken(const User &user) {
  return record_.identity_taken(user);
}
std::vector<User> CachedStore::list_users() { return record_.list_users(); }
std::vector<Session> CachedStore::list_sessions(const std::string &user_id) {
  return record_.list_sessions(user_id);
}
std::int64_t CachedStore::count_active_sessions(std::int64_t now) {
  return record_.count_active_sessions(now);
}
std::vector<Session> CachedStore::unrevoked_sessions() { return record_.unrevoked_sessions(); }
std::vector<std::pair<std::string, std::int64_t>> CachedStore::blacklist() {
  return record_.blacklist();
}
void CachedStore::insert_one_time_token(const std::string &token_hash, const std::string &user_id,
                                        TokenPurpose purpose, std::int64_t expires_at) {
  record_.insert_one_time_token(token_hash, user_id, purpose, expires_at);
}
ConsumeResult CachedStore::consume_one_time_token(const std::string &token_hash,
                                                  TokenPurpose purpose, std::int64_t now,
                                                  std::string *user_id) {
  return record_.consume_one_time_token(token_hash, purpose, now, user_id);
}
std::vector<SigningKeyRow> CachedStore::signing_keys() { return record_.signing_keys(); }
std::vector<SigningKeyRow> CachedStore::ensure_signing_key(const SigningKeyRow &first_key) {
  return record_.ensure_signing_key(first_key);
}
void CachedStore::rotate_signing_key(const SigningKeyRow &next, std::int64_t now) {
  record_.rotate_signing_key(next, now);
}
int CachedStore::purge_signing_keys(std::int64_t retired_before) {
  return record_.purge_signing_keys(retired_before);
}
std::int64_t CachedStore::data_version() { return record_.data_version(); }

} // namespace latch::db
