// --refresh-reuse-interval: two tabs refreshing at once keep the session; theft is still theft.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <latch>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

const std::string kPassword = "password123";

struct Account {
  std::string username, email;
};

// A user that signs in through every API (it has a username and an email).
Account new_account(const LatchProcess &latch) {
  Account a{unique("tabs"), ""};
  a.email = lower(a.username) + "@example.com";
  REQUIRE(latch
              .post("/api/v1/register?sendEmail=false",
                    {{"email", a.email}, {"username", a.username}, {"password", kPassword}})
              .status == 201);
  return a;
}

struct Pair {
  std::string access, refresh; // refresh is empty where the API answers an access token only
};

// How each API signs in and refreshes, and where its answer puts the tokens.
struct Api {
  std::string name;
  std::function<Reply(const LatchProcess &, const Account &)> sign_in;
  std::function<Reply(const LatchProcess &, const std::string &refresh)> refresh;
  const char *access_key;
  const char *refresh_key; // nullptr: the refresh answer has no refresh token
};

const Api kPicflux{
    "picflux",
    [](const LatchProcess &l, const Account &a) {
      return l.post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}});
    },
    [](const LatchProcess &l, const std::string &t) {
      return l.post_raw("/api/auth/refresh", "", "application/json", t);
    },
    "access_token", "refresh_token"};

const Api kSimplejwt{
    "simplejwt",
    [](const LatchProcess &l, const Account &a) {
      return l.post("/auth/token", {{"username", a.username}, {"password", kPassword}});
    },
    [](const LatchProcess &l, const std::string &t) {
      return l.post("/auth/token/refresh", {{"refresh", t}});
    },
    "access", "refresh"};

const Api kV1{"v1",
              [](const LatchProcess &l, const Account &a) {
                return l.post("/api/v1/login", {{"email", a.email}, {"password", kPassword}});
              },
              [](const LatchProcess &l, const std::string &t) {
                return l.post("/api/v1/refresh", {{"refresh_token", t}});
              },
              "access_token", nullptr};

Pair sign_in(const LatchProcess &latch, const Api &api, const Account &a) {
  Reply r = api.sign_in(latch, a);
  REQUIRE(r.status == 200);
  // Every sign-in answers a refresh token; v1's is "refresh_token".
  return {r.body.value(api.access_key, ""),
          r.body.value(api.refresh_key ? api.refresh_key : "refresh_token", "")};
}

// A refresh answer's tokens; the refresh token only where the API rotates.
Pair taken(const Api &api, const Reply &r) {
  INFO(api.name << ": " << r.status << " " << r.text.substr(0, 300));
  REQUIRE(r.status == 200);
  Pair p{r.body.value(api.access_key, ""),
         api.refresh_key ? r.body.value(api.refresh_key, "") : ""};
  REQUIRE(!p.access.empty());
  if (api.refresh_key) REQUIRE(!p.refresh.empty());
  return p;
}

std::string claim(const std::string &token, const char *name) {
  return jwt_payload(token).value(name, "");
}

// The session lives: its access tokens work, and its current refresh token verifies (without
// spending it).
void check_alive(const LatchProcess &latch, const std::vector<std::string> &access,
                 const std::string &refresh) {
  for (const std::string &t : access)
    CHECK(latch.get("/auth/getuser", t).status == 200);
  CHECK(latch.post("/api/v1/verify", {{"token", refresh}}).status == 200);
}

// The session is revoked: none of its tokens works anywhere.
void check_dead(const LatchProcess &latch, const std::vector<std::string> &access,
                const std::vector<std::string> &refresh) {
  for (const std::string &t : access) {
    CHECK(latch.get("/auth/getuser", t).status == 401);
    CHECK(latch.get("/api/v1/authorized/me", t).status == 401);
  }
  for (const std::string &t : refresh) {
    CHECK(latch.post("/api/v1/verify", {{"token", t}}).status == 401);
    CHECK(latch.post("/api/v1/refresh", {{"refresh_token", t}}).status == 401);
    CHECK(kPicflux.refresh(latch, t).status == 401);
  }
}

} // namespace

