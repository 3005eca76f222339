// Unit tests for auth/limits: the bounded tables behind rate limits, lockout and mail limits.
#include "auth/limits.h"

#include <doctest/doctest.h>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

using namespace latch;

namespace {
constexpr std::int64_t kT0 = 1'700'000'000;
} // namespace

TEST_CASE("a window counter allows limit hits, then returns the seconds left in the window") {
  WindowCounter counter(3, 60);
  CHECK(counter.enabled());
  CHECK(counter.hit("ip", kT0) == 0);
  CHECK(counter.hit("ip", kT0 + 1) == 0);
  CHECK(counter.hit("ip", kT0 + 2) == 0);
  CHECK(counter.hit("ip", kT0 + 10) == 50);
  CHECK(counter.hit("ip", kT0 + 59) == 1);
  CHECK(counter.blocked_for("ip", kT0 + 30) == 30);
}

TEST_CASE("refused hits do not extend the window") {
  WindowCounter counter(1, 60);
  CHECK(counter.hit("k", kT0) == 0);
  for (int i = 1; i < 60; ++i)
    CHECK(counter.hit("k", kT0 + i) == 60 - i);
  CHECK(counter.hit("k", kT0 + 60) == 0);
}

TEST_CASE("a window counter resets once the window has passed") {
  WindowCounter counter(2, 60);
  CHECK(counter.hit("ip", kT0) == 0);
  CHECK(counter.hit("ip", kT0) == 0);
  CHECK(counter.hit("ip", kT0 + 59) == 1);
  CHECK(counter.blocked_for("ip", kT0 + 60) == 0);
  CHECK(counter.hit("ip", kT0 + 60) == 0);
  CHECK(counter.hit("ip", kT0 + 61) == 0);
  // The new window started at kT0 + 60.
  CHECK(counter.hit("ip", kT0 + 62) == 58);
}

TEST_CASE("keys are counted separately") {
  WindowCounter counter(1, 60);
  CHECK(counter.hit("a", kT0) == 0);
  CHECK(counter.hit("a", kT0) == 60);
  CHECK(counter.hit("b", kT0) == 0);
  CHECK(counter.blocked_for("b", kT0) == 60);
  CHECK(counter.blocked_for("c", kT0) == 0);
}

TEST_CASE("blocked_for reports without counting a hit") {
  WindowCounter counter(2, 60);
  CHECK(counter.blocked_for("k", kT0) == 0);
  CHECK(counter.hit("k", kT0) == 0);
  for (int i = 0; i < 10; ++i)
    CHECK(counter.blocked_for("k", kT0 + 1) == 0);
  CHECK(counter.hit("k", kT0 + 1) == 0);
  CHECK(counter.blocked_for("k", kT0 + 1) == 59);
}

TEST_CASE("clear forgets a key's hits at once") {
  WindowCounter counter(1, 900);
  CHECK(counter.hit("user", kT0) == 0);
  CHECK(counter.blocked_for("user", kT0 + 1) == 899);
  counter.clear("user");
  CHECK(counter.blocked_for("user", kT0 + 1) == 0);
  CHECK(counter.hit("user", kT0 + 1) == 0);
  CHECK(counter.hit("user", kT0 + 2) == 899);
  counter.clear("nobody"); // clearing an unknown key is harmless
}

TEST_CASE("prune keeps windows that are still running and forgets ended ones") {
  WindowCounter counter(1, 60);
  CHECK(counter.hit("old", kT0) == 0);
  CHECK(counter.hit("new", kT0 + 30) == 0);
  counter.prune(kT0 + 60);
  // "old" ended at kT0 + 60 and is gone; "new" is still blocked until kT0 + 90.
  CHECK(counter.blocked_for("old", kT0 + 60) == 0);
  CHECK(counter.blocked_for("new", kT0 + 60) == 30);
  CHECK(counter.hit("new", kT0 + 60) == 30);
  counter.prune(kT0 + 90);
  CHECK(counter.hit("new", kT0 + 90) == 0);
}

TEST_CASE("a limit of zero turns the counter off") {
  WindowCounter counter(0, 60);
  CHECK_FALSE(counter.enabled());
  for (int i = 0; i < 1000; ++i)
    REQUIRE(counter.hit("ip", kT0) == 0);
  CHECK(counter.blocked_for("ip", kT0) == 0);
  WindowCounter negative(-1, 60);
  CHECK_FALSE(negative.enabled());
  CHECK(negative.hit("ip", kT0) == 0);
}

TEST_CASE("a window starts at the first hit even when the clock reads less than one window") {
  // A fresh key's window must start at its first hit, whatever the clock's origin.
  WindowCounter counter(1, 60);
  CHECK(counter.hit("k", 10) == 0);
  CHECK(counter.hit("k", 11) == 59);
  CHECK(counter.blocked_for("k", 65) == 5);
}

