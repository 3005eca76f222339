// Where one HTTP/1.1 request ends in a connection's input, judged the way cpp-httplib 0.11
// reads it: lines end at LF, header lines must end with CRLF (others are skipped), and the
// head ends at the first line that is CRLF alone.
#include "auth/http/framing.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <optional>

namespace latch::http {

namespace {

bool space_or_tab(char c) {
  return c == ' ' || c == '\t';
}

char lower(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// What the head says about the body.
struct Head {
  std::size_t size = 0;
  std::optional<std::uint64_t> length; // Content-Length, when every one agrees and is digits
  bool bad_length = false;             // one that is not, or two that differ
  bool transfer_encoding = false;
  bool chunked = false;
  bool expects_continue = false;
};

void note_header(std::string_view line, Head &head) {
  while (!line.empty() && space_or_tab(line.back()))
    line.remove_suffix(1);
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return;
  std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
  while (!value.empty() && space_or_tab(value.front()))
    value.remove_prefix(1);
  if (iequals(name, "content-length")) {
    std::uint64_t n = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), n);
    bool digits = !value.empty() && value.front() != '+' && value.front() != '-' &&
                  ec == std::errc() && end == value.data() + value.size();
    if (!digits || (head.length && *head.length != n))
      head.bad_length = true;
    else
      head.length = n;
  } else if (iequals(name, "transfer-encoding")) {
    head.transfer_encoding = true;
    head.chunked = head.chunked || iequals(value, "chunked");
  } else if (iequals(name, "expect")) {
    head.expects_continue = head.expects_continue || value == "100-continue";
  }
}

// The head's size and framing headers; nullopt while its end has not arrived.
std::optional<Head> read_head(std::string_view input) {
  auto request_line_end = input.find('\n');
  if (request_line_end == std::string_view::npos) return std::nullopt;
  Head head;
  std::size_t pos = request_line_end + 1;
  for (;;) {
    auto nl = input.find('\n', pos);
    if (nl == std::string_view::npos) return std::nullopt;
    std::string_view line = input.substr(pos, nl + 1 - pos);
    pos = nl + 1;
    if (line.size() < 2 || line[line.size() - 2] != '\r') continue; // cpp-httplib skips it
    if (line.size() == 2) break;
    note_header(line.substr(0, line.size() - 2), head);
  }
  head.size = pos;
  return head;
}

// A chunked body's last chunk with no trailers ("0" CRLF CRLF at the start of a line), after
// `from`. A chunk's data can hold the same bytes, so this only says when to start: the parser
// reads the real framing, from the socket if it has to.
bool has_last_chunk(std::string_view input, std::size_t from) {
  for (auto at = input.find("0\r\n\r\n", from); at != std::string_view::npos;
       at = input.find("0\r\n\r\n", at + 1))
    if (at == from || input[at - 1] == '\n') return true;
  return false;
}

} // namespace

Frame frame_request(std::string_view input, const FrameLimits &limits) {
  using Kind = Frame::Kind;
  auto head = read_head(input.substr(0, std::min(input.size(), limits.max_head)));
  if (!head) {
    if (input.size() > limits.max_head) return {Kind::truncated, input.size()};
    return {Kind::incomplete, input.size()};
  }
  const std::size_t available = input.size() - head->size;
  if (head->bad_length || (head->length && head->transfer_encoding))
    return {Kind::open, head->size}; // Latch refuses these and closes the connection
  if (head->transfer_encoding) {
    if (!head->chunked || has_last_chunk(input, head->size) ||
        available > limits.max_body + limits.max_head)
      return {Kind::open, input.size()};
    return {Kind::incomplete, input.size()};
  }
  if (head->length) {
    if (*head->length > limits.max_body) return {Kind::open, head->size}; // answered 413
    if (available >= *head->length) return {Kind::exact, head->size + std::size_t(*head->length)};
    // The client waits for "100 Continue" before sending the body: the parser sends it.
    if (head->expects_continue) return {Kind::open, input.size()};
    return {Kind::incomplete, input.size()};
  }
  return {Kind::exact, head->size};
}

} // namespace latch::http
