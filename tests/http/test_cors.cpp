// CORS on the wire: every route's preflight and actual answer, read as raw bytes, carries each
// CORS header exactly once (a browser refuses a preflight with a header given twice).
#include "support/latch_process.h"
#include "support/raw_client.h"

#include "auth/http/routes.h"

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <utility>
#include <vector>

using namespace latch::test;

namespace {

const std::string kListed = "http://app.test:5173";
const std::string kAlsoListed = "https://other.example";
const std::string kNotListed = "http://evil.test:5173";

// What came back: the first response, header lines exactly as sent (repeats kept, names as
// written), and every byte, for the messages.
struct Answer {
  RawResponse response; // status 0 if none came
  std::string raw;
};

// One request on a fresh connection (Connection: close), read until the server closes it.
Answer exchange(int port, const std::string &request) {
  RawClient c(port);
  REQUIRE(c.connected());
  REQUIRE(c.send(request));
  // A hang ends at 10 s: the checks below fail on the missing status.
  Answer a{{}, c.read(RawClient::until_closed, std::chrono::seconds(10))};
  if (auto responses = c.responses(); !responses.empty()) a.response = responses.front();
  return a;
}

std::string preflight(const std::string &path, const std::string &method,
                      const std::string &origin) {
  return "OPTIONS " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" +
         "Origin: " + origin + "\r\nAccess-Control-Request-Method: " + method +
         "\r\nAccess-Control-Request-Headers: authorization, content-type\r\n\r\n";
}

// The request a frontend's fetch() sends after the preflight: JSON, a (bad) bearer token.
std::string actual(const std::string &path, const std::string &method, const std::string &origin) {
  std::string out = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  if (!origin.empty()) out += "Origin: " + origin + "\r\n";
  out += "Authorization: Bearer not-a-token\r\n";
  if (method == "GET") return out + "\r\n";
  return out + "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
}

// Checks that name appears exactly once with value `want`, or not at all when want is null.
void check_once(const Answer &a, const std::string &name, const char *want) {
  auto got = a.response.values(name);
  std::string copies;
  for (const auto &v : got)
    copies += "\n  " + name + ": " + v;
  if (!want) {
    CHECK_MESSAGE(got.empty(), name << " must be absent, got" << copies);
    return;
  }
  CHECK_MESSAGE(got.size() == 1, name << " must appear once, got " << got.size() << ":" << copies);
  if (!got.empty()) CHECK_MESSAGE(got.front() == want, name << ": " << got.front());
}

void check_cors(const Answer &a, const char *origin, bool credentials, const char *vary) {
  check_once(a, "Access-Control-Allow-Origin", origin);
  check_once(a, "Access-Control-Allow-Credentials", origin && credentials ? "true" : nullptr);
  check_once(a, "Access-Control-Expose-Headers",
             origin ? "X-Request-Id, Retry-After, WWW-Authenticate" : nullptr);
  check_once(a, "Vary", vary);
}

// The preflight-only headers, once each for an allowed origin, none for another.
void check_preflight(const Answer &a, const std::string &method, bool allowed) {
  CHECK(a.response.status == 204);
  auto methods = a.response.values("Access-Control-Allow-Methods");
  auto headers = a.response.values("Access-Control-Allow-Headers");
  auto max_age = a.response.values("Access-Control-Max-Age");
  if (!allowed) {
    CHECK(methods.empty());
    CHECK(headers.empty());
    CHECK(max_age.empty());
    return;
  }
  REQUIRE(methods.size() == 1);
  CHECK(methods.front().find(method) != std::string::npos);
  CHECK(headers == std::vector<std::string>{"authorization, content-type"});
  CHECK(max_age == std::vector<std::string>{"600"});
}

} // namespace

