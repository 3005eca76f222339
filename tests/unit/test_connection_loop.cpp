// The epoll connection loop under cpp-httplib: whole requests only, pipelining, time-outs,
// threads that start only for stuck handlers, the connection caps, lanes, and draining.
#include "auth/http/connection_loop.h"

#include "support/raw_client.h"

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

using latch::http::ConnectionLoop;
using latch::http::Verdict;
using latch::test::RawClient;
using namespace std::chrono_literals;

namespace {

template <typename Pred> bool eventually(Pred pred, std::chrono::milliseconds limit = 5s) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

ConnectionLoop::Settings options(std::size_t threads, std::size_t max_threads,
                                 std::size_t max_connections) {
  ConnectionLoop::Settings o;
  o.threads = threads;
  o.max_threads = max_threads;
  o.max_connections = max_connections;
  return o;
}

// A server on a free loopback port, serving on a thread until the fixture ends.
struct Served {
  explicit Served(ConnectionLoop::Settings options, int timeout_s = 5) : server(options) {
    server.set_read_timeout(timeout_s, 0);
    server.set_keep_alive_timeout(timeout_s);
    server.set_write_timeout(timeout_s, 0);
    server.set_keep_alive_max_count(1000);
    server.set_payload_max_length(64 * 1024);
    server.set_socket_options([this](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      listen_fd = sock;
    });
    server.Get("/hello", [](const httplib::Request &req, httplib::Response &res) {
      res.set_content("hello " + req.remote_addr, "text/plain");
    });
    server.Post("/echo", [](const httplib::Request &req, httplib::Response &res) {
      res.set_content(req.body, "text/plain");
    });
    server.Get("/big", [](const httplib::Request &, httplib::Response &res) {
      res.set_content(std::string(2 * 1024 * 1024, 'b'), "text/plain");
    });
    server.Get("/wait", [this](const httplib::Request &, httplib::Response &res) {
      ++waiting;
      release.wait();
      res.set_content("waited", "text/plain");
    });
    // As a sign-in: heavy when the options say so; past the line it may not wait, as Latch's
    // sign-ins then may not wait for a hashing slot.
    server.Get("/heavy", [this](const httplib::Request &req, httplib::Response &res) {
      if (ConnectionLoop::line_full(req)) {
        res.status = 503;
        return;
      }
      {
        std::lock_guard lock(order_mutex);
        heavy_order.push_back(req.get_param_value("id"));
      }
      ++waiting;
      release.wait();
      res.set_content("heavy " + req.get_param_value("id"), "text/plain");
    });
  }
  void start() {
    port = server.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    ::listen(listen_fd, SOMAXCONN); // as Latch does: cpp-httplib's backlog is 5
    thread = std::thread([this] { server.listen_after_bind(); });
  }
  ~Served() {
    if (!released) open_gate();
    server.stop();
    if (thread.joinable()) thread.join();
    server.drain();
  }
  void open_gate() {
    released = true;
    gate.set_value();
  }

  ConnectionLoop server;
  int port = 0, listen_fd = -1;
  std::thread thread;
  std::atomic<int> waiting = 0;
  std::promise<void> gate;
  std::shared_future<void> release = gate.get_future().share();
  bool released = false;
  std::mutex order_mutex;
  std::vector<std::string> heavy_order; // ids of the heavy requests, as they started
};

int count_of(const std::string &haystack, const std::string &needle) {
  int n = 0;
  for (auto at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + 1))
    ++n;
  return n;
}

const std::string kHello = "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";

} // namespace

