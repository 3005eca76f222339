// The API rows (auth/apis/api.h), the one list of the APIs, and what is made from them: the
// route table, the paths each API answers, the names, and the fuzz seeds of every route.
#include "auth/apis/api.h"
#include "auth/http/routes.h"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <string>

using namespace latch;

TEST_CASE("the rows are in the order of the Api ids, with names that map both ways") {
  const auto &rows = apis::api_rows();
  REQUIRE(!rows.empty());
  std::set<std::string> names;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const apis::ApiRow &row = rows[i];
    CAPTURE(std::string(row.name));
    CHECK(row.id == Api(i));
    CHECK(&apis::api_row(row.id) == &row);
    CHECK(names.insert(row.name).second);
    CHECK(api_from_name(row.name) == row.id);
    CHECK(std::string(api_name(row.id)) == row.name);
    CHECK(bool(row.render_error));
    CHECK(row.doc != nullptr);
    CHECK(row.lifetimes.access > 0);
    CHECK(row.lifetimes.refresh >= 0);
  }
  CHECK(all_apis().size() == rows.size());
}

TEST_CASE("each row's routes are its own, under its prefix, and the route table is all of them") {
  std::size_t count = 0;
  for (const apis::ApiRow &row : apis::api_rows()) {
    CAPTURE(std::string(row.name));
    CHECK(!row.routes.empty());
    const std::string prefix = row.prefix;
    for (const http::Route &r : row.routes) {
      CAPTURE(std::string(r.path));
      CHECK(r.api == row.id);
      CHECK(std::string(r.path).rfind(prefix + "/", 0) == 0);
      CHECK(std::string(http::route_table().at(count).path) == r.path);
      ++count;
    }
  }
  CHECK(http::route_table().size() == count);
}

TEST_CASE("a path no route serves under an API's prefix answers in its shape while it is on") {
  for (const apis::ApiRow &row : apis::api_rows()) {
    const std::string prefix = row.prefix;
    CAPTURE(prefix);
    for (const std::string &path : {prefix, prefix + "/", prefix + "/nowhere"}) {
      CAPTURE(path);
      CHECK(http::api_for_path(path, {row.id}) == row.id);
      CHECK(http::api_for_path(path, {}) == std::nullopt);
    }
    CHECK(http::api_for_path(prefix + "x", {row.id}) == std::nullopt); // a prefix is whole words
  }
}

TEST_CASE("every route has a fuzz seed, and every seed names a route") {
  // tests/fuzz/fuzz_routes.cpp: a seed's first line is the route's "METHOD /path".
  std::set<std::string> routes, seeded;
  for (const http::Route &r : http::route_table())
    routes.insert(std::string(r.method) + " " + r.path);
  for (const auto &entry : std::filesystem::directory_iterator(LATCH_FUZZ_ROUTES_CORPUS)) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::string line;
    std::getline(in, line);
    CAPTURE(entry.path().filename().string());
    CHECK_MESSAGE(routes.count(line), "names no route: " << line);
    seeded.insert(line);
  }
  for (const std::string &route : routes)
    CHECK_MESSAGE(seeded.count(route), "no seed in tests/fuzz/corpus/fuzz_routes: " << route);
}
