// Where one HTTP/1.1 request ends in a connection's input, judged before cpp-httplib parses it.
#pragma once

#include <cstddef>
#include <string_view>

namespace latch::http {

// The event loop (auth/http/event_server.h) hands a request to cpp-httplib only once it is
// whole, so that no thread waits on a slow client. This decides "whole" from the header block
// and its framing headers (RFC 9112 6.3); cpp-httplib still does all the parsing, and every
// request this cannot frame exactly is handed over anyway, for cpp-httplib to read the rest
// from the socket and to refuse as it refuses today.
struct Frame {
  enum class Kind {
    incomplete, // wait for more bytes
    exact,      // the request is the first `length` bytes: its head and Content-Length body
    open,       // start now: the parser reads on from the socket if it needs more
    truncated,  // the head is past the limit: the parser gets these bytes and then the end
  };
  Kind kind = Kind::incomplete;
  std::size_t length = 0; // exact: the request's size; otherwise the input judged
};

struct FrameLimits {
  std::size_t max_head = 64 * 1024; // request line and headers, with their line ends
  std::size_t max_body = 0;         // a declared body past this starts at once (413)
};

// `input` starts at the first byte of a request.
Frame frame_request(std::string_view input, const FrameLimits &limits);

} // namespace latch::http