TEST_CASE("a request sent in pieces is answered once it is whole, with the client's address") {
  Served s(options(2, 8, 64));
  s.start();
  RawClient c(s.port);
  REQUIRE(c.connected());
  const std::string req = "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\nhello world";
  for (char ch : req) {
    REQUIRE(c.send(std::string(1, ch)));
    std::this_thread::sleep_for(1ms);
  }
  std::string got = c.read(1);
  CHECK(got.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(got.find("\r\n\r\nhello world") != std::string::npos);
  REQUIRE(c.send(kHello));
  CHECK(c.read(2).find("hello 127.0.0.1") != std::string::npos);
}

TEST_CASE("pipelined requests are all answered, in order, and a GET's body is not a request") {
  Served s(options(2, 8, 64));
  s.start();
  RawClient c(s.port);
  REQUIRE(c.connected());
  const std::string smuggled = "GET /big HTTP/1.1\r\nHost: t\r\n\r\n";
  REQUIRE(c.send(kHello + "POST /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc" +
                 "GET /hello HTTP/1.1\r\nContent-Length: " + std::to_string(smuggled.size()) +
                 "\r\n\r\n" + smuggled + kHello));
  std::string got = c.read(4);
  CHECK(count_of(got, "HTTP/1.1 200 OK") == 4);
  auto first = got.find("hello 127.0.0.1"), second = got.find("\r\n\r\nabc");
  CHECK(first < second);
  CHECK(got.find("bbbb") == std::string::npos); // the body of the GET was never served
  CHECK_FALSE(c.closed_within(300ms));          // and the connection stays open
}

TEST_CASE("idle and half-sent connections hold no thread") {
  Served s(options(2, 64, 1024));
  s.start();
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 200; ++i) {
    held.push_back(std::make_unique<RawClient>(s.port));
    REQUIRE(held.back()->connected());
    REQUIRE(held.back()->send(i % 2 ? kHello : "GET /hello HTTP/1.1\r\nHost: t\r\n"));
  }
  for (int i = 1; i < 200; i += 2)
    CHECK(held[std::size_t(i)]->read(1).find("200 OK") != std::string::npos);
  CHECK(eventually([&] { return s.server.stats().connections == 200; }));
  CHECK(s.server.stats().threads == 2);
  // and another client is served at once
  RawClient other(s.port);
  REQUIRE(other.send(kHello));
  CHECK(other.read(1, 2s).find("200 OK") != std::string::npos);
}

TEST_CASE("when every worker is stuck in a handler, another starts and serves the rest") {
  Served s(options(1, 4, 64));
  s.start();
  RawClient stuck(s.port);
  REQUIRE(stuck.send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(eventually([&] { return s.waiting == 1; }));
  RawClient other(s.port);
  REQUIRE(other.send(kHello));
  CHECK(other.read(1, 2s).find("200 OK") != std::string::npos);
  CHECK(s.server.stats().threads == 2);
  s.open_gate();
  CHECK(stuck.read(1).find("waited") != std::string::npos);
}

TEST_CASE(
    "heavy requests past the running ones are parked, run in order, and past the line refused") {
  auto o = options(1, 8, 64);
  o.classify = [](std::string_view method, std::string_view path) {
    return Verdict{.heavy = method == "GET" && path == "/heavy"};
  };
  o.heavy_at_once = 1;
  o.heavy_queue = 2;
  Served s(o);
  s.start();
  auto heavy = [](int id) {
    return "GET /heavy?id=" + std::to_string(id) + " HTTP/1.1\r\nHost: t\r\n\r\n";
  };
  RawClient first(s.port), second(s.port), third(s.port), fourth(s.port);
  REQUIRE(first.send(heavy(1)));
  REQUIRE(eventually([&] { return s.waiting == 1; }));
  REQUIRE(second.send(heavy(2)));
  REQUIRE(eventually([&] { return s.server.stats().heavy_parked == 1; }));
  REQUIRE(third.send(heavy(3)));
  REQUIRE(eventually([&] { return s.server.stats().heavy_parked == 2; }));
  // The line is full: the fourth runs at once, told it may not wait, and is refused.
  REQUIRE(fourth.send(heavy(4)));
  CHECK(fourth.read(1, 3s).rfind("HTTP/1.1 503", 0) == 0);
  // The one worker is held by the running request, the parked ones hold none: a light
  // request gets a new worker rather than waiting behind them.
  RawClient light(s.port);
  REQUIRE(light.send(kHello));
  CHECK(light.read(1, 3s).find("200 OK") != std::string::npos);
  CHECK(s.server.stats().heavy_running == 1);
  s.open_gate();
  CHECK(first.read(1).find("heavy 1") != std::string::npos);
  CHECK(second.read(1).find("heavy 2") != std::string::npos);
  CHECK(third.read(1).find("heavy 3") != std::string::npos);
  std::lock_guard lock(s.order_mutex);
  CHECK(s.heavy_order == std::vector<std::string>{"1", "2", "3"});
  CHECK(s.server.stats().heavy_parked == 0);
}

TEST_CASE("workers that only compute start no others") {
  Served s(options(2, 16, 64));
  s.start();
  // Many clients, each waiting for its answer before the next request: the workers are busy
  // but never stuck, so the pool stays at its size.
  std::atomic<bool> stop = false;
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&] {
      RawClient c(s.port);
      for (int n = 1; !stop; ++n)
        if (c.send(kHello)) c.read(n, 1s);
    });
  std::this_thread::sleep_for(1s);
  stop = true;
  for (auto &t : clients)
    t.join();
  CHECK(s.server.stats().peak_threads <= 3); // one spurious start at most on a loaded machine
}

