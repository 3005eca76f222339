// Refresh-token theft and concurrent refresh, sign-up and logout: one winner, sessions revoked.
#include "support/latch_process.h"
#include "support/raw_client.h"

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <latch>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

const std::string kPassword = "password123";

// A thread for each of the races' open connections (the default is 16), so the last ones
// to connect are served at once rather than after another connection's keep-alive time-out.
LatchOptions racing() {
  return {{"--threads", "32"}, {}};
}
// And no reuse interval: a rotated-away token is theft at once (test_refresh_reuse.cpp has the
// interval).
LatchOptions racing_strict() {
  return {{"--threads", "32", "--refresh-reuse-interval", "0"}, {}};
}

struct Pair {
  std::string access, refresh;
};

// A user that signs in through every API (it has a username and an email).
struct Account {
  std::string username, email;
};

Account new_account(const LatchProcess &latch) {
  Account a{unique("race"), ""};
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", kPassword}});
  REQUIRE(r.status == 201);
  return a;
}

// A request in a form that any thread can send with its own client.
struct Request {
  std::string method, path;
  std::string body;   // JSON text; empty with a POST means an empty JSON body
  std::string bearer; // empty: no Authorization header
};

Request post_json(const std::string &path, const json &body) {
  return {"POST", path, body.dump(), ""};
}
Request post_bearer(const std::string &path, const std::string &token) {
  return {"POST", path, "", token};
}

// One HTTP/1.1 exchange on a raw connection, which may have carried earlier ones: connecting
// (making the RawClient) is separate from sending, so a race can open every connection first
// and then send all requests at the same moment. With close, asks the server to close
// afterwards. A reply with status 0 and a "transport error" text if the connection failed.
Reply exchange(RawClient &c, const Request &q, bool close = true) {
  Reply out;
  if (!c.connected()) {
    out.text = "transport error: connect failed";
    return out;
  }
  std::vector<std::pair<std::string, std::string>> headers = {{"Host", "127.0.0.1"}};
  if (close) headers.emplace_back("Connection", "close");
  if (!q.bearer.empty()) headers.emplace_back("Authorization", "Bearer " + q.bearer);
  if (q.method == "POST") {
    headers.emplace_back("Content-Type", "application/json");
    headers.emplace_back("Content-Length", std::to_string(q.body.size()));
  }
  if (!c.send(raw_request(q.method, q.path, headers, q.body))) {
    out.text = "transport error: send failed";
    return out;
  }
  const std::size_t earlier = c.responses().size();
  const std::string got = c.read(int(earlier) + 1, std::chrono::seconds(30));
  const auto responses = c.responses();
  if (responses.size() <= earlier || responses[earlier].status == 0) {
    out.text =
        "transport error: no HTTP reply: " + got.substr(got.size() > 200 ? got.size() - 200 : 0);
    return out;
  }
  const RawResponse &r = responses[earlier];
  out.status = r.status;
  out.headers.insert(r.headers.begin(), r.headers.end());
  out.text = r.body;
  out.body = json::parse(out.text, nullptr, false);
  return out;
}

Reply call(int port, const Request &q) {
  RawClient c(port);
  return exchange(c, q);
}

// Sends every request at the same moment, one thread and one connection each, and returns
// the replies in order. The connections are opened beforehand one at a time, each proven
// open by a first cheap request, so what races is the requests, not the TCP handshakes.
std::vector<Reply> at_once(int port, const std::vector<Request> &requests) {
  std::vector<std::unique_ptr<RawClient>> connections;
  for (size_t i = 0; i < requests.size(); ++i) {
    connections.push_back(std::make_unique<RawClient>(port));
    Reply warm = exchange(*connections.back(), {"GET", "/api/v1/no-such-route", "", ""}, false);
    REQUIRE(warm.status == 404);
  }
  std::vector<Reply> replies(requests.size());
  std::latch go(static_cast<std::ptrdiff_t>(requests.size()));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < requests.size(); ++i) {
    threads.emplace_back([&, i] {
      go.arrive_and_wait();
      replies[i] = exchange(*connections[i], requests[i]);
    });
  }
  for (auto &t : threads)
    t.join();
  return replies;
}

