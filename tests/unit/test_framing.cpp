// The strict parser (parse_request_head, HeadParser, ChunkedDecoder): each rule of framing.h.
#include "auth/http/framing.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

// ---- strict framing: parse_request_head, HeadParser, ChunkedDecoder -------------------------

using latch::http::ChunkedDecoder;
using latch::http::FramingLimits;
using latch::http::HeadParser;
using latch::http::HeadResult;
using latch::http::parse_request_head;
using latch::http::RequestHead;
using State = HeadResult::State;
using Body = RequestHead::Body;

namespace {

const FramingLimits kStrict{1024, 100};

HeadResult strict(std::string_view input) {
  return parse_request_head(input, kStrict);
}

// The same head given one more byte per call: each answer equals a fresh parse of what has
// arrived, and the last equals parsing it all at once.
HeadResult byte_by_byte(std::string_view input) {
  HeadParser parser(kStrict);
  HeadResult r;
  for (std::size_t n = 1; n <= input.size(); ++n) {
    r = parser.parse(input.substr(0, n));
    const HeadResult fresh = strict(input.substr(0, n));
    REQUIRE(r.state == fresh.state);
    REQUIRE(r.status == fresh.status);
    REQUIRE(r.head.size == fresh.head.size);
    if (r.state != State::incomplete) break;
  }
  return r;
}

// Decodes a chunked body fed in pieces of `step` bytes.
struct Decoded {
  ChunkedDecoder::State state = ChunkedDecoder::State::more;
  std::string body;
  std::size_t consumed = 0; // of the whole input
  int status = 0;
};

Decoded decode(std::string_view input, std::size_t step, std::size_t max_body = 100,
               std::size_t max_trailers = 1024) {
  ChunkedDecoder decoder(max_body, max_trailers);
  Decoded d;
  while (d.consumed < input.size() && d.state == ChunkedDecoder::State::more) {
    std::size_t used = 0;
    const std::string_view piece = input.substr(d.consumed, step);
    d.state = decoder.feed(piece, d.body, used);
    REQUIRE(used <= piece.size());
    if (d.state == ChunkedDecoder::State::more) REQUIRE(used == piece.size());
    d.consumed += used;
  }
  d.status = decoder.status();
  return d;
}

} // namespace

TEST_CASE("strict: a request head is complete at its empty line, fields kept in order") {
  const std::string head = "GET /x?a=b HTTP/1.1\r\nHost: x\r\nX-A:  one \t\r\nx-a:two\r\n\r\n";
  const std::string input = head + "GET /next"; // views into it
  HeadResult r = strict(input);
  REQUIRE(r.state == State::complete);
  CHECK(r.head.method == "GET");
  CHECK(r.head.target == "/x?a=b");
  CHECK(r.head.version == "HTTP/1.1");
  CHECK(r.head.size == head.size());
  CHECK(r.head.body == Body::none);
  CHECK(r.head.keep_alive);
  REQUIRE(r.head.fields.size() == 3);
  CHECK(r.head.fields[1].name == "X-A");
  CHECK(r.head.fields[1].value == "one"); // without its leading and trailing OWS
  CHECK(r.head.fields[2].value == "two");
  for (std::size_t cut = 0; cut < head.size(); ++cut) {
    INFO("cut at ", cut);
    CHECK(strict(head.substr(0, cut)).state == State::incomplete);
  }
}

