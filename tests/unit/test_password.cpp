// Unit tests for auth/password: argon2id PHC strings, verification, rehash, the hashing gate.
#include "auth/password.h"

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <latch>
#include <string>
#include <thread>
#include <vector>

using namespace latch;

namespace {

PasswordParams cheap(std::uint32_t memory_kib = 64, std::uint32_t iterations = 1) {
  PasswordParams p;
  p.memory_kib = memory_kib;
  p.iterations = iterations;
  return p;
}

// Page faults this thread has taken so far.
long minor_faults() {
  rusage usage{};
  getrusage(RUSAGE_THREAD, &usage);
  return usage.ru_minflt;
}

} // namespace

TEST_CASE("password defaults are OWASP's argon2id cost m=19456 t=2") {
  PasswordParams p;
  CHECK(p.memory_kib == 19456);
  CHECK(p.iterations == 2);
}

TEST_CASE("hash produces an argon2id PHC string carrying the configured parameters") {
  PasswordHasher hasher(cheap(64, 1), 2, 8);
  auto h = hasher.hash("correct horse battery staple");
  REQUIRE(h.ok());
  CHECK(h->rfind("$argon2id$v=19$m=64,t=1,p=1$", 0) == 0);
  // Then salt and hash, both base64, separated by one more '$'.
  std::string rest = h->substr(std::string("$argon2id$v=19$m=64,t=1,p=1$").size());
  CHECK(std::count(rest.begin(), rest.end(), '$') == 1);
  CHECK(rest.find('$') > 0);

  PasswordHasher other(cheap(128, 3), 2, 8);
  auto h2 = other.hash("x");
  REQUIRE(h2.ok());
  CHECK(h2->rfind("$argon2id$v=19$m=128,t=3,p=1$", 0) == 0);
  CHECK(other.params().memory_kib == 128);
  CHECK(other.params().iterations == 3);
}

TEST_CASE("hashing the same password twice gives different salted hashes") {
  PasswordHasher hasher(cheap(), 2, 8);
  auto a = hasher.hash("same password");
  auto b = hasher.hash("same password");
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  CHECK(*a != *b);
}

TEST_CASE("verify matches the right password and no other") {
  PasswordHasher hasher(cheap(), 2, 8);
  auto h = hasher.hash("s3cret-pässword");
  REQUIRE(h.ok());

  auto good = hasher.verify(*h, "s3cret-pässword");
  REQUIRE(good.ok());
  CHECK(good->match);
  CHECK_FALSE(good->needs_rehash);

  for (const char *wrong :
       {"s3cret-password", "S3cret-pässword", "s3cret-pässwor", "", " s3cret-pässword"}) {
    CAPTURE(wrong);
    auto bad = hasher.verify(*h, wrong);
    REQUIRE(bad.ok());
    CHECK_FALSE(bad->match);
    CHECK_FALSE(bad->needs_rehash);
  }
}

TEST_CASE("verify treats a password with an embedded NUL as different from its prefix") {
  PasswordHasher hasher(cheap(), 2, 8);
  std::string with_nul("abc\0def", 7);
  auto h = hasher.hash(with_nul);
  REQUIRE(h.ok());
  auto full = hasher.verify(*h, with_nul);
  REQUIRE(full.ok());
  CHECK(full->match);
  auto prefix = hasher.verify(*h, "abc");
  REQUIRE(prefix.ok());
  CHECK_FALSE(prefix->match);
}

TEST_CASE("verify of a string that is not a PHC hash is a mismatch, not an error") {
  PasswordHasher hasher(cheap(), 2, 8);
  for (const char *junk :
       {"", "plaintext", "$argon2id$v=19$m=64,t=1,p=1$", "$2b$12$abcdefghijklmnopqrstuv"}) {
    CAPTURE(junk);
    auto v = hasher.verify(junk, "plaintext");
    REQUIRE(v.ok());
    CHECK_FALSE(v->match);
  }
}

