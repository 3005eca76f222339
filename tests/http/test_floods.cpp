// Floods and slow clients: lockout costs no hash, saturated hashing answers 503, and idle or
// half-sent connections cannot keep other clients from being served.
#include "support/latch_process.h"
#include "support/raw_client.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>

using namespace latch::test;
using namespace std::chrono_literals;

namespace {

const std::string kVerifyRequest = "POST /auth/token/verify HTTP/1.1\r\nHost: latch\r\n"
                                   "Content-Type: application/json\r\nContent-Length: 15\r\n"
                                   "\r\n{\"token\":\"x\"}  ";

Reply flask_login(const LatchProcess &latch, const std::string &user, const std::string &pass) {
  return latch.post("/auth/login", {{"username", user}, {"password", pass}});
}

} // namespace

TEST_CASE("hundreds of idle keep-alive connections do not stop other clients being served") {
  LatchProcess latch({{"--threads", "4"}, {}});
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 300; ++i) {
    auto c = std::make_unique<RawClient>(latch.port());
    REQUIRE(c->connected());
    REQUIRE(c->send(kVerifyRequest));
    // Each is answered while all the earlier ones stay open and idle on keep-alive: with a
    // fixed pool of 4 threads the fifth would wait for the first one's 5 s keep-alive time-out,
    // longer than this wait.
    std::string head = c->read_head(3s);
    INFO("connection " << i);
    REQUIRE(head.rfind("HTTP/1.1 401", 0) == 0);
    idle.push_back(std::move(c));
  }
  std::string name = unique("busy");
  CHECK(latch.post("/auth/register", {{"username", name}, {"password", "password123"}}).status ==
        201);
  CHECK(flask_login(latch, name, "password123").status == 200);
  int still_open = 0;
  for (auto &c : idle)
    still_open += c->open() ? 1 : 0;
  MESSAGE(still_open << " of 300 idle connections were still open after the new client was served");
  CHECK(still_open > 0);
}

TEST_CASE("clients that send half a request and trickle the rest do not block others") {
  LatchProcess latch({{"--threads", "4"}, {}});
  std::vector<std::unique_ptr<RawClient>> slow;
  for (int i = 0; i < 200; ++i) {
    auto c = std::make_unique<RawClient>(latch.port());
    REQUIRE(c->connected());
    REQUIRE(c->send("POST /auth/token HTTP/1.1\r\nHost: latch\r\n"));
    slow.push_back(std::move(c));
  }
  // A header line a second keeps each under the read time-out, so they hold their threads.
  std::atomic<bool> stop = false;
  std::thread trickle([&] {
    while (!stop) {
      for (auto &c : slow)
        c->send("X-Slow: 1\r\n");
      for (int i = 0; i < 10 && !stop; ++i)
        std::this_thread::sleep_for(100ms);
    }
  });
  std::string name = unique("patient");
  Reply signup = latch.post("/auth/register", {{"username", name}, {"password", "password123"}});
  Reply login = flask_login(latch, name, "password123");
  int still_open = 0;
  for (auto &c : slow)
    still_open += c->open() ? 1 : 0;
  stop = true;
  trickle.join();
  CHECK(signup.status == 201);
  CHECK(login.status == 200);
  CHECK(still_open == 200); // they were all held while the new client was served
}

TEST_CASE("a stalled half request and an idle keep-alive connection are closed by time-outs") {
  LatchProcess latch;
  RawClient stalled(latch.port());
  REQUIRE(stalled.connected());
  REQUIRE(stalled.send("POST /auth/token HTTP/1.1\r\nHost: latch\r\nContent-Length: 100\r\n\r\n{"));
  RawClient idle(latch.port());
  REQUIRE(idle.connected());
  REQUIRE(idle.send(kVerifyRequest));
  REQUIRE(idle.read_head(10s).rfind("HTTP/1.1 401", 0) == 0);
  // Read and keep-alive time-outs are 5 s; allow generous slack for a loaded machine.
  CHECK(stalled.closed_within(20s));
  CHECK(idle.closed_within(20s));
  CHECK(latch.post("/auth/token/verify", {{"token", "x"}}).status == 401);
}