TEST_CASE("a full table first drops the windows that have ended") {
  WindowCounter counter(2, 60, 4);
  for (const char *key : {"a", "b", "c", "d"})
    CHECK(counter.hit(key, kT0) == 0);
  CHECK(counter.size() == 4);
  CHECK(counter.hit("e", kT0 + 60) == 0);
  CHECK(counter.size() == 1);
}

TEST_CASE("a full table forgets the running window closest to its end, never a key at its limit") {
  WindowCounter counter(2, 60, 3);
  CHECK(counter.hit("locked", kT0) == 0);
  CHECK(counter.hit("locked", kT0) == 0);
  CHECK(counter.hit("x", kT0 + 1) == 0);
  CHECK(counter.hit("y", kT0 + 2) == 0);
  CHECK(counter.hit("z", kT0 + 3) == 0); // x goes: it ends first of those below the limit
  CHECK(counter.size() == 3);
  CHECK(counter.blocked_for("locked", kT0 + 3) == 57);
  CHECK(counter.hit("y", kT0 + 4) == 0);
  CHECK(counter.hit("y", kT0 + 4) == 58); // y kept its count
  CHECK(counter.hit("x", kT0 + 5) == 0);  // x starts over (and z, now first to end, goes)
  CHECK(counter.hit("x", kT0 + 5) == 0);
  CHECK(counter.blocked_for("x", kT0 + 5) == 60);
}

TEST_CASE("a lock cannot be evicted by flooding the table with other keys") {
  WindowCounter counter(3, 900, 64);
  for (int i = 0; i < 3; ++i)
    CHECK(counter.hit("victim", kT0) == 0);
  REQUIRE(counter.blocked_for("victim", kT0) == 900);
  for (int i = 0; i < 10000; ++i) {
    REQUIRE(counter.hit("flood-" + std::to_string(i), kT0 + 1 + i / 100) == 0);
    REQUIRE(counter.size() <= 64);
  }
  CHECK(counter.blocked_for("victim", kT0 + 100) == 800);
  CHECK(counter.hit("victim", kT0 + 100) == 800);
}

TEST_CASE("when every window is at its limit a new key is refused until the first one ends") {
  WindowCounter counter(1, 60, 3);
  CHECK(counter.hit("a", kT0) == 0);
  CHECK(counter.hit("b", kT0 + 1) == 0);
  CHECK(counter.hit("c", kT0 + 2) == 0);
  CHECK(counter.blocked_for("d", kT0 + 10) == 50);
  CHECK(counter.hit("d", kT0 + 10) == 50);
  CHECK(counter.size() == 3);
  // The keys already at their limit stay so.
  CHECK(counter.hit("a", kT0 + 10) == 50);
  CHECK(counter.hit("c", kT0 + 10) == 52);
  // Once a ends, d gets its place.
  CHECK(counter.hit("d", kT0 + 60) == 0);
  CHECK(counter.hit("d", kT0 + 60) == 60);
}

TEST_CASE("memory stays bounded however many keys come and however long they are") {
  constexpr std::size_t kCap = 4096;
  WindowCounter counter(10, 900, kCap);
  counter.hit("warm-up", kT0); // OpenSSL's one-off set-up is not the table's
  counter.clear("warm-up");
  std::string key(60 * 1024, 'u'); // a 60 KB username
  const std::size_t before = mallinfo2().uordblks;
  for (std::size_t i = 0; i < 3 * kCap; ++i) {
    std::string n = std::to_string(i);
    key.replace(0, n.size(), n);
    REQUIRE(counter.hit(key, kT0 + static_cast<std::int64_t>(i / 10)) == 0);
  }
  CHECK(counter.size() == kCap);
  const std::size_t after = mallinfo2().uordblks;
  // A window is a map node and an index node, 176 bytes with glibc: 256 leaves room for the
  // allocator's caches. Keys kept whole would take 60 KB each, 240 MB here.
  CHECK(after - std::min(after, before) < kCap * 256);
}

TEST_CASE("take_back returns a hit; clear_group forgets every key of a group") {
  WindowCounter counter(2, 60);
  CHECK(counter.hit("id", "10.0.0.1", kT0) == 0);
  CHECK(counter.hit("id", "10.0.0.1", kT0) == 0);
  CHECK(counter.blocked_for("id", "10.0.0.1", kT0) == 60);
  counter.take_back("id", "10.0.0.1", kT0);
  CHECK(counter.blocked_for("id", "10.0.0.1", kT0) == 0);
  CHECK(counter.hit("id", "10.0.0.1", kT0) == 0);
  CHECK(counter.hit("id", "10.0.0.1", kT0) == 60);
  CHECK(counter.hit("id", "10.0.0.2", kT0) == 0);
  CHECK(counter.hit("id", kT0) == 0);
  CHECK(counter.hit("other", "10.0.0.1", kT0) == 0);
  CHECK(counter.hit("other", "10.0.0.1", kT0) == 0);
  CHECK(counter.size() == 4);
  counter.clear_group("id");
  CHECK(counter.size() == 1);
  CHECK(counter.blocked_for("id", "10.0.0.1", kT0) == 0);
  CHECK(counter.blocked_for("other", "10.0.0.1", kT0) == 60);
  counter.take_back("nobody", "x", kT0); // harmless
}