TEST_CASE("a client that stops sending gets its half request answered 400, then is closed") {
  Served s(options(2, 8, 64), 1);
  s.start();
  SUBCASE("it closes its side") {
    RawClient c(s.port);
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
    c.finish_sending();
    CHECK(c.read(1, 2s).rfind("HTTP/1.1 400", 0) == 0);
    CHECK(c.closed_within(1s));
  }
  SUBCASE("it goes quiet past the read time-out") {
    RawClient c(s.port);
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc"));
    auto started = std::chrono::steady_clock::now();
    CHECK(c.read(1, 4s).rfind("HTTP/1.1 400", 0) == 0);
    CHECK(std::chrono::steady_clock::now() - started >= 900ms);
    CHECK(c.closed_within(1s));
  }
  SUBCASE("a whole request and then the end of its input is still answered") {
    RawClient c(s.port);
    REQUIRE(c.send(kHello));
    c.finish_sending();
    CHECK(c.read(1, 2s).rfind("HTTP/1.1 200", 0) == 0);
    CHECK(c.closed_within(1s));
  }
}

TEST_CASE("an idle keep-alive connection is closed after the keep-alive time-out") {
  Served s(options(2, 8, 64), 1);
  s.start();
  RawClient c(s.port);
  REQUIRE(c.send(kHello));
  REQUIRE(c.read(1).find("200 OK") != std::string::npos);
  CHECK_FALSE(c.closed_within(500ms));
  CHECK(c.closed_within(2s));
  CHECK(eventually([&] { return s.server.stats().connections == 0; }));
}

TEST_CASE("a head past 64 KiB is refused and the connection closed, without waiting") {
  Served s(options(2, 8, 64));
  s.start();
  RawClient c(s.port);
  std::string head = "GET /hello HTTP/1.1\r\n";
  while (head.size() <= 70 * 1024)
    head += "X-Filler: 0123456789abcdef\r\n";
  REQUIRE(c.send(head));
  CHECK(c.read(1, 2s).rfind("HTTP/1.1 431", 0) == 0);
  CHECK(c.closed_within(1s));
}

TEST_CASE("a response larger than the socket buffers is sent whole") {
  Served s(options(2, 8, 64));
  s.start();
  RawClient c(s.port);
  REQUIRE(c.send("GET /big HTTP/1.1\r\nHost: t\r\n\r\n"));
  std::string got = c.read(1, 10s);
  CHECK(count_of(got, "b") >= 2 * 1024 * 1024);
}

TEST_CASE("the connection after the keep-alive maximum is told to close, and is closed") {
  Served s(options(2, 8, 64));
  s.server.set_keep_alive_max_count(3);
  s.start();
  RawClient c(s.port);
  REQUIRE(c.send(kHello + kHello + kHello + kHello));
  std::string got = c.read(4, 2s);
  CHECK(count_of(got, "HTTP/1.1 200") == 3);
  CHECK(count_of(got, "Connection: close") == 1);
  CHECK(c.closed_within(1s));
}

