// What `latch store copy` moves between two stores of any engine: every table that holds data
// (not the change feed), as rows of text in one neutral form, in insertion order.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace latch::db {

// A column as both engines have it; values travel as text: integers in decimal, booleans as
// "0" or "1", NULL as nullopt.
struct CopyColumn {
  enum class Kind { text, integer, boolean };
  const char *name;
  Kind kind;
};
struct CopyTable {
  const char *name;
  std::vector<CopyColumn> columns;
  const char *sqlite_order; // ORDER BY: insertion order
  const char *postgres_order;
};
// The tables, parents before the rows that name them (users before sessions).
const std::vector<CopyTable> &copy_tables();

using CopyValue = std::optional<std::string>;
struct CopiedTable {
  std::string name; // a copy_tables() name
  std::vector<std::vector<CopyValue>> rows;
};

// An engine that can be copied from and to.
class Copyable {
public:
  virtual ~Copyable() = default;
  // Every row of every copy_tables() table, read in one read-only transaction (one snapshot).
  virtual std::vector<CopiedTable> dump_tables() = 0;
  // Writes the tables in one transaction, after deleting what the destination holds when
  // replace; false, and nothing written, when it holds rows and not replace. The change feed
  // records the rows as any write does. Throws StoreError, and then nothing is written.
  virtual bool load_tables(const std::vector<CopiedTable> &tables, bool replace) = 0;
};

} // namespace latch::db
