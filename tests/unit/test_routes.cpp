// The route table's `hashes` flag: the routes whose handlers hash a password, which the
// connection loop runs in its heavy lane (auth/http/connection_loop.h).
#include "auth/http/routes.h"

#include "auth/service.h"
#include "db/sqlite_store.h"

#include "support/temp_dir.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>

using namespace latch;
using namespace latch::http;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kCodecSecret = "routes-test-secret-0123456789abcdef-xyz";

// A service over a temporary database with a cheap argon2id cost, mail off and no mail limit.
struct World {
  latch::test::TempDir dir;
  Config config = [] {
    Config c;
    c.argon2.memory_kib = 64;
    c.argon2.iterations = 1;
    c.mail_limit = 0;
    return c;
  }();
  db::SqliteStore store{dir.file("auth.db")};
  TokenCodec codec{kCodecSecret};
  Mailer mailer{store, Mailer::log(), MailPolicy{}, [] { return kNow; }}; // never started
  PasswordHasher hasher{config.argon2, 2, 64};
  AuthService service{config, store, hasher, codec, mailer, [] { return kNow; }};
};

// Runs the route's handler as the dispatcher would after its checks (access, body), on a
// service whose hasher has never hashed, with a request that gets as far as a correct client's:
// every field any route reads, valid (a new user's, a fresh reset token, the caller's tokens).
// True when the handler hashed a password: the hasher then holds argon2 memory, kept an hour.
bool handler_hashes(World &world, const db::User &owner, const Route &route, int n) {
  PasswordHasher fresh(world.config.argon2, 1, 8, std::chrono::hours(1));
  AuthService service(world.config, world.store, fresh, world.codec, world.mailer,
                      [] { return kNow; });
  REQUIRE(fresh.memory_held() == 0);

  auto reset = world.service.start_password_reset(owner, world.config.reset_ttl,
                                                  TokenDelivery::mail_and_answer);
  REQUIRE(reset.ok());
  auto pair = world.service.start_session(owner, route.api);
  REQUIRE(pair.ok());
  const std::string name = "probe" + std::to_string(n), token = reset.value();

  httplib::Request req;
  req.method = route.method;
  req.path = route.path;
  req.params.emplace("token", token);
  httplib::Response res;
  Ctx ctx{req, res, service, world.config, route.api, &route};
  ctx.client_address = "203.0.113.1";
  ctx.body = {{"username", name},
              {"email", name + "@example.com"},
              {"identity", name},
              {"password", "Pr0be!Passw0rd"},
              {"display_name", "Probe"},
              {"reset_token", token},
              {"token", token},
              {"new_password", "N3w!Passw0rd"},
              {"new_password_confirm", "N3w!Passw0rd"},
              {"refresh", pair.value().refresh},
              {"refresh_token", pair.value().refresh}};
  if (route.access == Access::refresh_token) ctx.bearer = pair.value().refresh;
  if (route.access == Access::access_token) {
    ctx.bearer = pair.value().access;
    auto claims = service.check_token(ctx.bearer, TokenType::access);
    REQUIRE(claims.ok());
    ctx.claims = claims.value();
  }
  route.handler(ctx);
  INFO(route.method << " " << route.path << " answered " << res.status << " " << res.body);
  CHECK(res.status < 500);
  return fresh.memory_held() > 0;
}

} // namespace

TEST_CASE("exactly the routes whose handlers hash a password are marked as hashing") {
  // The expectation is not a list: each handler runs, and the ones that hashed (sign-in,
  // sign-up, a new password) must be the ones marked.
  World world;
  NewUser owner_fields;
  owner_fields.username = "owner";
  owner_fields.email = "owner@example.com";
  owner_fields.password = "0wner!Passw0rd";
  auto owner = world.service.sign_up(owner_fields);
  REQUIRE(owner.ok());
  int n = 0, marked = 0;
  for (const Route &r : route_table()) {
    CAPTURE(std::string(r.method) + " " + r.path);
    const bool hashed = handler_hashes(world, owner.value().user, r, ++n);
    CHECK_MESSAGE(hashed == r.hashes, (hashed ? "hashes a password but is not marked"
                                              : "is marked but hashed nothing"));
    marked += r.hashes ? 1 : 0;
  }
  CHECK(marked > 0); // a probe that reached no hash at all would prove nothing
  // Every one of them is also rate-limited per address (the path as a string: a const char *
  // would be logged as a pointer).
  for (const Route &r : route_table())
    if (r.hashes) CHECK_MESSAGE(r.throttled, std::string(r.path));
}
