// Tells the connection loop what a handler's thread is waiting on.
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
class WaitHint {
public:
  enum Kind : std::uint8_t { none = 0, queued = 1 };

  struct Slot {
    std::atomic<std::uint8_t> kind = none;
    std::atomic<std::chrono::steady_clock::rep> since = 0;
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

  // Set by the connection loop for each of its worker threads; null elsewhere.
  static inline thread_local Slot *slot = nullptr;

private:
  std::uint8_t previous_ = none;
};

} // namespace latch
