// Three Latch instances on one PostgreSQL (tests/support/postgres_server.h): a revocation made
// through one of them or the CLI is refused by all, one refresh token sent to two at once
// rotates as on one, failed sign-ins lock across them, a key rotation reaches them all, and one
// killed mid-traffic loses nothing the others or it answered 2xx.
#include "auth/secure.h"

#include "support/latch_process.h"
#include "support/postgres_server.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <functional>
#include <latch>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kPassword = "password123";

// Three servers on a fresh database of the shared test PostgreSQL.
struct Cluster {
  std::string db;
  std::vector<std::unique_ptr<LatchProcess>> nodes;
  Cluster(PostgresServer &server, const LatchOptions &options = {}) : db(server.create_database()) {
    for (int i = 0; i < 3; ++i)
      nodes.push_back(std::make_unique<LatchProcess>(options, db));
  }
  LatchProcess &operator[](std::size_t i) { return *nodes[i % nodes.size()]; }
  std::size_t size() const { return nodes.size(); }
};

struct Account {
  std::string username, email;
};

Account sign_up(const LatchProcess &latch) {
  Account a{unique("multi"), ""};
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", kPassword}});
  INFO(r.text);
  REQUIRE(r.status == 201);
  return a;
}

struct Pair {
  std::string access, refresh;
};

// picflux: the API that rotates its refresh token and takes it as the Bearer.
Pair sign_in(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}});
  INFO(r.text);
  REQUIRE(r.status == 200);
  return {r.body.value("access_token", ""), r.body.value("refresh_token", "")};
}

Reply refresh(const LatchProcess &latch, const std::string &token) {
  return latch.post_raw("/api/auth/refresh", "", "application/json", token);
}

int me(const LatchProcess &latch, const std::string &access) {
  return latch.get("/api/v1/authorized/me", access).status;
}

std::string claim(const std::string &token, const char *name) {
  return jwt_payload(token).value(name, "");
}

// The token's header (kid, alg).
json jwt_header(const std::string &token) {
  auto bytes = latch::secure::base64url_decode(token.substr(0, token.find('.')));
  REQUIRE(bytes.has_value());
  return json::parse(*bytes);
}

// Waits up to 10 s for pred: generous, so that only a real miss fails, never a slow machine.
template <typename Pred> bool eventually(Pred pred) {
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (!pred() && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return pred();
}

// How long after `since` each instance in `polled` first refused the access token (polling
// each from its own thread, a request every 2 ms), in milliseconds; -1 for one that did not
// within 10 s.
std::vector<double> refused_after(Cluster &cluster, const std::vector<std::size_t> &polled,
                                  const std::string &access, Clock::time_point since) {
  std::vector<double> delays(polled.size(), -1);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < polled.size(); ++i)
    threads.emplace_back([&, i] {
      const auto deadline = since + std::chrono::seconds(10);
      while (Clock::now() < deadline) {
        const int status = me(cluster[polled[i]], access);
        if (status == 401) {
          delays[i] = std::chrono::duration<double, std::milli>(Clock::now() - since).count();
          return;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      }
    });
  for (auto &t : threads)
    t.join();
  return delays;
}

std::string summary(std::vector<double> delays) {
  std::sort(delays.begin(), delays.end());
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << "median " << delays[delays.size() / 2] << " ms, max " << delays.back()
      << " ms over " << delays.size();
  return out.str();
}

} // namespace