std::string describe(const Reply &r) {
  return std::to_string(r.status) + " " + r.text.substr(0, 300);
}

// Each API's answer for a bad, expired, revoked or reused token.
void check_picflux_401(const Reply &r) {
  INFO(describe(r));
  CHECK(r.status == 401);
  CHECK(r.body == json{{"statusCode", 401}, {"message", "Unauthorized"}});
}
void check_simplejwt_401(const Reply &r) {
  INFO(describe(r));
  CHECK(r.status == 401);
  CHECK(r.body == json{{"detail", "Token is invalid or expired"}, {"code", "token_not_valid"}});
}
void check_flask_401(const Reply &r) {
  INFO(describe(r));
  CHECK(r.status == 401);
  CHECK(keys(r.body) == std::set<std::string>{"msg"});
}
void check_v1_401(const Reply &r) {
  INFO(describe(r));
  CHECK(r.status == 401);
  CHECK(r.body == json{{"error", "invalid token"}});
}

// An API that hands out refresh tokens: how to sign in, refresh and read its answers.
struct RefreshingApi {
  std::string name;
  bool rotates;
  std::function<Pair(const LatchProcess &, const Account &)> sign_in;
  std::function<Request(const std::string &refresh)> refresh;
  std::function<Pair(const Reply &)> take; // refresh is empty where the API does not rotate
  std::function<void(const Reply &)> check_401;
};

Pair take_keys(const Reply &r, const char *access, const char *refresh) {
  REQUIRE(r.body.is_object());
  Pair p{r.body.value(access, ""), refresh ? r.body.value(refresh, "") : ""};
  REQUIRE(!p.access.empty());
  if (refresh) REQUIRE(!p.refresh.empty());
  return p;
}

const RefreshingApi kPicflux{
    "picflux",
    true,
    [](const LatchProcess &latch, const Account &a) {
      Reply r = latch.post("/api/auth/signin", {{"email", a.email}, {"password", kPassword}});
      REQUIRE(r.status == 200);
      return take_keys(r, "access_token", "refresh_token");
    },
    [](const std::string &t) { return post_bearer("/api/auth/refresh", t); },
    [](const Reply &r) { return take_keys(r, "access_token", "refresh_token"); },
    check_picflux_401};

const RefreshingApi kSimplejwt{
    "simplejwt",
    true,
    [](const LatchProcess &latch, const Account &a) {
      Reply r = latch.post("/auth/token", {{"username", a.username}, {"password", kPassword}});
      REQUIRE(r.status == 200);
      return take_keys(r, "access", "refresh");
    },
    [](const std::string &t) {
      return post_json("/auth/token/refresh", {{"refresh", t}});
    },
    [](const Reply &r) { return take_keys(r, "access", "refresh"); },
    check_simplejwt_401};

const RefreshingApi kFlask{
    "flask",
    false,
    [](const LatchProcess &latch, const Account &a) {
      Reply r = latch.post("/auth/login", {{"username", a.username}, {"password", kPassword}});
      REQUIRE(r.status == 200);
      return take_keys(r, "access_token", "refresh_token");
    },
    [](const std::string &t) { return post_bearer("/auth/refresh", t); },
    [](const Reply &r) { return take_keys(r, "access_token", nullptr); },
    check_flask_401};

const RefreshingApi kV1{
    "v1",
    false,
    [](const LatchProcess &latch, const Account &a) {
      Reply r = latch.post("/api/v1/login", {{"email", a.email}, {"password", kPassword}});
      REQUIRE(r.status == 200);
      return take_keys(r, "access_token", "refresh_token");
    },
    [](const std::string &t) {
      return post_json("/api/v1/refresh", {{"refresh_token", t}});
    },
    [](const Reply &r) { return take_keys(r, "access_token", nullptr); },
    check_v1_401};

Reply refresh(const LatchProcess &latch, const RefreshingApi &api, const std::string &token) {
  return call(latch.port(), api.refresh(token));
}

