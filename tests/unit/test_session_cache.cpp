// Unit tests for db/session_cache and db/group_commit: the revocation state in memory over a
// record, kept by following its change feed (this process's writes and other
// processes'), on each engine, and the group commit of refresh rotations.
#include "db/group_commit.h"
#include "db/schema.h"
#include "db/session_cache.h"
#include "db/sqlite_store.h"

#include "support/temp_dir.h"
#include "unit/store_engines.h"

#include <sqlite3.h>

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace latch::db;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;

User user(const std::string &id) {
  User u;
  u.id = id;
  u.username = "name-" + id;
  u.email = id + "@example.com";
  u.password_hash = "$argon2id$v=19$m=64,t=1,p=1$c2FsdA$aGFzaA";
  u.created_at = u.updated_at = kNow;
  return u;
}

Session session(const std::string &id, const std::string &user_id, const std::string &jti) {
  Session s;
  s.id = id;
  s.user_id = user_id;
  s.api = "simplejwt";
  s.refresh_jti = jti;
  s.created_at = kNow;
  s.expires_at = kNow + 3600;
  return s;
}

// A store, and how to open another on the same database, on each engine in turn.
struct Fixture {
  Store &record;
  std::function<std::unique_ptr<Store>()> open; // as another process would
};
void for_each_fixture(const std::function<void(Fixture &)> &body) {
  latch::test::for_each_engine([&](latch::test::Engine &e) {
    Fixture f{*e.store, e.open_again};
    body(f);
  });
}

// Waits (up to 5 s) until pred holds, as a follower thread applies what it read.
template <typename Pred> bool eventually(Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!pred() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  return pred();
}

} // namespace

TEST_CASE("sessions and the blacklist present at start are answered from memory") {
  for_each_fixture([](Fixture &f) {
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    f.record.insert_session(session("live", "u1", "r1"));
    f.record.insert_session(session("ended", "u1", "r2"));
    f.record.revoke_session("ended", kNow);
    f.record.logout("gone", "access-jti", kNow + 60, kNow);
    SessionCache cached(f.record, f.record);
    CHECK(cached.sizes().sessions == 1);
    CHECK(cached.sizes().blacklist == 1);
    auto live = cached.find_session("live");
    REQUIRE(live);
    CHECK(live->user_id == "u1");
    CHECK(live->refresh_jti == "r1");
    CHECK_FALSE(live->revoked);
    CHECK_FALSE(cached.find_session("ended"));
    CHECK_FALSE(cached.find_session("never"));
    CHECK(cached.is_blacklisted("access-jti"));
    CHECK_FALSE(cached.is_blacklisted("other"));
  });
}

TEST_CASE("this process's writes are in memory once it catches up, rotations at once") {
  for_each_fixture([](Fixture &f) {
    SessionCache cached(f.record, f.record);
    RotationGroupCommit rotations(
        f.record, [&](const auto &batch, const auto &done) { cached.rotated(batch, done); });
    auto rotate = [&](const std::string &id, const std::string &old_jti, const std::string &next) {
      return rotations.rotate({id, "u1", old_jti, next, kNow + 7200, kNow}).result;
    };
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    REQUIRE(f.record.insert_user(user("u2")) == InsertUserResult::ok);
    f.record.insert_session(session("s1", "u1", "r1"));
    f.record.insert_session(session("s2", "u1", "r2"));
    f.record.insert_session(session("s3", "u2", "r3"));
    CHECK_FALSE(cached.find_session("s1")); // not until it catches up
    cached.catch_up();
    REQUIRE(cached.find_session("s1"));

    CHECK(rotate("s1", "r1", "r1b") == RotateResult::rotated);
    CHECK(cached.find_session("s1")->refresh_jti == "r1b");
    CHECK(cached.find_session("s1")->expires_at == kNow + 7200);
    CHECK(f.record.find_session("s1")->refresh_jti == "r1b");
    // The old token again: reuse, and the session ends in both.
    CHECK(rotate("s1", "r1", "r1c") == RotateResult::reused);
    CHECK_FALSE(cached.find_session("s1"));
    CHECK(f.record.find_session("s1")->revoked);

    f.record.logout("s2", "a2", kNow + 60, kNow);
    cached.catch_up();
    CHECK_FALSE(cached.find_session("s2"));
    CHECK(cached.is_blacklisted("a2"));
    CHECK(f.record.is_blacklisted("a2"));

    // The user cache sees a deletion, and the user's sessions go with it.
    REQUIRE(cached.find_user("u2"));
    CHECK(cached.sizes().users == 1);
    CHECK(f.record.delete_user("u2"));
    cached.catch_up();
    CHECK_FALSE(cached.find_user("u2"));
    CHECK_FALSE(cached.find_session("s3"));

    // Purge drops what expired from memory as from the record.
    f.record.insert_session(session("s4", "u1", "r4"));
    cached.catch_up();
    CHECK(cached.active_sessions(kNow) == 1);
    CHECK(cached.active_sessions(kNow + 3600) == 0); // counted without a purge, by expiry
    f.record.purge_expired(kNow + 3600, kNow);
    cached.drop_expired(kNow + 3600);
    CHECK_FALSE(cached.find_session("s4"));
    CHECK_FALSE(cached.is_blacklisted("a2"));
    CHECK(cached.sizes().sessions == 0);
  });
}

