// argon2id password hashing through libsodium's crypto_pwhash (PHC string format).
#include "auth/password.h"

#include <sodium.h>

#include <chrono>
#include <functional>
#include <stdexcept>

namespace latch {

namespace {

struct SodiumInit {
  SodiumInit() {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  }
};

unsigned long long memlimit_bytes(const PasswordParams &p) {
  return static_cast<unsigned long long>(p.memory_kib) * 1024ULL;
}

// Releases a hashing slot on every path out of a hash.
struct SlotGuard {
  std::function<void()> release;
  ~SlotGuard() { release(); }
};

} // namespace

PasswordHasher::PasswordHasher(PasswordParams params, unsigned max_concurrent,
                               unsigned max_waiting)
    : params_(params), max_concurrent_(max_concurrent ? max_concurrent : 1),
      max_waiting_(max_waiting) {
  static SodiumInit init;
}

bool PasswordHasher::acquire() {
  std::unique_lock lock(mutex_);
  if (active_ < max_concurrent_) {
    ++active_;
    return true;
  }
  if (waiting_ >= max_waiting_) return false;
  ++waiting_;
  bool got = slot_free_.wait_for(lock, std::chrono::seconds(30),
                                 [&] { return active_ < max_concurrent_; });
  --waiting_;
  if (got) ++active_;
  return got;
}

PasswordHasher::Load PasswordHasher::load() {
  std::lock_guard lock(mutex_);
  return {active_, waiting_};
}

void PasswordHasher::release() {
  {
    std::lock_guard lock(mutex_);
    --active_;
  }
  slot_free_.notify_one();
}

Result<std::string> PasswordHasher::hash(std::string_view password) {
  if (!acquire()) return Error{ErrorCode::busy, "password hashing is saturated"};
  SlotGuard guard{[this] { release(); }};
  char out[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(out, password.data(), password.size(), params_.iterations,
                            memlimit_bytes(params_), crypto_pwhash_ALG_ARGON2ID13) != 0)
    return Error{ErrorCode::internal, "argon2id hashing failed (out of memory?)"};
  return std::string(out);
}

Result<PasswordHasher::Verdict> PasswordHasher::verify(const std::string &phc,
                                                       std::string_view password) {
  if (!acquire()) return Error{ErrorCode::busy, "password hashing is saturated"};
  SlotGuard guard{[this] { release(); }};
  Verdict v;
  // crypto_pwhash_str_verify compares in constant time.
  v.match = crypto_pwhash_str_verify(phc.c_str(), password.data(), password.size()) == 0;
  if (v.match)
    v.needs_rehash = crypto_pwhash_str_needs_rehash(phc.c_str(), params_.iterations,
                                                    memlimit_bytes(params_)) != 0;
  return v;
}

Status PasswordHasher::burn(std::string_view password) {
  std::call_once(dummy_once_, [this] {
    // Made on first use rather than at start, so start-up stays fast.
    char out[crypto_pwhash_STRBYTES];
    const std::string secret = "latch-dummy-password-for-timing";
    if (crypto_pwhash_str_alg(out, secret.data(), secret.size(), params_.iterations,
                              memlimit_bytes(params_), crypto_pwhash_ALG_ARGON2ID13) == 0)
      dummy_hash_ = out;
  });
  if (dummy_hash_.empty()) return Error{ErrorCode::internal, "argon2id hashing failed"};
  auto v = verify(dummy_hash_, password);
  if (!v) return v.error();
  return Ok{};
}

} // namespace latch