TEST_CASE("a locked account is refused with 429 and Retry-After without costing a hash") {
  // One hashing slot, no queue, and a slow hash: any sign-in that needed a hash while the slot
  // is taken would get 503, so a 429 then proves the locked sign-in hashed nothing.
  LatchProcess latch({{"--max-failed-logins", "2", "--hash-concurrency", "1", "--hash-queue", "0",
                       "--argon2-memory-kib", "65536", "--argon2-iterations", "8"},
                      {}});
  std::string victim = unique("victim"), other = unique("other");
  REQUIRE(
      latch.post("/auth/register", {{"username", victim}, {"password", "password123"}}).status ==
      201);
  REQUIRE(latch.post("/auth/register", {{"username", other}, {"password", "password123"}}).status ==
          201);
  CHECK(flask_login(latch, victim, "wrong-password").status == 401);
  CHECK(flask_login(latch, victim, "wrong-password").status == 401);
  Reply locked = flask_login(latch, victim, "password123"); // right password, but locked
  CHECK(locked.status == 429);
  CHECK(std::stoi(locked.header("Retry-After")) > 0);
  CHECK(locked.body["message"].get<std::string>().rfind("Too many requests", 0) == 0);

  // A client that keeps the only slot taken with real sign-ins (retrying when refused).
  std::atomic<bool> done = false;
  std::thread keeper([&] {
    while (!done)
      flask_login(latch, other, "password123");
  });
  int locked_answers = 0, locked_429 = 0, probes_503 = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while ((probes_503 < 3 || locked_answers < 3) && std::chrono::steady_clock::now() < deadline) {
    Reply again = flask_login(latch, victim, "password123");
    ++locked_answers;
    locked_429 += again.status == 429 ? 1 : 0;
    // A sign-in that does need a hash, to see the slot taken.
    probes_503 += flask_login(latch, unique("nobody"), "password123").status == 503 ? 1 : 0;
  }
  done = true;
  keeper.join();
  MESSAGE(locked_answers << " locked sign-ins, " << probes_503 << " probes saw hashing saturated");
  CHECK(locked_answers >= 3);
  CHECK(locked_429 == locked_answers);
  CHECK(probes_503 >= 3);
}

TEST_CASE("when hashing is saturated, sign-ins queue up to a bound and the rest get 503") {
  LatchProcess latch({{"--hash-concurrency", "1", "--hash-queue", "1", "--argon2-memory-kib",
                       "65536", "--argon2-iterations", "4"},
                      {}});
  std::string name = unique("crowd");
  REQUIRE(latch.post("/auth/register", {{"username", name}, {"password", "password123"}}).status ==
          201);
  constexpr int kClients = 8;
  std::vector<Reply> replies(kClients);
  std::vector<std::thread> threads;
  std::atomic<int> ready = 0;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      ++ready;
      while (ready < kClients)
        std::this_thread::yield();
      replies[size_t(i)] = latch.post(
          "/api/auth/signin", {{"email", name + "@nowhere.test"}, {"password", "password123"}});
    });
  for (auto &t : threads)
    t.join();
  int served = 0, refused = 0;
  for (const Reply &r : replies) {
    if (r.status == 401) ++served; // no such email: the hash is still spent
    if (r.status == 503) {
      ++refused;
      CHECK(r.header("Retry-After") == "1");
      CHECK(r.body["statusCode"] == 503); // picflux's NestJS shape
      CHECK(r.body["message"].is_string());
    }
  }
  MESSAGE(served << " served, " << refused << " refused with 503");
  CHECK(served + refused == kClients);
  CHECK(served >= 1);
  CHECK(refused >= 1);
}

TEST_CASE("a flood of sign-ins beyond what hashing can run does not hold up token checks") {
  // Slow hashes, one at a time: the sign-ins past the first wait parked in the connection
  // loop, holding no worker, so a token check is answered while they wait. Were they
  // holding the workers (or queued ahead of it), the check would come after most of them.
  LatchProcess latch({{"--hash-concurrency", "1", "--argon2-memory-kib", "65536",
                       "--argon2-iterations", "4", "--metrics"},
                      {}});
  std::string name = unique("flooded");
  Reply made = latch.post("/auth/register", {{"username", name}, {"password", "password123"}});
  REQUIRE(made.status == 201);
  const std::string access = made.body["access"];
  constexpr int kSignIns = 12;
  std::atomic<int> finished = 0;
  std::vector<std::thread> crowd;
  struct JoinAll {
    std::vector<std::thread> &threads;
    ~JoinAll() {
      for (auto &t : threads)
        if (t.joinable()) t.join();
    }
  } join_all{crowd};
  for (int i = 0; i < kSignIns; ++i)
    crowd.emplace_back([&] {
      latch.post("/auth/token", {{"username", name}, {"password", "password123"}});
      ++finished;
    });
  // Until most of them are in line (the queue depth counts the parked ones).
  bool lined_up = false;
  for (int i = 0; i < 500 && !lined_up; ++i) {
    std::string m = latch.get("/metrics").text;
    const std::string gauge = "\nlatch_password_hash_queue_depth ";
    auto at = m.find(gauge);
    lined_up = at != std::string::npos && std::atoi(m.c_str() + at + gauge.size()) >= kSignIns / 2;
    if (!lined_up) std::this_thread::sleep_for(10ms);
  }
  REQUIRE(lined_up);
  const int before = finished;
  Reply check = latch.get("/auth/getuser", access);
  const int after = finished;
  for (auto &t : crowd)
    t.join();
  CHECK(check.status == 200);
  MESSAGE("sign-ins finished while the token check waited: " << after - before << " of "
                                                             << kSignIns - before);
  CHECK(after - before <= 2);
  CHECK(finished == kSignIns);
}
