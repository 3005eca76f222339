// The per-address rate limit behind and without a trusted reverse proxy.
#include "support/latch_process.h"

#include <doctest/doctest.h>

using namespace latch::test;

namespace {

Reply login_from(const LatchProcess &latch, const std::string &forwarded_for) {
  return latch.post_raw("/auth/login", R"({"username":"nobody","password":"whatever1"})",
                        "application/json", "", {{"X-Forwarded-For", forwarded_for}});
}

} // namespace

TEST_CASE("without a trusted proxy, X-Forwarded-For cannot dodge the per-address limit") {
  LatchProcess latch({{"--rate-limit", "2"}, {}});
  CHECK(login_from(latch, "10.0.0.1").status == 401);
  CHECK(login_from(latch, "10.0.0.2").status == 401);
  Reply third = login_from(latch, "10.0.0.3"); // a new claimed address, same real one
  CHECK(third.status == 429);
  REQUIRE(third.body["message"].is_string());
  CHECK(third.body["message"].get<std::string>().rfind("Too many requests. Try again in ", 0) == 0);
  CHECK(!third.header("Retry-After").empty());
}

TEST_CASE("behind a trusted proxy, each forwarded client address has its own limit") {
  LatchProcess latch({{"--rate-limit", "2", "--trusted-proxy", "127.0.0.1"}, {}});
  CHECK(login_from(latch, "203.0.113.7").status == 401);
  CHECK(login_from(latch, "203.0.113.7").status == 401);
  CHECK(login_from(latch, "203.0.113.7").status == 429);
  // Another client behind the same proxy is not throttled by the first one.
  CHECK(login_from(latch, "203.0.113.8").status == 401);
  // Only the address the proxy appended counts: a client-written prefix proves nothing.
  CHECK(login_from(latch, "198.51.100.1, 203.0.113.7").status == 429);
}

TEST_CASE("routes that are not sign-in, sign-up or reset are not rate-limited") {
  LatchProcess latch({{"--rate-limit", "1"}, {}});
  for (int i = 0; i < 5; ++i)
    CHECK(latch.get("/auth/getuser").status == 401);
  for (int i = 0; i < 5; ++i)
    CHECK(latch.post("/auth/token/verify", {{"token", "x.y.z"}}).status == 401);
}

TEST_CASE("behind a trusted proxy, an IPv6 client is limited by its /64 however it hops in it") {
  LatchProcess latch({{"--rate-limit", "2", "--trusted-proxy", "127.0.0.1"}, {}});
  CHECK(login_from(latch, "2001:db8:5:6::1").status == 401);
  CHECK(login_from(latch, "2001:db8:5:6::2").status == 401);
  Reply third = login_from(latch, "2001:db8:5:6:dead:beef:0:1");
  CHECK(third.status == 429);
  CHECK(!third.header("Retry-After").empty());
  CHECK(login_from(latch, "2001:db8:5:7::1").status == 401); // the next /64 is someone else
}