TEST_CASE("what another connection commits is applied change by change, by a follower") {
  for_each_fixture([](Fixture &f) {
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    SessionCache cached(f.record, f.record);
    f.record.insert_session(session("s1", "u1", "r1"));
    f.record.insert_session(session("s2", "u1", "r2"));
    cached.catch_up();
    REQUIRE(cached.find_session("s1"));
    std::atomic<int> key_changes{0};
    cached.follow([&] { ++key_changes; });

    // As latch sessions revoke would: another process, another connection.
    {
      auto admin_store = f.open();
      Store &admin = *admin_store;
      admin.revoke_session("s1", kNow);
      admin.insert_session(session("s9", "u1", "r9"));
      admin.logout("s2", "a2", kNow + 60, kNow);
    }
    CHECK(eventually([&] { return cached.is_blacklisted("a2"); }));
    CHECK_FALSE(cached.find_session("s1"));
    CHECK(cached.find_session("s9"));
    CHECK_FALSE(cached.find_session("s2"));

    // The user deleted by another process (latch user delete): its sessions end here too.
    REQUIRE(cached.find_user("u1"));
    {
      auto admin_store = f.open();
      Store &admin = *admin_store;
      REQUIRE(admin.delete_user("u1"));
    }
    CHECK(eventually([&] { return !cached.find_session("s9"); }));
    CHECK_FALSE(cached.find_user("u1"));

    // A key rotated elsewhere is told to whoever keeps the codec.
    {
      auto admin_store = f.open();
      Store &admin = *admin_store;
      admin.ensure_signing_key({"k1", "secret-k1", kNow, std::nullopt, false});
    }
    CHECK(eventually([&] { return key_changes > 0; }));
  });
}

TEST_CASE("a cache that fell behind the feed's retention loads everything again, aside") {
  for_each_fixture([](Fixture &f) {
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    SessionCache cached(f.record, f.record);
    // Rows that outlive the purge below (which runs an hour from now, by the wall clock the
    // feed's rows carry).
    const std::int64_t later = std::int64_t(std::time(nullptr)) + 3600;
    Session s1 = session("s1", "u1", "r1");
    s1.expires_at = later + 86400;
    {
      auto admin_store = f.open();
      Store &admin = *admin_store;
      admin.insert_session(s1);
      admin.logout("gone", "a1", later + 86400, kNow);
      // The feed is pruned past this cache's position.
      admin.purge_expired(later, kNow);
      admin.insert_session(session("s2", "u1", "r2"));
    }
    cached.catch_up();
    CHECK(cached.find_session("s1"));
    CHECK(cached.find_session("s2"));
    CHECK(cached.is_blacklisted("a1"));
  });
}