TEST_CASE("CORS with a list: every route answers each CORS header once, Vary: Origin always") {
  LatchProcess latch({{"--cors-origin", kListed + "," + kAlsoListed}, {}});
  for (const auto &route : latch::http::route_table()) {
    const std::string path = route.path, method = route.method;
    for (const std::string &origin : {kListed, kAlsoListed}) {
      INFO(method << " " << path << " from " << origin);
      Answer pre = exchange(latch.port(), preflight(path, method, origin));
      INFO("preflight answer:\n" << pre.raw);
      check_preflight(pre, method, true);
      check_cors(pre, origin.c_str(), true, "Origin");
      Answer real = exchange(latch.port(), actual(path, method, origin));
      INFO("actual answer:\n" << real.raw);
      CHECK(real.response.status >= 400); // an empty body and a bad token: refused, but answered
      check_cors(real, origin.c_str(), true, "Origin");
    }
    // Another origin gets no CORS header at all, and the answer still says it varies.
    INFO(method << " " << path << " from " << kNotListed);
    Answer pre = exchange(latch.port(), preflight(path, method, kNotListed));
    INFO("preflight answer:\n" << pre.raw);
    check_preflight(pre, method, false);
    check_cors(pre, nullptr, true, "Origin");
    Answer real = exchange(latch.port(), actual(path, method, kNotListed));
    INFO("actual answer:\n" << real.raw);
    check_cors(real, nullptr, true, "Origin");
    // No Origin (curl, a server, the same origin): no CORS headers, and Vary, so a cache
    // never hands this answer to a browser on a listed origin.
    Answer none = exchange(latch.port(), actual(path, method, ""));
    INFO("answer without Origin:\n" << none.raw);
    check_cors(none, nullptr, true, "Origin");
  }
  // Outside the route table: operational endpoints, unknown paths, refused framing.
  for (const char *path : {"/healthz", "/openapi.json", "/no/such/path"}) {
    INFO(path);
    Answer a = exchange(latch.port(), actual(path, "GET", kListed));
    CHECK(a.response.status != 0);
    check_cors(a, kListed.c_str(), true, "Origin");
  }
  Answer smuggled =
      exchange(latch.port(), "POST /auth/token HTTP/1.1\r\nHost: x\r\nOrigin: " + kListed +
                                 "\r\nContent-Length: 2\r\nContent-Length: 3\r\n"
                                 "Connection: close\r\n\r\n{}");
  INFO("refused framing:\n" << smuggled.raw);
  CHECK(smuggled.response.status == 400);
  check_cors(smuggled, kListed.c_str(), true, "Origin");
}

TEST_CASE("CORS with *: every route answers Allow-Origin * once, never credentials or Vary") {
  LatchProcess latch({{"--cors-origin", "*"}, {}});
  for (const auto &route : latch::http::route_table()) {
    const std::string path = route.path, method = route.method;
    for (const std::string &origin : {kListed, kNotListed}) {
      INFO(method << " " << path << " from " << origin);
      Answer pre = exchange(latch.port(), preflight(path, method, origin));
      INFO("preflight answer:\n" << pre.raw);
      check_preflight(pre, method, true);
      check_cors(pre, "*", false, nullptr);
      Answer real = exchange(latch.port(), actual(path, method, origin));
      INFO("actual answer:\n" << real.raw);
      CHECK(real.response.status >= 400);
      check_cors(real, "*", false, nullptr);
    }
    // The answer is the same whatever the Origin, even without one: nothing varies.
    INFO(method << " " << path << " without Origin");
    Answer none = exchange(latch.port(), actual(path, method, ""));
    INFO("answer without Origin:\n" << none.raw);
    check_cors(none, "*", false, nullptr);
  }
}

TEST_CASE("without --cors-origin no answer carries a CORS header or Vary") {
  LatchProcess latch;
  for (const auto &route : latch::http::route_table()) {
    const std::string path = route.path, method = route.method;
    INFO(method << " " << path);
    Answer real = exchange(latch.port(), actual(path, method, kListed));
    INFO(real.raw);
    CHECK(real.response.status >= 400);
    check_cors(real, nullptr, false, nullptr);
    Answer pre = exchange(latch.port(), preflight(path, method, kListed));
    CHECK(pre.response.status >= 400); // no preflight is answered
    check_cors(pre, nullptr, false, nullptr);
  }
}
