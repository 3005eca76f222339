// In-memory throttles: requests per client address, and failed sign-ins per account.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace latch {

// A fixed window of `limit` hits per `window` seconds per key; 0 turns it off.
class WindowCounter {
public:
  WindowCounter(int limit, std::int64_t window) : limit_(limit), window_(window) {}

  // Counts a hit; returns 0 if allowed, or the seconds until the key may try again.
  int hit(const std::string &key, std::int64_t now);
  // How long the key must still wait, without counting a hit (0: not blocked).
  int blocked_for(const std::string &key, std::int64_t now);
  void clear(const std::string &key);
  // Drops windows that have ended, so the map does not grow without bound.
  void prune(std::int64_t now);
  bool enabled() const { return limit_ > 0; }

private:
  struct Window {
    std::int64_t start = 0;
    int count = 0;
  };
  int limit_;
  std::int64_t window_;
  std::mutex mutex_;
  std::unordered_map<std::string, Window> windows_;
};

} // namespace latch