TEST_CASE("by default a second tab's refresh just after the first's gets the same refresh "
          "token, and the session lives") {
  LatchProcess latch; // no flag: the default interval, 10 s
  for (const Api *api : {&kPicflux, &kSimplejwt}) {
    CAPTURE(api->name);
    Account a = new_account(latch);
    Pair first = sign_in(latch, *api, a);
    Pair tab1 = taken(*api, api->refresh(latch, first.refresh));
    Pair tab2 = taken(*api, api->refresh(latch, first.refresh));
    CHECK(claim(tab2.refresh, "jti") == claim(tab1.refresh, "jti"));
    CHECK(claim(tab2.refresh, "sid") == claim(first.refresh, "sid"));
    check_alive(latch, {first.access, tab1.access, tab2.access}, tab1.refresh);
    // The chain goes on from either tab's copy.
    Pair next = taken(*api, api->refresh(latch, tab2.refresh));
    CHECK(claim(next.refresh, "jti") != claim(tab1.refresh, "jti"));
    check_alive(latch, {next.access}, next.refresh);
  }
}

TEST_CASE("two tabs, and eight retries, refreshing with one refresh token at once all keep "
          "one session on one chain") {
  LatchProcess latch({{"--threads", "16"}, {}});
  for (const Api *api : {&kPicflux, &kSimplejwt}) {
    for (std::size_t clients : {2u, 8u}) {
      for (int round = 0; round < 3; ++round) {
        CAPTURE(api->name);
        CAPTURE(clients);
        CAPTURE(round);
        Account a = new_account(latch);
        Pair first = sign_in(latch, *api, a);
        std::vector<std::function<Reply()>> calls(
            clients, [&] { return api->refresh(latch, first.refresh); });
        std::vector<Reply> replies = at_once(calls);
        std::set<std::string> chains;
        std::vector<std::string> access = {first.access};
        for (const Reply &r : replies) {
          Pair p = taken(*api, r);
          chains.insert(claim(p.refresh, "jti"));
          CHECK(claim(p.refresh, "sid") == claim(first.refresh, "sid"));
          access.push_back(p.access);
        }
        // One rotation; the others were answered with the token it issued.
        CHECK(chains.size() == 1);
        CHECK(chains.count(claim(first.refresh, "jti")) == 0);
        check_alive(latch, access, taken(*api, replies.front()).refresh);
      }
    }
  }
}

TEST_CASE("v1 refreshes at once never revoke, nor do they alongside a rotation of the same "
          "token through picflux and simplejwt") {
  LatchProcess latch({{"--threads", "16"}, {}});
  Account a = new_account(latch);
  // Eight v1 refreshes with one token: v1 does not rotate, so all succeed.
  Pair v1 = sign_in(latch, kV1, a);
  std::vector<std::function<Reply()>> calls(8, [&] { return kV1.refresh(latch, v1.refresh); });
  std::vector<std::string> access = {v1.access};
  for (const Reply &r : at_once(calls))
    access.push_back(taken(kV1, r).access);
  check_alive(latch, access, v1.refresh);

  // One v1 session's refresh token through three APIs at the same moment: picflux and
  // simplejwt rotate (one of them first, the other replays), v1 renews.
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    Pair start = sign_in(latch, kV1, a);
    std::vector<Reply> replies = at_once({[&] { return kPicflux.refresh(latch, start.refresh); },
                                          [&] { return kSimplejwt.refresh(latch, start.refresh); },
                                          [&] { return kV1.refresh(latch, start.refresh); },
                                          [&] { return kV1.refresh(latch, start.refresh); }});
    Pair pf = taken(kPicflux, replies[0]), sj = taken(kSimplejwt, replies[1]);
    Pair v1a = taken(kV1, replies[2]), v1b = taken(kV1, replies[3]);
    CHECK(claim(pf.refresh, "jti") == claim(sj.refresh, "jti"));
    CHECK(claim(pf.refresh, "jti") != claim(start.refresh, "jti"));
    for (const Pair *p : {&pf, &sj, &v1a, &v1b})
      CHECK(claim(p->access, "sid") == claim(start.refresh, "sid"));
    check_alive(latch, {start.access, pf.access, sj.access, v1a.access, v1b.access}, pf.refresh);
  }
}