TEST_CASE("a revocation made through one instance or the CLI is refused by every other, and "
          "the delay is measured") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return; // said on stderr: PostgreSQL is not installed
  Cluster cluster(*server, {{"--refresh-reuse-interval", "0", "--reset-token-in-response"}, {}});
  std::map<std::string, std::vector<double>> delays;
  constexpr int kRounds = 6;

  // Signs a new user in on instance `at`; every instance takes its access token.
  auto live_session = [&](std::size_t at, Account *account = nullptr) {
    Account a = sign_up(cluster[at]);
    Pair p = sign_in(cluster[at], a);
    for (std::size_t i = 0; i < cluster.size(); ++i)
      REQUIRE(eventually([&] { return me(cluster[i], p.access) == 200; }));
    if (account) *account = a;
    return p;
  };
  auto others = [&](std::size_t at) {
    return std::vector<std::size_t>{(at + 1) % 3, (at + 2) % 3};
  };
  auto record = [&](const std::string &kind, const std::vector<double> &seen) {
    for (double d : seen) {
      INFO(kind);
      CHECK(d >= 0); // refused within 10 s
      if (d >= 0) delays[kind].push_back(d);
    }
  };

  for (int round = 0; round < kRounds; ++round) {
    CAPTURE(round);
    const std::size_t at = static_cast<std::size_t>(round) % 3;

    Pair p = live_session(at);
    REQUIRE(cluster[at].post_raw("/api/auth/logout", "", "application/json", p.access).status ==
            200);
    record("logout", refused_after(cluster, others(at), p.access, Clock::now()));

    // A rotated-away refresh token come back: the session is revoked (RFC 9700).
    p = live_session(at);
    Reply rotated = refresh(cluster[at], p.refresh);
    REQUIRE(rotated.status == 200);
    REQUIRE(refresh(cluster[at], p.refresh).status == 401);
    const auto reused = Clock::now();
    record("refresh reuse", refused_after(cluster, others(at), p.access, reused));
    for (std::size_t i = 0; i < cluster.size(); ++i)
      CHECK(me(cluster[i], rotated.body.value("access_token", "")) == 401);

    Account a;
    p = live_session(at, &a);
    Reply forgot = cluster[at].post("/auth/forget-password", {{"email", a.email}});
    REQUIRE(forgot.status == 200);
    REQUIRE(
        cluster[at]
            .post("/auth/reset-password", {{"reset_token", forgot.body.value("reset_token", "")},
                                           {"new_password", "brand-new-password"}})
            .status == 200);
    record("password reset", refused_after(cluster, others(at), p.access, Clock::now()));

    p = live_session(at, &a);
    CommandResult revoked = run_latch({"sessions", "revoke", a.username, "--db", cluster.db});
    INFO(revoked.output);
    REQUIRE(revoked.status == 0);
    record("latch sessions revoke", refused_after(cluster, {0, 1, 2}, p.access, Clock::now()));

    p = live_session(at, &a);
    CommandResult deleted = run_latch({"user", "delete", a.username, "--db", cluster.db});
    INFO(deleted.output);
    REQUIRE(deleted.status == 0);
    record("latch user delete", refused_after(cluster, {0, 1, 2}, p.access, Clock::now()));
  }
  for (const auto &[kind, seen] : delays) {
    REQUIRE(!seen.empty());
    MESSAGE("revocation seen by another instance, " << kind << ": " << summary(seen));
  }
}

TEST_CASE("one refresh token sent to two instances at once rotates as on one: reuse revokes "
          "with no reuse interval, both get one chain within it, never two live branches") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  for (const char *interval : {"0", "10s"}) {
    CAPTURE(interval);
    Cluster cluster(*server, {{"--refresh-reuse-interval", interval}, {}});
    const bool strict = std::string(interval) == "0";
    for (int round = 0; round < 30; ++round) {
      CAPTURE(round);
      const std::size_t a = static_cast<std::size_t>(round) % 3, b = a + 1;
      Account user = sign_up(cluster[a]);
      Pair first = sign_in(cluster[a], user);
      // Both instances know the session before the race starts.
      REQUIRE(eventually([&] { return me(cluster[b], first.access) == 200; }));
      std::vector<Reply> replies = at_once({[&] { return refresh(cluster[a], first.refresh); },
                                            [&] { return refresh(cluster[b], first.refresh); }});
      std::vector<std::string> issued;
      int ok = 0, refused = 0;
      for (const Reply &r : replies) {
        INFO(r.status << " " << r.text.substr(0, 200));
        CHECK((r.status == 200 || r.status == 401));
        if (r.status == 200) {
          ++ok;
          issued.push_back(r.body.value("refresh_token", ""));
        }
        if (r.status == 401) ++refused;
      }
      if (strict) {
        // One rotation; the other request is reuse, which revokes the session.
        CHECK(ok == 1);
        CHECK(refused == 1);
      } else {
        // The second is a replay within the interval: the token the rotation issued.
        CHECK(ok == 2);
        if (issued.size() == 2) CHECK(claim(issued[0], "jti") == claim(issued[1], "jti"));
      }
      // Never two live branches: at most one of the issued refresh tokens still refreshes
      // (strict: none, the session is revoked; within the interval: the one chain).
      std::set<std::string> live;
      for (const std::string &t : issued) {
        // Wait until every instance agrees on the session's state, then spend it once.
        Reply r = refresh(cluster[b + 1], t);
        if (r.status == 200) live.insert(claim(t, "jti"));
      }
      CHECK(live.size() <= 1);
      if (strict) {
        CHECK(live.empty());
        for (std::size_t i = 0; i < cluster.size(); ++i)
          CHECK(eventually([&] { return me(cluster[i], first.access) == 401; }));
      } else {
        CHECK(live.size() == 1);
      }
    }
  }
}

