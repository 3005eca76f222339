// What an attacker's raw sockets found in framing, limits and addressing: each refused the way
// RFC 9112 says, for every framing, on plain HTTP and over TLS, in each API's own shape.
#include "support/latch_process.h"
#include "support/raw_client.h"
#include "support/temp_dir.h"

#include <doctest/doctest.h>

#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;
using namespace std::chrono_literals;

namespace {

const std::string kHealth = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";

// A self-signed certificate for 127.0.0.1, made by the openssl command.
struct Certificate {
  TempDir dir;
  std::string cert = dir.file("cert.pem"), key = dir.file("key.pem");
  Certificate() {
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
                            "-nodes -days 1 -subj /CN=127.0.0.1 -keyout " +
                            key + " -out " + cert + " 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
  }
};

std::string chunk(const std::string &data) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx\r\n", data.size());
  return size + data + "\r\n";
}

// Resident memory of a process, in KiB.
long rss_kib(int pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

} // namespace

TEST_CASE("a chunked body past --max-body-bytes is refused 413 while it is sent, plain and TLS") {
  Certificate certificate;
  for (bool tls : {false, true}) {
    CAPTURE(tls);
    LatchOptions options{{"--max-body-bytes", "65536"}, {}};
    if (tls)
      options.args.insert(options.args.end(),
                          {"--tls-cert", certificate.cert, "--tls-key", certificate.key});
    LatchProcess latch(options);
    const long before = rss_kib(latch.pid());
    RawClient c(latch.port(), {.tls = tls});
    REQUIRE(c.connected());
    REQUIRE(c.send("POST /api/v1/login HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                   "Transfer-Encoding: chunked\r\n\r\n"));
    const std::string piece = chunk(std::string(16 * 1024, ' '));
    std::size_t sent = 0;
    // Up to 300 MB, as the attack sent; the server must stop it at 64 KiB.
    while (sent < 300u * 1024 * 1024 && c.send(piece)) {
      sent += piece.size();
      if (sent % (1024 * 1024) < piece.size() && !c.read(1, 1ms).empty()) break;
    }
    c.read(1, 2s);
    auto answers = c.responses();
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].status == 413);
    CHECK(answers[0].body == R"({"error":"request body too large"})"); // v1's shape
    CHECK(c.closed_within(2s));
    CHECK(sent <
          64u * 1024 *
              1024); // stopped: not the 300 MB (socket buffers and the lingering close take some)
    CHECK(rss_kib(latch.pid()) - before < 16 * 1024); // nothing of it was kept
  }
}

TEST_CASE("Content-Length is digits only, Transfer-Encoding chunked or refused: 400 at once") {
  LatchProcess latch;
  struct Case {
    const char *what;
    std::string head;
  };
  const std::vector<Case> cases = {
      {"hex", "Content-Length: 0x2f\r\n"},
      {"plus sign", "Content-Length: +2\r\n"},
      {"minus one", "Content-Length: -1\r\n"},
      {"two values", "Content-Length: 2, 2\r\n"},
      {"differing copies", "Content-Length: 2\r\nContent-Length: 3\r\n"},
      {"length and chunked", "Content-Length: 2\r\nTransfer-Encoding: chunked\r\n"},
      {"space before the colon", "Transfer-Encoding : chunked\r\n"},
      {"unknown coding", "Transfer-Encoding: gzip\r\n"},
      {"chunked not last", "Transfer-Encoding: chunked, gzip\r\n"},
      {"obs-fold", "X-Folded: a\r\n b\r\n"},
  };
  for (const auto &c : cases) {
    CAPTURE(c.what);
    RawClient raw(latch.port());
    // What follows would be a second request if the head were read leniently.
    REQUIRE(
        raw.send("POST /api/v1/verify HTTP/1.1\r\nHost: t\r\n" + c.head + "\r\n" + "{}" + kHealth));
    // Answered before the read time-out (5 s): nothing is waited for.
    raw.read(2, 3s);
    auto answers = raw.responses();
    REQUIRE(answers.size() == 1);
    CHECK(answers[0].status == 400);
    CHECK(answers[0].body.find("\"error\"") != std::string::npos); // v1's shape
    CHECK(raw.closed_within(1s));
  }
}

TEST_CASE("a percent-encoded path is the same route for the hashing line as for the handler") {
  // One hashing slot, one place in line: a slow sign-in runs, a second waits in line, and a
  // third, however its path is spelt, finds the line full (503). Before, /auth/%74oken skipped
  // the line and waited inside the hasher instead.
  LatchProcess latch({{"--hash-concurrency", "1", "--hash-queue", "1"},
                      {{"LATCH_ARGON2_MEMORY_KIB", "262144"}, {"LATCH_ARGON2_ITERATIONS", "3"}}});
  const std::string login = R"({"username":"nobody","password":"whatever1"})";
  auto sign_in = [&](const std::string &path) {
    return raw_request("POST", path,
                       {{"Host", "t"},
                        {"Content-Type", "application/json"},
                        {"Content-Length", std::to_string(login.size())}},
                       login);
  };
  RawClient running(latch.port()), waiting(latch.port()), encoded(latch.port());
  REQUIRE(running.send(sign_in("/auth/token")));
  std::this_thread::sleep_for(100ms);
  REQUIRE(waiting.send(sign_in("/auth/token")));
  std::this_thread::sleep_for(100ms);
  REQUIRE(encoded.send(sign_in("/auth/%74oken")));
  encoded.read(1, 3s);
  REQUIRE(encoded.responses().size() == 1);
  CHECK(encoded.responses()[0].status == 503);
  CHECK(encoded.responses()[0].body.find("\"detail\"") != std::string::npos); // simplejwt's shape
  running.read(1, 20s);
  waiting.read(1, 20s);
  CHECK(running.responses().at(0).status == 401);
  CHECK(waiting.responses().at(0).status == 401);
  // And an encoded path reaches the same handler as the plain one.
  CHECK(latch.get("/auth/%67etuser").status == 401);
}