TEST_CASE("a token rotated two steps back is theft even while a tab refreshes at the same "
          "moment, through any API") {
  LatchProcess latch({{"--threads", "16"}, {}});
  for (const Api *thief : {&kPicflux, &kSimplejwt, &kV1}) {
    for (int round = 0; round < 3; ++round) {
      CAPTURE(thief->name);
      CAPTURE(round);
      Account a = new_account(latch);
      Pair first = sign_in(latch, kPicflux, a);
      Pair second = taken(kPicflux, kPicflux.refresh(latch, first.refresh));
      Pair third = taken(kSimplejwt, kSimplejwt.refresh(latch, second.refresh));
      Pair bystander = sign_in(latch, kPicflux, a); // another session of the same user
      // The owner refreshes with the current token (and a second tab replays the one just
      // before it) while the first token, rotated twice since, comes back.
      std::vector<Reply> replies =
          at_once({[&] { return kPicflux.refresh(latch, third.refresh); },
                   [&] { return kSimplejwt.refresh(latch, second.refresh); },
                   [&] { return thief->refresh(latch, first.refresh); }});
      CHECK(replies[2].status == 401);
      std::vector<std::string> access = {first.access, second.access, third.access};
      std::vector<std::string> refresh = {first.refresh, second.refresh, third.refresh};
      for (std::size_t i = 0; i < 2; ++i) {
        // Answered before the theft was seen, or refused after: either way its tokens die.
        if (replies[i].status == 200) {
          Pair p = taken(i == 0 ? kPicflux : kSimplejwt, replies[i]);
          access.push_back(p.access);
          refresh.push_back(p.refresh);
        } else {
          CHECK(replies[i].status == 401);
        }
      }
      check_dead(latch, access, refresh);
      check_alive(latch, {bystander.access}, bystander.refresh);
    }
  }
}

TEST_CASE("past the interval the replaced token is theft again, for picflux, simplejwt and v1") {
  LatchProcess latch({{"--refresh-reuse-interval", "1"}, {}});
  struct Case {
    const Api *api;
    Account account;
    Pair first, rotated;
  };
  std::vector<Case> cases;
  for (const Api *api : {&kPicflux, &kSimplejwt, &kV1}) {
    Case c{api, new_account(latch), {}, {}};
    c.first = sign_in(latch, *api, c.account);
    // v1 does not rotate: its token is rotated through picflux, and v1 renews with the old one.
    const Api &rotating = api->refresh_key ? *api : kPicflux;
    c.rotated = taken(rotating, rotating.refresh(latch, c.first.refresh));
    cases.push_back(c);
  }
  // Time passing, not a timing assertion: 2.5 s after the rotations every clock reading is at
  // least 2 whole seconds later, past the 1 s interval.
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  for (const Case &c : cases) {
    CAPTURE(c.api->name);
    CHECK(c.api->refresh(latch, c.first.refresh).status == 401);
    check_dead(latch, {c.first.access, c.rotated.access}, {c.first.refresh, c.rotated.refresh});
  }
}

TEST_CASE("--refresh-reuse-interval 0 is strict: of two tabs at once, one wins and the session "
          "is revoked") {
  LatchProcess latch({{"--refresh-reuse-interval", "0"}, {}});
  for (const Api *api : {&kPicflux, &kSimplejwt}) {
    CAPTURE(api->name);
    Account a = new_account(latch);
    Pair first = sign_in(latch, *api, a);
    std::vector<Reply> replies = at_once({[&] { return api->refresh(latch, first.refresh); },
                                          [&] { return api->refresh(latch, first.refresh); }});
    std::vector<std::string> access = {first.access}, refresh = {first.refresh};
    int ok = 0;
    for (const Reply &r : replies) {
      if (r.status != 200) continue;
      ++ok;
      Pair p = taken(*api, r);
      access.push_back(p.access);
      refresh.push_back(p.refresh);
    }
    CHECK(ok == 1);
    check_dead(latch, access, refresh);
  }
}
