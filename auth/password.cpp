// argon2id password hashing through libsodium's crypto_pwhash (PHC string format).
//
// libsodium is the fastest argon2id in Debian (AVX2/AVX-512 block functions chosen at run time;
// Debian's libargon2 is the plain C reference build, twice the CPU per hash), but it maps a fresh
// m KiB block for every hash (MAP_POPULATE) and unmaps it after: at m=19 MiB that is ~4,900 pages
// to fault in and zero, which cost nearly as much CPU as the hash itself. So libsodium is linked
// statically and its mmap and munmap calls are wrapped at link time (-Wl,--wrap=mmap,--wrap=munmap,
// see CMakeLists.txt): while a thread hashes in a slot, the block libsodium asks for is that slot's
// kept memory. Argon2 writes every block before it reads it, so what a previous hash left there is
// never used.
#include "auth/password.h"

#include "auth/password_formats.h"

#include <sodium.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>

// The real functions, reached through the linker's --wrap (the names are the linker's).
extern "C" void *__real_mmap(void *addr, std::size_t length, int prot, int flags, int fd,
                             off_t offset);
extern "C" int __real_munmap(void *addr, std::size_t length);

namespace latch {

namespace {

// The slot memory this thread may lend to libsodium during the hash it is computing now.
thread_local detail::HashMemory *lendable = nullptr;

struct SodiumInit {
  SodiumInit() {
    if (sodium_init() < 0) throw std::runtime_error("libsodium failed to initialise");
  }
};

unsigned long long memlimit_bytes(const PasswordParams &p) {
  return static_cast<unsigned long long>(p.memory_kib) * 1024ULL;
}

std::size_t rounded_to_pages(unsigned long long bytes) {
  const auto page = static_cast<unsigned long long>(sysconf(_SC_PAGESIZE));
  return static_cast<std::size_t>((bytes + page - 1) / page * page);
}

bool hash_phc(const PasswordParams &params, std::string_view password, std::string &out) {
  char phc[crypto_pwhash_STRBYTES];
  if (crypto_pwhash_str_alg(phc, password.data(), password.size(), params.iterations,
                            memlimit_bytes(params), crypto_pwhash_ALG_ARGON2ID13) != 0)
    return false;
  out = phc;
  return true;
}

PasswordHasher::Verdict verify_phc(const PasswordParams &params, const std::string &phc,
                                   std::string_view password) {
  PasswordHasher::Verdict v;
  // crypto_pwhash_str_verify compares in constant time. A hash made with more memory than ours
  // gets a fresh block from libsodium as before: only what fits in the slot is lent.
  v.match = crypto_pwhash_str_verify(phc.c_str(), password.data(), password.size()) == 0;
  if (v.match)
    v.needs_rehash =
        crypto_pwhash_str_needs_rehash(phc.c_str(), params.iterations, memlimit_bytes(params)) != 0;
  return v;
}

} // namespace

} // namespace latch

// libsodium's argon2 block: an anonymous private read-write mapping anywhere, no larger than the
// slot's memory, asked for while the thread lends that memory. Every other call is passed on.
extern "C" void *__wrap_mmap(void *addr, std::size_t length, int prot, int flags, int fd,
                             off_t offset) {
  latch::detail::HashMemory *slot = latch::lendable;
  if (slot && !slot->lent && addr == nullptr && fd == -1 && offset == 0 &&
      prot == (PROT_READ | PROT_WRITE) &&
      (flags & ~MAP_POPULATE) == (MAP_PRIVATE | MAP_ANONYMOUS) && length <= slot->size) {
    if (!slot->base) {
      void *base = __real_mmap(nullptr, slot->size, prot, flags, -1, 0);
      if (base == MAP_FAILED) return base;
      slot->base = base;
    }
    slot->lent = true;
    return slot->base;
  }
  return __real_mmap(addr, length, prot, flags, fd, offset);
}

extern "C" int __wrap_munmap(void *addr, std::size_t length) {
  latch::detail::HashMemory *slot = latch::lendable;
  if (slot && slot->lent && addr == slot->base) {
    slot->lent = false; // kept for the slot's next hash
    return 0;
  }
  return __real_munmap(addr, length);
}