TEST_CASE("an IPv6 client is counted by its /64, an IPv4 one by its address") {
  CHECK(address_key("203.0.113.7") == "203.0.113.7");
  CHECK(address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64");
  CHECK(address_key("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64");
  CHECK(address_key("[2001:db8:1:2::3]") == "2001:db8:1:2::/64");
  CHECK(address_key("fe80::1%eth0") == "fe80::/64");
  CHECK(address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1"));
  CHECK(address_key("::ffff:198.51.100.4") == "198.51.100.4");
  CHECK(address_key("::1") == "::/64");
  CHECK(address_key("not an address") == "not an address");
  WindowCounter counter(2, 60);
  CHECK(counter.hit(address_key("2001:db8:1:2::1"), kT0) == 0);
  CHECK(counter.hit(address_key("2001:db8:1:2::2"), kT0) == 0);
  CHECK(counter.hit(address_key("2001:db8:1:2:abcd::9"), kT0) == 60);
}

TEST_CASE("a recent table forgets entries after their time, and the least recent when full") {
  RecentTable table(100, 2);
  const KeyDigest one = key_digest("one"), two = key_digest("two");
  table.remember("acct", "a", one, kT0);
  table.remember("acct", "b", two, kT0 + 1);
  CHECK(table.find("acct", "a", kT0 + 99) == one);
  CHECK_FALSE(table.find("acct", "a", kT0 + 100));
  table.remember("acct", "a", one, kT0 + 2); // seen again: now the most recent
  table.remember("acct", "c", one, kT0 + 3); // full: b, the least recent, goes
  CHECK(table.size() == 2);
  CHECK_FALSE(table.find("acct", "b", kT0 + 3));
  CHECK(table.find("acct", "a", kT0 + 3) == one);
  table.prune(kT0 + 102);
  CHECK(table.size() == 1);
}

TEST_CASE("sign-in attempts count before their hash, so attempts at once cannot overshoot") {
  SignInThrottle throttle(3);
  std::vector<SignInThrottle::Attempt> running;
  for (int i = 0; i < 3; ++i) {
    running.push_back(throttle.begin("alice", "203.0.113.1", std::nullopt, kT0));
    CHECK(running.back().refused() == 0);
  }
  auto fourth = throttle.begin("alice", "203.0.113.1", std::nullopt, kT0);
  CHECK(fourth.refused() == SignInThrottle::kWindow);
  // One of them never ran (the server was busy): it is taken back.
  running.pop_back();
  auto fifth = throttle.begin("alice", "203.0.113.1", std::nullopt, kT0);
  CHECK(fifth.refused() == 0);
  fifth.failed();
  for (auto &a : running)
    a.failed();
  CHECK(throttle.begin("alice", "203.0.113.1", std::nullopt, kT0 + 1).refused() ==
        SignInThrottle::kWindow - 1);
  // Another address of the same IPv6 /64 is the same client.
  CHECK(throttle.begin("bob", "2001:db8::1", std::nullopt, kT0).refused() == 0);
}

TEST_CASE("sign-in tables stay bounded under a flood of names, and keep their locks") {
  SignInThrottle throttle(2);
  SignInThrottle::Account alice{"alice-id", "$argon2id$hash", {"alice", "alice@example.com"}};
  for (int i = 0; i < 2; ++i)
    throttle.begin("alice", "203.0.113.1", alice, kT0).failed();
  for (int i = 0; i < 3 * static_cast<int>(WindowCounter::kDefaultCapacity); ++i)
    throttle
        .begin("name-" + std::to_string(i), "198.51.100." + std::to_string(i % 250), std::nullopt,
               kT0 + i / 200)
        .failed();
  auto sizes = throttle.sizes();
  CHECK(sizes.pairs <= WindowCounter::kDefaultCapacity);
  CHECK(sizes.identifiers <= WindowCounter::kDefaultCapacity);
  CHECK(throttle.begin("alice", "203.0.113.1", alice, kT0 + 200).refused() ==
        SignInThrottle::kWindow - 200);
}

TEST_CASE("sign-in attempts from many threads at once are admitted no more than the limit") {
  SignInThrottle throttle(10);
  std::atomic<int> admitted{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 50; ++i) {
        auto attempt = throttle.begin("alice", "203.0.113.1", std::nullopt, kT0);
        if (attempt.refused() == 0) {
          ++admitted;
          attempt.failed();
        }
      }
    });
  for (auto &t : threads)
    t.join();
  CHECK(admitted == 10);
}
