// The schema texts (auth.db.sql for SQLite, db/postgres.sql for PostgreSQL), compiled into the
// binary.
#pragma once

#include "db/store.h"

#include <string>
#include <vector>

namespace latch::db {
extern const char *const kSchemaSql;
extern const char *const kPostgresSchemaSql;

// One "-- migration N" block of a schema text.
struct Migration {
  int version;
  std::string sql;
};
// Splits a schema text at its "-- migration N" lines (both engines' files are written so).
std::vector<Migration> parse_migrations(const std::string &text);

// How both engines write a one-time token's purpose.
inline const char *purpose_name(TokenPurpose p) {
  return p == TokenPurpose::reset ? "reset" : "verify_email";
}
} // namespace latch::db
