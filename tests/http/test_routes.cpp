// The route table in the three places that state it, which must agree: the code (route_table(),
// compiled into this test), the binary (`latch routes`) and README.md's table of the five APIs.
#include "support/latch_process.h"

#include "auth/http/routes.h"

#include <doctest/doctest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <tuple>

using namespace latch::test;

namespace {

using RouteKey = std::tuple<std::string, std::string, std::string>; // method, path, api

std::string describe(const std::set<RouteKey> &routes) {
  std::string out;
  for (const auto &[method, path, api] : routes)
    out += "\n  " + method + " " + path + " (" + api + ")";
  return out.empty() ? " none" : out;
}

// The routes of a that b lacks.
std::set<RouteKey> minus(const std::set<RouteKey> &a, const std::set<RouteKey> &b) {
  std::set<RouteKey> out;
  for (const RouteKey &k : a)
    if (!b.count(k)) out.insert(k);
  return out;
}

std::set<RouteKey> code_routes() {
  std::set<RouteKey> out;
  for (const latch::http::Route &r : latch::http::route_table())
    out.insert({r.method, r.path, latch::api_name(r.api)});
  return out;
}

std::set<RouteKey> printed_routes() {
  CommandResult r = run_latch({"routes"});
  REQUIRE(r.status == 0);
  std::set<RouteKey> out;
  std::istringstream in(r.output);
  std::string line;
  std::getline(in, line); // header
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string method, path, api;
    fields >> method >> path >> api;
    if (!method.empty()) out.insert({method, path, api});
  }
  return out;
}

std::string trimmed(std::string s, const char *chars = " `") {
  s.erase(0, s.find_first_not_of(chars));
  s.erase(s.find_last_not_of(chars) + 1);
  return s;
}

// README.md's table: "| `api` | `prefix` | `METHOD path`, `METHOD path?query=`, ... | came from |".
std::set<RouteKey> readme_routes() {
  std::ifstream in(LATCH_README);
  REQUIRE_MESSAGE(in, "cannot read " LATCH_README);
  std::set<RouteKey> out;
  bool in_table = false;
  for (std::string line; std::getline(in, line);) {
    if (!in_table) {
      in_table = line.rfind("| API | prefix | routes |", 0) == 0;
      continue;
    }
    if (line.rfind("|", 0) != 0) break; // the end of the table
    std::vector<std::string> cells;
    std::istringstream row(line.substr(1));
    for (std::string cell; std::getline(row, cell, '|');)
      cells.push_back(trimmed(cell));
    if (cells.size() < 3 || cells[0].rfind("---", 0) == 0) continue;
    const std::string &api = cells[0], &prefix = cells[1];
    std::istringstream routes(cells[2]);
    for (std::string route; std::getline(routes, route, ',');) {
      route = trimmed(route);
      const auto space = route.find(' ');
      REQUIRE_MESSAGE(space != std::string::npos, "not \"METHOD path\" in README.md: " << route);
      std::string path = route.substr(space + 1);
      path = path.substr(0, path.find('?')); // `GET verify?token=`: the query is not the path
      out.insert({route.substr(0, space), prefix + "/" + path, api});
    }
  }
  REQUIRE_MESSAGE(!out.empty(), "no table of the five APIs in README.md");
  return out;
}

} // namespace

TEST_CASE("latch routes prints the route table compiled into the code") {
  CommandResult r = run_latch({"routes"});
  REQUIRE(r.status == 0);
  CHECK(r.output == latch::http::format_route_table());
  const std::set<RouteKey> code = code_routes(), printed = printed_routes();
  CHECK_MESSAGE(minus(code, printed).empty(), "not printed:" << describe(minus(code, printed)));
  CHECK_MESSAGE(minus(printed, code).empty(), "not in the code:" << describe(minus(printed, code)));
  CHECK(code.size() == latch::http::route_table().size()); // no route twice
}

TEST_CASE("README.md's table of the five APIs lists exactly the routes the code serves") {
  const std::set<RouteKey> code = code_routes(), readme = readme_routes();
  CHECK_MESSAGE(minus(code, readme).empty(),
                "served but not in README.md's table:" << describe(minus(code, readme)));
  CHECK_MESSAGE(minus(readme, code).empty(),
                "in README.md's table but not served:" << describe(minus(readme, code)));
}

TEST_CASE("every route in the table is served, none answers the generic 404") {
  LatchProcess latch;
  for (const latch::http::Route &route : latch::http::route_table()) {
    const std::string method = route.method, path = route.path;
    CAPTURE(path);
    Reply r = method == "GET" ? latch.get(path) : latch.post(path, json::object());
    CHECK(r.status != 0);
    CHECK(r.status != 404);
    CHECK(r.status < 500);
  }
}

TEST_CASE("--apis serves only the APIs it names") {
  LatchProcess latch({{"--apis", "flask,envelope"}, {}});
  CHECK(latch.post("/auth/login", json::object()).status == 400);        // flask
  CHECK(latch.post("/api/v1/auth/login", json::object()).status == 400); // envelope
  CHECK(latch.post("/auth/token", json::object()).status == 404);        // simplejwt off
  CHECK(latch.post("/api/auth/signin", json::object()).status == 404);   // picflux off
  CHECK(latch.post("/api/v1/login", json::object()).status == 404);      // v1 off
}

TEST_CASE("a known path with the wrong method answers 405 in the API's shape") {
  LatchProcess latch;
  Reply r = latch.get("/auth/token");
  CHECK(r.status == 405);
  CHECK(r.body["detail"] == "Method \"GET\" not allowed.");
  Reply v1 = latch.get("/api/v1/login");
  CHECK(v1.status == 405);
  CHECK(v1.body["error"] == "method not allowed");
}