TEST_CASE("concurrent rotations are committed in groups and each token rotates exactly once") {
  for_each_fixture([](Fixture &f) {
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    SessionCache cached(f.record, f.record);
    RotationGroupCommit rotations(
        f.record, [&](const auto &batch, const auto &done) { cached.rotated(batch, done); });
    constexpr int kSessions = 16;
    constexpr int kRounds = 20;
    for (int i = 0; i < kSessions; ++i)
      f.record.insert_session(
          session("s" + std::to_string(i), "u1", "r" + std::to_string(i) + "-0"));
    cached.catch_up();

    // Each session has two threads presenting the same token every round: exactly one wins,
    // the other is refused as reuse and the session ends, as one client stealing from another.
    std::atomic<int> rotated{0}, reused{0}, gone{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kSessions; ++i) {
      for (int twin = 0; twin < 2; ++twin) {
        threads.emplace_back([&, i, twin] {
          const std::string id = "s" + std::to_string(i);
          for (int round = 0; round < kRounds; ++round) {
            std::string old_jti = "r" + std::to_string(i) + "-" + std::to_string(round);
            std::string next = old_jti + "-" + std::to_string(twin);
            switch (rotations.rotate({id, "u1", old_jti, next, kNow + 7200, kNow}).result) {
            case RotateResult::rotated: ++rotated; break;
            case RotateResult::replayed: break; // not without a reuse interval
            case RotateResult::reused: ++reused; break;
            case RotateResult::gone: ++gone; break;
            }
          }
        });
      }
    }
    for (auto &t : threads)
      t.join();
    // The first round of every session has one winner and one reuse, which ends the session;
    // every later round finds it gone.
    CHECK(rotated == kSessions);
    CHECK(reused == kSessions);
    CHECK(gone == kSessions * (2 * kRounds - 2));
    for (int i = 0; i < kSessions; ++i) {
      CHECK_FALSE(cached.find_session("s" + std::to_string(i)));
      CHECK(f.record.find_session("s" + std::to_string(i))->revoked);
    }
  });
}

TEST_CASE("rotations of different sessions from many threads all land, in memory and on disk") {
  for_each_fixture([](Fixture &f) {
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    SessionCache cached(f.record, f.record);
    RotationGroupCommit rotations(
        f.record, [&](const auto &batch, const auto &done) { cached.rotated(batch, done); });
    constexpr int kThreads = 12;
    constexpr int kRounds = 30;
    for (int i = 0; i < kThreads; ++i)
      f.record.insert_session(session("s" + std::to_string(i), "u1", "0"));
    cached.catch_up();
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int i = 0; i < kThreads; ++i) {
      threads.emplace_back([&, i] {
        const std::string id = "s" + std::to_string(i);
        for (int round = 0; round < kRounds; ++round)
          if (rotations
                  .rotate({id, "u1", std::to_string(round), std::to_string(round + 1), kNow + 7200,
                           kNow})
                  .result != RotateResult::rotated)
            ++failures;
      });
    }
    for (auto &t : threads)
      t.join();
    CHECK(failures == 0);
    auto reader_store = f.open();
    Store &reader = *reader_store;
    for (int i = 0; i < kThreads; ++i) {
      const std::string id = "s" + std::to_string(i);
      CHECK(cached.find_session(id)->refresh_jti == std::to_string(kRounds));
      CHECK(reader.find_session(id)->refresh_jti == std::to_string(kRounds));
    }
  });
}