TEST_CASE("past the connection cap the connection idle longest makes room") {
  Served s(options(2, 8, 2));
  s.start();
  RawClient a(s.port), b(s.port);
  REQUIRE(a.send(kHello));
  REQUIRE(a.read(1).find("200 OK") != std::string::npos);
  std::this_thread::sleep_for(20ms);
  REQUIRE(b.send(kHello));
  REQUIRE(b.read(1).find("200 OK") != std::string::npos);
  RawClient third(s.port);
  REQUIRE(third.send(kHello));
  CHECK(third.read(1, 2s).find("200 OK") != std::string::npos);
  CHECK(a.closed_within(1s)); // idle longest
  CHECK_FALSE(b.closed_within(200ms));
  CHECK(s.server.stats().evicted_idle == 1);
}

TEST_CASE("past the connection cap with none idle, a new connection waits until one closes") {
  Served s(options(2, 8, 2));
  s.start();
  RawClient a(s.port), b(s.port);
  REQUIRE(a.send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(b.send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(eventually([&] { return s.waiting == 2; }));
  RawClient third(s.port); // the kernel completes the handshake; it waits in the backlog
  REQUIRE(third.send(kHello));
  CHECK(third.read(1, 500ms).empty());
  s.open_gate(); // a and b are answered, then idle: room
  CHECK(third.read(1, 3s).find("200 OK") != std::string::npos);
}

TEST_CASE("one address holds at most max_per_address connections; others are served at once") {
  auto o = options(2, 8, 1024);
  o.max_per_address = 3;
  o.unlimited = [](std::string_view ip) { return ip == "127.0.0.9"; };
  Served s(o);
  s.start();
  std::vector<std::unique_ptr<RawClient>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<RawClient>(s.port, RawClient::Options{.from = "127.0.0.1"}));
    REQUIRE(held.back()->send("GET /hello HTTP/1.1\r\n")); // half a head: busy, not idle
  }
  REQUIRE(eventually([&] { return s.server.stats().connections == 3; }));
  // The fourth from the same address is refused before a byte of it is read.
  RawClient fourth(s.port, {.from = "127.0.0.1"});
  CHECK(fourth.read(1, 2s).rfind("HTTP/1.1 503", 0) == 0);
  CHECK(fourth.closed_within(1s));
  CHECK(s.server.stats().refused_per_address == 1);
  // Another address is answered at once, and an unlimited one (a trusted proxy) is not capped.
  RawClient other(s.port, {.from = "127.0.0.2"});
  REQUIRE(other.send(kHello));
  CHECK(other.read(1, 2s).find("hello 127.0.0.2") != std::string::npos);
  std::vector<std::unique_ptr<RawClient>> proxy;
  for (int i = 0; i < 5; ++i) {
    proxy.push_back(std::make_unique<RawClient>(s.port, RawClient::Options{.from = "127.0.0.9"}));
    REQUIRE(proxy.back()->send(kHello));
    CHECK(proxy.back()->read(1, 2s).find("200 OK") != std::string::npos);
  }
  // Once one of the three closes, the address may open another.
  held.pop_back();
  REQUIRE(eventually([&] { return s.server.stats().connections == 8; }));
  RawClient again(s.port, {.from = "127.0.0.1"});
  REQUIRE(again.send(kHello));
  CHECK(again.read(1, 2s).find("200 OK") != std::string::npos);
}

