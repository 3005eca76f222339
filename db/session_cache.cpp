// Revocation state in memory, following the change feed.
#include "db/session_cache.h"

#include <malloc.h>

#include <iostream>

namespace latch::db {

SessionCache::SessionCache(ChangeFeed &feed, Users &users, std::function<std::int64_t()> expired_by)
    : feed_(feed), users_store_(users), expired_by_(std::move(expired_by)) {
  std::lock_guard lock(follow_mutex_);
  load(feed_.snapshot(expired_by_ ? expired_by_() : 0));
}

SessionCache::~SessionCache() {
  {
    std::lock_guard lock(stop_mutex_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (follower_.joinable()) follower_.join();
}

const std::string *SessionCache::api_name(const std::string &api) {
  std::lock_guard lock(api_names_mutex_);
  return &*api_names_.insert(api).first;
}

void SessionCache::load(ChangeFeed::Snapshot snapshot) {
  SessionMap sessions;
  sessions.reserve(snapshot.sessions.size());
  for (Session &s : snapshot.sessions)
    sessions.emplace(std::move(s.id),
                     LiveSession{std::move(s.user_id), api_name(s.api), std::move(s.refresh_jti),
                                 s.created_at, s.expires_at});
  Blacklist blacklist;
  for (auto &[jti, expires_at] : snapshot.blacklist)
    blacklist.emplace(std::move(jti), expires_at);
  Expiries expiries;
  for (const auto &[id, s] : sessions)
    ++expiries[s.expires_at];
  const std::int64_t position = snapshot.position;
  snapshot = {};
  {
    std::unique_lock memory(memory_mutex_);
    sessions_.swap(sessions);
    blacklist_.swap(blacklist);
    expiries_.swap(expiries);
    users_.clear();
    ++users_generation_;
  }
  position_ = position;
  ++loads_;
  // The scan read every session page into the engine's cache and left the old maps to free:
  // on a database of thousands of sessions, MBs that idle would keep.
  sessions.clear();
  blacklist.clear();
  malloc_trim(0);
}

void SessionCache::follow(std::function<void()> on_signing_keys) {
  on_signing_keys_ = std::move(on_signing_keys);
  follower_ = std::thread([this] {
    for (;;) {
      {
        std::lock_guard lock(stop_mutex_);
        if (stopping_) return;
      }
      // A hint that another writer committed, or a second: a missed hint costs a second at most.
      feed_.wait_for_changes(std::chrono::seconds(1));
      try {
        // The hint can come before the commit it announces is visible (the file is written
        // before the commit is marked done): look again shortly after.
        catch_up();
        for (int ms : {1, 4}) {
          std::this_thread::sleep_for(std::chrono::milliseconds(ms));
          catch_up();
        }
      } catch (const std::exception &e) {
        std::cerr << "latch: cannot follow the database's changes: " << e.what() << "\n";
        std::unique_lock lock(stop_mutex_);
        stop_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stopping_; });
      }
    }
  });
}

void SessionCache::catch_up() {
  bool keys_changed = false;
  {
    std::lock_guard lock(follow_mutex_);
    for (;;) {
      auto changes = feed_.changes_since(position_, kBatch);
      if (!changes) {
        // The feed no longer reaches back to this position: everything again, built aside while
        // checks go on against the old state.
        load(feed_.snapshot(expired_by_ ? expired_by_() : 0));
        keys_changed = true;
        continue;
      }
      if (changes->empty()) break;
      keys_changed = apply(*changes) || keys_changed;
      position_ = changes->back().position;
      if (changes->size() < kBatch) break;
    }
  }
  if (keys_changed && on_signing_keys_) on_signing_keys_();
}

bool SessionCache::rotated(const std::vector<Rotation> &batch, const RotatedBatch &done) {
  if (apply_rotations(batch, done)) return true;
  catch_up();
  return false;
}

bool SessionCache::apply_rotations(const std::vector<Rotation> &batch, const RotatedBatch &done) {
  if (done.feed_to <= done.feed_from || done.outcomes.size() != batch.size()) return false;
  std::lock_guard lock(follow_mutex_);
  if (position_ != done.feed_from) return false;
  std::unique_lock memory(memory_mutex_);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const RotateResult r = done.outcomes[i].result;
    if ((r == RotateResult::rotated || r == RotateResult::replayed) &&
        !sessions_.count(batch[i].session_id))
      return false;
  }
  // What each outcome wrote (SqliteStore::rotate_refresh_locked): rotated and replayed keep
  // the session, its refresh token the outcome's and its expiry pushed out to the new one;
  // reused revoked it; gone wrote nothing.
  for (std::size_t i = 0; i < batch.size(); ++i) {
    const Rotation &rotation = batch[i];
    const RotateOutcome &outcome = done.outcomes[i];
    switch (outcome.result) {
    case RotateResult::rotated:
    case RotateResult::replayed: {
      LiveSession &s = sessions_.at(rotation.session_id);
      s.refresh_jti = outcome.refresh_jti;
      if (rotation.new_expires_at > s.expires_at) {
        forget_expiry(s.expires_at);
        s.expires_at = rotation.new_expires_at;
        ++expiries_[s.expires_at];
      }
      break;
    }
    case RotateResult::reused:
      if (auto it = sessions_.find(rotation.session_id); it != sessions_.end()) {
        forget_expiry(it->second.expires_at);
        sessions_.erase(it);
      }
      break;
    case RotateResult::gone: break;
    }
  }
  changes_ += static_cast<std::uint64_t>(done.feed_to - done.feed_from);
  position_ = done.feed_to;
  return true;
}