TEST_CASE("this process's rotations go to memory without reading the feed, unless another "
          "write came between") {
  for_each_fixture([](Fixture &f) {
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    f.record.insert_session(session("s1", "u1", "r1"));
    SessionCache cached(f.record, f.record);
    bool direct = false;
    RotationGroupCommit rotations(f.record, [&](const auto &batch, const auto &done) {
      direct = cached.rotated(batch, done);
    });
    auto rotate = [&](const std::string &old_jti, const std::string &next, std::int64_t expires) {
      return rotations.rotate({"s1", "u1", old_jti, next, expires, kNow}).result;
    };

    CHECK(rotate("r1", "r2", kNow + 7200) == RotateResult::rotated);
    CHECK(direct);
    CHECK(cached.find_session("s1")->refresh_jti == "r2");
    CHECK(cached.find_session("s1")->expires_at == kNow + 7200);
    CHECK(cached.active_sessions(kNow + 3600) == 1); // its expiry moved with it

    // A write of this process the cache has not caught up with: read back, both are there.
    f.record.insert_session(session("s2", "u1", "q1"));
    CHECK(rotate("r2", "r3", kNow + 60) == RotateResult::rotated);
    CHECK_FALSE(direct);
    CHECK(cached.find_session("s2"));
    CHECK(cached.find_session("s1")->refresh_jti == "r3");
    CHECK(cached.find_session("s1")->expires_at == kNow + 7200); // never shortened

    // Another process's write between: read back too.
    {
      auto admin_store = f.open();
      Store &admin = *admin_store;
      admin.revoke_session("s2", kNow);
    }
    CHECK(rotate("r3", "r4", kNow + 7200) == RotateResult::rotated);
    CHECK_FALSE(direct);
    CHECK_FALSE(cached.find_session("s2"));

    // Reuse ends the session in memory as in the record, directly again.
    CHECK(rotate("r1", "r5", kNow + 7200) == RotateResult::reused);
    CHECK(direct);
    CHECK_FALSE(cached.find_session("s1"));
    CHECK(f.record.find_session("s1")->revoked);
    CHECK(cached.active_sessions(kNow) == 0);

    // Whatever the path, memory ends as a fresh load of the record would.
    SessionCache fresh(f.record, f.record);
    CHECK(fresh.sizes().sessions == cached.sizes().sessions);
  });
}

TEST_CASE("the feed's positions keep increasing after its prune empties it") {
  for_each_fixture([](Fixture &f) {
    REQUIRE(f.record.insert_user(user("u1")) == InsertUserResult::ok);
    for (const char *id : {"s0", "s1"}) {
      Session s = session(id, "u1", "r1");
      s.expires_at = std::int64_t(std::time(nullptr)) + 86400 * 2;
      f.record.insert_session(s);
    }
    SessionCache cached(f.record, f.record);
    const std::int64_t before = f.record.snapshot(0).position;
    REQUIRE(before > 0);
    // Every row is past the retention an hour from now; the newest stays (auth.db.sql, migration
    // 9), so the next row's position follows it instead of starting again at 1, which a follower
    // standing at `before` would never read.
    f.record.purge_expired(std::int64_t(std::time(nullptr)) + 3600, kNow);
    f.record.revoke_session("s1", kNow);
    auto changes = f.record.changes_since(before, 10);
    REQUIRE(changes);
    REQUIRE(changes->size() == 1);
    CHECK(changes->front().position == before + 1);
    cached.catch_up();
    CHECK_FALSE(cached.find_session("s1"));
  });
}

TEST_CASE("migration 9 keeps the feed's positions going from the old table's high-water mark") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  // A database as migration 8 left it, whose feed was pruned empty at position 3.
  const std::string schema = kSchemaSql;
  const std::string old_schema = schema.substr(0, schema.find("-- migration 9"));
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  const std::string sql =
      "BEGIN;" + old_schema +
      "INSERT INTO users(id, username, email, password_hash, created_at, updated_at) "
      "VALUES ('u1', 'ann', NULL, 'x', 0, 0);"
      "INSERT INTO sessions(id, user_id, api, refresh_jti, created_at, expires_at) VALUES "
      "('s1', 'u1', 'flask', 'r1', 0, 9999999999), ('s2', 'u1', 'flask', 'r2', 0, 9999999999),"
      "('s3', 'u1', 'flask', 'r3', 0, 9999999999);"
      "DELETE FROM changes; UPDATE change_floor SET position = 3;"
      "PRAGMA user_version = 8; COMMIT;";
  char *err = nullptr;
  const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  const std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, message);

  SqliteStore store(path);
  CHECK(store.schema_version() == SqliteStore::latest_schema_version());
  CHECK(store.snapshot(0).position == 3);
  store.revoke_session("s2", 0);
  auto changes = store.changes_since(3, 10);
  REQUIRE(changes);
  REQUIRE(changes->size() == 1);
  CHECK(changes->front().position == 4);
  CHECK(changes->front().key == "s2");
}
