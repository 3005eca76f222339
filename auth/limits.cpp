// Bounded in-memory tables behind rate limits, sign-in lockout and mail limits.
#include "auth/limits.h"

#include "auth/secure.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace latch {

KeyDigest key_digest(const std::string &text) {
  const std::string hex = secure::sha256_hex(text);
  KeyDigest d{};
  for (std::size_t i = 0; i < d.size(); ++i)
    d[i] = static_cast<unsigned char>(std::stoi(hex.substr(2 * i, 2), nullptr, 16));
  return d;
}

std::string address_key(const std::string &address) {
  std::string a = address;
  if (a.size() > 2 && a.front() == '[' && a.back() == ']') a = a.substr(1, a.size() - 2);
  if (std::size_t zone = a.find('%'); zone != std::string::npos) a.resize(zone);
  unsigned char bytes[16];
  char text[INET6_ADDRSTRLEN];
  if (inet_pton(AF_INET, a.c_str(), bytes) == 1) return a;
  if (inet_pton(AF_INET6, a.c_str(), bytes) != 1) return address; // the tables digest it
  static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes, v4_mapped, sizeof v4_mapped) == 0)
    return inet_ntop(AF_INET, bytes + 12, text, sizeof text) ? text : address;
  // One client holds a whole /64 and may pick any address in it: count the /64.
  std::memset(bytes + 8, 0, 8);
  return inet_ntop(AF_INET6, bytes, text, sizeof text) ? std::string(text) + "/64" : address;
}

// ---- WindowCounter ----------------------------------------------------------------------

WindowCounter::WindowCounter(int limit, std::int64_t window, std::size_t capacity)
    : limit_(limit), window_(window), capacity_(std::max<std::size_t>(capacity, 1)) {}

TableKey WindowCounter::make_key(const std::string &group, const std::string &item) {
  TableKey key;
  key.group = key_digest(group);
  if (!item.empty()) key.item = key_digest(item); // one-part keys: item all zero
  return key;
}

void WindowCounter::erase(Windows::iterator it) {
  index_of(it->second).erase({it->second.start, it->first});
  windows_.erase(it);
}

void WindowCounter::drop_ended(std::int64_t now) {
  for (Index *index : {&open_, &full_})
    while (!index->empty() && now - index->begin()->first >= window_)
      erase(windows_.find(index->begin()->second));
}

int WindowCounter::make_room(std::int64_t now) {
  if (windows_.size() < capacity_) return 0;
  drop_ended(now);
  if (windows_.size() < capacity_) return 0;
  // Forget the few hits of the window closest to its end, never a key at its limit.
  if (!open_.empty()) {
    erase(windows_.find(open_.begin()->second));
    return 0;
  }
  // Every window is at its limit: refusing the new key is the only way that lifts none.
  return std::max(1, static_cast<int>(full_.begin()->first + window_ - now));
}

int WindowCounter::hit(const std::string &group, const std::string &item, std::int64_t now) {
  if (limit_ <= 0) return 0;
  const TableKey key = make_key(group, item);
  std::lock_guard lock(mutex_);
  auto it = windows_.find(key);
  if (it == windows_.end()) {
    if (int full = make_room(now)) return full;
    it = windows_.emplace(key, Window{now, 0}).first; // a window starts at its first hit
    open_.insert({now, key});
  } else if (ended(it->second, now)) {
    index_of(it->second).erase({it->second.start, key});
    it->second = Window{now, 0};
    open_.insert({now, key});
  }
  Window &w = it->second;
  if (w.count >= limit_) return wait(w, now);
  if (++w.count == limit_) {
    open_.erase({w.start, key});
    full_.insert({w.start, key});
  }
  return 0;
}

int WindowCounter::blocked_for(const std::string &group, const std::string &item,
                               std::int64_t now) {
  if (limit_ <= 0) return 0;
  const TableKey key = make_key(group, item);
  std::lock_guard lock(mutex_);
  auto it = windows_.find(key);
  if (it == windows_.end()) {
    if (windows_.size() < capacity_) return 0;
    drop_ended(now);
    if (windows_.size() < capacity_ || !open_.empty()) return 0;
    return std::max(1, static_cast<int>(full_.begin()->first + window_ - now));
  }
  if (ended(it->second, now) || it->second.count < limit_) return 0;
  return wait(it->second, now);
}

