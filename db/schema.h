// The schema text (auth.db.sql), compiled into the binary.
#pragma once

namespace latch::db {
extern const char *const kSchemaSql;
} // namespace latch::db