// Every way the session's tokens could still be used: all must be refused.
void check_session_dead(const LatchProcess &latch, const std::vector<std::string> &access,
                        const std::vector<std::string> &refresh) {
  for (const std::string &t : access) {
    check_simplejwt_401(latch.get("/auth/getuser", t));
    check_v1_401(latch.get("/api/v1/authorized/me", t));
    check_v1_401(latch.post("/api/v1/verify", {{"token", t}}));
  }
  for (const std::string &t : refresh) {
    check_v1_401(latch.post("/api/v1/verify", {{"token", t}}));
    check_simplejwt_401(latch.post("/auth/token/verify", {{"token", t}}));
    check_flask_401(latch.post_raw("/auth/refresh", "", "application/json", t));
    check_v1_401(latch.post("/api/v1/refresh", {{"refresh_token", t}}));
  }
}

// Both tokens must still work (checked without spending a refresh token).
void check_session_alive(const LatchProcess &latch, const Pair &p) {
  CHECK(latch.get("/api/v1/authorized/me", p.access).status == 200);
  CHECK(latch.post("/api/v1/verify", {{"token", p.refresh}}).status == 200);
}

int status_count(const std::vector<Reply> &replies, int status) {
  int n = 0;
  for (const Reply &r : replies)
    n += r.status == status;
  return n;
}

} // namespace

TEST_CASE("a reused rotated refresh token revokes the whole session, for each rotating API") {
  LatchProcess latch(racing());
  for (const RefreshingApi *api : {&kPicflux, &kSimplejwt}) {
    CAPTURE(api->name);
    Account a = new_account(latch);
    Pair first = api->sign_in(latch, a);
    Pair bystander = api->sign_in(latch, a); // another session of the same user

    Reply r = refresh(latch, *api, first.refresh);
    REQUIRE(r.status == 200);
    Pair second = api->take(r);
    CHECK(second.refresh != first.refresh);
    r = refresh(latch, *api, second.refresh);
    REQUIRE(r.status == 200);
    Pair newest = api->take(r);
    check_session_alive(latch, newest);

    // The first refresh token comes back: theft. Every token of the session dies.
    api->check_401(refresh(latch, *api, first.refresh));
    api->check_401(refresh(latch, *api, newest.refresh));
    check_session_dead(latch, {first.access, second.access, newest.access},
                       {first.refresh, second.refresh, newest.refresh});
    check_session_alive(latch, bystander);
  }
}

TEST_CASE("when the thief rotates a stolen refresh token first, the owner's reuse kills the "
          "thief's tokens (strict: --refresh-reuse-interval 0)") {
  LatchProcess latch(racing_strict());
  for (const RefreshingApi *api : {&kPicflux, &kSimplejwt}) {
    CAPTURE(api->name);
    Account a = new_account(latch);
    Pair owner = api->sign_in(latch, a);
    Reply stolen = refresh(latch, *api, owner.refresh);
    REQUIRE(stolen.status == 200);
    Pair thief = api->take(stolen);
    check_session_alive(latch, thief);

    api->check_401(refresh(latch, *api, owner.refresh));
    api->check_401(refresh(latch, *api, thief.refresh));
    check_session_dead(latch, {owner.access, thief.access}, {owner.refresh, thief.refresh});
  }
}

TEST_CASE("flask and v1 do not rotate: their refresh token stays valid and reuse is not theft") {
  LatchProcess latch(racing());
  for (const RefreshingApi *api : {&kFlask, &kV1}) {
    CAPTURE(api->name);
    Account a = new_account(latch);
    Pair p = api->sign_in(latch, a);
    std::vector<std::string> issued;
    for (int i = 0; i < 3; ++i) {
      Reply r = refresh(latch, *api, p.refresh);
      REQUIRE(r.status == 200);
      Pair next = api->take(r);
      CHECK(jwt_payload(next.access)["sid"] == jwt_payload(p.access)["sid"]);
      issued.push_back(next.access);
    }
    for (const std::string &t : issued)
      CHECK(latch.get("/auth/getuser", t).status == 200);
    check_session_alive(latch, p);
  }
}

