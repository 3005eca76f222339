// Operating Latch on PostgreSQL: latch store copy between engines (tokens outlive the move),
// latch migrate and doctor, --db-pool and --db-statement-timeout, and /readyz on its own
// connection.
#include "support/latch_process.h"
#include "support/postgres_server.h"

#include <doctest/doctest.h>
#include <libpq-fe.h>

#include <chrono>
#include <future>
#include <thread>

using namespace latch::test;

namespace {

struct Account {
  std::string username, email, password;
};

Account sign_up(const LatchProcess &latch) {
  Account a{unique("copyuser"), "", "password123"};
  a.email = a.username + "@example.com";
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  REQUIRE(r.status == 201);
  return a;
}

// The access and refresh token of a new v1 session.
std::pair<std::string, std::string> sign_in(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  REQUIRE(r.status == 200);
  return {r.body["access_token"].get<std::string>(), r.body["refresh_token"].get<std::string>()};
}

template <typename Pred> bool eventually(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!pred() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  return pred();
}

// What a server holding the tokens of before the move must answer: the live session's access
// and refresh tokens work, the logged-out one's access token is refused, every user signs in.
void check_moved(const LatchProcess &latch, const Account &a, const Account &b,
                 const std::pair<std::string, std::string> &live, const std::string &logged_out) {
  Reply me = latch.get("/api/v1/authorized/me", live.first);
  CHECK(me.status == 200);
  CHECK(me.text.find(a.username) != std::string::npos);
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", live.second}}).status == 200);
  CHECK(latch.get("/api/v1/authorized/me", logged_out).status == 401);
  CHECK(latch.post("/api/v1/login", {{"email", b.email}, {"password", b.password}}).status == 200);
  CHECK(latch.post("/api/v1/login", {{"email", a.email}, {"password", "wrong-password"}}).status ==
        401);
}

// One value read with libpq, as an operator's psql would.
std::string pg_value(const std::string &uri, const std::string &sql) {
  PGconn *conn = PQconnectdb(uri.c_str());
  REQUIRE(PQstatus(conn) == CONNECTION_OK);
  PGresult *r = PQexec(conn, sql.c_str());
  std::string v;
  if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0) v = PQgetvalue(r, 0, 0);
  PQclear(r);
  PQfinish(conn);
  return v;
}

} // namespace

TEST_CASE("store copy SQLite -> PostgreSQL -> SQLite: tokens issued before each move work after "
          "it, revocations stay, the source is only read") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return; // said on stderr: PostgreSQL is not installed
  TempDir dir;
  const std::string sqlite = dir.file("auth.db"), back = dir.file("back.db");
  const std::string pg = server->create_database();

  Account a, b;
  std::pair<std::string, std::string> live;
  std::string logged_out;
  {
    LatchProcess latch({}, sqlite);
    a = sign_up(latch);
    b = sign_up(latch);
    live = sign_in(latch, a);
    logged_out = sign_in(latch, b).first;
    REQUIRE(latch.post_raw("/api/v1/logout", "", "", logged_out).status == 200);
    // A second signing key, so the ring with its states moves, not just one key.
    REQUIRE(run_latch({"secret", "rotate", "--db", sqlite}).status == 0);
    REQUIRE(run_latch({"admin", "add", "boss@example.com", "--db", sqlite}).status == 0);
    REQUIRE(latch.stop() == 0);
  }
  const std::string users_before = sql_value(sqlite, "SELECT count(*) FROM users");
  const std::string audit_before = sql_value(sqlite, "SELECT count(*) FROM audit_log");
  REQUIRE(audit_before != "0");
  const std::string changes_before = sql_value(sqlite, "SELECT max(position) FROM changes");

  CommandResult copied = run_latch({"store", "copy", "--from", sqlite, "--to", pg});
  INFO(copied.output);
  REQUIRE(copied.status == 0);
  CHECK(copied.output.find("2 users") != std::string::npos);
  CHECK(copied.output.find("2 sessions") != std::string::npos);
  CHECK(copied.output.find("1 token_blacklist") != std::string::npos);
  CHECK(copied.output.find("2 signing_keys") != std::string::npos);
  CHECK(copied.output.find("user=") == std::string::npos); // no credentials printed
  CHECK(sql_value(sqlite, "SELECT count(*) FROM users") == users_before);
  CHECK(sql_value(sqlite, "SELECT max(position) FROM changes") == changes_before);
  CHECK(pg_value(pg, "SELECT count(*) FROM signing_keys") == "2");
  // The console's admins and the audit log move, with the events' ids.
  CHECK(pg_value(pg, "SELECT email FROM admins") == "boss@example.com");
  CHECK(pg_value(pg, "SELECT count(*) FROM audit_log") == audit_before);
  CHECK(pg_value(pg, "SELECT max(id) FROM audit_log") ==
        sql_value(sqlite, "SELECT max(id) FROM audit_log"));

  // Not again over what is there now, unless told.
  CommandResult again = run_latch({"store", "copy", "--from", sqlite, "--to", pg});
  CHECK(again.status == 1);
  CHECK(again.output.find("--replace") != std::string::npos);
  CHECK(pg_value(pg, "SELECT count(*) FROM users") == "2");

  Account c;
  std::pair<std::string, std::string> on_pg;
  {
    LatchProcess latch({}, pg);
    check_moved(latch, a, b, live, logged_out);
    c = sign_up(latch);
    on_pg = sign_in(latch, c);
    REQUIRE(latch.stop() == 0);
  }

  CommandResult returned = run_latch({"store", "copy", "--from", pg, "--to", back});
  INFO(returned.output);
  REQUIRE(returned.status == 0);
  CHECK(returned.output.find("3 users") != std::string::npos);
  // c's sign-up and sign-in on PostgreSQL were recorded after the copied events, and came back.
  CHECK(std::stoi(sql_value(back, "SELECT count(*) FROM audit_log")) >=
        std::stoi(audit_before) + 2);
  CHECK(sql_value(back, "SELECT count(*) FROM audit_log WHERE event = 'sign_up'") == "3");
  {
    LatchProcess latch({}, back);
    check_moved(latch, a, b, live, logged_out);
    CHECK(latch.get("/api/v1/authorized/me", on_pg.first).status == 200);
    CHECK(latch.post("/api/v1/refresh", {{"refresh_token", on_pg.second}}).status == 200);
  }

  // --replace: the SQLite database again over the PostgreSQL one, c's user gone with it.
  CommandResult replaced = run_latch({"store", "copy", "--from", sqlite, "--to", pg, "--replace"});
  INFO(replaced.output);
  REQUIRE(replaced.status == 0);
  CHECK(pg_value(pg, "SELECT count(*) FROM users") == "2");
  LatchProcess latch({}, pg);
  check_moved(latch, a, b, live, logged_out);
  CHECK(latch.get("/api/v1/authorized/me", on_pg.first).status == 401);
}