TEST_CASE("needs_rehash is true for a hash made with other parameters and false for ours") {
  PasswordHasher old_memory(cheap(64, 1), 2, 8);
  PasswordHasher old_time(cheap(128, 2), 2, 8);
  PasswordHasher current(cheap(128, 1), 2, 8);

  auto h_old_memory = old_memory.hash("pw");
  auto h_old_time = old_time.hash("pw");
  auto h_current = current.hash("pw");
  REQUIRE(h_old_memory.ok());
  REQUIRE(h_old_time.ok());
  REQUIRE(h_current.ok());

  auto v1 = current.verify(*h_old_memory, "pw");
  REQUIRE(v1.ok());
  CHECK(v1->match);
  CHECK(v1->needs_rehash);

  auto v2 = current.verify(*h_old_time, "pw");
  REQUIRE(v2.ok());
  CHECK(v2->match);
  CHECK(v2->needs_rehash);

  auto v3 = current.verify(*h_current, "pw");
  REQUIRE(v3.ok());
  CHECK(v3->match);
  CHECK_FALSE(v3->needs_rehash);
}

TEST_CASE("burn spends a verification and returns Ok, repeatedly") {
  PasswordHasher hasher(cheap(), 2, 8);
  auto first = hasher.burn("whatever");
  CHECK(first.ok());
  auto second = hasher.burn("something else");
  CHECK(second.ok());
}

TEST_CASE("the hashing gate answers busy when every slot is taken and nobody may wait") {
  PasswordHasher hasher(cheap(8192, 1), /*max_concurrent=*/1, /*max_waiting=*/0);
  constexpr int kThreads = 8;
  constexpr int kRounds = 3;
  std::atomic<int> ok{0}, busy{0}, other{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (int r = 0; r < kRounds; ++r) {
        auto h = hasher.hash("contended password");
        if (h.ok())
          ++ok;
        else if (h.error().code == ErrorCode::busy)
          ++busy;
        else
          ++other;
      }
    });
  }
  for (auto &t : threads)
    t.join();
  CHECK(ok.load() >= 1);
  CHECK(busy.load() >= 1);
  CHECK(other.load() == 0);
  CHECK(ok.load() + busy.load() == kThreads * kRounds);

  // Once the contention is over the gate is open again: slots were released on every path.
  auto after = hasher.hash("calm");
  CHECK(after.ok());
}

TEST_CASE("callers allowed to wait all get a hash in the end") {
  PasswordHasher hasher(cheap(1024, 1), /*max_concurrent=*/1, /*max_waiting=*/16);
  constexpr int kThreads = 6;
  std::atomic<int> ok{0}, failed{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      auto h = hasher.hash("queued password");
      if (h.ok())
        ++ok;
      else
        ++failed;
    });
  }
  for (auto &t : threads)
    t.join();
  CHECK(ok.load() == kThreads);
  CHECK(failed.load() == 0);
}

TEST_CASE("verify and burn are gated like hash") {
  PasswordHasher hasher(cheap(8192, 1), 1, 0);
  auto h = hasher.hash("pw");
  REQUIRE(h.ok());
  constexpr int kThreads = 8;
  std::atomic<int> ok{0}, busy{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      for (int r = 0; r < 3; ++r) {
        bool done;
        ErrorCode code = ErrorCode::internal;
        if (i % 2) {
          auto v = hasher.verify(*h, "pw");
          done = v.ok() && v->match;
          if (!v.ok()) code = v.error().code;
        } else {
          auto b = hasher.burn("pw");
          done = b.ok();
          if (!b.ok()) code = b.error().code;
        }
        if (done)
          ++ok;
        else if (code == ErrorCode::busy)
          ++busy;
      }
    });
  }
  for (auto &t : threads)
    t.join();
  CHECK(ok.load() >= 1);
  CHECK(busy.load() >= 1);
  CHECK(ok.load() + busy.load() == kThreads * 3);
}

