// libFuzzer: the strict framing of auth/http/framing.h on any bytes, fed at once and in pieces.
//
// The first byte seeds where the input is cut into reads ('0'..'9' in the seeds); the rest is
// what a client sent. A head is parsed at once and by a HeadParser fed growing prefixes; after
// a complete chunked head, the body is decoded at once and in pieces. Both ways must decide
// alike, the body must stay within max_body, and no call may use more bytes than it was given.
#include "auth/http/framing.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

using namespace latch::http;

namespace {

// Small limits, so that fuzzed inputs reach them.
const FramingLimits kLimits{1024, 256};
const std::size_t kMaxTrailers = 256;

[[noreturn]] void fail(const char *what, std::string_view input) {
  std::fprintf(stderr, "fuzz invariant broken: %s\ninput: %zu bytes\n", what, input.size());
  std::fflush(stderr);
  __builtin_trap();
}

// Read sizes from 1 to 64 bytes, from a seed.
struct Cuts {
  std::uint32_t state;
  std::size_t next() {
    state ^= state << 13;
    state ^= state >> 17;
    state ^= state << 5;
    return 1 + state % 64;
  }
};

bool same_head(const HeadResult &a, const HeadResult &b) {
  if (a.state != b.state || a.status != b.status || std::string_view(a.reason) != b.reason)
    return false;
  const RequestHead &x = a.head, &y = b.head;
  if (x.method != y.method || x.target != y.target || x.version != y.version || x.size != y.size ||
      x.body != y.body || x.content_length != y.content_length ||
      x.expect_continue != y.expect_continue || x.keep_alive != y.keep_alive ||
      x.fields.size() != y.fields.size())
    return false;
  for (std::size_t i = 0; i < x.fields.size(); ++i)
    if (x.fields[i].name != y.fields[i].name || x.fields[i].value != y.fields[i].value)
      return false;
  return true;
}

struct Decoded {
  ChunkedDecoder::State state = ChunkedDecoder::State::more;
  std::string body;
  std::size_t consumed = 0;
  int status = 0;
  bool keep_alive = false;
};

Decoded decode(std::string_view input, const RequestHead &head, Cuts *cuts) {
  ChunkedDecoder decoder(kLimits.max_body, kMaxTrailers);
  Decoded d;
  while (d.state == ChunkedDecoder::State::more && d.consumed < input.size()) {
    const std::string_view read = input.substr(d.consumed, cuts ? cuts->next() : input.size());
    std::size_t used = 0;
    d.state = decoder.feed(read, d.body, used);
    if (used > read.size()) fail("the decoder used more bytes than it was given", input);
    if (d.state == ChunkedDecoder::State::more && used != read.size())
      fail("the decoder wants more but left bytes unused", input);
    if (d.body.size() > kLimits.max_body) fail("the body grew past max_body", input);
    d.consumed += used;
  }
  d.status = decoder.status();
  d.keep_alive = decoder.keep_alive(head);
  if (d.state == ChunkedDecoder::State::refused && d.status != 400 && d.status != 413 &&
      d.status != 431)
    fail("the decoder refused with an unexpected status", input);
  return d;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view input(reinterpret_cast<const char *>(data) + 1, size - 1);
  Cuts cuts{0x9e3779b9u ^ data[0]};

  const HeadResult whole = parse_request_head(input, kLimits);
  HeadParser parser(kLimits);
  HeadResult pieces;
  for (std::size_t n = 0; n < input.size() && pieces.state == HeadResult::State::incomplete;) {
    n = std::min(input.size(), n + cuts.next());
    pieces = parser.parse(input.substr(0, n));
  }
  if (input.empty()) pieces = parser.parse(input);
  if (!same_head(whole, pieces)) fail("a head read in pieces differs from it read at once", input);

  switch (whole.state) {
  case HeadResult::State::incomplete:
    if (input.size() > kLimits.max_head) fail("a head past max_head is still incomplete", input);
    return 0;
  case HeadResult::State::refused:
    if (whole.status != 400 && whole.status != 413 && whole.status != 431 && whole.status != 501 &&
        whole.status != 505)
      fail("a head refused with an unexpected status", input);
    return 0;
  case HeadResult::State::complete: break;
  }
  const RequestHead &head = whole.head;
  if (head.size > input.size() || head.size > kLimits.max_head)
    fail("a head larger than its input or max_head", input);
  if (head.body == RequestHead::Body::length && head.content_length > kLimits.max_body)
    fail("a Content-Length past max_body accepted", input);
  if (head.body != RequestHead::Body::chunked) return 0;

  const std::string_view rest = input.substr(head.size);
  const Decoded at_once = decode(rest, head, nullptr);
  const Decoded in_pieces = decode(rest, head, &cuts);
  if (at_once.state != in_pieces.state || at_once.status != in_pieces.status ||
      at_once.body != in_pieces.body || at_once.keep_alive != in_pieces.keep_alive ||
      at_once.consumed != in_pieces.consumed)
    fail("a chunked body decoded in pieces differs from it decoded at once", input);
  return 0;
}