TEST_CASE("store copy SQLite -> SQLite keeps the tokens; bad uses are refused with status 2") {
  TempDir dir;
  const std::string from = dir.file("from.db"), to = dir.file("to.db");
  Account a, b;
  std::pair<std::string, std::string> live;
  std::string logged_out;
  {
    LatchProcess latch({}, from);
    a = sign_up(latch);
    b = sign_up(latch);
    live = sign_in(latch, a);
    logged_out = sign_in(latch, b).first;
    REQUIRE(latch.post_raw("/api/v1/logout", "", "", logged_out).status == 200);
  }
  CHECK(run_latch({"store", "copy", "--from", from}).status == 2);
  CHECK(run_latch({"store", "copy", "--to", to}).status == 2);
  CHECK(run_latch({"store", "copy", "--from", from, "--to", from}).status == 2);
  CHECK(run_latch({"store", "copy", "--from", dir.file("none.db"), "--to", to}).status == 1);
  CHECK(run_latch({"store", "copy", "--from", from, "--to", to, "extra"}).status == 2);
  CommandResult copied = run_latch({"store", "copy", "--from", from, "--to", to});
  INFO(copied.output);
  REQUIRE(copied.status == 0);
  CHECK(sql_value(to, "SELECT count(*) FROM users") == "2");
  LatchProcess latch({}, to);
  check_moved(latch, a, b, live, logged_out);
}

TEST_CASE("latch migrate makes the schema in an empty PostgreSQL database and then finds nothing "
          "to do; doctor checks it and says what is wrong") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string db = server->create_database();
  CommandResult sick = run_latch({"doctor", "--db", db});
  CHECK(sick.status == 1);
  CHECK(sick.output.find("no Latch schema") != std::string::npos);

  CommandResult made = run_latch({"migrate", "--db", db});
  INFO(made.output);
  REQUIRE(made.status == 0);
  CHECK(made.output.find("migrated from schema version 0 to") != std::string::npos);
  CommandResult again = run_latch({"migrate", "--db", db});
  CHECK(again.status == 0);
  CHECK(again.output.find("nothing to migrate") != std::string::npos);

  CommandResult fine = run_latch({"doctor", "--db", db});
  INFO(fine.output);
  CHECK(fine.status == 0);
  CHECK(fine.output.find("all is fine") != std::string::npos);
  CHECK(fine.output.find("reachable") != std::string::npos);
  CHECK(fine.output.find("change feed at position") != std::string::npos);

  // A database nobody serves: not reachable, said so, exit 1.
  const std::string nowhere = "postgresql:///latch?host=/nonexistent&user=postgres";
  CommandResult unreachable = run_latch({"doctor", "--db", nowhere});
  CHECK(unreachable.status == 1);
  CHECK(unreachable.output.find("fix") != std::string::npos);
  // A bad pool size or timeout is a usage error, as serve's.
  CHECK(run_latch({"doctor", "--db", db, "--db-pool", "0"}).status == 2);
  CHECK(run_latch({"user", "list", "--db", db}, {{"LATCH_DB_STATEMENT_TIMEOUT", "0"}}).status == 2);
  CHECK(run_latch({"user", "list", "--db", db, "--db-statement-timeout", "250ms"}).status == 0);
}