TEST_CASE("hashes made by libsodium and by the reference libargon2 verify, at our cost too") {
  PasswordHasher hasher(PasswordParams{}, 2, 8);
  // Spoil the slot's memory first: a verification must not depend on what a hash left there.
  REQUIRE(hasher.hash("something else entirely").ok());
  struct Known {
    const char *maker, *phc;
    bool needs_rehash;
  };
  for (const Known &known : {
           Known{"libsodium 1.0.18",
                 "$argon2id$v=19$m=64,t=1,p=1$/h2eRVobfeZH3xwWWNtrOA$"
                 "Q0VutNPtdSclsPhNaC4VIUhrPRcLUMVLvUfh1tDHXIM",
                 true},
           Known{"libsodium 1.0.18",
                 "$argon2id$v=19$m=19456,t=2,p=1$gTQ+vAwgAOaXNZioFDzJiw$"
                 "u4fscNj/+DDbhOoHQI98HCqsIVaxwxhfi07xCZTXqEQ",
                 false},
           Known{"argon2-cffi (libargon2 20171227)",
                 "$argon2id$v=19$m=64,t=1,p=1$kwxlWeKP3oF0O5x4CJYLuA$"
                 "EcsvxBi1lGQLCDpjXla2q3+pOTC82y2xZq64kShhbWY",
                 true},
           Known{"argon2-cffi (libargon2 20171227)",
                 "$argon2id$v=19$m=19456,t=2,p=1$kpKOkdUIuB4T3VLUY93WQQ$"
                 "CYA1IZ2+8LVcwgk/gyndGKrhy7jbrvD8oe3yWTtFpwo",
                 false},
       }) {
    CAPTURE(known.maker);
    CAPTURE(known.phc);
    auto good = hasher.verify(known.phc, "correct horse battery staple");
    REQUIRE(good.ok());
    CHECK(good->match);
    CHECK(good->needs_rehash == known.needs_rehash);
    auto bad = hasher.verify(known.phc, "correct horse battery stapler");
    REQUIRE(bad.ok());
    CHECK_FALSE(bad->match);
  }
}

TEST_CASE("a slot keeps its argon2 memory between hashes instead of faulting in a fresh block") {
  PasswordHasher hasher(cheap(8192, 1), 1, 0); // 8 MiB: 2,048 pages when fresh
  REQUIRE(hasher.hash("first").ok());
  CHECK(hasher.memory_held() == 8192u * 1024u);
  const long before = minor_faults();
  for (int i = 0; i < 4; ++i) {
    REQUIRE(hasher.hash("again").ok());
    auto v = hasher.verify("$argon2id$v=19$m=64,t=1,p=1$kwxlWeKP3oF0O5x4CJYLuA$"
                           "EcsvxBi1lGQLCDpjXla2q3+pOTC82y2xZq64kShhbWY",
                           "correct horse battery staple");
    REQUIRE(v.ok());
    CHECK(v->match);
  }
  // Eight fresh blocks would be over 16,000 faults; a kept one costs next to none.
  CHECK(minor_faults() - before < 1000);
}

TEST_CASE("a hash made with more memory than ours still verifies, with a block of its own") {
  PasswordHasher bigger(cheap(1024, 1), 1, 0);
  auto h = bigger.hash("pw");
  REQUIRE(h.ok());
  PasswordHasher smaller(cheap(64, 1), 1, 0);
  auto v = smaller.verify(*h, "pw");
  REQUIRE(v.ok());
  CHECK(v->match);
  CHECK(v->needs_rehash);
  CHECK(smaller.memory_held() <= 64u * 1024u);
}

TEST_CASE("argon2 memory is given back once no hash has used it for a while") {
  PasswordHasher hasher(cheap(4096, 1), 2, 0, std::chrono::milliseconds(50));
  CHECK(hasher.memory_held() == 0); // nothing is mapped before the first hash
  REQUIRE(hasher.hash("pw").ok());
  CHECK(hasher.memory_held() == 4096u * 1024u);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (hasher.memory_held() != 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(hasher.memory_held() == 0);
  // And a later hash maps it again.
  auto h = hasher.hash("pw");
  REQUIRE(h.ok());
  auto v = hasher.verify(*h, "pw");
  REQUIRE(v.ok());
  CHECK(v->match);
}
