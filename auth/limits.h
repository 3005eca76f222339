// In-memory throttles, each a table of bounded size: requests per client address, failed
// sign-ins per (identifier, address) and per identifier, addresses that signed in, and mails
// per account.
#pragma once

#include "db/store.h"

#include <array>
#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace latch {

// What a table keeps of a key: 16 bytes of its SHA-256, however long the text that named it
// (a 60 KB username costs 16 bytes, not 60 KB). A key has two parts, so that every key of one
// group (all the addresses that failed to sign in as one identifier) can be cleared at once.
using KeyDigest = std::array<unsigned char, 16>;
KeyDigest key_digest(const std::string &text);
struct TableKey {
  KeyDigest group{}, item{};
  auto operator<=>(const TableKey &) const = default;
};

// The address the per-address limits count: an IPv4 address as it is; an IPv6 address by its
// /64, the block one client (one home, one server) gets and can hop around in at will; an
// IPv4-mapped IPv6 address as the IPv4 address. Anything else is counted by its text.
std::string address_key(const std::string &address);

// A fixed window of `limit` hits per `window` seconds per key; a limit of 0 turns it off.
//
// At most `capacity` windows are kept. A hit for a new key on a full table first drops the
// windows that have ended, then the running window closest to its end that is not at its limit
// (its few hits are forgotten; no key ever at its limit is); when every window is at its limit
// the new key is refused as if it were at its limit too, until the first of them ends. So a
// flood of new keys can neither grow memory nor lift a limit: at worst it delays new keys.
class WindowCounter {
public:
  static constexpr std::size_t kDefaultCapacity = 8192; // ~180 bytes each: ~1.5 MB at most

  WindowCounter(int limit, std::int64_t window, std::size_t capacity = kDefaultCapacity);

  // Counts a hit; returns 0 if allowed, or the seconds until the key may try again.
  int hit(const std::string &key, std::int64_t now) { return hit(key, {}, now); }
  int hit(const std::string &group, const std::string &item, std::int64_t now);
  // How long the key must still wait, without counting a hit (0: not blocked). A key the table
  // has no room for is blocked as hit() would block it.
  int blocked_for(const std::string &key, std::int64_t now) { return blocked_for(key, {}, now); }
  int blocked_for(const std::string &group, const std::string &item, std::int64_t now);
  // Takes back one hit of a running window (an attempt that turned out not to count).
  void take_back(const std::string &group, const std::string &item, std::int64_t now);
  void clear(const std::string &key) { clear(key, {}); }
  void clear(const std::string &group, const std::string &item);
  // Forgets every key of the group (the one-part key `group` included).
  void clear_group(const std::string &group);
  // Drops windows that have ended.
  void prune(std::int64_t now);
  std::size_t size();
  std::size_t capacity() const { return capacity_; }
  bool enabled() const { return limit_ > 0; }

private:
  struct Window {
    std::int64_t start = 0;
    int count = 0;
  };
  using Windows = std::map<TableKey, Window>;
  using Index = std::set<std::pair<std::int64_t, TableKey>>; // by start: the first to end first

  static TableKey make_key(const std::string &group, const std::string &item);
  bool ended(const Window &w, std::int64_t now) const { return now - w.start >= window_; }
  int wait(const Window &w, std::int64_t now) const {
    return static_cast<int>(w.start + window_ - now);
  }
  Index &index_of(const Window &w) { return w.count >= limit_ ? full_ : open_; }
  void erase(Windows::iterator it);
  void drop_ended(std::int64_t now);
  // Makes room for one more window: 0, or the wait of a table full of windows at their limit.
  int make_room(std::int64_t now);

  int limit_;
  std::int64_t window_;
  std::size_t capacity_;
  std::mutex mutex_;
  Windows windows_;
  Index open_, full_; // windows below their limit, and at it
};

// Keys seen in the last `ttl` seconds, each with a small value (a digest). At most `capacity`;
// when full, the least recently seen goes first. For memory that may be lost without lifting
// any limit (a forgotten address only loses its exemption).
class RecentTable {
public:
  RecentTable(std::int64_t ttl, std::size_t capacity);
  void remember(const std::string &group, const std::string &item, const KeyDigest &value,
                std::int64_t now);
  // The value remembered for the key, if it was seen less than ttl ago.
  std::optional<KeyDigest> find(const std::string &group, const std::string &item,
                                std::int64_t now);
  // When the key was last remembered (0: never, or forgotten).
  std::int64_t seen(const std::string &group, const std::string &item);
  void prune(std::int64_t now);
  std::size_t size();

private:
  struct Entry {
    std::int64_t seen = 0;
    KeyDigest value{};
  };
  using Entries = std::map<TableKey, Entry>;
  void erase(Entries::iterator it);

  std::int64_t ttl_;
  std::size_t capacity_;
  std::mutex mutex_;
  Entries entries_;
  std::set<std::pair<std::int64_t, TableKey>> by_seen_;
};