namespace latch {

// Holds a hashing slot for one call (or finds none: busy) and lends its memory to libsodium
// meanwhile; gives it back on every path out.
class PasswordHasher::Slot {
public:
  Slot(PasswordHasher &hasher, bool may_wait) : hasher_(hasher), memory_(hasher.acquire(may_wait)) {
    lendable = memory_;
  }
  ~Slot() {
    lendable = nullptr;
    if (!memory_) return;
    memory_->lent = false; // libsodium has returned, so it has given the block back
    hasher_.release(memory_);
  }
  Slot(const Slot &) = delete;
  Slot &operator=(const Slot &) = delete;
  bool held() const { return memory_ != nullptr; }

private:
  PasswordHasher &hasher_;
  detail::HashMemory *memory_;
};

PasswordHasher::PasswordHasher(PasswordParams params, unsigned max_concurrent, unsigned max_waiting,
                               std::chrono::milliseconds keep_idle_memory)
    : params_(params), max_waiting_(max_waiting), keep_idle_memory_(keep_idle_memory),
      slots_(max_concurrent ? max_concurrent : 1) {
  static SodiumInit init;
  for (auto &slot : slots_) {
    slot.size = rounded_to_pages(memlimit_bytes(params_));
    free_slots_.push_back(&slot);
  }
}

PasswordHasher::~PasswordHasher() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  memory_kept_.notify_one();
  if (releaser_.joinable()) releaser_.join();
  for (auto &slot : slots_)
    if (slot.base) munmap(slot.base, slot.size);
}

detail::HashMemory *PasswordHasher::acquire(bool may_wait) {
  std::unique_lock lock(mutex_);
  if (free_slots_.empty()) {
    if (!may_wait || waiting_ >= max_waiting_) return nullptr;
    ++waiting_;
    bool got =
        slot_free_.wait_for(lock, std::chrono::seconds(30), [&] { return !free_slots_.empty(); });
    --waiting_;
    if (!got) return nullptr;
  }
  // The most recently used slot, whose memory is most likely still mapped: under light load one
  // slot does the work and the others' memory is released.
  detail::HashMemory *slot = free_slots_.back();
  free_slots_.pop_back();
  slot->in_use = true;
  return slot;
}

void PasswordHasher::release(detail::HashMemory *slot) {
  bool kept;
  {
    std::lock_guard lock(mutex_);
    slot->last_used = std::chrono::steady_clock::now();
    slot->in_use = false;
    free_slots_.push_back(slot);
    kept = slot->base != nullptr;
    if (kept && !releaser_.joinable()) releaser_ = std::thread([this] { release_idle_memory(); });
  }
  slot_free_.notify_one();
  if (kept) memory_kept_.notify_one();
}

void PasswordHasher::release_idle_memory() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    const auto now = std::chrono::steady_clock::now();
    auto next = std::chrono::steady_clock::time_point::max();
    // Only free slots: a slot in use belongs to the thread hashing in it.
    for (detail::HashMemory *slot : free_slots_) {
      if (!slot->base) continue;
      const auto due = slot->last_used + keep_idle_memory_;
      if (due <= now) {
        munmap(slot->base, slot->size);
        slot->base = nullptr;
      } else {
        next = std::min(next, due);
      }
    }
    if (next == std::chrono::steady_clock::time_point::max())
      memory_kept_.wait(lock);
    else
      memory_kept_.wait_until(lock, next);
  }
}

PasswordHasher::Load PasswordHasher::load() {
  std::lock_guard lock(mutex_);
  return {static_cast<unsigned>(slots_.size() - free_slots_.size()), waiting_};
}

std::size_t PasswordHasher::memory_held() {
  std::lock_guard lock(mutex_);
  std::size_t held = 0;
  // A slot in use may be mapping its memory right now, unlocked: count it as held unread.
  for (const auto &slot : slots_)
    if (slot.in_use || slot.base) held += slot.size;
  return held;
}

Result<std::string> PasswordHasher::hash(std::string_view password, bool may_wait) {
  Slot slot(*this, may_wait);
  if (!slot.held()) return Error{ErrorCode::busy, "password hashing is saturated"};
  std::string phc;
  if (!hash_phc(params_, password, phc))
    return Error{ErrorCode::internal, "argon2id hashing failed (out of memory?)"};
  return phc;
}

Result<PasswordHasher::Verdict> PasswordHasher::verify(const std::string &phc,
                                                       std::string_view password, bool may_wait) {
  Slot slot(*this, may_wait);
  if (!slot.held()) return Error{ErrorCode::busy, "password hashing is saturated"};
  if (phc.rfind("$argon2id$", 0) == 0) return verify_phc(params_, phc, password);
  // An imported hash (bcrypt, Django, Werkzeug, crypt, argon2i): verified in this slot too, as
  // it costs CPU, and replaced with ours at the first sign-in that knows the password.
  Verdict v;
  v.match = password_formats::verify(phc, password);
  v.needs_rehash = v.match;
  return v;
}

Status PasswordHasher::burn(std::string_view password, bool may_wait) {
  Slot slot(*this, may_wait);
  if (!slot.held()) return Error{ErrorCode::busy, "password hashing is saturated"};
  std::call_once(dummy_once_, [this] {
    // Made on first use rather than at start, so start-up stays fast.
    std::string made;
    if (hash_phc(params_, "latch-dummy-password-for-timing", made)) dummy_hash_ = made;
  });
  if (dummy_hash_.empty()) return Error{ErrorCode::internal, "argon2id hashing failed"};
  verify_phc(params_, dummy_hash_, password);
  return Ok{};
}

} // namespace latch
