// Unit tests for db/postgres_store what only PostgreSQL has: migrations raced by several servers,
// the statement timeout, reconnection after a restart, NOTIFY, rotations from two servers. The
// Store contract itself is tested on both engines in test_store.cpp.
#include "db/postgres_store.h"

#include "support/postgres_server.h"
#include "unit/store_engines.h"

#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace latch::db;
using latch::test::PostgresServer;

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

// A plain libpq connection beside the store: another client of the same database.
struct Client {
  PGconn *conn;
  explicit Client(const std::string &uri) : conn(PQconnectdb(uri.c_str())) {
    REQUIRE(PQstatus(conn) == CONNECTION_OK);
  }
  ~Client() { PQfinish(conn); }
  std::string exec(const char *sql) {
    PGresult *r = PQexec(conn, sql);
    const ExecStatusType status = PQresultStatus(r);
    std::string out = status == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "";
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK)
      out = std::string("error: ") + PQresultErrorMessage(r);
    PQclear(r);
    return out;
  }
};

} // namespace

TEST_CASE("PostgreSQL: servers starting together on an empty database migrate it once") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string uri = server->create_database();
  std::vector<std::future<int>> opened;
  for (int i = 0; i < 4; ++i)
    opened.push_back(std::async(std::launch::async, [&uri] {
      PostgresStore store(uri);
      return store.schema_version();
    }));
  for (auto &f : opened)
    CHECK(f.get() == PostgresStore::latest_schema_version());
  Client client(uri);
  CHECK(client.exec("SELECT count(*) FROM latch_schema") == "1");
  CHECK(client.exec("SELECT count(*) FROM pg_tables WHERE tablename = 'users'") == "1");
  // Opening it again changes nothing and keeps the data.
  {
    PostgresStore store(uri);
    REQUIRE(store.insert_user(user("u1")) == InsertUserResult::ok);
  }
  PostgresStore again(uri);
  CHECK(again.find_user_by_id("u1"));
  CHECK(again.schema_version() == PostgresStore::latest_schema_version());
}

TEST_CASE("PostgreSQL: a URI that names no server fails with StoreError, without its password") {
  if (!PostgresServer::shared()) return;
  CHECK(PostgresStore::is_uri("postgres://u@h/db"));
  CHECK(PostgresStore::is_uri("postgresql:///db?host=/run/postgresql"));
  CHECK_FALSE(PostgresStore::is_uri("./auth.db"));
  CHECK_FALSE(PostgresStore::is_uri("postgres.db"));
  try {
    PostgresStore store("postgresql://latch:s3cr3t-pw@/db?host=/nonexistent-dir");
    FAIL("connected to nothing");
  } catch (const StoreError &e) {
    const std::string what = e.what();
    CHECK(what.find("cannot connect to PostgreSQL") != std::string::npos);
    CHECK(what.find("s3cr3t-pw") == std::string::npos);
  }
}

TEST_CASE("PostgreSQL: a statement held past the statement timeout fails, and the pool goes on") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string uri = server->create_database();
  PostgresStore::Options options;
  options.statement_timeout = std::chrono::milliseconds(300);
  PostgresStore store(uri, options);
  REQUIRE(store.insert_user(user("u1")) == InsertUserResult::ok);
  store.insert_session(session("s1", "u1", "r1"));
  {
    // Another client holds the feed's lock (a long transaction elsewhere): the write waits
    // for it only as long as the statement timeout.
    Client other(uri);
    REQUIRE(other.exec("BEGIN") == "");
    REQUIRE(other.exec("SELECT pg_advisory_xact_lock(1279349827, 1)") == "");
    CHECK_THROWS_AS(store.revoke_session("s1", kNow), StoreUnavailable);
    CHECK_FALSE(store.find_session("s1")->revoked); // reads do not wait
    other.exec("ROLLBACK");
  }
  store.revoke_session("s1", kNow);
  CHECK(store.find_session("s1")->revoked);
}

TEST_CASE("PostgreSQL: while the server is stopped calls fail; started again, the store "
          "reconnects by itself") {
  if (PostgresServer::binaries().empty()) return;
  PostgresServer server;
  const std::string uri = server.create_database();
  PostgresStore::Options options;
  options.pool_size = 2;
  options.statement_timeout = std::chrono::milliseconds(1000);
  PostgresStore store(uri, options);
  REQUIRE(store.insert_user(user("u1")) == InsertUserResult::ok);
  store.wait_for_changes(std::chrono::milliseconds(1)); // the listening connection is made
  server.stop();
  CHECK_THROWS_AS(store.find_user_by_id("u1"), StoreUnavailable);
  CHECK_THROWS_AS(store.ping(), StoreError);
  CHECK_THROWS_AS(store.insert_session(session("s1", "u1", "r1")), StoreUnavailable);
  store.wait_for_changes(std::chrono::milliseconds(10)); // returns, neither hangs nor throws
  server.start();
  // Every connection of the pool was broken: each is made again when next leased.
  for (int i = 0; i < 4; ++i)
    CHECK(store.find_user_by_id("u1"));
  store.ping();
  store.insert_session(session("s1", "u1", "r1"));
  CHECK(store.find_session("s1"));
}

TEST_CASE("PostgreSQL: wait_for_changes returns when another server commits") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string uri = server->create_database();
  PostgresStore follower(uri), other(uri);
  REQUIRE(other.insert_user(user("u1")) == InsertUserResult::ok);
  follower.wait_for_changes(std::chrono::milliseconds(1)); // LISTEN from now on
  const auto position = follower.snapshot(0).position;
  auto woke = std::async(std::launch::async, [&] {
    follower.wait_for_changes(std::chrono::seconds(60));
    return true;
  });
  other.revoke_user_sessions("u1", kNow); // no session: nothing written, nothing told
  other.insert_session(session("s1", "u1", "r1"));
  // A liveness check, not a speed one: without the notification it would wait 60 s.
  REQUIRE(woke.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  auto changes = follower.changes_since(position, 100);
  REQUIRE(changes);
  REQUIRE(changes->size() == 1);
  CHECK(changes->front().key == "s1");
  REQUIRE(changes->front().session);
  CHECK(changes->front().session->refresh_jti == "r1");
}

TEST_CASE("PostgreSQL: one refresh token sent to two servers at once rotates exactly once") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string uri = server->create_database();
  PostgresStore a(uri), b(uri);
  REQUIRE(a.insert_user(user("u1")) == InsertUserResult::ok);
  for (int round = 0; round < 20; ++round) {
    const std::string sid = "s" + std::to_string(round);
    a.insert_session(session(sid, "u1", "r0"));
    std::atomic<bool> go{false};
    auto rotate = [&](PostgresStore &store, const std::string &next) {
      while (!go) {
      }
      return store.rotate_refresh({Rotation{sid, "u1", "r0", next, kNow + 7200, kNow}})
          .outcomes.front()
          .result;
    };
    auto ra = std::async(std::launch::async, rotate, std::ref(a), "ra");
    auto rb = std::async(std::launch::async, rotate, std::ref(b), "rb");
    go = true;
    const RotateResult x = ra.get(), y = rb.get();
    CAPTURE(round);
    // With no reuse interval: one rotates, the other is reuse and revokes the session.
    CHECK(((x == RotateResult::rotated && y == RotateResult::reused) ||
           (x == RotateResult::reused && y == RotateResult::rotated)));
    CHECK(a.find_session(sid)->revoked);
  }
}
