// The schema texts (auth.db.sql for SQLite, db/postgres.sql for PostgreSQL), compiled into the
// binary.
#pragma once

namespace latch::db {
extern const char *const kSchemaSql;
extern const char *const kPostgresSchemaSql;
} // namespace latch::db
