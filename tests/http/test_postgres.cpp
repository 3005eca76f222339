// Latch on PostgreSQL (--db postgresql://...): the real binary on a database of the test
// PostgreSQL (tests/support/postgres_server.h), alone and as two instances sharing it.
#include "support/latch_process.h"
#include "support/postgres_server.h"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

using namespace latch::test;

namespace {

struct Account {
  std::string username, email, password;
};

Account sign_up(const LatchProcess &latch) {
  Account a{unique("pguser"), "", "password123"};
  a.email = a.username + "@example.com";
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  REQUIRE(r.status == 201);
  return a;
}

std::string sign_in(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  REQUIRE(r.status == 200);
  return r.body["access_token"].get<std::string>();
}

// Waits up to 10 s for pred: what one instance did reaching another (a liveness check; how
// fast is for the benchmarks).
template <typename Pred> bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return pred();
}

} // namespace

TEST_CASE("on PostgreSQL a user signs up, signs in, is known by the token, and logs out") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return; // said on stderr: PostgreSQL is not installed
  const std::string db = server->create_database();
  LatchProcess latch({}, db);
  // The log names the database without what could be secret.
  CHECK(latch.output().find("db: postgresql:///latch_test_") != std::string::npos);
  CHECK(latch.output().find("user=postgres") == std::string::npos);
  Account a = sign_up(latch);
  CHECK(latch
            .post("/api/v1/register?sendEmail=false",
                  {{"email", a.email}, {"username", a.username}, {"password", a.password}})
            .status == 409);
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", "wrong-password"}}).status ==
        401);
  const std::string access = sign_in(latch, a);
  Reply me = latch.get("/api/v1/authorized/me", access);
  REQUIRE(me.status == 200);
  CHECK(me.text.find(a.username) != std::string::npos);
  CHECK(latch.post_raw("/api/v1/logout", "", "", access).status == 200);
  CHECK(latch.get("/api/v1/authorized/me", access).status == 401);
  CHECK(latch.get("/readyz").status == 200);
}

TEST_CASE("two instances on one PostgreSQL share users and keys, and a logout on one is refused "
          "by the other") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string db = server->create_database();
  LatchProcess a({}, db), b({}, db);
  Account user = sign_up(a);
  // Signed in on b with the user a made, and the token b issued checks on a: one key ring.
  const std::string access = sign_in(b, user);
  REQUIRE(a.get("/api/v1/authorized/me", access).status == 200);
  REQUIRE(b.get("/api/v1/authorized/me", access).status == 200);
  // The logout goes through a; b learns it from the change feed (NOTIFY, or its once-a-second
  // read).
  REQUIRE(a.post_raw("/api/v1/logout", "", "", access).status == 200);
  CHECK(a.get("/api/v1/authorized/me", access).status == 401);
  CHECK(eventually([&] { return b.get("/api/v1/authorized/me", access).status == 401; }));
}

TEST_CASE("admin commands work on PostgreSQL, and a running instance refuses what they revoke") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string db = server->create_database();
  // Before any server made the schema: refused, nothing written.
  CommandResult none = run_latch({"user", "list", "--db", db});
  CHECK(none.status != 0);
  CHECK(none.output.find("holds no Latch schema") != std::string::npos);

  LatchProcess latch({}, db);
  Account a = sign_up(latch);
  CommandResult listed = run_latch({"user", "list", "--db", db});
  CHECK(listed.status == 0);
  CHECK(listed.output.find(a.username) != std::string::npos);
  const std::string access = sign_in(latch, a);
  REQUIRE(latch.get("/api/v1/authorized/me", access).status == 200);
  CommandResult revoked = run_latch({"sessions", "revoke", a.username, "--db", db});
  CHECK(revoked.status == 0);
  CHECK(revoked.output.find("revoked 1 session") != std::string::npos);
  CHECK(eventually([&] { return latch.get("/api/v1/authorized/me", access).status == 401; }));
  CommandResult backup = run_latch({"backup", "/tmp/never.db", "--db", db});
  CHECK(backup.status != 0);
  CHECK(backup.output.find("pg_dump") != std::string::npos);
  CommandResult deleted = run_latch({"user", "delete", a.username, "--db", db});
  CHECK(deleted.status == 0);
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 401);
}

TEST_CASE("PostgreSQL stopped: requests that need it answer 503 in their API's shape, tokens "
          "still check from memory, /readyz is not ready; started again, all goes on") {
  if (PostgresServer::binaries().empty()) return;
  PostgresServer server; // its own: this test stops it
  LatchProcess latch({}, server.create_database());
  Account a = sign_up(latch);
  const std::string access = sign_in(latch, a);
  Reply pair =
      latch.post("/auth/register", {{"username", unique("pgpair")}, {"password", "password123"}});
  REQUIRE(pair.status == 201);
  server.stop();
  Reply down = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  CHECK(down.status == 503);
  CHECK(down.body == json{{"error", "server busy, try again"}});
  // A refresh goes through the group commit of rotations: its failure is a 503 too.
  Reply refresh = latch.post("/auth/token/refresh", {{"refresh", pair.body["refresh"]}});
  CHECK(refresh.status == 503);
  CHECK(refresh.body["code"] == "service_unavailable");
  CHECK(latch.get("/readyz").status == 503);
  CHECK(latch.get("/api/v1/authorized/me", access).status == 200); // from memory
  server.start();
  CHECK(eventually([&] { return latch.get("/readyz").status == 200; }));
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status == 200);
  CHECK(latch.post_raw("/api/v1/logout", "", "", access).status == 200);
  CHECK(latch.get("/api/v1/authorized/me", access).status == 401);
}
