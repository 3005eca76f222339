// argon2id password hashing (libsodium, PHC strings), with a cap on concurrent hashes.
#pragma once

#include "auth/result.h"

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace latch {

struct PasswordParams {
  std::uint32_t memory_kib = 19456; // OWASP's argon2id default: m=19 MiB, t=2, p=1
  std::uint32_t iterations = 2;
};

namespace detail {

// One hashing slot's argon2 memory, mapped on the slot's first hash and kept for the next ones,
// so a hash does not pay ~4,900 page faults for a fresh 19 MiB block (see password.cpp).
struct HashMemory {
  void *base = nullptr; // nullptr until first used, and again once released for idleness
  std::size_t size = 0; // the most one hash may take: memory_kib KiB, rounded up to pages
  bool in_use = false;  // a thread hashes in this slot (guarded by the hasher's mutex)
  bool lent = false;    // libsodium holds it right now
  std::chrono::steady_clock::time_point last_used;
};

} // namespace detail

class PasswordHasher {
public:
  // At most max_concurrent hashes run at once (each holds memory_kib); up to max_waiting more
  // wait for a slot, and past that callers get ErrorCode::busy instead of queueing forever.
  // A slot keeps its memory between hashes and gives it back after keep_idle_memory unused, so
  // memory stays at most max_concurrent x memory_kib under load and drops to none when idle.
  PasswordHasher(PasswordParams params, unsigned max_concurrent, unsigned max_waiting,
                 std::chrono::milliseconds keep_idle_memory = std::chrono::seconds(5));
  ~PasswordHasher();
  PasswordHasher(const PasswordHasher &) = delete;
  PasswordHasher &operator=(const PasswordHasher &) = delete;

  // may_wait: false when the caller must not wait for a slot (its request is past the
  // connection loop's line): busy at once unless one is free.
  Result<std::string> hash(std::string_view password, bool may_wait = true);

  struct Verdict {
    bool match = false;
    bool needs_rehash = false; // the hash was made with other parameters than ours
  };
  Result<Verdict> verify(const std::string &phc, std::string_view password, bool may_wait = true);

  // Spends one verification's cost against a fixed hash, so an unknown user costs the same
  // time as a wrong password and timing tells nobody which accounts exist.
  Status burn(std::string_view password, bool may_wait = true);

  const PasswordParams &params() const { return params_; }

  // Hashes running now and callers waiting for a slot (for /metrics).
  struct Load {
    unsigned active = 0, waiting = 0;
  };
  Load load();

  // Bytes of argon2 memory the slots hold now, in use or kept for the next hash.
  std::size_t memory_held();

private:
  class Slot;                                 // one hashing slot, held for one call
  detail::HashMemory *acquire(bool may_wait); // nullptr: busy
  void release(detail::HashMemory *slot);
  void release_idle_memory(); // the thread that unmaps memory left unused too long

  PasswordParams params_;
  unsigned max_waiting_;
  std::chrono::milliseconds keep_idle_memory_;
  std::vector<detail::HashMemory> slots_;
  std::vector<detail::HashMemory *> free_slots_; // most recently used last
  unsigned waiting_ = 0;
  bool stopping_ = false;
  std::mutex mutex_;
  std::condition_variable slot_free_;
  std::condition_variable memory_kept_;
  std::thread releaser_; // started with the first memory kept
  std::once_flag dummy_once_;
  std::string dummy_hash_;
};

} // namespace latch