TEST_CASE("strict: the issue's examples are refused as soon as their line has arrived") {
  const std::vector<std::pair<std::string, int>> examples = {
      {"POST /x HTTP/1.1\r\nContent-Length: 0x2f\r\n", 400},
      {"POST /x HTTP/1.1\r\nContent-Length: +2\r\n", 400},
      {"POST /x HTTP/1.1\r\nTransfer-Encoding : chunked\r\n", 400},
      {"POST /x HTTP/1.1\r\nContent-Length: -1\r\n", 400},
      // An unknown coding can only be judged at the end of the head: others may follow.
      {"POST /x HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      {"POST /x HTTP/1.1\r\nTransfer-Encoding: identity\r\n\r\n", 400},
  };
  for (const auto &[input, status] : examples) {
    INFO(input);
    HeadResult r = strict(input);
    CHECK(r.state == State::refused);
    CHECK(r.status == status);
    CHECK(r.head.method == "POST"); // for the error's shape
    CHECK(r.head.target == "/x");
    CHECK(byte_by_byte(input).state == State::refused);
  }
}

TEST_CASE("strict: each refusal rule, with its status") {
  const std::vector<std::pair<std::string, int>> refusals = {
      // 2. Methods.
      {"get / HTTP/1.1\r\n\r\n", 400},
      {"FOO / HTTP/1.1\r\n\r\n", 400},
      {"CONNECT h:443 HTTP/1.1\r\n\r\n", 501},
      {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 400},
      {"DESCRIBE / HTTP/1.1\r\n\r\n", 400},
      {"FLUSH / HTTP/1.1\r\n\r\n", 400}, // RTSP's last; found by fuzz_framing
      {"FLUSH / RTSP/1.0\r\n\r\n", 505},
      // 3. Separators.
      {"GET\t/ HTTP/1.1\r\n\r\n", 400},
      {"GET / HTTP/1.1 \r\n\r\n", 400},
      // 4. Targets.
      {"GET x HTTP/1.1\r\n\r\n", 400},
      {"GET /\xe9 HTTP/1.1\r\n\r\n", 400},
      {"GET /a\x7f HTTP/1.1\r\n\r\n", 400},
      {"GET http://u@@h/ HTTP/1.1\r\n\r\n", 400},
      {"GET http:/x HTTP/1.1\r\n\r\n", 400},
      // 5. Versions.
      {"GET / HTTP/2.0\r\n\r\n", 505},
      {"GET / HTTP/0.9\r\n\r\n", 505},
      {"GET /\r\n\r\n", 505},
      {"DESCRIBE / RTSP/1.0\r\n\r\n", 505},
      {"GET / HTTP/1.2\r\n\r\n", 505},
      {"GET / HTTP/1.10\r\n\r\n", 400},
      {"GET / http/1.1\r\n\r\n", 400},
      // 6. Line ends.
      {"GET / HTTP/1.1\nX: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: y\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: y\r\n\n", 400},
      {"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\r\n\r\n", 400},
      // 7. Names.
      {"GET / HTTP/1.1\r\nX : y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX\xe9: y\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX\r\n\r\n", 400},
      // 8. Values.
      {std::string("GET / HTTP/1.1\r\nX: a\0b\r\n\r\n", 26), 400},
      {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 400},
      // 9. Leading whitespace.
      {"GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\n X: a\r\n\r\n", 400},
      // 10. Content-Length.
      {"POST / HTTP/1.1\r\nContent-Length: 3\t\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 3, 3\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding:\r\n\r\n", 400},
      // 11. Transfer-Encoding.
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\t\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400},
      // 12. Limits.
      {"POST / HTTP/1.1\r\nContent-Length: 101\r\n\r\n", 413},
      {"POST / HTTP/1.1\r\nContent-Length: 18446744073709551615\r\n\r\n", 413},
      {"GET / HTTP/1.1\r\nX: " + std::string(kStrict.max_head, 'y') + "\r\n\r\n", 431},
  };
  for (const auto &[input, status] : refusals) {
    INFO(input);
    HeadResult r = strict(input);
    CHECK(r.state == State::refused);
    CHECK(r.status == status);
    CHECK(std::string_view(r.reason) != "");
    CHECK(byte_by_byte(input).status == status);
  }
}

TEST_CASE("strict: what llhttp accepts is accepted, and framed as it frames it") {
  struct Accepted {
    std::string input;
    Body body;
    std::uint64_t length;
    bool keep_alive;
  };
  const std::vector<Accepted> accepted = {
      {"\r\n\r\nGET / HTTP/1.1\r\n\r\n", Body::none, 0, true}, // 1. empty lines first
      {"\r\rGET / HTTP/1.1\r\n\r\n", Body::none, 0, true},
      {"PROPFIND / HTTP/1.1\r\n\r\n", Body::none, 0, true}, // 2. llhttp's methods
      {"QUERY / HTTP/1.1\r\nContent-Length: 2\r\n\r\n", Body::length, 2, true},
      {"M-SEARCH * HTTP/1.1\r\n\r\n", Body::none, 0, true},
      {"SOURCE / HTTP/1.1\r\n\r\n", Body::none, 0, true},
      {"GET  /x  HTTP/1.1\r\n\r\n", Body::none, 0, true},                     // 3. more spaces
      {"GET http://u@h@x:1/p?q?r#f#g HTTP/1.1\r\n\r\n", Body::none, 0, true}, // 4.
      {"GET /{|}^`\"<>\\ HTTP/1.1\r\n\r\n", Body::none, 0, true},
      {"GET / HTTP/1.0\r\n\r\n", Body::none, 0, false}, // 5. HTTP/1.0
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", Body::none, 0, true},
      {"GET / HTTP/1.1\r\nX: \t\xe9\xff a\tb \r\nY:\r\n\r\n", Body::none, 0, true},  // 8.
      {"POST / HTTP/1.1\r\nContent-Length:\t 007  \r\n\r\n", Body::length, 7, true}, // 10.
      {"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", Body::none, 0, true},
      {"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", Body::length, 100, true},
      {"POST / HTTP/1.1\r\nTransfer-Encoding:\r\nContent-Length: 3\r\n\r\n", Body::length, 3, true},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", Body::chunked, 0, true},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: ,CHUNKED  \r\n\r\n", Body::chunked, 0, true},
      {"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
       Body::chunked, 0, true},
      // 13. Connection.
      {"GET / HTTP/1.1\r\nConnection: te, CLOSE\r\n\r\n", Body::none, 0, false},
      {"GET / HTTP/1.1\r\nProxy-Connection: close\r\n\r\n", Body::none, 0, false},
      {"GET / HTTP/1.1\r\nConnection: close\t\r\n\r\n", Body::none, 0, true}, // llhttp 9.3.1
      {"GET / HTTP/1.1\r\nConnection: closed\r\n\r\n", Body::none, 0, true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", Body::none, 0, true},
      {"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: h2c\r\n\r\n", Body::none, 0, false},
      {"GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", Body::none, 0, true},
      // An upgrade without a body ends at its head, whatever its framing headers say.
      {"POST / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: x\r\nTransfer-Encoding: gzip\r\n\r\n",
       Body::none, 0, false},
      {"POST / HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
       Body::chunked, 0, false}, // Latch: RFC 9112 6.1
  };
  for (const Accepted &a : accepted) {
    INFO(a.input);
    const std::string input = a.input + "GET /next";
    HeadResult r = strict(input);
    REQUIRE(r.state == State::complete);
    CHECK(r.head.size == a.input.size());
    CHECK(r.head.body == a.body);
    CHECK(r.head.content_length == a.length);
    CHECK(r.head.keep_alive == a.keep_alive);
    CHECK(byte_by_byte(a.input).state == State::complete);
  }
  CHECK(strict("POST / HTTP/1.1\r\nExpect: 100-Continue\r\n\r\n").head.expect_continue);
  CHECK_FALSE(strict("POST / HTTP/1.1\r\nExpect: 100-continued\r\n\r\n").head.expect_continue);
}