// Failed sign-ins, counted so that an attacker cannot lock the owner out (OWASP, NIST SP
// 800-63B 5.2.2). `max` is --max-failed-logins; 0 turns it off.
//  - Per (identifier key, client address): after `max` failures in 15 minutes, that address's
//    sign-ins as that identifier are refused until the window ends.
//  - Per identifier key from all addresses: after 10 x `max` failures in 15 minutes, its
//    sign-ins are refused from every address except those that signed in to the account it
//    names in the last 30 days.
// The identifier is the one the client typed (keyed for look-up), not the account it names, so
// known and unknown identifiers are counted alike and a locked username says nothing about the
// account's email. An attempt counts before its hash (so concurrent attempts cannot overshoot)
// and is taken back when it succeeds or never ran. A success clears its (identifier, address);
// a password change lifts every count on the account's identifiers: lift() for changes made in
// this process, and a changed password hash seen at the next attempt for those made by another
// (latch user set-password).
//
// With a store (several servers on one database), both failure counts are also kept there
// (db::SignInFailures), so failures spread over the servers add up: each attempt reads the two
// shared counts (one indexed read beside the hash), a failure adds to them, and a success
// writes only to clear a count its address had. The memory counts stay for attempts running at
// once in this process; across servers, attempts in flight together may overshoot the limit by
// as many as run at once. Addresses that signed in are remembered per server.
class SignInThrottle {
public:
  static constexpr std::int64_t kWindow = 15 * 60;
  static constexpr int kIdentifierFactor = 10; // NIST's 100 for the default 10
  static constexpr std::int64_t kKnownAddressTtl = 30 * 86400;
  static constexpr std::size_t kKnownAddresses = 16384; // (account, address) pairs

  // The account an identifier names.
  struct Account {
    std::string id;
    std::string password_hash;
    std::vector<std::string> identifier_keys; // the keys of its username and email
  };

  // One sign-in attempt, counted as a failure unless it says otherwise. Destroyed without
  // failed() or succeeded(), it never happened (the server was busy) and is taken back.
  class Attempt {
  public:
    Attempt(Attempt &&other) noexcept;
    Attempt &operator=(Attempt &&) = delete;
    ~Attempt();
    // 0 if the attempt may go on, else the seconds the client must wait.
    int refused() const { return refused_; }
    void failed();
    // password_hash: the account's hash after the sign-in (rehashed or not).
    void succeeded(const std::string &password_hash);

  private:
    friend class SignInThrottle;
    Attempt(SignInThrottle *owner, std::string identifier, std::string address,
            std::optional<Account> account, std::int64_t now);
    SignInThrottle *owner_;
    std::string identifier_, address_;
    std::optional<Account> account_;
    std::int64_t now_, wall_ = 0;
    int refused_ = 0;
    int shared_pair_ = 0; // the (identifier, address) count in the store when it began
    bool counted_pair_ = false, counted_identifier_ = false; // hits to take back if it never ran
  };

  // shared: the store that counts failures for every server on it; none, memory alone.
  explicit SignInThrottle(int max, db::SignInFailures *shared = nullptr);

  // identifier_key as the service keys identifiers; address as the HTTP layer names clients.
  // account: the one the identifier names, if any. now: the clock of the memory tables; wall:
  // unix seconds, the clock of the shared counts.
  Attempt begin(const std::string &identifier_key, const std::string &address,
                std::optional<Account> account, std::int64_t now, std::int64_t wall = 0);
  // Whether sign-ins as the identifier from the address are refused now, by its pair's lock or
  // the identifier's (the audit log's lockout_started).
  // wall (unix seconds) also asks the shared counts, a read of the store.
  bool locked(const std::string &identifier_key, const std::string &address, std::int64_t now,
              std::optional<std::int64_t> wall = std::nullopt);
  // Lifts every count and lock on the account's identifiers (its password changed).
  void lift(const Account &account, std::int64_t now);
  void prune(std::int64_t now);

  // Table sizes (tests).
  struct Sizes {
    std::size_t pairs = 0, identifiers = 0, known_addresses = 0, password_stamps = 0;
  };
  Sizes sizes();

private:
  bool enabled_;
  int max_;
  db::SignInFailures *shared_;
  WindowCounter pairs_;       // (identifier, address) -> failures
  WindowCounter identifiers_; // identifier -> failures from every address
  RecentTable known_;         // (account, address) -> signed in lately
  RecentTable stamps_;        // account -> digest of its password hash when it last failed
  // Shared count -> its window's end, when this process first saw it at the limit: a lock
  // ends after one window of this process's clock, whatever the wall clock does meanwhile.
  RecentTable shared_locks_;
};

// Mails per account and kind: at most one a minute and `per_hour` an hour (0 turns it off).
class MailLimit {
public:
  explicit MailLimit(int per_hour);
  // Counts a mail of `kind` to the account: 0 if it may go now, else the seconds to wait.
  int take(const std::string &account_id, const std::string &kind, std::int64_t now);
  void prune(std::int64_t now);

private:
  WindowCounter minute_, hour_;
};

} // namespace latch