bool SessionCache::apply(const std::vector<ChangeFeed::Change> &changes) {
  using Kind = ChangeFeed::Change::Kind;
  bool keys_changed = false;
  std::unique_lock memory(memory_mutex_);
  changes_ += changes.size();
  for (const auto &c : changes) {
    switch (c.kind) {
    case Kind::session: {
      auto it = sessions_.find(c.key);
      if (it != sessions_.end()) {
        forget_expiry(it->second.expires_at);
        sessions_.erase(it);
      }
      if (c.session) { // else revoked, deleted, or its user gone
        ++expiries_[c.session->expires_at];
        sessions_.emplace(c.key, LiveSession{c.session->user_id, api_name(c.session->api),
                                             c.session->refresh_jti, c.session->created_at,
                                             c.session->expires_at});
      }
      break;
    }
    case Kind::blacklist:
      if (c.blacklisted_until) blacklist_.insert_or_assign(c.key, *c.blacklisted_until);
      break;
    case Kind::user:
      users_.erase(c.key);
      ++users_generation_;
      // A deleted user's sessions die with it, whether or not their rows went too (a tool
      // with foreign keys off leaves them behind).
      if (!c.user_exists)
        std::erase_if(sessions_, [&](const auto &entry) {
          if (entry.second.user_id != c.key) return false;
          forget_expiry(entry.second.expires_at);
          return true;
        });
      break;
    case Kind::signing_keys: keys_changed = true; break;
    }
  }
  return keys_changed;
}

std::optional<Session> SessionCache::find_session(const std::string &id) const {
  std::shared_lock memory(memory_mutex_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) return std::nullopt; // unknown, revoked, or its user deleted
  const LiveSession &l = it->second;
  return Session{id, l.user_id, *l.api, l.refresh_jti, l.created_at, l.expires_at, false};
}

bool SessionCache::is_blacklisted(const std::string &jti) const {
  std::shared_lock memory(memory_mutex_);
  return blacklist_.count(jti) != 0;
}

std::optional<User> SessionCache::find_user(const std::string &id) {
  std::uint64_t generation;
  {
    std::shared_lock memory(memory_mutex_);
    if (auto it = users_.find(id); it != users_.end()) return it->second;
    generation = users_generation_;
  }
  auto user = users_store_.find_user_by_id(id); // no lock held meanwhile
  if (user) {
    std::unique_lock memory(memory_mutex_);
    // Kept only if no user changed meanwhile: a stale row is never cached.
    if (users_generation_ == generation) {
      if (users_.size() >= kMaxCachedUsers) users_.clear();
      users_.emplace(id, *user);
    }
  }
  return user;
}

void SessionCache::drop_expired(std::int64_t now) {
  std::unique_lock memory(memory_mutex_);
  // The same rule as the purge's: gone once expires_at <= now.
  std::erase_if(sessions_, [now](const auto &entry) { return entry.second.expires_at <= now; });
  expiries_.erase(expiries_.begin(), expiries_.upper_bound(now));
  std::erase_if(blacklist_, [now](const auto &entry) { return entry.second <= now; });
}

SessionCache::Sizes SessionCache::sizes() const {
  std::shared_lock memory(memory_mutex_);
  return {sessions_.size(), blacklist_.size(), users_.size()};
}

std::int64_t SessionCache::active_sessions(std::int64_t now) const {
  std::shared_lock memory(memory_mutex_);
  // All of them but those expired since the last drop_expired: a few buckets, not a scan.
  std::int64_t n = static_cast<std::int64_t>(sessions_.size());
  for (auto it = expiries_.begin(); it != expiries_.end() && it->first <= now; ++it)
    n -= it->second;
  return n;
}

void SessionCache::forget_expiry(std::int64_t expires_at) {
  auto it = expiries_.find(expires_at);
  if (it != expiries_.end() && --it->second == 0) expiries_.erase(it);
}

} // namespace latch::db
