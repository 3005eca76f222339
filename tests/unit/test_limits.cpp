// Unit tests for auth/limits: the fixed-window counter behind rate limits and lockout.
#include "auth/limits.h"

#include <doctest/doctest.h>

#include <string>

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
  for (int i = 1; i < 60; ++i) CHECK(counter.hit("k", kT0 + i) == 60 - i);
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
  for (int i = 0; i < 10; ++i) CHECK(counter.blocked_for("k", kT0 + 1) == 0);
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
  for (int i = 0; i < 1000; ++i) REQUIRE(counter.hit("ip", kT0) == 0);
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
