// Crash safety: SIGKILL in the middle of sign-ups and refresh rotations loses nothing that was
// answered, half-applies nothing, and leaves the database intact.
#include "support/latch_process.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

using namespace latch::test;

namespace {

// LATCH_LONG_TESTS=1 (make test-long) repeats the slow scenarios many more times.
int rounds(int normal, int long_mode) {
  const char *v = std::getenv("LATCH_LONG_TESTS");
  return v && std::string(v) == "1" ? long_mode : normal;
}

// Reads one text column of one row from the database, read-only (the server may hold it).
std::string query_text(const std::string &db_path, const std::string &sql,
                       const std::string &param = "") {
  sqlite3 *db = nullptr;
  std::string out = "<error>";
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt *st = nullptr;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK) {
      if (!param.empty()) sqlite3_bind_text(st, 1, param.c_str(), -1, SQLITE_TRANSIENT);
      int rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) {
        auto text = sqlite3_column_text(st, 0);
        out = text ? reinterpret_cast<const char *>(text) : "<null>";
      } else if (rc == SQLITE_DONE) {
        out = "<none>";
      }
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return out;
}

// Clients that keep sending until told to stop; each records what the server answered.
template <typename Work> void run_clients(int n, std::atomic<bool> &stop, Work work) {
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i)
    threads.emplace_back([&, i] {
      while (!stop)
        work(i);
    });
  for (auto &t : threads)
    t.join();
}

} // namespace

TEST_CASE("every sign-up answered before a SIGKILL is still there after restart") {
  const int cycles = rounds(2, 20);
  int answered_total = 0, found_total = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    auto first = std::make_unique<LatchProcess>();
    std::mutex mutex;
    std::vector<std::string> answered;
    std::atomic<bool> stop = false;
    std::thread killer([&] {
      // Kill once a good number of sign-ups is through, while more are in flight.
      for (;;) {
        {
          std::lock_guard lock(mutex);
          if (answered.size() >= 60) break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
      first->stop(SIGKILL);
      stop = true;
    });
    run_clients(6, stop, [&](int) {
      std::string name = unique("crash");
      Reply r = first->post("/auth/register", {{"username", name}, {"password", "password123"}});
      if (r.status == 201) {
        std::lock_guard lock(mutex);
        answered.push_back(name);
      }
    });
    killer.join();

    LatchProcess second({}, first->db_path());
    CHECK(query_text(first->db_path(), "PRAGMA integrity_check") == "ok");
    int found = 0;
    for (const auto &name : answered) {
      bool there = query_text(first->db_path(), "SELECT id FROM users WHERE username = ?1", name) !=
                   "<none>";
      found += there ? 1 : 0;
      CHECK_MESSAGE(there, name << " was answered 201 but is gone after the crash");
    }
    // And they can sign in: the stored hash is whole.
    if (!answered.empty())
      CHECK(
          second.post("/auth/login", {{"username", answered.front()}, {"password", "password123"}})
              .status == 200);
    answered_total += int(answered.size());
    found_total += found;
  }
  MESSAGE(cycles << " crashes: " << answered_total << " sign-ups answered, " << found_total
                 << " found after restart");
  CHECK(found_total == answered_total);
}

TEST_CASE("no refresh rotation answered before a SIGKILL is lost or half-applied") {
  const int cycles = rounds(2, 20);
  constexpr int kChains = 6;
  int rotations_total = 0;
  for (int cycle = 0; cycle < cycles; ++cycle) {
    auto first = std::make_unique<LatchProcess>();
    struct Chain {
      std::string session_id;
      std::vector<std::string> answered_jtis; // in order; the last one is the current token
      std::string current;
    };
    std::vector<Chain> chains(kChains);
    for (int i = 0; i < kChains; ++i) {
      std::string name = unique("rotor");
      Reply r = first->post("/auth/register", {{"username", name}, {"password", "password123"}});
      REQUIRE(r.status == 201);
      chains[size_t(i)].current = r.body["refresh"].get<std::string>();
      chains[size_t(i)].session_id = jwt_payload(chains[size_t(i)].current)["sid"];
      chains[size_t(i)].answered_jtis.push_back(jwt_payload(chains[size_t(i)].current)["jti"]);
    }
    std::atomic<int> rotations = 0;
    std::atomic<bool> stop = false;
    std::thread killer([&] {
      while (rotations < 120)
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      first->stop(SIGKILL);
      stop = true;
    });
    run_clients(kChains, stop, [&](int i) {
      Chain &c = chains[size_t(i)];
      Reply r = first->post("/auth/token/refresh", {{"refresh", c.current}});
      if (r.status != 200) return; // the kill; nothing else may fail
      c.current = r.body["refresh"].get<std::string>();
      c.answered_jtis.push_back(jwt_payload(c.current)["jti"]);
      ++rotations;
    });
    killer.join();
    rotations_total += rotations;

    LatchProcess second({}, first->db_path());
    CHECK(query_text(first->db_path(), "PRAGMA integrity_check") == "ok");
    for (const Chain &c : chains) {
      std::string stored = query_text(
          first->db_path(), "SELECT refresh_jti FROM sessions WHERE id = ?1", c.session_id);
      // The stored token is the last one answered, or one issued by a rotation that committed
      // while its answer was cut off by the kill; never an older, already-rotated one.
      bool older = std::find(c.answered_jtis.begin(), c.answered_jtis.end() - 1, stored) !=
                   c.answered_jtis.end() - 1;
      CHECK_MESSAGE(!older, "session " << c.session_id << " went back to an older refresh token");
      CHECK(stored.size() > 10);
      if (stored == c.answered_jtis.back())
        CHECK(second.post("/auth/token/refresh", {{"refresh", c.current}}).status == 200);
    }
  }
  MESSAGE(cycles << " crashes: " << rotations_total << " rotations answered");
}