TEST_CASE("ten wrong passwords spread over three instances lock the account on all of them, "
          "and a password reset on one lifts it on all") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  Cluster cluster(*server, {{"--reset-token-in-response"}, {{"LATCH_MAX_FAILED_LOGINS", "10"}}});
  Account a = sign_up(cluster[0]);
  auto login = [&](std::size_t at, const std::string &password) {
    return cluster[at].post("/api/auth/signin", {{"email", a.email}, {"password", password}});
  };
  for (std::size_t i = 0; i < 10; ++i)
    REQUIRE(login(i % 3, "wrong-password").status == 401);
  // Each instance saw three or four of them; together they are ten.
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    Reply r = login(i, kPassword);
    INFO(i << ": " << r.text);
    CHECK(r.status == 429);
    CHECK(!r.header("Retry-After").empty());
  }
  // A password reset through one instance lifts the lock on all of them.
  Reply forgot = cluster[2].post("/auth/forget-password", {{"email", a.email}});
  REQUIRE(forgot.status == 200);
  REQUIRE(cluster[2]
              .post("/auth/reset-password", {{"reset_token", forgot.body.value("reset_token", "")},
                                             {"new_password", "brand-new-password"}})
              .status == 200);
  for (std::size_t i = 0; i < cluster.size(); ++i) {
    Reply r = login(i, "brand-new-password");
    INFO(i << ": " << r.text);
    CHECK(r.status == 200);
  }
  // A password set with the CLI lifts a lock too, seen by every instance.
  for (std::size_t i = 0; i < 10; ++i)
    REQUIRE(login(i % 3, "wrong-password").status == 401);
  REQUIRE(login(1, "brand-new-password").status == 429);
  // The password on the command's stdin, as an operator types it.
  const std::string command =
      "printf 'set-by-the-cli-1\\n' | " LATCH_BINARY " user set-password '" + a.username +
      "' --password-stdin --db '" + cluster.db + "' >/dev/null 2>&1";
  REQUIRE(std::system(command.c_str()) == 0);
  for (std::size_t i = 0; i < cluster.size(); ++i)
    CHECK(login(i, "set-by-the-cli-1").status == 200);
}