TEST_CASE("strict: a head is refused at its first bad byte, without waiting for its end") {
  CHECK(strict("GX").state == State::refused);
  CHECK(strict("G").state == State::incomplete);
  CHECK(strict("GET /x HTTP/1.1\r").state == State::incomplete);
  CHECK(strict("GET /x HTTP/1.1\rX").state == State::refused);
  CHECK(strict("GET /x HTTP/1.1\r\nX-A: a\x01").state == State::refused);
  CHECK(strict("GET /x HTTP/1.1\r\nX-A : ").state == State::refused);
  // A slow client's bad head costs no more than its bytes: found at the same byte.
  HeadParser parser(kStrict);
  const std::string bad = "GET /x HTTP/1.1\r\nX-A: a\r\n b";
  for (std::size_t n = 1; n <= bad.size(); ++n) {
    const HeadResult r = parser.parse(std::string_view(bad).substr(0, n));
    CHECK(r.state == (n < bad.size() - 1 ? State::incomplete : State::refused));
  }
}

TEST_CASE("strict: the head limit counts every byte of the head") {
  const std::string start = "GET / HTTP/1.1\r\nX: ";
  std::string fits = start + std::string(kStrict.max_head - start.size() - 4, 'y') + "\r\n\r\n";
  REQUIRE(fits.size() == kStrict.max_head);
  CHECK(strict(fits).state == State::complete);
  // One more byte, and it is refused as soon as that byte arrives, without its end.
  const std::string over = "\r\n" + fits.substr(0, fits.size() - 1);
  CHECK(strict(over).state == State::refused);
  CHECK(strict(over).status == 431);
  CHECK(strict(over.substr(0, kStrict.max_head)).state == State::incomplete);
}

TEST_CASE("chunked: the body is decoded and the message ends after its trailers") {
  const std::string body = "3\r\nabc\r\n00A;x=\"y\\\"z\";e\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\n";
  const std::string next = "GET /next HTTP/1.1\r\n\r\n";
  for (std::size_t step : {std::size_t(1), std::size_t(2), std::size_t(7), body.size() + 99}) {
    INFO("step ", step);
    Decoded d = decode(body + next, step);
    CHECK(d.state == ChunkedDecoder::State::done);
    CHECK(d.body == "abc0123456789");
    CHECK(d.consumed == body.size()); // the rest is the next request's
  }
  CHECK(decode(body.substr(0, body.size() - 1), 1).state == ChunkedDecoder::State::more);
}

