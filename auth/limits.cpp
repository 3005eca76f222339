// Fixed-window counters for rate limits and account lockout.
#include "auth/limits.h"

namespace latch {

int WindowCounter::hit(const std::string &key, std::int64_t now) {
  if (limit_ <= 0) return 0;
  std::lock_guard lock(mutex_);
  auto [it, fresh] = windows_.try_emplace(key);
  Window &w = it->second;
  if (fresh || now - w.start >= window_) w = Window{now, 0}; // a window starts at its first hit
  if (w.count >= limit_) return static_cast<int>(w.start + window_ - now);
  ++w.count;
  return 0;
}

int WindowCounter::blocked_for(const std::string &key, std::int64_t now) {
  if (limit_ <= 0) return 0;
  std::lock_guard lock(mutex_);
  auto it = windows_.find(key);
  if (it == windows_.end() || now - it->second.start >= window_ || it->second.count < limit_)
    return 0;
  return static_cast<int>(it->second.start + window_ - now);
}

void WindowCounter::clear(const std::string &key) {
  std::lock_guard lock(mutex_);
  windows_.erase(key);
}

void WindowCounter::prune(std::int64_t now) {
  std::lock_guard lock(mutex_);
  for (auto it = windows_.begin(); it != windows_.end();)
    it = now - it->second.start >= window_ ? windows_.erase(it) : std::next(it);
}

} // namespace latch
