// frame_request: when a connection's input holds one whole request, and how long it is.
#include "auth/http/framing.h"

#include <doctest/doctest.h>

#include <string>

using latch::http::Frame;
using latch::http::frame_request;
using latch::http::FrameLimits;
using Kind = Frame::Kind;

namespace {

const FrameLimits kLimits{1024, 100};

const std::string kGet = "GET /auth/getuser HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer t\r\n\r\n";

std::string post(const std::string &body, const std::string &headers = "") {
  return "POST /auth/token HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n" + headers + "\r\n" + body;
}

} // namespace

TEST_CASE("a request without a body ends at the blank line after its headers") {
  Frame f = frame_request(kGet, kLimits);
  CHECK(f.kind == Kind::exact);
  CHECK(f.length == kGet.size());
  // Whatever follows is the next request's, not this one's.
  f = frame_request(kGet + "GET /healthz HTTP/1.1\r\n", kLimits);
  CHECK(f.kind == Kind::exact);
  CHECK(f.length == kGet.size());
}

TEST_CASE("a head is incomplete until its blank line has arrived, at every cut") {
  for (std::size_t cut = 0; cut < kGet.size(); ++cut) {
    INFO("cut at ", cut);
    CHECK(frame_request(kGet.substr(0, cut), kLimits).kind == Kind::incomplete);
  }
}

TEST_CASE("a Content-Length body is part of the request, for any method") {
  const std::string body = R"({"username":"a","password":"b"})";
  const std::string whole = post(body);
  Frame f = frame_request(whole, kLimits);
  CHECK(f.kind == Kind::exact);
  CHECK(f.length == whole.size());
  CHECK(frame_request(whole.substr(0, whole.size() - 1), kLimits).kind == Kind::incomplete);
  // A GET's declared body is spent with it, never read as a request of its own.
  const std::string get = "GET /x HTTP/1.1\r\ncontent-LENGTH: 5\r\n\r\nGET /";
  f = frame_request(get + "more", kLimits);
  CHECK(f.kind == Kind::exact);
  CHECK(f.length == get.size());
}

TEST_CASE("header names are matched without regard to case, values with spaces around") {
  const std::string r = "POST /a HTTP/1.1\r\ncOnTeNt-LeNgTh: \t 3 \t\r\n\r\nabc";
  Frame f = frame_request(r, kLimits);
  CHECK(f.kind == Kind::exact);
  CHECK(f.length == r.size());
}

TEST_CASE("lines cpp-httplib skips do not frame the request") {
  // A header line ending in a bare LF is skipped by cpp-httplib 0.11, so its length is not the
  // request's; the head still ends at the CRLF line after it.
  const std::string r = "POST /a HTTP/1.1\r\nContent-Length: 9\n\r\nabc";
  Frame f = frame_request(r, kLimits);
  CHECK(f.kind == Kind::exact);
  CHECK(f.length == r.size() - 3);
}

TEST_CASE("framing a parser would read differently starts at once, for it to refuse") {
  for (const char *length : {"-1", "+3", "3x", "", "99999999999999999999", "1, 1"}) {
    INFO("Content-Length: ", length);
    const std::string head =
        std::string("POST /a HTTP/1.1\r\nContent-Length: ") + length + "\r\n\r\n";
    Frame f = frame_request(head + "abc", kLimits);
    CHECK(f.kind == Kind::open);
    CHECK(f.length == head.size());
  }
  const std::string two = "POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n";
  CHECK(frame_request(two + "abcd", kLimits).kind == Kind::open);
  const std::string same = "POST /a HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n";
  CHECK(frame_request(same + "abc", kLimits).kind == Kind::exact);
  const std::string both =
      "POST /a HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
  CHECK(frame_request(both, kLimits).kind == Kind::open);
}

TEST_CASE("a body past the limit starts at once, for the parser to answer 413") {
  const std::string head = "POST /a HTTP/1.1\r\nContent-Length: 101\r\n\r\n";
  Frame f = frame_request(head, kLimits);
  CHECK(f.kind == Kind::open);
  CHECK(f.length == head.size());
  CHECK(frame_request("POST /a HTTP/1.1\r\nContent-Length: 100\r\n\r\n", kLimits).kind ==
        Kind::incomplete);
}

TEST_CASE("a chunked body waits for its last chunk, then the parser reads the framing") {
  const std::string head = "POST /a HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
  CHECK(frame_request(head, kLimits).kind == Kind::incomplete);
  CHECK(frame_request(head + "3\r\nabc\r\n", kLimits).kind == Kind::incomplete);
  // "10\r\n\r\n" ends with the same bytes as a last chunk but is not one.
  CHECK(frame_request(head + "10\r\n\r\n", kLimits).kind == Kind::incomplete);
  Frame f = frame_request(head + "3\r\nabc\r\n0\r\n\r\n", kLimits);
  CHECK(f.kind == Kind::open);
  CHECK(frame_request(head + "0\r\n\r\n", kLimits).kind == Kind::open);
  // One that never ends starts once it is longer than any allowed body, to be refused.
  CHECK(frame_request(head + std::string(kLimits.max_body + kLimits.max_head + 1, 'a'), kLimits)
            .kind == Kind::open);
  // Other transfer codings are not ours to frame.
  CHECK(frame_request("POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", kLimits).kind ==
        Kind::open);
}

TEST_CASE("Expect: 100-continue starts before the body, so the client is told to send it") {
  const std::string head = "POST /a HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n";
  CHECK(frame_request(head, kLimits).kind == Kind::open);
  Frame f = frame_request(head + "abc", kLimits);
  CHECK(f.kind == Kind::exact); // the body came anyway
  CHECK(f.length == head.size() + 3);
}

TEST_CASE("a head past the limit is truncated there, without waiting for more") {
  std::string head = "GET / HTTP/1.1\r\n";
  while (head.size() <= kLimits.max_head)
    head += "X-Filler: 0123456789\r\n";
  Frame f = frame_request(head, kLimits);
  CHECK(f.kind == Kind::truncated);
  CHECK(f.length == head.size());
  // A request line alone past the limit, too.
  CHECK(frame_request("GET /" + std::string(kLimits.max_head, 'a'), kLimits).kind ==
        Kind::truncated);
  // Up to the limit it is only incomplete.
  CHECK(frame_request(std::string(kLimits.max_head, 'a'), kLimits).kind == Kind::incomplete);
}
