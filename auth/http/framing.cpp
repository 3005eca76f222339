// TEMPORARY stand-in for the strict framing parser (being written on branch i12-framing).
#include "auth/http/framing.h"

#include <algorithm>
#include <cctype>
#include <string>

namespace latch::http {

namespace {

bool tchar(unsigned char c) {
  return std::isalnum(c) || std::string_view("!#$%&'*+-.^_`|~").find(char(c)) != std::string_view::npos;
}
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower((unsigned char)x) == std::tolower((unsigned char)y);
         });
}
HeadResult refuse(HeadResult r, int status, const char *why) {
  r.state = HeadResult::State::refused;
  r.status = status;
  r.reason = why;
  return r;
}

} // namespace

std::size_t find_head_end(std::string_view input, std::size_t from) {
  auto at = input.find("\r\n\r\n", from);
  return at == std::string_view::npos ? at : at + 4;
}

HeadResult parse_request_head(std::string_view in, const FramingLimits &limits) {
  HeadResult r;
  std::size_t pos = 0;
  auto line_end = in.find("\r\n");
  std::string_view line = in.substr(0, line_end);
  if (line_end == std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.find('\n') != std::string_view::npos || line.find('\r') != std::string_view::npos)
    return refuse(r, 400, "bare CR or LF");
  auto sp1 = line.find(' ');
  if (sp1 != std::string_view::npos) {
    r.head.method = line.substr(0, sp1);
    if (r.head.method.empty() || !std::all_of(r.head.method.begin(), r.head.method.end(), [](char c) { return c >= 'A' && c <= 'Z'; }))
      return refuse(r, 400, "bad method");
  } else if (line_end == std::string_view::npos) {
    if (!std::all_of(line.begin(), line.end(), [](char c) { return c >= 'A' && c <= 'Z'; })) return refuse(r, 400, "bad method");
    return r;
  }
  if (line_end == std::string_view::npos) return r;
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos) return refuse(r, 400, "bad request line");
  r.head.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  r.head.version = line.substr(sp2 + 1);
  if (r.head.target.empty()) return refuse(r, 400, "no target");
  for (unsigned char c : r.head.target) if (c <= 0x20 || c == 0x7f) return refuse(r, 400, "bad target");
  if (r.head.version != "HTTP/1.1" && r.head.version != "HTTP/1.0") return refuse(r, 400, "bad version");
  r.head.keep_alive = r.head.version == "HTTP/1.1";
  pos = line_end + 2;
  bool have_length = false, chunked = false, te = false;
  for (;;) {
    auto end = in.find("\r\n", pos);
    if (end == std::string_view::npos) {
      if (in.size() > limits.max_head) return refuse(r, 431, "head too large");
      return r;
    }
    std::string_view l = in.substr(pos, end - pos);
    pos = end + 2;
    if (l.empty()) break;
    if (l.find('\n') != std::string_view::npos || l.find('\r') != std::string_view::npos) return refuse(r, 400, "bare CR or LF");
    if (l[0] == ' ' || l[0] == '\t') return refuse(r, 400, "obs-fold");
    auto colon = l.find(':');
    if (colon == std::string_view::npos || colon == 0) return refuse(r, 400, "no field name");
    std::string_view name = l.substr(0, colon), value = l.substr(colon + 1);
    for (unsigned char c : name) if (!tchar(c)) return refuse(r, 400, "bad field name");
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
    for (unsigned char c : value) if ((c < 0x20 && c != '\t') || c == 0x7f) return refuse(r, 400, "bad field value");
    r.head.fields.push_back({name, value});
    if (iequals(name, "content-length")) {
      if (value.empty() || !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }) || value.size() > 18)
        return refuse(r, 400, "bad Content-Length");
      std::uint64_t n = std::stoull(std::string(value));
      if (have_length && n != r.head.content_length) return refuse(r, 400, "Content-Length twice");
      have_length = true;
      r.head.content_length = n;
    } else if (iequals(name, "transfer-encoding")) {
      te = true;
      chunked = iequals(value, "chunked");
      if (!chunked) return refuse(r, 400, "unknown Transfer-Encoding");
    } else if (iequals(name, "expect")) {
      r.head.expect_continue = iequals(value, "100-continue");
    } else if (iequals(name, "connection")) {
      if (iequals(value, "close")) r.head.keep_alive = false;
      if (iequals(value, "keep-alive")) r.head.keep_alive = true;
    }
  }
  if (have_length && te) return refuse(r, 400, "Content-Length and Transfer-Encoding");
  r.head.size = pos;
  r.head.body = chunked ? RequestHead::Body::chunked : have_length ? RequestHead::Body::length : RequestHead::Body::none;
  if (r.head.body == RequestHead::Body::length && r.head.content_length == 0) r.head.body = RequestHead::Body::none;
  (void)limits;
  r.state = HeadResult::State::complete;
  return r;
}

ChunkedDecoder::State ChunkedDecoder::feed(std::string_view in, std::string &body, std::size_t &consumed) {
  consumed = 0;
  auto fail = [&](int s, const char *why) { status_ = s; reason_ = why; return State::refused; };
  while (consumed < in.size()) {
    if (phase_ == Phase::data) {
      std::size_t take = std::size_t(std::min<std::uint64_t>(left_, in.size() - consumed));
      body.append(in.substr(consumed, take));
      consumed += take;
      left_ -= take;
      if (left_ == 0) phase_ = Phase::data_end;
      continue;
    }
    // line-based phases
    auto nl = in.find('\n', consumed);
    std::size_t end = nl == std::string_view::npos ? in.size() : nl + 1;
    line_.append(in.substr(consumed, end - consumed));
    consumed = end;
    if (line_.size() > 4096) return fail(400, "chunk line too long");
    if (nl == std::string_view::npos) return State::more;
    if (line_.size() < 2 || line_[line_.size() - 2] != '\r') return fail(400, "bare LF");
    std::string l = line_.substr(0, line_.size() - 2);
    line_.clear();
    if (phase_ == Phase::data_end) {
      if (!l.empty()) return fail(400, "no CRLF after data");
      phase_ = Phase::size;
    } else if (phase_ == Phase::size) {
      std::string size = l.substr(0, l.find(';'));
      if (size.empty() || size.size() > 15 || !std::all_of(size.begin(), size.end(), [](char c) { return std::isxdigit((unsigned char)c); }))
        return fail(400, "bad chunk size");
      left_ = std::stoull(size, nullptr, 16);
      if (left_ == 0) { phase_ = Phase::trailer; continue; }
      if (body.size() + left_ > max_body_) return fail(413, "body too large");
      phase_ = Phase::data;
    } else { // trailer
      trailers_ += l.size() + 2;
      if (trailers_ > max_trailers_) return fail(431, "trailers too large");
      if (l.empty()) return State::done;
    }
  }
  return State::more;
}

} // namespace latch::http