TEST_CASE("a chunked body is decoded, and refused with 413 as soon as it passes the limit") {
  Served s(options(2, 8, 64));
  s.start();
  SUBCASE("within the limit: the handler sees the decoded body") {
    RawClient c(s.port);
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                   "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: y\r\n\r\n" +
                   kHello));
    std::string got = c.read(2);
    CHECK(got.find("\r\n\r\nhello world") != std::string::npos);
    CHECK(got.find("hello 127.0.0.1") != std::string::npos); // the next request, framed right
  }
  SUBCASE("past the limit: 413 while it is still being sent, and the connection closed") {
    RawClient c(s.port);
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"));
    const std::string chunk = "1000\r\n" + std::string(0x1000, 'x') + "\r\n";
    std::size_t sent = 0;
    std::string got;
    for (int i = 0; i < 2560 && got.empty(); ++i) { // up to 10 MiB
      if (!c.send(chunk)) break;
      sent += chunk.size();
      got = c.read(1, 1ms);
    }
    got = c.read(1, 2s);
    CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
    CHECK(sent < 64 * 1024 * 1024); // refused long before the client was done (socket buffers
                                    // and the lingering close take some)
    CHECK(c.closed_within(2s));
  }
  SUBCASE("a Content-Length past the limit: 413 at once, the body never waited for") {
    RawClient c(s.port);
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 300000000\r\n"
                   "Expect: 100-continue\r\n\r\n"));
    std::string got = c.read(1, 2s);
    CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
    CHECK(got.find("100 Continue") == std::string::npos);
    CHECK(c.closed_within(1s));
  }
}

TEST_CASE("a client that asks for 100 Continue gets it before sending the body") {
  Served s(options(2, 8, 64));
  s.start();
  RawClient c(s.port);
  REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n"
                 "Expect: 100-continue\r\n\r\n"));
  CHECK(c.read_head(2s).rfind("HTTP/1.1 100 Continue\r\n\r\n", 0) == 0);
  REQUIRE(c.send("hello"));
  std::string got = c.read(1, 2s); // the 100 is not a response of its own
  CHECK(count_of(got, "100 Continue") == 1);
  CHECK(got.find("\r\n\r\nhello") != std::string::npos);
}

TEST_CASE("framing the loop refuses, and classify's verdicts, reach the refusal handler") {
  auto o = options(2, 8, 64);
  o.classify = [](std::string_view method, std::string_view path) {
    if (path == "/hello") return Verdict{.tag = 7};
    if (path == "/echo" && method == "POST") return Verdict{.tag = 8};
    return Verdict{.refuse = path == "/%" ? 404 : 405};
  };
  std::vector<std::string> seen; // before the server, so it outlives the server's threads
  std::mutex seen_mutex;
  Served s(o);
  s.server.set_refusal_handler([&](const httplib::Request &req, httplib::Response &res) {
    std::lock_guard lock(seen_mutex);
    seen.push_back(std::to_string(ConnectionLoop::refusal_status(req)) + " " + req.path);
    res.set_content("refused", "text/plain");
  });
  s.server.Get("/tagged", [](const httplib::Request &req, httplib::Response &res) {
    res.set_content(std::to_string(ConnectionLoop::tag_of(req)), "text/plain");
  });
  s.start();
  SUBCASE("a Content-Length that is not digits: 400, closed, the rest never a request") {
    for (const char *length : {"0x2f", "+2", "-1", "2, 3", " "}) {
      RawClient c(s.port);
      REQUIRE(c.send(std::string("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: ") + length +
                     "\r\n\r\n" + kHello));
      std::string got = c.read(2, 2s);
      CHECK_MESSAGE(got.rfind("HTTP/1.1 400", 0) == 0, length);
      CHECK(count_of(got, "HTTP/1.1") == 1);
      CHECK(c.closed_within(1s));
    }
  }
  SUBCASE("a field name with a space before its colon, and an unknown transfer coding") {
    for (const char *field : {"Transfer-Encoding : chunked", "Transfer-Encoding: gzip"}) {
      RawClient c(s.port);
      REQUIRE(c.send(std::string("POST /echo HTTP/1.1\r\nHost: t\r\n") + field + "\r\n\r\n"));
      CHECK_MESSAGE(c.read(1, 2s).rfind("HTTP/1.1 400", 0) == 0, field);
      CHECK(c.closed_within(1s));
    }
  }
  SUBCASE("classify's 404 and 405, on a connection that stays open") {
    RawClient c(s.port);
    REQUIRE(c.send("GET /%25 HTTP/1.1\r\nHost: t\r\n\r\nDELETE /echo HTTP/1.1\r\n\r\n" + kHello));
    std::string got = c.read(3, 2s);
    CHECK(got.rfind("HTTP/1.1 404", 0) == 0);
    CHECK(got.find("HTTP/1.1 405") != std::string::npos);
    CHECK(got.find("hello 127.0.0.1") != std::string::npos);
    std::lock_guard lock(seen_mutex);
    CHECK(seen == std::vector<std::string>{"404 /%", "405 /echo"});
  }
  SUBCASE("a coded body is refused: cpp-httplib would inflate it past every limit") {
    RawClient c(s.port);
    REQUIRE(c.send("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Encoding: gzip\r\n"
                   "Content-Length: 3\r\n\r\nabc" +
                   kHello));
    std::string got = c.read(2, 2s);
    CHECK(got.rfind("HTTP/1.1 415", 0) == 0);
    CHECK(got.find("hello 127.0.0.1") != std::string::npos);
  }
}

