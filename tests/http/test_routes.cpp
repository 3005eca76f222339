// The route table: `latch routes` lists exactly SPEC.md's routes, and every one is served.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <set>
#include <sstream>
#include <tuple>

using namespace latch::test;

namespace {

using RouteKey = std::tuple<std::string, std::string, std::string>; // method, path, api

// SPEC.md's table of the five APIs, plus v1's mailed confirmation link (issue #2).
const std::set<RouteKey> kSpecRoutes = {
    {"POST", "/api/auth/signup", "picflux"},
    {"POST", "/api/auth/signin", "picflux"},
    {"POST", "/api/auth/logout", "picflux"},
    {"POST", "/api/auth/refresh", "picflux"},
    {"POST", "/auth/token", "simplejwt"},
    {"POST", "/auth/token/refresh", "simplejwt"},
    {"POST", "/auth/token/verify", "simplejwt"},
    {"POST", "/auth/register", "simplejwt"},
    {"GET", "/auth/getuser", "simplejwt"},
    {"POST", "/auth/signup", "flask"},
    {"POST", "/auth/login", "flask"},
    {"POST", "/auth/refresh", "flask"},
    {"POST", "/auth/forget-password", "flask"},
    {"POST", "/auth/reset-password", "flask"},
    {"POST", "/auth/logout", "flask"},
    {"POST", "/api/v1/register", "v1"},
    {"POST", "/api/v1/login", "v1"},
    {"POST", "/api/v1/refresh", "v1"},
    {"POST", "/api/v1/verify", "v1"},
    {"GET", "/api/v1/verify", "v1"},
    {"POST", "/api/v1/password-reset", "v1"},
    {"POST", "/api/v1/password-reset-confirm", "v1"},
    {"GET", "/api/v1/authorized/me", "v1"},
    {"POST", "/api/v1/logout", "v1"},
    {"POST", "/api/v1/auth/login", "envelope"},
    {"POST", "/api/v1/auth/signUp", "envelope"},
};

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

} // namespace

TEST_CASE("latch routes prints exactly the routes SPEC.md names") {
  CHECK(printed_routes() == kSpecRoutes);
}

TEST_CASE("every route in the table is served, none answers the generic 404") {
  LatchProcess latch;
  for (const auto &[method, path, api] : kSpecRoutes) {
    CAPTURE(path);
    Reply r = method == "GET" ? latch.get(path) : latch.post(path, json::object());
    CHECK(r.status != 0);
    CHECK(r.status != 404);
    CHECK(r.status < 500);
  }
}

TEST_CASE("--apis serves only the APIs it names") {
  LatchProcess latch({{"--apis", "flask,envelope"}, {}});
  CHECK(latch.post("/auth/login", json::object()).status == 400);           // flask
  CHECK(latch.post("/api/v1/auth/login", json::object()).status == 400);    // envelope
  CHECK(latch.post("/auth/token", json::object()).status == 404);           // simplejwt off
  CHECK(latch.post("/api/auth/signin", json::object()).status == 404);      // picflux off
  CHECK(latch.post("/api/v1/login", json::object()).status == 404);         // v1 off
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
