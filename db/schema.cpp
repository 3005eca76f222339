// The schema texts' migrations, as both engines apply them.
#include "db/schema.h"

#include <sstream>

namespace latch::db {

std::vector<Migration> parse_migrations(const std::string &text) {
  std::vector<Migration> out;
  std::istringstream in(text);
  std::string line;
  const std::string marker = "-- migration ";
  while (std::getline(in, line)) {
    if (line.rfind(marker, 0) == 0) {
      out.push_back({std::stoi(line.substr(marker.size())), {}});
    } else if (!out.empty()) {
      out.back().sql += line;
      out.back().sql += '\n';
    }
  }
  return out;
}

} // namespace latch::db
