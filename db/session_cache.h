// What token checks ask, answered from memory: live sessions, the blacklist, users by id.
#pragma once

#include "db/store.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace latch::db {

// The server's memory of revocation, so a token check touches no database: every session that
// is neither revoked nor its user deleted (with its current refresh token), every blacklisted
// access-token id, and the users refresh asks for. Loaded from the feed's snapshot, then kept by
// following the ChangeFeed from its position:
// - follow() starts a thread that waits for the engine's hint (another process committed) or a
//   second, and applies what changed since; a change anywhere (this process, an admin command,
//   another server on the database) is applied here within milliseconds, row by row: nothing is
//   reloaded whole, unless the reader fell behind the feed's retention, and then the new state
//   is built aside and swapped in while checks go on against the old;
// - catch_up() applies the same at once; this process calls it after each of its own writes,
//   so that the next request sees the write.
// A token check takes only the memory's shared lock, which is never held across database I/O:
// reads of the feed happen before the lock is taken for the (in-memory) apply.
class SessionCache {
public:
  // Users kept for refresh (the token check needs none); past this many the cache starts over.
  static constexpr std::size_t kMaxCachedUsers = 1024;
  // Changes read at a time.
  static constexpr std::size_t kBatch = 4096;

  // Loads the snapshot, without what expired by expired_by() (unix seconds; none given: keeps
  // all): a server started on a million sessions that expired in its downtime holds none of
  // them. Throws StoreError.
  SessionCache(ChangeFeed &feed, Users &users, std::function<std::int64_t()> expired_by = {});
  ~SessionCache();
  SessionCache(const SessionCache &) = delete;
  SessionCache &operator=(const SessionCache &) = delete;

  // Follows the feed on a thread of its own until destruction; on_signing_keys runs on it after
  // a change of the signing keys.
  void follow(std::function<void()> on_signing_keys = {});

  // A live session (not revoked, its user not deleted), or none.
  std::optional<Session> find_session(const std::string &id) const;
  bool is_blacklisted(const std::string &jti) const;
  // The user, from memory or else the database (kept while no change names it). Throws
  // StoreError.
  std::optional<User> find_user(const std::string &id);

  // Applies every change committed before this call. Throws StoreError.
  void catch_up();
  // Takes in this process's own batch of rotations once committed (RotationGroupCommit's
  // after_commit). As Sessions::rotate_refresh reported it, without reading the feed back, when
  // memory stands at the batch's feed_from (nothing else was committed in between, so memory
  // agrees with the database up to the batch) and holds every session the batch kept; else by
  // catch_up(). Returns true for the first way. Throws StoreError (from catch_up).
  bool rotated(const std::vector<Rotation> &batch, const RotatedBatch &done);
  // Forgets sessions and blacklist entries that have expired by `now`, as the purge deletes
  // their rows (which the feed does not report).
  void drop_expired(std::int64_t now);

  struct Sizes {
    std::size_t sessions = 0, blacklist = 0, users = 0;
  };
  Sizes sizes() const;
  // Sessions in memory not expired at `now` (GET /metrics), kept as they change: no scan.
  std::int64_t active_sessions(std::int64_t now) const;
  // Whole states built (1 at start; more only if the reader fell behind the feed's retention)
  // and changes applied one by one since (GET /metrics).
  struct Counts {
    std::uint64_t loads = 0, changes = 0;
  };
  Counts counts() const { return {loads_.load(), changes_.load()}; }

private:
  // What a token check needs of a session.
  struct LiveSession {
    std::string user_id;
    const std::string *api = nullptr; // interned (api_name): five names, not a string each
    std::string refresh_jti;
    std::int64_t created_at = 0;
    std::int64_t expires_at = 0;
  };
  using SessionMap = std::unordered_map<std::string, LiveSession>;
  using Blacklist = std::unordered_map<std::string, std::int64_t>; // jti -> expires_at
  using Expiries = std::map<std::int64_t, std::int64_t>; // expires_at -> sessions, for counts

  void load(ChangeFeed::Snapshot snapshot);                   // swaps in a whole new state
  bool apply(const std::vector<ChangeFeed::Change> &changes); // true: signing keys changed
  bool apply_rotations(const std::vector<Rotation> &batch, const RotatedBatch &done);
  void forget_expiry(std::int64_t expires_at);         // memory_mutex_ held
  const std::string *api_name(const std::string &api); // the one copy of that name

  ChangeFeed &feed_;
  Users &users_store_;
  std::function<std::int64_t()> expired_by_;
  // The API names sessions carry, each kept once; entries are never removed, so a pointer to
  // one stays valid for the cache's life.
  std::mutex api_names_mutex_;
  std::unordered_set<std::string> api_names_;

  // Held while reading the feed and applying it (writers' catch_up and the follower), never by
  // a token check.
  std::mutex follow_mutex_;
  std::int64_t position_ = 0; // guarded by follow_mutex_

  mutable std::shared_mutex memory_mutex_; // readers: token checks
  SessionMap sessions_;
  Blacklist blacklist_;
  Expiries expiries_;
  std::unordered_map<std::string, User> users_;
  std::uint64_t users_generation_ = 0; // changes when a user may have changed

  std::atomic<std::uint64_t> loads_{0}, changes_{0};
  std::function<void()> on_signing_keys_;
  std::mutex stop_mutex_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  std::thread follower_;
};

} // namespace latch::db
