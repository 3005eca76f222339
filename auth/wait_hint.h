// What a handler's thread and the connection loop tell each other about waiting.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace latch {

// The connection loop (auth/http/event_server.h) starts another worker when the ones it has
// are stuck in handlers, so that ready connections are not kept waiting. A handler in line
// for a password-hashing slot is stuck too, but while the line moves another worker would only
// take the next sign-in and queue behind it: more threads waiting in line cost hashing speed
// and buy nothing. So such a wait says what it is, with a WaitHint(queued): for as long as it
// lives, the slot the loop gave this thread (if any) holds the kind and since when.
//
// The other way: the loop keeps sign-ins beyond what hashing can run aside itself, holding no
// thread, up to the --hash-queue bound. One it runs past that bound must not wait for a slot
// but be refused (503): the loop sets `no_queue` around it, and the hasher reads it.
class WaitHint {
public:
  enum Kind : std::uint8_t { none = 0, queued = 1 };

  struct Slot {
    std::atomic<std::uint8_t> kind = none;
    std::atomic<std::chrono::steady_clock::rep> since = 0;
    bool no_queue = false; // set and read on the worker's own thread only
  };

  explicit WaitHint(Kind kind) {
    if (!slot) return;
    previous_ = slot->kind.load();
    slot->since = std::chrono::steady_clock::now().time_since_epoch().count();
    slot->kind = kind;
  }
  ~WaitHint() {
    if (slot) slot->kind = previous_;
  }
  WaitHint(const WaitHint &) = delete;
  WaitHint &operator=(const WaitHint &) = delete;

  // True when this thread's caller wants "busy" at once rather than a place in line.
  static bool must_not_queue() { return slot && slot->no_queue; }

  // Set by the connection loop for each of its worker threads; null elsewhere.
  static inline thread_local Slot *slot = nullptr;

private:
  std::uint8_t previous_ = none;
};

} // namespace latch
