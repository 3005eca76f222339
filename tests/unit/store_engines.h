// Each store engine a test of db::Store runs against: SQLite in a temporary file, and
// PostgreSQL in a fresh database of the test PostgreSQL (tests/support/postgres_server.h) when
// it is installed.
#pragma once

#include "db/postgres_store.h"
#include "db/sqlite_store.h"

#include "support/postgres_server.h"
#include "support/temp_dir.h"

#include <doctest/doctest.h>
#include <libpq-fe.h>
#include <sqlite3.h>

#include <functional>
#include <memory>
#include <string>

namespace latch::test {

struct Engine {
  std::string name; // "sqlite" or "postgres"
  std::unique_ptr<db::Store> store;
  // The first column of the first row of sql, read past the store (what is really stored).
  std::function<long long(const std::string &sql)> count;
  // Another store on the same database: what another process (an admin command, another
  // server) would open.
  std::function<std::unique_ptr<db::Store>()> open_again;
};

inline long long sqlite_count(const std::string &path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
  sqlite3_stmt *st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  long long n = -1;
  if (sqlite3_step(st) == SQLITE_ROW) n = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

inline long long postgres_count(const std::string &uri, const std::string &sql) {
  PGconn *conn = PQconnectdb(uri.c_str());
  REQUIRE(PQstatus(conn) == CONNECTION_OK);
  PGresult *r = PQexec(conn, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
  INFO(PQresultErrorMessage(r));
  long long n = -1;
  if (ok && PQntuples(r) > 0) n = std::stoll(PQgetvalue(r, 0, 0));
  PQclear(r);
  PQfinish(conn);
  REQUIRE(ok);
  return n;
}

// Runs body once per engine, each on a new empty database; a failure names the engine.
inline void for_each_engine(const std::function<void(Engine &)> &body) {
  {
    TempDir dir;
    const std::string path = dir.file("auth.db");
    Engine e{"sqlite", std::make_unique<db::SqliteStore>(path),
             [path](const std::string &sql) { return sqlite_count(path, sql); },
             [path] { return std::make_unique<db::SqliteStore>(path); }};
    INFO("engine: sqlite");
    body(e);
  }
  if (PostgresServer *server = PostgresServer::shared()) {
    const std::string uri = server->create_database();
    Engine e{"postgres", std::make_unique<db::PostgresStore>(uri),
             [uri](const std::string &sql) { return postgres_count(uri, sql); },
             [uri] { return std::make_unique<db::PostgresStore>(uri); }};
    INFO("engine: postgres");
    body(e);
  }
}

} // namespace latch::test