TEST_CASE("chunked: each refusal rule, fed at once and byte by byte") {
  const std::vector<std::pair<std::string, int>> refusals = {
      {"0x3\r\nabc\r\n0\r\n\r\n", 400}, // 14. no 0x
      {"3 \r\nabc\r\n0\r\n\r\n", 400},  //     no whitespace
      {" 3\r\nabc\r\n0\r\n\r\n", 400},
      {"3\nabc\r\n0\r\n\r\n", 400},    //     CRLF
      {"\r\nabc\r\n0\r\n\r\n", 400},   //     a size
      {"3;\r\nabc\r\n0\r\n\r\n", 400}, // 15. an empty extension
      {"3;a =b\r\nabc\r\n0\r\n\r\n", 400},
      {"3;a=\"b\" \r\nabc\r\n0\r\n\r\n", 400},
      {"3;a=\"\\\x01\"\r\nabc\r\n0\r\n\r\n", 400},
      {"3;a=\"\x7f\"\r\nabc\r\n0\r\n\r\n", 400},
      {"3\r\nabc\n0\r\n\r\n", 400}, // 16. CRLF after the data
      {"3\r\nabcd\r\n0\r\n\r\n", 400},
      {"0\r\nContent-Length: 1\r\n\r\n", 400}, // 17. trailers
      {"0\r\nTransfer-Encoding: x\r\n\r\n", 400},
      {"0\r\nX : 1\r\n\r\n", 400},
      {"0\r\nX: a\r\n b\r\n\r\n", 400},
      {"0\r\n\n", 400},
      {"0\r\n" + std::string(2000, 'X') + ": y\r\n\r\n", 431},
      {"65\r\n", 413}, // 18. over max_body (100)
      {"ffffffffffffffffff\r\n", 413},
      {"40\r\n" + std::string(64, 'a') + "\r\n25\r\n", 413},
      {"1;" + std::string(ChunkedDecoder::max_extensions + 1, 'n') + "\r\na\r\n0\r\n\r\n", 413},
  };
  for (const auto &[input, status] : refusals) {
    INFO(input.substr(0, 60));
    for (std::size_t step : {std::size_t(1), input.size()}) {
      Decoded d = decode(input, step);
      CHECK(d.state == ChunkedDecoder::State::refused);
      CHECK(d.status == status);
      CHECK(d.body.size() <= 100);
    }
  }
  const std::vector<std::string> accepted = {
      "0003\r\nabc\r\n000\r\n\r\n",
      "3;=x;;a;b=\"\"\r\nabc\r\n0\r\n\r\n",
      "3;a=b\"c\"\r\nabc\r\n0;x\r\n\r\n",
      "0\r\nTransfer-Encoding:\r\nX:\r\n\r\n",
      "64\r\n" + std::string(100, 'a') + "\r\n0\r\n\r\n",
      "1;" + std::string(ChunkedDecoder::max_extensions, 'n') + "\r\na\r\n0\r\n\r\n"};
  for (const std::string &input : accepted) {
    INFO(input.substr(0, 60));
    CHECK(decode(input, 1).state == ChunkedDecoder::State::done);
    CHECK(decode(input, input.size()).state == ChunkedDecoder::State::done);
  }
}

TEST_CASE("chunked: a 10 MB body is refused long before its end, holding at most max_body") {
  const std::size_t max_body = 64 * 1024;
  std::string piece; // one 4 KiB chunk
  piece = "1000\r\n" + std::string(0x1000, 'a') + "\r\n";
  ChunkedDecoder decoder(max_body, 1024);
  std::string body;
  std::size_t fed = 0;
  ChunkedDecoder::State state = ChunkedDecoder::State::more;
  while (state == ChunkedDecoder::State::more && fed < 10 * 1024 * 1024) {
    // In reads that cut chunks anywhere.
    for (std::size_t at = 0; at < piece.size() && state == ChunkedDecoder::State::more;) {
      const std::string_view read = std::string_view(piece).substr(at, 1500);
      std::size_t used = 0;
      state = decoder.feed(read, body, used);
      at += used;
      fed += used;
      CHECK(body.size() <= max_body);
    }
  }
  CHECK(state == ChunkedDecoder::State::refused);
  CHECK(decoder.status() == 413);
  CHECK(fed < max_body + piece.size()); // at the first chunk past the limit, before its data
  CHECK(body.size() == max_body);
}

TEST_CASE("chunked: a Connection: close trailer ends an HTTP/1.1 connection, as llhttp does") {
  HeadResult h11 = strict("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  HeadResult h10 =
      strict("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n");
  REQUIRE(h11.state == State::complete);
  REQUIRE(h10.state == State::complete);
  std::string body;
  std::size_t used = 0;
  ChunkedDecoder closing(100, 1024);
  REQUIRE(closing.feed("0\r\nConnection: x, close\r\n\r\n", body, used) ==
          ChunkedDecoder::State::done);
  CHECK_FALSE(closing.keep_alive(h11.head));
  ChunkedDecoder plain(100, 1024);
  REQUIRE(plain.feed("0\r\nConnection: closed\r\n\r\n", body, used) == ChunkedDecoder::State::done);
  CHECK(plain.keep_alive(h11.head));
  CHECK_FALSE(plain.keep_alive(h10.head)); // HTTP/1.0 with Transfer-Encoding never stays open
}
