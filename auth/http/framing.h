// Strict HTTP/1.1 request framing: where a request ends, and whether it may be read at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace latch::http {

// What the connection loop (connection_loop.h) decides before cpp-httplib parses anything (RFC
// 9112).
// Every decision equals that of Node 20's llhttp 9.3.1 in strict mode (tests/framing proves it
// on generated requests), except the three marked "Latch:". Standard library only.
// Request line
//  1. CR and LF bytes before the request line are skipped (llhttp skips any number of them).
//  2. The method is one llhttp knows, exactly (case-sensitive): 400 otherwise. CONNECT is 501
//     (Latch tunnels nothing); PRI is 400 (an HTTP/2 preface).
//  3. Method, 1*SP, target, 1*SP, version, CRLF. A tab is no separator: 400.
//  4. The target is origin-form ("/", then llhttp's URL bytes: visible ASCII except '#' and
//     '?', which start the query and fragment), "*", or absolute-form (ALPHA scheme "://"
//     authority [path]); no "@@" in the authority: 400.
//  5. Latch: HTTP/1.0 or HTTP/1.1 only: 505 for the others, including HTTP/2.0, HTTP/0.9 (a
//     target with no version) and RTSP/ICE, which llhttp serves; 400 for a malformed version.
// Field lines (the head's and the trailers')
//  6. Every line ends with CRLF: a bare LF, or a CR without LF, is 400.
//  7. name = 1*tchar, then ':' at once: whitespace before the colon or an empty name is 400.
//  8. A value holds HTAB, SP, VCHAR and obs-text only (NUL, other CTLs, DEL: 400).
//  9. A line that starts with SP or HTAB (obs-fold, or a space after the request line) is 400.
// Body framing
// 10. Content-Length = 1*DIGIT, then SP only (no HTAB), below 2^64. Empty, given twice (even
//     with one value) or alongside a non-empty Transfer-Encoding: 400.
// 11. Transfer-Encoding: the last coding is "chunked" (any case, SP after it but not HTAB) or
//     400. Codings before it ("gzip, chunked") are framed as chunked: the content is the
//     application's business. A Transfer-Encoding after one ending in chunked: 400. An empty
//     one is ignored, but still 400 after a Content-Length.
// 12. Content-Length over max_body: 413. A head longer than max_head (leading empty lines
//     included): 431.
// Connection
// 13. keep_alive: HTTP/1.1 unless a Connection (or Proxy-Connection) token is "close";
//     HTTP/1.0 only with a "keep-alive" token. A token followed by HTAB is no token (llhttp
//     9.3.1; 9.4.2 changes this). False after an upgrade (Connection: upgrade and an Upgrade
//     header): llhttp hands the rest of the connection to another protocol, Latch has none.
//     Latch: false for HTTP/1.0 with Transfer-Encoding (RFC 9112 6.1 MUST).
// Chunked body
// 14. chunk-size = 1*HEXDIG below 2^64: no "0x", no whitespace; then extensions; then CRLF.
// 15. Extensions: *(";" *tchar ["=" *tchar [quoted-string]]), nothing after a quoted string
//     but ";" or CRLF, no whitespace anywhere; more than 16 KiB in one chunk's extensions
//     (separators not counted) is 413.
// 16. Chunk data is followed by exactly CRLF.
// 17. Trailer fields follow rules 6 to 9: Content-Length or a non-empty Transfer-Encoding
//     there is 400; a "close" Connection token ends an HTTP/1.1 connection after the request.
//     A trailer section over max_trailers is 431.
// 18. Latch: a decoded body over max_body is 413, decided on the chunk-size line before its
//     data arrives (llhttp has no such limit; Node reads on).

struct FramingLimits {
  std::size_t max_head = 64 * 1024; // request line + field lines + CRLFs
  std::size_t max_body = 64 * 1024; // decoded body bytes, Content-Length or chunked
};

struct FieldLine {
  std::string_view name, value; // value without leading/trailing OWS
};

struct RequestHead {
  std::string_view method, target, version; // views into the input
  std::vector<FieldLine> fields;            // every field line, in order (repeats kept)
  std::size_t size = 0;                     // bytes of the head, final empty line included
  enum class Body { none, length, chunked } body = Body::none;
  std::uint64_t content_length = 0; // Body::length
  bool expect_continue = false;     // Expect: 100-continue
  bool keep_alive = true;           // rule 13
};

