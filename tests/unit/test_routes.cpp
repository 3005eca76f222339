// The route table's `hashes` flag: the routes whose handlers hash a password, which the
// connection loop runs in its heavy lane (auth/http/connection_loop.h).
#include "auth/http/routes.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace latch::http;

TEST_CASE("exactly the sign-in, sign-up and new-password routes are marked as hashing") {
  const std::set<std::string> expected = {
      "POST /api/auth/signup",     "POST /api/auth/signin",
      "POST /auth/token",          "POST /auth/register",
      "POST /auth/signup",         "POST /auth/login",
      "POST /auth/reset-password", "POST /api/v1/register",
      "POST /api/v1/login",        "POST /api/v1/password-reset-confirm",
      "POST /api/v1/auth/login",   "POST /api/v1/auth/signUp"};
  std::set<std::string> marked;
  for (const Route &r : route_table())
    if (r.hashes) marked.insert(std::string(r.method) + " " + r.path);
  CHECK(marked == expected);
  // Every one of them is also rate-limited per address.
  for (const Route &r : route_table())
    if (r.hashes) CHECK_MESSAGE(r.throttled, r.path);
}