TEST_CASE("on SQLite, latch migrate upgrades nothing new and refuses a missing file") {
  TempDir dir;
  const std::string db = dir.file("auth.db");
  CHECK(run_latch({"migrate", "--db", db}).status == 1);
  { LatchProcess latch({}, db); }
  CommandResult r = run_latch({"migrate", "--db", db});
  CHECK(r.status == 0);
  CHECK(r.output.find("nothing to migrate") != std::string::npos);
}

TEST_CASE("every admin command works on PostgreSQL") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  const std::string db = server->create_database();
  LatchProcess latch({}, db);
  Account a = sign_up(latch);
  auto ok = [&](const std::vector<std::string> &args, const std::string &expect = "") {
    std::vector<std::string> full = args;
    full.insert(full.end(), {"--db", db});
    CommandResult r =
        run_latch(full, {{"LATCH_ARGON2_MEMORY_KIB", "64"}, {"LATCH_ARGON2_ITERATIONS", "1"}});
    const std::string what = args[0] + (args.size() > 1 ? " " + args[1] : "");
    INFO(what);
    INFO(r.output);
    CHECK(r.status == 0);
    if (!expect.empty()) CHECK(r.output.find(expect) != std::string::npos);
    return r;
  };
  ok({"user", "list"}, a.username);
  ok({"user", "show", a.username}, a.email);
  ok({"user", "add", "pgadded", "--email", "pgadded@example.com"});
  ok({"user", "rename", "pgadded", "pgrenamed"});
  ok({"user", "verify-email", "pgrenamed"});
  ok({"user", "set-password", "pgrenamed"});
  TempDir dir;
  ok({"user", "export", dir.file("users.jsonl")});
  ok({"user", "delete", "pgrenamed"});
  ok({"user", "import", dir.file("users.jsonl"), "--on-conflict", "skip"});
  ok({"sessions", "list", a.username});
  ok({"sessions", "revoke", "--all"});
  ok({"purge"});
  ok({"secret", "rotate"});
  ok({"secret", "list"}, "active");
  ok({"mail", "list"});
  ok({"migrate"}, "nothing to migrate");
  ok({"doctor"}, "all is fine");
  CHECK(pg_value(db, "SELECT count(*) FROM users WHERE username = 'pgrenamed'") == "1");
}

TEST_CASE("/readyz on PostgreSQL answers from its own connection: ready while every pooled "
          "connection waits, not ready at once when the server stops") {
  if (PostgresServer::binaries().empty()) return;
  PostgresServer server; // its own: this test stops it
  const std::string db = server.create_database();
  LatchProcess latch({{"--db-pool", "1", "--db-statement-timeout", "60s"}, {}}, db);
  Account a = sign_up(latch);
  // Another session holds the feed's lock (db/postgres.sql): the one pooled connection waits
  // for it in the sign-in below.
  PGconn *blocker = PQconnectdb(db.c_str());
  REQUIRE(PQstatus(blocker) == CONNECTION_OK);
  PQclear(PQexec(blocker, "SELECT pg_advisory_lock(1279349827, 1)"));
  auto login = std::async(std::launch::async, [&] {
    return latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}}).status;
  });
  CHECK(eventually([&] {
    return pg_value(db, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'latch' "
                        "AND wait_event_type = 'Lock'") == "1";
  }));
  CHECK(latch.get("/readyz").status == 200);
  PQclear(PQexec(blocker, "SELECT pg_advisory_unlock(1279349827, 1)"));
  PQfinish(blocker);
  CHECK(login.get() == 200);
  server.stop();
  CHECK(latch.get("/readyz").status == 503);
  server.start();
  CHECK(eventually([&] { return latch.get("/readyz").status == 200; }));
}
