// argon2id password hashing (libsodium, PHC strings), with a cap on concurrent hashes.
#pragma once

#include "auth/result.h"

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace latch {

struct PasswordParams {
  std::uint32_t memory_kib = 19456; // OWASP's argon2id default: m=19 MiB, t=2, p=1
  std::uint32_t iterations = 2;
};

class PasswordHasher {
public:
  // At most max_concurrent hashes run at once (each holds memory_kib); up to max_waiting more
  // wait for a slot, and past that callers get ErrorCode::busy instead of queueing forever.
  PasswordHasher(PasswordParams params, unsigned max_concurrent, unsigned max_waiting);

  Result<std::string> hash(std::string_view password);

  struct Verdict {
    bool match = false;
    bool needs_rehash = false; // the hash was made with other parameters than ours
  };
  Result<Verdict> verify(const std::string &phc, std::string_view password);

  // Spends one verification's cost against a fixed hash, so an unknown user costs the same
  // time as a wrong password and timing tells nobody which accounts exist.
  Status burn(std::string_view password);

  const PasswordParams &params() const { return params_; }

  // Hashes running now and callers waiting for a slot (for /metrics).
  struct Load {
    unsigned active = 0, waiting = 0;
  };
  Load load();

private:
  bool acquire();
  void release();

  PasswordParams params_;
  unsigned max_concurrent_;
  unsigned max_waiting_;
  unsigned active_ = 0;
  unsigned waiting_ = 0;
  std::mutex mutex_;
  std::condition_variable slot_free_;
  std::once_flag dummy_once_;
  std::string dummy_hash_;
};

} // namespace latch