TEST_CASE("a key rotation made with the CLI is used by every instance: each signs with the new "
          "key and verifies what the others signed") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  Cluster cluster(*server);
  Account a = sign_up(cluster[0]);
  std::vector<std::string> before;
  for (std::size_t i = 0; i < cluster.size(); ++i)
    before.push_back(sign_in(cluster[i], a).access);
  const std::string old_kid = jwt_header(before[0]).value("kid", "");
  for (const char *alg : {"HS256", "EdDSA"}) {
    CAPTURE(alg);
    CommandResult rotated =
        run_latch({"secret", "rotate", "--activate", "--alg", alg, "--db", cluster.db});
    INFO(rotated.output);
    REQUIRE(rotated.status == 0);
    const std::string prefix = "new signing key: ";
    const auto at = rotated.output.find(prefix);
    REQUIRE(at != std::string::npos);
    const std::string kid = rotated.output.substr(
        at + prefix.size(), rotated.output.find(' ', at + prefix.size()) - at - prefix.size());
    std::vector<std::string> signed_with_new;
    for (std::size_t i = 0; i < cluster.size(); ++i) {
      std::string token;
      CHECK(eventually([&] {
        token = sign_in(cluster[i], a).access;
        return jwt_header(token).value("kid", "") == kid;
      }));
      CHECK(jwt_header(token).value("alg", "") == alg);
      signed_with_new.push_back(token);
    }
    // eventually: a session made on one instance reaches the others' memory through the
    // change feed (a few ms), and until then its token is refused there.
    for (const std::string &token : signed_with_new)
      for (std::size_t i = 0; i < cluster.size(); ++i)
        CHECK(eventually([&] { return me(cluster[i], token) == 200; }));
    if (std::string(alg) == "EdDSA")
      for (std::size_t i = 0; i < cluster.size(); ++i)
        CHECK(cluster[i].get("/.well-known/jwks.json").text.find(kid) != std::string::npos);
  }
  // What the first key signed before both rotations still verifies everywhere.
  CHECK(!old_kid.empty());
  for (const std::string &token : before)
    for (std::size_t i = 0; i < cluster.size(); ++i)
      CHECK(me(cluster[i], token) == 200);
}

TEST_CASE("one instance killed with SIGKILL mid-traffic: the others go on serving, and nothing "
          "any of them answered 2xx is lost") {
  PostgresServer *server = PostgresServer::shared();
  if (!server) return;
  Cluster cluster(*server);
  std::mutex mutex;
  std::vector<Account> signed_up;         // 2xx sign-ups, from any instance
  std::vector<std::string> access_tokens; // 2xx sign-ins' tokens
  std::atomic<bool> killed{false}, stop{false};
  std::atomic<int> served_after_kill{0};
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < 6; ++t)
    threads.emplace_back([&, t] {
      for (std::size_t n = 0; !stop; ++n) {
        const std::size_t at = (t + n) % 3;
        Account a{unique("kill" + std::to_string(t)), ""};
        a.email = lower(a.username) + "@example.com";
        Reply up = cluster[at].post(
            "/api/v1/register?sendEmail=false",
            {{"email", a.email}, {"username", a.username}, {"password", kPassword}});
        if (up.status / 100 != 2) continue;
        {
          std::lock_guard lock(mutex);
          signed_up.push_back(a);
        }
        Reply in =
            cluster[at + 1].post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}});
        if (in.status / 100 != 2) continue;
        if (killed && (at + 1) % 3 != 2) ++served_after_kill;
        std::lock_guard lock(mutex);
        access_tokens.push_back(in.body.value("access_token", ""));
      }
    });
  // Traffic on all three, then instance 2 dies without a chance to flush or say goodbye.
  REQUIRE(eventually([&] {
    std::lock_guard lock(mutex);
    return signed_up.size() >= 30;
  }));
  cluster[2].stop(9);
  killed = true;
  const std::size_t before_kill = [&] {
    std::lock_guard lock(mutex);
    return signed_up.size();
  }();
  CHECK(eventually([&] {
    std::lock_guard lock(mutex);
    return signed_up.size() >= before_kill + 30;
  }));
  stop = true;
  for (auto &t : threads)
    t.join();
  CHECK(served_after_kill > 0);
  // Every 2xx reached the database: each user signs in, each session's token checks.
  MESSAGE("sign-ups answered 2xx: " << signed_up.size() << ", sign-ins: " << access_tokens.size());
  for (const Account &a : signed_up) {
    CAPTURE(a.username);
    CHECK(
        cluster[0].post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}}).status ==
        200);
  }
  for (const std::string &token : access_tokens)
    CHECK(me(cluster[1], token) == 200);
}