struct HeadResult {
  enum class State { incomplete, complete, refused } state = State::incomplete;
  RequestHead head;        // complete; refused: method and target when they were read, and
                           // the version and the whole field lines once past the request line
  int status = 0;          // refused: 400, 413, 431, 501 or 505
  const char *reason = ""; // refused: a short phrase for logs and tests
};

// Reads one request head as its bytes arrive, keeping its place between calls: a head that
// comes one byte per read costs linear time in all, and a head is refused at its first byte
// that breaks a rule, without waiting for its end.
class HeadParser {
public:
  explicit HeadParser(const FramingLimits &limits = {}) : limits_(limits) {}
  // `input` holds the bytes from the first byte of this request (after the previous one): the
  // same bytes on every call, and more of them. Views in the result point into it. Once
  // complete or refused, the same result comes back until reset().
  HeadResult parse(std::string_view input);
  void reset() { *this = HeadParser(limits_); }

private:
  struct Offsets {
    std::size_t name_at, name_size, value_at, value_size;
  };
  HeadResult refuse(std::string_view input, int status, const char *reason);
  const char *end_field(std::string_view input); // rules 10 to 13 on the last field line: why not
  HeadResult finish(std::string_view input);

  FramingLimits limits_;
  std::uint8_t state_ = 0;
  std::size_t pos_ = 0;  // next byte to read
  std::size_t mark_ = 0; // where the token being read started
  std::size_t method_at_ = 0, method_size_ = 0, target_at_ = 0, target_size_ = 0;
  std::size_t version_at_ = 0;
  std::uint16_t flags_ = 0;
  std::uint64_t content_length_ = 0;
  bool expect_continue_ = false;
  std::vector<Offsets> fields_;
  HeadResult result_; // once complete or refused
};

namespace detail {
// Reads a Connection value's comma-separated tokens a byte at a time, as llhttp 9.3.1 does.
struct ConnectionTokens {
  enum : std::uint8_t { close = 1, keep_alive = 2, upgrade = 4 };
  std::uint8_t found = 0; // the flags above
  std::uint8_t state = 0, keyword = 0, matched = 0;
  void feed(char c);
  void end();
};
} // namespace detail

// One head, all of whose bytes are in `input` so far (HeadParser(limits).parse(input)).
HeadResult parse_request_head(std::string_view input, const FramingLimits &limits);

// Incremental decoder of a chunked body (RFC 9112 7.1, rules 14 to 18): feed it the bytes after
// the head as they arrive; it appends chunk data to `body`, discards extensions and trailers,
// and never lets `body` grow past max_body.
class ChunkedDecoder {
public:
  static constexpr std::size_t max_extensions = 16 * 1024; // per chunk, as Node
  ChunkedDecoder(std::size_t max_body, std::size_t max_trailers)
      : max_body_(max_body), max_trailers_(max_trailers) {}
  enum class State { more, done, refused };
  // `input` starts at the first byte not consumed by earlier calls; `consumed` says how many of
  // its bytes this call used (more: all; done: up to the end of the message, the rest belongs
  // to the next request; refused: up to the offending byte).
  State feed(std::string_view input, std::string &body, std::size_t &consumed);
  int status() const { return status_; }
  const char *reason() const { return reason_; }
  // Whether the connection stays open after this request (rule 17: a trailer can close it).
  bool keep_alive(const RequestHead &head) const {
    return head.keep_alive && !(trailer_close_ && head.version == "HTTP/1.1");
  }

private:
  State refuse(int status, const char *reason);

  std::size_t max_body_, max_trailers_;
  std::uint8_t state_ = 0;
  std::uint64_t size_ = 0;    // of the chunk being read, then what is left of its data
  std::uint64_t decoded_ = 0; // body bytes so far
  std::size_t extensions_ = 0, trailers_ = 0;
  std::uint8_t names_ = 0;    // which known names the trailer field's name can still be
  std::size_t name_size_ = 0; // bytes of its name so far
  std::uint8_t field_ = 0;    // the known name it turned out to be, if any
  detail::ConnectionTokens connection_;
  bool trailer_close_ = false;
  int status_ = 0;
  const char *reason_ = "";
};

} // namespace latch::http