void WindowCounter::take_back(const std::string &group, const std::string &item, std::int64_t now) {
  if (limit_ <= 0) return;
  const TableKey key = make_key(group, item);
  std::lock_guard lock(mutex_);
  auto it = windows_.find(key);
  if (it == windows_.end() || ended(it->second, now) || it->second.count == 0) return;
  Window &w = it->second;
  if (w.count-- == limit_) {
    full_.erase({w.start, key});
    open_.insert({w.start, key});
  }
}

void WindowCounter::clear(const std::string &group, const std::string &item) {
  const TableKey key = make_key(group, item);
  std::lock_guard lock(mutex_);
  if (auto it = windows_.find(key); it != windows_.end()) erase(it);
}

void WindowCounter::clear_group(const std::string &group) {
  const TableKey first = make_key(group, {}); // the smallest key of the group
  std::lock_guard lock(mutex_);
  for (auto it = windows_.lower_bound(first);
       it != windows_.end() && it->first.group == first.group;)
    erase(it++);
}

void WindowCounter::prune(std::int64_t now) {
  std::lock_guard lock(mutex_);
  drop_ended(now);
}

std::size_t WindowCounter::size() {
  std::lock_guard lock(mutex_);
  return windows_.size();
}

// ---- RecentTable ------------------------------------------------------------------------

namespace {

TableKey recent_key(const std::string &group, const std::string &item) {
  TableKey key;
  key.group = key_digest(group);
  if (!item.empty()) key.item = key_digest(item);
  return key;
}

} // namespace

RecentTable::RecentTable(std::int64_t ttl, std::size_t capacity)
    : ttl_(ttl), capacity_(std::max<std::size_t>(capacity, 1)) {}

void RecentTable::erase(Entries::iterator it) {
  by_seen_.erase({it->second.seen, it->first});
  entries_.erase(it);
}

void RecentTable::remember(const std::string &group, const std::string &item,
                           const KeyDigest &value, std::int64_t now) {
  const TableKey key = recent_key(group, item);
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end()) {
    erase(it);
  } else if (entries_.size() >= capacity_) {
    while (!by_seen_.empty() && now - by_seen_.begin()->first >= ttl_)
      erase(entries_.find(by_seen_.begin()->second));
    if (entries_.size() >= capacity_) erase(entries_.find(by_seen_.begin()->second));
  }
  entries_.emplace(key, Entry{now, value});
  by_seen_.insert({now, key});
}

std::optional<KeyDigest> RecentTable::find(const std::string &group, const std::string &item,
                                           std::int64_t now) {
  const TableKey key = recent_key(group, item);
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end() || now - it->second.seen >= ttl_) return std::nullopt;
  return it->second.value;
}

std::int64_t RecentTable::seen(const std::string &group, const std::string &item) {
  const TableKey key = recent_key(group, item);
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  return it == entries_.end() ? 0 : it->second.seen;
}

void RecentTable::prune(std::int64_t now) {
  std::lock_guard lock(mutex_);
  while (!by_seen_.empty() && now - by_seen_.begin()->first >= ttl_)
    erase(entries_.find(by_seen_.begin()->second));
}

