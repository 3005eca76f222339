// Unit tests for tests/support/postgres_server: the throwaway PostgreSQL the store tests use.
#include "support/postgres_server.h"

#include <doctest/doctest.h>

#include <libpq-fe.h>

#include <string>

using latch::test::PostgresServer;

namespace {

// The first field of the first row of sql, or the error.
std::string query_one(const std::string &uri, const char *sql) {
  PGconn *conn = PQconnectdb(uri.c_str());
  std::string out;
  if (PQstatus(conn) != CONNECTION_OK) {
    out = std::string("connect: ") + PQerrorMessage(conn);
  } else {
    PGresult *r = PQexec(conn, sql);
    out = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1
              ? PQgetvalue(r, 0, 0)
              : std::string("query: ") + PQresultErrorMessage(r);
    PQclear(r);
  }
  PQfinish(conn);
  return out;
}

} // namespace

TEST_CASE("the test PostgreSQL starts, answers SELECT 1, runs as no root, and comes back after "
          "a stop") {
  if (PostgresServer::binaries().empty()) {
    MESSAGE("PostgreSQL is not installed (apt-get install postgresql): skipped");
    return;
  }
  PostgresServer server;
  CHECK(query_one(server.uri(), "SELECT 1") == "1");
  // A fresh database per caller, empty of tables.
  const std::string db = server.create_database();
  CHECK(query_one(db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == "0");
  CHECK(query_one(db, "SHOW fsync") == "off");
  CHECK(query_one(db, "SHOW server_encoding") == "UTF8");
  server.stop();
  CHECK(!server.running());
  CHECK(query_one(db, "SELECT 1").rfind("connect: ", 0) == 0);
  server.start();
  CHECK(query_one(db, "SELECT 2") == "2");
}