TEST_CASE("eight concurrent refreshes with one refresh token let exactly one through (strict: "
          "--refresh-reuse-interval 0)") {
  LatchProcess latch(racing_strict());
  int rounds = 0;
  for (const RefreshingApi *api : {&kPicflux, &kSimplejwt}) {
    for (int round = 0; round < 5; ++round, ++rounds) {
      CAPTURE(api->name);
      CAPTURE(round);
      Account a = new_account(latch);
      Pair p = api->sign_in(latch, a);
      std::vector<Reply> replies =
          at_once(latch.port(), std::vector<Request>(8, api->refresh(p.refresh)));
      CHECK(status_count(replies, 200) == 1);
      CHECK(status_count(replies, 401) == 7);
      std::vector<std::string> access = {p.access}, refresh_tokens = {p.refresh};
      for (const Reply &r : replies) {
        if (r.status == 200) {
          Pair winner = api->take(r);
          access.push_back(winner.access);
          refresh_tokens.push_back(winner.refresh);
        } else {
          api->check_401(r);
        }
      }
      // The losers presented a token that had just been rotated: reuse, so the session,
      // the winner's new pair included, is revoked (RFC 9700 cannot tell who is the thief).
      check_session_dead(latch, access, refresh_tokens);
    }
  }
  MESSAGE("concurrent-refresh rounds: ", rounds, " of 8 requests each");
}

TEST_CASE("eight concurrent refreshes with one flask or v1 refresh token all succeed") {
  LatchProcess latch(racing());
  for (const RefreshingApi *api : {&kFlask, &kV1}) {
    CAPTURE(api->name);
    Account a = new_account(latch);
    Pair p = api->sign_in(latch, a);
    std::vector<Reply> replies =
        at_once(latch.port(), std::vector<Request>(8, api->refresh(p.refresh)));
    CHECK(status_count(replies, 200) == 8);
    for (const Reply &r : replies)
      if (r.status == 200) CHECK(latch.get("/auth/getuser", api->take(r).access).status == 200);
    check_session_alive(latch, p);
  }
}

namespace {

// A sign-up route: its body for a given username, email and password, and its statuses.
struct SignUpApi {
  std::string name;
  std::function<Request(const std::string &, const std::string &, const std::string &)> request;
  int created, conflict;
};

const std::vector<SignUpApi> &sign_up_apis() {
  static const std::vector<SignUpApi> all = {
      {"picflux",
       [](const std::string &u, const std::string &e, const std::string &p) {
         return post_json("/api/auth/signup", {{"username", u}, {"email", e}, {"password", p}});
       },
       201, 409},
      {"simplejwt",
       [](const std::string &u, const std::string &e, const std::string &p) {
         return post_json("/auth/register", {{"username", u}, {"email", e}, {"password", p}});
       },
       201, 409},
      {"flask",
       [](const std::string &u, const std::string &e, const std::string &p) {
         return post_json("/auth/signup", {{"username", u}, {"email", e}, {"password", p}});
       },
       201, 409},
      {"v1",
       [](const std::string &u, const std::string &e, const std::string &p) {
         return post_json("/api/v1/register?sendEmail=false",
                          {{"username", u}, {"email", e}, {"password", p}});
       },
       201, 409},
      {"envelope",
       [](const std::string &u, const std::string &e, const std::string &p) {
         return post_json(
             "/api/v1/auth/signUp",
             {{"username", u}, {"email", e}, {"password", p}, {"display_name", "Racer"}});
       },
       200, 409},
  };
  return all;
}

// Passwords every API takes (envelope wants lower, upper, digit and symbol), one per attempt.
std::string race_password(size_t i) {
  return "Race-Pw1!" + std::to_string(100 + i);
}

// After a sign-up race on one identity: exactly one attempt made a user, the rest were
// refused as conflicts, and only the winner's password signs in.
void check_one_winner(const LatchProcess &latch, const std::vector<const SignUpApi *> &apis,
                      const std::vector<Reply> &replies, const std::string &identity) {
  int created = 0, conflicts = 0;
  size_t winner = replies.size();
  for (size_t i = 0; i < replies.size(); ++i) {
    CAPTURE(i);
    INFO(apis[i]->name, ": ", describe(replies[i]));
    if (replies[i].status == apis[i]->created) {
      ++created;
      winner = i;
    } else {
      CHECK(replies[i].status == apis[i]->conflict);
      conflicts += replies[i].status == apis[i]->conflict;
    }
  }
  CHECK(created == 1);
  CHECK(conflicts == static_cast<int>(replies.size()) - 1);
  for (size_t i = 0; i < replies.size(); ++i) {
    CAPTURE(i);
    Reply in =
        latch.post("/api/v1/auth/login", {{"identity", identity}, {"password", race_password(i)}});
    CHECK(in.status == (i == winner ? 200 : 401));
  }
}

} // namespace