TEST_CASE("X-Forwarded-For lines are one list: the client cannot choose its address") {
  // A proxy that adds its own line instead of appending to the client's: the rightmost address
  // not a trusted proxy is the client, whatever lines the client wrote before.
  LatchProcess latch({{"--rate-limit", "2", "--trusted-proxy", "127.0.0.1,10.0.0.0/8"}, {}});
  auto login_via_proxy = [&](const std::string &spoofed) {
    const std::string body = R"({"username":"nobody","password":"whatever1"})";
    RawClient raw(latch.port());
    REQUIRE(raw.send(raw_request("POST", "/auth/login",
                                 {{"Host", "t"},
                                  {"Content-Type", "application/json"},
                                  {"X-Forwarded-For", spoofed},
                                  {"X-Forwarded-For", "203.0.113.9, 10.1.2.3"},
                                  {"Content-Length", std::to_string(body.size())}},
                                 body)));
    raw.read(1);
    REQUIRE(raw.responses().size() == 1);
    return raw.responses()[0].status;
  };
  CHECK(login_via_proxy("198.51.100.1") == 401);
  CHECK(login_via_proxy("198.51.100.2") == 401);
  CHECK(login_via_proxy("198.51.100.3") == 429); // still 203.0.113.9
  // Garbage where an address belongs ends the walk at the last trusted hop, never a key.
  const std::string body = R"({"username":"nobody","password":"whatever1"})";
  for (const std::string &garbage : {std::string(8000, 'x'), std::string("not-an-ip")}) {
    Reply r =
        latch.post_raw("/auth/login", body, "application/json", "", {{"X-Forwarded-For", garbage}});
    CHECK((r.status == 401 || r.status == 429));
  }
}

TEST_CASE("a second Latch on the same address does not start: address in use, exit 1") {
  LatchProcess first;
  TempDir dir;
  auto second = run_latch({"serve", "--addr", "127.0.0.1:" + std::to_string(first.port()), "--db",
                           dir.file("second.db")});
  CHECK(second.status == 1);
  CHECK(second.output.find("cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                           ": address in use") != std::string::npos);
  CHECK(first.get("/healthz").status == 200);
}

TEST_CASE("one address holds at most --max-connections-per-address; another is answered") {
  LatchProcess latch({{"--max-connections-per-address", "16"}, {}});
  rlimit files{};
  ::getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &files);
  const int attack = int(std::min<rlim_t>(2000, files.rlim_cur - 64));
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < attack; ++i) // the attack: 2,000 idle connections from one address
    held.push_back(
        std::make_unique<RawClient>(latch.port(), RawClient::Options{.from = "127.0.0.3"}));
  int open = 0;
  for (auto &c : held)
    if (!c->closed_within(200ms)) ++open;
  CHECK(open <= 16);
  RawClient other(latch.port(), {.from = "127.0.0.4"});
  REQUIRE(other.send(kHealth));
  other.read(1, 2s); // well inside the 5 s the attack used to cost everyone
  REQUIRE(other.responses().size() == 1);
  CHECK(other.responses()[0].status == 200);
}

TEST_CASE("a Bearer token longer than any Latch issues is a bad token: 401 in each API's shape") {
  LatchProcess latch;
  const std::string token = std::string(9000, 'a');
  for (const char *path : {"/auth/getuser", "/api/v1/authorized/me"}) {
    Reply r = latch.get(path, token);
    CAPTURE(path);
    CHECK(r.status == 401);
  }
  Reply flask = latch.post_raw("/auth/logout", "", "application/json", token);
  CHECK(flask.status == 401);
  CHECK(flask.body.contains("msg"));
}

TEST_CASE("a coded (gzip) body is refused 415, never inflated") {
  LatchProcess latch;
  RawClient raw(latch.port());
  const std::string body(1000, '\0');
  REQUIRE(raw.send(raw_request("POST", "/api/auth/signin",
                               {{"Host", "t"},
                                {"Content-Type", "application/json"},
                                {"Content-Encoding", "gzip"},
                                {"Content-Length", std::to_string(body.size())}},
                               body) +
                   kHealth));
  raw.read(2);
  auto answers = raw.responses();
  REQUIRE(answers.size() == 2);
  CHECK(answers[0].status == 415);
  CHECK(answers[0].body.find("\"statusCode\":415") != std::string::npos); // picflux's shape
  CHECK(answers[1].status == 200);
}

TEST_CASE("requests cannot grow the metrics: unknown methods count as one label") {
  LatchProcess latch({{"--metrics"}, {}});
  for (int i = 0; i < 50; ++i) {
    RawClient raw(latch.port());
    REQUIRE(raw.send("M" + std::to_string(i) + "X /auth/token HTTP/1.1\r\nHost: t\r\n\r\n"));
    raw.read(1, 2s);
    RawClient get(latch.port());
    REQUIRE(get.send("PROPFIND /api/x" + std::to_string(i) + " HTTP/1.1\r\nHost: t\r\n\r\n"));
    get.read(1, 2s);
  }
  const std::string page = latch.get("/metrics").text;
  std::size_t lines = 0;
  for (std::size_t at = page.find("latch_http_requests_total{"); at != std::string::npos;
       at = page.find("latch_http_requests_total{", at + 1))
    ++lines;
  CHECK(lines < 8);
  CHECK(page.find("M1X") == std::string::npos);
  CHECK(page.find("/api/x1") == std::string::npos);
}