TEST_CASE("classify runs once per request, on the path as cpp-httplib decodes it") {
  auto o = options(2, 8, 64);
  auto calls = std::make_shared<std::vector<std::string>>();
  auto calls_mutex = std::make_shared<std::mutex>();
  o.classify = [calls, calls_mutex](std::string_view method, std::string_view path) {
    std::lock_guard lock(*calls_mutex);
    calls->push_back(std::string(method) + " " + std::string(path));
    return Verdict{.tag = 42, .heavy = path == "/heavy"};
  };
  Served s(o);
  s.server.Get("/tagged", [](const httplib::Request &req, httplib::Response &res) {
    res.set_content("tag " + std::to_string(ConnectionLoop::tag_of(req)), "text/plain");
  });
  s.start();
  RawClient c(s.port);
  REQUIRE(c.send("GET /%74agged?x=1 HTTP/1.1\r\nHost: t\r\n\r\n"));
  CHECK(c.read(1, 2s).find("tag 42") != std::string::npos);
  std::lock_guard lock(*calls_mutex);
  CHECK(*calls == std::vector<std::string>{"GET /tagged"});
}

TEST_CASE("an Authorization line longer than cpp-httplib reads is left out, and said so") {
  Served s(options(2, 8, 64));
  s.server.Get("/auth", [](const httplib::Request &req, httplib::Response &res) {
    res.set_content(
        std::string(ConnectionLoop::field_dropped(req, "authorization") ? "dropped" : "kept") +
            (req.has_header("Authorization") ? " present" : " absent"),
        "text/plain");
  });
  s.start();
  RawClient c(s.port);
  REQUIRE(c.send("GET /auth HTTP/1.1\r\nAuthorization: Bearer " + std::string(9000, 'a') +
                 "\r\n\r\nGET /auth HTTP/1.1\r\nX-Other: " + std::string(9000, 'a') + "\r\n\r\n"));
  std::string got = c.read(2, 2s);
  CHECK(got.find("dropped absent") != std::string::npos);
  CHECK(got.find("HTTP/1.1 431") != std::string::npos); // any other field that long
}

TEST_CASE("draining lets a busy request finish and closes the idle connections") {
  auto s = std::make_unique<Served>(options(2, 8, 64));
  s->start();
  RawClient idle(s->port), busy(s->port);
  REQUIRE(idle.send(kHello));
  REQUIRE(idle.read(1).find("200 OK") != std::string::npos);
  REQUIRE(busy.send("GET /wait HTTP/1.1\r\nHost: t\r\n\r\n"));
  REQUIRE(eventually([&] { return s->waiting == 1; }));
  std::thread stopping([&] {
    s->server.stop();
    s->thread.join();
    s->server.drain();
  });
  CHECK(idle.closed_within(2s));
  std::this_thread::sleep_for(100ms);
  s->open_gate();
  stopping.join();
  CHECK(busy.read(1).find("waited") != std::string::npos);
  CHECK(busy.closed_within(1s));
}