TEST_CASE("twenty concurrent sign-ups of one username or one email make exactly one user") {
  LatchProcess latch(racing());
  for (const SignUpApi &api : sign_up_apis()) {
    CAPTURE(api.name);
    std::vector<const SignUpApi *> apis(20, &api);

    std::string username = unique("dupname");
    std::vector<Request> same_name;
    for (size_t i = 0; i < 20; ++i)
      same_name.push_back(api.request(username, unique("e") + "@example.com", race_password(i)));
    check_one_winner(latch, apis, at_once(latch.port(), same_name), username);

    std::string email = unique("dupmail") + "@example.com";
    std::vector<Request> same_email;
    for (size_t i = 0; i < 20; ++i)
      same_email.push_back(api.request(unique("u"), email, race_password(i)));
    check_one_winner(latch, apis, at_once(latch.port(), same_email), email);
  }
}

TEST_CASE("twenty concurrent sign-ups of one username through all five APIs make one user") {
  LatchProcess latch(racing());
  std::string username = unique("Mixed");
  std::vector<const SignUpApi *> apis;
  std::vector<Request> requests;
  for (size_t i = 0; i < 20; ++i) {
    const SignUpApi &api = sign_up_apis()[i % sign_up_apis().size()];
    apis.push_back(&api);
    // The same name in different letter case: usernames are case-insensitive.
    std::string name = i % 2 ? upper(username) : lower(username);
    requests.push_back(api.request(name, unique("m") + "@example.com", race_password(i)));
  }
  check_one_winner(latch, apis, at_once(latch.port(), requests), username);
}

namespace {

// A logout route to race against a refresh route.
struct LogoutPairing {
  const RefreshingApi *refresher;
  std::string logout_path;
};

} // namespace

TEST_CASE("a logout racing a refresh of the same session leaves the session revoked") {
  LatchProcess latch(racing());
  const std::vector<LogoutPairing> pairings = {{&kPicflux, "/api/auth/logout"},
                                               {&kSimplejwt, "/api/v1/logout"},
                                               {&kFlask, "/auth/logout"},
                                               {&kV1, "/api/v1/logout"}};
  int rounds = 0, refresh_won = 0;
  for (const LogoutPairing &pairing : pairings) {
    const RefreshingApi &api = *pairing.refresher;
    for (int round = 0; round < 6; ++round, ++rounds) {
      CAPTURE(api.name);
      CAPTURE(round);
      Account a = new_account(latch);
      Pair p = api.sign_in(latch, a);
      // Alternate which request is sent first, so neither always has the head start.
      std::vector<Request> requests = {post_bearer(pairing.logout_path, p.access),
                                       api.refresh(p.refresh)};
      if (round % 2) std::swap(requests[0], requests[1]);
      std::vector<Reply> replies = at_once(latch.port(), requests);
      const Reply &logout = replies[round % 2 ? 1 : 0];
      const Reply &refreshed = replies[round % 2 ? 0 : 1];
      INFO("logout: ", describe(logout));
      INFO("refresh: ", describe(refreshed));
      CHECK(logout.status == 200);

      std::vector<std::string> access = {p.access}, refresh_tokens = {p.refresh};
      if (refreshed.status == 200) {
        ++refresh_won;
        Pair next = api.take(refreshed);
        access.push_back(next.access);
        if (!next.refresh.empty()) refresh_tokens.push_back(next.refresh);
      } else {
        api.check_401(refreshed);
      }
      api.check_401(refresh(latch, api, p.refresh));
      check_session_dead(latch, access, refresh_tokens);
    }
  }
  MESSAGE("logout/refresh races: ", rounds, "; the refresh answered 200 in ", refresh_won,
          " and 401 in ", rounds - refresh_won);
}