std::size_t RecentTable::size() {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

// ---- SignInThrottle ---------------------------------------------------------------------

namespace {

// A key of the shared counts: the hex of key_digest, so the database holds no identifier,
// address or password hash a client sent or owns.
std::string shared_key(const std::string &text) {
  return secure::sha256_hex(text).substr(0, 32);
}

} // namespace

SignInThrottle::SignInThrottle(int max, db::SignInFailures *shared)
    : enabled_(max > 0), max_(max), shared_(shared), pairs_(max, kWindow),
      identifiers_(max > 0 ? max * kIdentifierFactor : 0, kWindow),
      known_(kKnownAddressTtl, kKnownAddresses), stamps_(kWindow, WindowCounter::kDefaultCapacity),
      shared_locks_(2 * kWindow, WindowCounter::kDefaultCapacity) {}

SignInThrottle::Attempt::Attempt(SignInThrottle *owner, std::string identifier, std::string address,
                                 std::optional<Account> account, std::int64_t now)
    : owner_(owner), identifier_(std::move(identifier)), address_(std::move(address)),
      account_(std::move(account)), now_(now) {}

SignInThrottle::Attempt::Attempt(Attempt &&other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), identifier_(std::move(other.identifier_)),
      address_(std::move(other.address_)), account_(std::move(other.account_)), now_(other.now_),
      wall_(other.wall_), refused_(other.refused_), shared_pair_(other.shared_pair_),
      counted_pair_(other.counted_pair_), counted_identifier_(other.counted_identifier_) {}

SignInThrottle::Attempt::~Attempt() {
  if (!owner_) return;
  // Neither failed nor succeeded: the attempt never ran (busy), so it does not count.
  if (counted_pair_) owner_->pairs_.take_back(identifier_, address_, now_);
  if (counted_identifier_) owner_->identifiers_.take_back(identifier_, {}, now_);
}

void SignInThrottle::Attempt::failed() {
  if (!owner_) return;
  // The password this failure was against: another process changing it lifts the counts.
  if (account_ && owner_->enabled_)
    owner_->stamps_.remember(account_->id, {}, key_digest(account_->password_hash), now_);
  SignInThrottle &t = *std::exchange(owner_, nullptr); // the hits stay
  if (t.enabled_ && t.shared_)
    t.shared_->add_failure(shared_key(identifier_), shared_key(address_),
                           account_ ? shared_key(account_->password_hash) : std::string(), wall_,
                           kWindow);
}

void SignInThrottle::Attempt::succeeded(const std::string &password_hash) {
  if (!owner_) return;
  SignInThrottle &t = *std::exchange(owner_, nullptr);
  if (!t.enabled_) return;
  t.pairs_.clear(identifier_, address_);
  if (counted_identifier_) t.identifiers_.take_back(identifier_, {}, now_);
  if (t.shared_ && shared_pair_ > 0)
    t.shared_->clear_failures(shared_key(identifier_), shared_key(address_));
  if (!account_) return;
  t.known_.remember(account_->id, address_, {}, now_);
  // A hash upgraded at this sign-in is the same password: not a change that lifts counts.
  if (t.stamps_.find(account_->id, {}, now_))
    t.stamps_.remember(account_->id, {}, key_digest(password_hash), now_);
  if (t.shared_ && password_hash != account_->password_hash) {
    std::vector<std::string> groups;
    for (const std::string &key : account_->identifier_keys)
      groups.push_back(shared_key(key));
    t.shared_->restamp_failures(groups, shared_key(account_->password_hash),
                                shared_key(password_hash));
  }
}

SignInThrottle::Attempt SignInThrottle::begin(const std::string &identifier_key,
                                              const std::string &address,
                                              std::optional<Account> named, std::int64_t now,
                                              std::int64_t wall) {
  Attempt a(this, identifier_key, address_key(address), std::move(named), now);
  a.wall_ = wall;
  if (!enabled_) return a;
  const std::optional<Account> &account = a.account_;
  if (account) {
    // Its password changed since it last failed (latch user set-password, another process):
    // lift as a reset here does.
    auto stamp = stamps_.find(account->id, {}, now);
    if (stamp && *stamp != key_digest(account->password_hash)) lift(*account, now);
  }
  // Addresses the owner signed in from lately pass the identifier's lock that a botnet set.
  const bool known = account && known_.find(account->id, a.address_, now).has_value();
  if (shared_) {
    // What every server on the database counted (this one's failures included).
    int pair = 0, identifier = 0;
    std::int64_t pair_ends = 0, identifier_ends = 0;
    bool password_changed = false;
    const std::string stamp = account ? shared_key(account->password_hash) : std::string();
    for (const db::FailureCount &f :
         shared_->failure_counts(shared_key(identifier_key), shared_key(a.address_), wall)) {
      if (account && !f.stamp.empty() && f.stamp != stamp) password_changed = true;
      (f.item.empty() ? identifier : pair) = f.count;
      (f.item.empty() ? identifier_ends : pair_ends) = f.expires_at;
    }
    // Failures against a password changed since (by any process) no longer count.
    if (password_changed) {
      lift(*account, now);
      pair = identifier = 0;
    }
    a.shared_pair_ = pair;
    // The wait of a shared lock: until its window ends, by the wall clock (the one all servers
    // share) and by this process's own clock since it first saw the lock, whichever is first.
    auto lock_wait = [&](const std::string &item, std::int64_t ends) {
      const KeyDigest window = key_digest(std::to_string(ends));
      auto seen = shared_locks_.find(identifier_key, item, now);
      if (!seen || *seen != window) {
        shared_locks_.remember(identifier_key, item, window, now);
        return std::max<std::int64_t>(1, std::min(ends - wall, kWindow));
      }
      return std::min(ends - wall, kWindow - (now - shared_locks_.seen(identifier_key, item)));
    };
    if (pair >= max_)
      if (std::int64_t wait = lock_wait(a.address_, pair_ends); wait > 0) {
        a.refused_ = static_cast<int>(wait);
        return a;
      }
    if (!known && identifier >= max_ * kIdentifierFactor)
      if (std::int64_t wait = lock_wait({}, identifier_ends); wait > 0) {
        a.refused_ = static_cast<int>(wait);
        return a;
      }
  }
  if ((a.refused_ = pairs_.blocked_for(identifier_key, a.address_, now))) return a;
  if (!known && (a.refused_ = identifiers_.blocked_for(identifier_key, now))) return a;
  // Counted before the hash, so that attempts running at once cannot overshoot the limit.
  if ((a.refused_ = pairs_.hit(identifier_key, a.address_, now))) return a;
  a.counted_pair_ = true;
  int wait = identifiers_.hit(identifier_key, now);
  a.counted_identifier_ = wait == 0;
  if (wait && !known) a.refused_ = wait; // the destructor takes back the pair's hit
  return a;
}

bool SignInThrottle::locked(const std::string &identifier_key, const std::string &address,
                            std::int64_t now, std::optional<std::int64_t> wall) {
  if (!enabled_) return false;
  if (pairs_.blocked_for(identifier_key, address_key(address), now) > 0 ||
      identifiers_.blocked_for(identifier_key, now) > 0)
    return true;
  if (!shared_ || !wall) return false;
  // The counts of every server on the database: the failure that locks may be another's tenth.
  for (const db::FailureCount &f :
       shared_->failure_counts(shared_key(identifier_key), shared_key(address_key(address)), *wall))
    if (f.count >= (f.item.empty() ? max_ * kIdentifierFactor : max_)) return true;
  return false;
}

void SignInThrottle::lift(const Account &account, std::int64_t now) {
  if (!enabled_) return;
  for (const std::string &key : account.identifier_keys) {
    pairs_.clear_group(key);
    identifiers_.clear_group(key);
  }
  stamps_.remember(account.id, {}, key_digest(account.password_hash), now);
  if (shared_) {
    std::vector<std::string> groups;
    for (const std::string &key : account.identifier_keys)
      groups.push_back(shared_key(key));
    shared_->lift_failures(groups);
  }
}

void SignInThrottle::prune(std::int64_t now) {
  pairs_.prune(now);
  identifiers_.prune(now);
  known_.prune(now);
  stamps_.prune(now);
  shared_locks_.prune(now);
}

SignInThrottle::Sizes SignInThrottle::sizes() {
  return {pairs_.size(), identifiers_.size(), known_.size(), stamps_.size()};
}

// ---- MailLimit --------------------------------------------------------------------------

MailLimit::MailLimit(int per_hour) : minute_(per_hour > 0 ? 1 : 0, 60), hour_(per_hour, 3600) {}

int MailLimit::take(const std::string &account_id, const std::string &kind, std::int64_t now) {
  if (!hour_.enabled()) return 0;
  if (int wait = hour_.blocked_for(account_id, kind, now)) return wait;
  if (int wait = minute_.hit(account_id, kind, now)) return wait;
  return hour_.hit(account_id, kind, now);
}

void MailLimit::prune(std::int64_t now) {
  minute_.prune(now);
  hour_.prune(now);
}

} // namespace latch
