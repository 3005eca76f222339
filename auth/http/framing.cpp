// Strict HTTP/1.1 request framing (framing.h): rules 1 to 18, state machines after llhttp 9.3.1's.
#include "auth/http/framing.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>
#include <optional>

// ---- Strict framing: rules 1 to 18 of framing.h, state machines after llhttp 9.3.1's ----

namespace latch::http {

namespace {

using Table = std::array<bool, 256>;

template <typename F> constexpr Table make_table(F pred) {
  Table t{};
  for (int c = 0; c < 256; ++c)
    t[std::size_t(c)] = pred(c);
  return t;
}

constexpr bool alpha(int c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr bool digit(int c) {
  return c >= '0' && c <= '9';
}
constexpr bool in(int c, std::string_view set) {
  return set.find(char(c)) != std::string_view::npos;
}

// RFC 9110 tchar.
constexpr Table kTokenChars =
    make_table([](int c) { return alpha(c) || digit(c) || in(c, "!#$%&'*+-.^_`|~"); });
// Field-value bytes: HTAB, SP, VCHAR, obs-text.
constexpr Table kValueChars =
    make_table([](int c) { return c == '\t' || (c >= 0x20 && c != 0x7f); });
// llhttp's URL_CHAR: visible ASCII except '#' and '?'.
constexpr Table kUrlChars = make_table([](int c) { return c > 0x20 && c < 0x7f && !in(c, "#?"); });
// llhttp's USERINFO_CHARS, plus the brackets of an IP literal.
constexpr Table kAuthorityChars =
    make_table([](int c) { return alpha(c) || digit(c) || in(c, "-_.!~*'()%;:&=+$,[]"); });
// RFC 9110 qdtext.
constexpr Table kQdtextChars = make_table([](int c) {
  return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c != 0x5c && c != 0x7f);
});

bool is(const Table &t, char c) {
  return t[static_cast<unsigned char>(c)];
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool ows(char c) {
  return c == ' ' || c == '\t';
}

// Every method llhttp's request parser knows (its METHODS table): HTTP's, then RTSP's own.
constexpr std::array<std::string_view, 47> kMethods = {
    "DELETE",        "GET",           "HEAD",     "POST",     "PUT",       "CONNECT",
    "OPTIONS",       "TRACE",         "PATCH",    "LINK",     "UNLINK",    "COPY",
    "LOCK",          "MKCOL",         "MOVE",     "PROPFIND", "PROPPATCH", "SEARCH",
    "UNLOCK",        "BIND",          "REBIND",   "UNBIND",   "ACL",       "REPORT",
    "MKACTIVITY",    "CHECKOUT",      "MERGE",    "M-SEARCH", "NOTIFY",    "SUBSCRIBE",
    "UNSUBSCRIBE",   "MKCALENDAR",    "PURGE",    "QUERY",    "SOURCE",    "PRI",
    "DESCRIBE",      "ANNOUNCE",      "SETUP",    "PLAY",     "PAUSE",     "TEARDOWN",
    "GET_PARAMETER", "SET_PARAMETER", "REDIRECT", "RECORD",   "FLUSH"};
constexpr std::size_t kHttpMethods = 36; // the first ones; the rest are RTSP's only

bool method_prefix(std::string_view m) {
  for (std::string_view known : kMethods)
    if (known.substr(0, m.size()) == m) return true;
  return false;
}

// Index in kMethods, -1 if unknown.
int method_index(std::string_view m) {
  for (std::size_t i = 0; i < kMethods.size(); ++i)
    if (kMethods[i] == m) return int(i);
  return -1;
}

char lower_ascii(char c) {
  return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c;
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower_ascii(a[i]) != lower_ascii(b[i])) return false;
  return true;
}

std::string_view trim_ows(std::string_view v) {
  while (!v.empty() && ows(v.front()))
    v.remove_prefix(1);
  while (!v.empty() && ows(v.back()))
    v.remove_suffix(1);
  return v;
}

// The field names with framing meaning (llhttp's SPECIAL_HEADERS), by index.
constexpr std::array<std::string_view, 5> kKnownNames = {
    "content-length", "transfer-encoding", "connection", "proxy-connection", "upgrade"};
enum KnownName : std::uint8_t {
  kContentLength,
  kTransferEncoding,
  kConnection,
  kProxyConnection,
  kUpgrade,
  kOtherName
};

KnownName known_name(std::string_view name) {
  for (std::size_t i = 0; i < kKnownNames.size(); ++i)
    if (iequal(name, kKnownNames[i])) return KnownName(i);
  return kOtherName;
}

// Rule 10 on a Content-Length value (leading OWS gone, trailing kept): nullopt if malformed.
std::optional<std::uint64_t> content_length_value(std::string_view v) {
  std::size_t i = 0;
  std::uint64_t n = 0;
  for (; i < v.size() && digit(v[i]); ++i) {
    const unsigned d = unsigned(v[i] - '0');
    if (n > (UINT64_MAX - d) / 10) return std::nullopt;
    n = n * 10 + d;
  }
  if (i == 0) return std::nullopt;
  for (; i < v.size(); ++i)
    if (v[i] != ' ') return std::nullopt; // llhttp 9.3.1 allows SP, not HTAB, after the digits
  return n;
}

// Rule 11 on a non-empty Transfer-Encoding value, as llhttp reads it: whether its last coding
// is chunked; nullopt when a coding follows chunked.
std::optional<bool> ends_in_chunked(std::string_view v) {
  constexpr std::string_view kChunked = "chunked";
  std::size_t i = 0;
  for (;;) {
    // At the start of a coding.
    if (v.size() - i >= kChunked.size() && iequal(v.substr(i, kChunked.size()), kChunked)) {
      std::size_t j = i + kChunked.size();
      while (j < v.size() && v[j] == ' ')
        ++j;
      if (j == v.size()) return true;
      if (v[j] == ',') return std::nullopt; // nothing may follow chunked in a request
      i = j;
    }
    // Inside a coding that is not chunked: on to the next comma.
    while (i < v.size() && v[i] != ',')
      ++i;
    if (i == v.size()) return false;
    ++i;
    while (i < v.size() && ows(v[i]))
      ++i;
  }
}

// Flag bits of a head being read.
enum : std::uint16_t {
  kHasLength = 1 << 0,
  kHasTransferEncoding = 1 << 1,
  kChunked = 1 << 2,
  kUpgradeHeader = 1 << 3,
  kConnectionClose = 1 << 4,
  kConnectionKeepAlive = 1 << 5,
  kConnectionUpgrade = 1 << 6,
  kRtspMethod = 1 << 7,
  kHttp10 = 1 << 8,
};

enum HeadState : std::uint8_t {
  kLeading,
  kMethod,
  kSpacesBeforeTarget,
  kTargetStart,
  kScheme,
  kSchemeSlash1,
  kSchemeSlash2,
  kAuthority,
  kAuthorityAt,
  kPath,
  kQuery,
  kFragment,
  kSpacesBeforeVersion,
  kProtocol,
  kMajor,
  kDot,
  kMinor,
  kRequestLineCR,
  kRequestLineLF,
  kFieldStart,
  kName,
  kValueWs,
  kValue,
  kValueCR,
  kAfterField,
  kHeadLF,
  kHeadDone,
};

} // namespace

namespace detail {

namespace {
constexpr std::array<std::string_view, 3> kKeywords = {"close", "keep-alive", "upgrade"};
enum : std::uint8_t { kStart, kKeyword, kAfterKeyword, kOther };
} // namespace

void ConnectionTokens::feed(char c) {
  switch (state) {
  case kStart:
    if (ows(c)) return;
    for (std::uint8_t k = 0; k < kKeywords.size(); ++k)
      if (lower_ascii(c) == kKeywords[k][0]) {
        keyword = k;
        matched = 1;
        state = kKeyword;
        return;
      }
    state = kOther;
    break;
  case kKeyword:
    if (lower_ascii(c) == kKeywords[keyword][matched]) {
      if (++matched == kKeywords[keyword].size()) state = kAfterKeyword;
      return;
    }
    state = kOther;
    break;
  case kAfterKeyword:
    if (c == ' ') return; // not HTAB: llhttp 9.3.1 (9.4.2 allows it)
    if (c == ',') {
      end();
      return;
    }
    state = kOther;
    break;
  default: break;
  }
  if (c == ',') state = kStart; // kOther: a token that is none of the three, up to its comma
}

void ConnectionTokens::end() {
  if (state == kAfterKeyword) found |= std::uint8_t(1u << keyword);
  state = 0;
}

} // namespace detail

HeadResult HeadParser::refuse(std::string_view input, int status, const char *reason) {
  result_ = {};
  result_.state = HeadResult::State::refused;
  result_.status = status;
  result_.reason = reason;
  result_.head.method = input.substr(method_at_, method_size_);
  result_.head.target = input.substr(target_at_, target_size_);
  // Past the request line, it was read whole: the version says so. The field lines read whole
  // before the refusal come with it (what an answer's shape may depend on: Origin, a request
  // id); one being read when it came does not.
  if (state_ >= kFieldStart) {
    result_.head.version = input.substr(version_at_, 8);
    const bool in_field =
        state_ == kName || state_ == kValueWs || state_ == kValue || state_ == kValueCR;
    const std::size_t whole = fields_.size() - (in_field && !fields_.empty() ? 1 : 0);
    for (std::size_t i = 0; i < whole; ++i)
      result_.head.fields.push_back(
          {input.substr(fields_[i].name_at, fields_[i].name_size),
           trim_ows(input.substr(fields_[i].value_at, fields_[i].value_size))});
  }
  state_ = kHeadDone;
  return result_;
}

const char *HeadParser::end_field(std::string_view input) {
  const Offsets &f = fields_.back();
  const std::string_view name = input.substr(f.name_at, f.name_size);
  const std::string_view value = input.substr(f.value_at, f.value_size); // trailing OWS kept
  switch (known_name(name)) {
  case kContentLength: {
    if (flags_ & kHasTransferEncoding) return "Content-Length with Transfer-Encoding";
    if (value.empty()) return "empty Content-Length";
    if (flags_ & kHasLength) return "Content-Length twice";
    auto n = content_length_value(value);
    if (!n) return "Content-Length is not a number";
    content_length_ = *n;
    flags_ |= kHasLength;
    break;
  }
  case kTransferEncoding: {
    if (flags_ & kHasLength) return "Content-Length with Transfer-Encoding";
    if (value.empty()) break; // llhttp never looks at an empty one
    if (flags_ & kChunked) return "a coding after chunked";
    auto chunked = ends_in_chunked(value);
    if (!chunked) return "a coding after chunked";
    flags_ = std::uint16_t((flags_ | kHasTransferEncoding) & ~kChunked);
    if (*chunked) flags_ |= kChunked;
    break;
  }
  case kConnection:
  case kProxyConnection: {
    detail::ConnectionTokens tokens;
    for (char c : value)
      tokens.feed(c);
    tokens.end();
    if (tokens.found & tokens.close) flags_ |= kConnectionClose;
    if (tokens.found & tokens.keep_alive) flags_ |= kConnectionKeepAlive;
    if (tokens.found & tokens.upgrade) flags_ |= kConnectionUpgrade;
    break;
  }
  case kUpgrade:
    if (!value.empty()) flags_ |= kUpgradeHeader;
    break;
  default:
    if (iequal(name, "expect") && iequal(trim_ows(value), "100-continue")) expect_continue_ = true;
    break;
  }
  return nullptr;
}

HeadResult HeadParser::finish(std::string_view input) {
  RequestHead &head = result_.head;
  head.method = input.substr(method_at_, method_size_);
  head.target = input.substr(target_at_, target_size_);
  head.version = input.substr(version_at_, 8);
  head.size = pos_;
  head.expect_continue = expect_continue_;
  head.fields.reserve(fields_.size());
  for (const Offsets &f : fields_)
    head.fields.push_back(
        {input.substr(f.name_at, f.name_size), trim_ows(input.substr(f.value_at, f.value_size))});
  const bool upgrade = (flags_ & kUpgradeHeader) && (flags_ & kConnectionUpgrade);
  const bool has_body = (flags_ & kChunked) || content_length_ > 0;
  if (upgrade && !has_body) {
    // llhttp ends the message at its head and hands the connection over (any framing headers
    // ignored); Latch answers and closes.
  } else if (flags_ & kChunked) {
    head.body = RequestHead::Body::chunked;
  } else if (flags_ & kHasTransferEncoding) {
    return refuse(input, 400, "Transfer-Encoding does not end in chunked");
  } else if (content_length_ > 0) {
    if (content_length_ > limits_.max_body) return refuse(input, 413, "Content-Length too large");
    head.body = RequestHead::Body::length;
    head.content_length = content_length_;
  }
  if (flags_ & kHttp10)
    head.keep_alive = (flags_ & kConnectionKeepAlive) && !(flags_ & kHasTransferEncoding);
  else
    head.keep_alive = !(flags_ & kConnectionClose);
  if (upgrade) head.keep_alive = false;
  result_.state = HeadResult::State::complete;
  state_ = kHeadDone;
  return result_;
}

HeadResult HeadParser::parse(std::string_view input) {
  if (state_ == kHeadDone) return result_;
  if (input.size() < pos_) reset(); // not the same bytes: start again
  while (pos_ < input.size()) {
    if (pos_ >= limits_.max_head) return refuse(input, 431, "head too large");
    const char c = input[pos_];
    switch (HeadState(state_)) {
    case kLeading:
      if (c == '\r' || c == '\n') break;
      method_at_ = pos_;
      state_ = kMethod;
      continue;
    case kMethod: {
      if (c == ' ') {
        method_size_ = pos_ - method_at_;
        const int m = method_index(input.substr(method_at_, method_size_));
        if (m < 0) return refuse(input, 400, "unknown method");
        if (kMethods[std::size_t(m)] == "CONNECT") return refuse(input, 501, "CONNECT");
        if (kMethods[std::size_t(m)] == "PRI") return refuse(input, 400, "HTTP/2 preface");
        if (std::size_t(m) >= kHttpMethods) flags_ |= kRtspMethod;
        state_ = kSpacesBeforeTarget;
        break;
      }
      if (!method_prefix(input.substr(method_at_, pos_ + 1 - method_at_)))
        return refuse(input, 400, "unknown method");
      break;
    }
    case kSpacesBeforeTarget:
      if (c == ' ') break;
      target_at_ = pos_;
      state_ = kTargetStart;
      continue;
    case kTargetStart:
      if (c == '/' || c == '*') {
        state_ = kPath;
      } else if (alpha(c)) {
        state_ = kScheme;
      } else {
        return refuse(input, 400, "bad request target");
      }
      break;
    case kScheme:
      if (c == ':') {
        state_ = kSchemeSlash1;
      } else if (!alpha(c)) {
        return refuse(input, 400, "bad request target");
      }
      break;
    case kSchemeSlash1:
    case kSchemeSlash2:
      if (c != '/') return refuse(input, 400, "bad request target");
      state_ = state_ == kSchemeSlash1 ? kSchemeSlash2 : kAuthority;
      break;
    case kAuthority:
    case kAuthorityAt:
    case kPath:
    case kQuery:
    case kFragment: {
      const HeadState s = HeadState(state_);
      if (c == ' ') {
        target_size_ = pos_ - target_at_;
        state_ = kSpacesBeforeVersion;
      } else if (c == '\r' || c == '\n') {
        target_size_ = pos_ - target_at_;
        return refuse(input, 505, "HTTP/0.9"); // a target with no version
      } else if (s == kAuthority || s == kAuthorityAt) {
        if (c == '/') {
          state_ = kPath;
        } else if (c == '?') {
          state_ = kQuery;
        } else if (c == '@') {
          if (s == kAuthorityAt) return refuse(input, 400, "bad request target");
          state_ = kAuthorityAt;
        } else if (is(kAuthorityChars, c)) {
          state_ = kAuthority;
        } else {
          return refuse(input, 400, "bad request target");
        }
      } else if (c == '#') {
        state_ = kFragment;
      } else if (c == '?') {
        if (s == kPath) state_ = kQuery;
      } else if (!is(kUrlChars, c)) {
        return refuse(input, 400, "bad request target");
      }
      break;
    }
    case kSpacesBeforeVersion:
      if (c == ' ') break;
      version_at_ = pos_;
      state_ = kProtocol;
      continue;
    case kProtocol: {
      const std::string_view protocol = input.substr(version_at_, pos_ - version_at_);
      if (c == '/') {
        if (protocol == "RTSP" || protocol == "ICE") return refuse(input, 505, "not HTTP");
        if (protocol != "HTTP") return refuse(input, 400, "bad HTTP version");
        if (flags_ & kRtspMethod) return refuse(input, 400, "an RTSP method");
        state_ = kMajor;
        break;
      }
      const std::string_view next = input.substr(version_at_, pos_ + 1 - version_at_);
      if (next.size() > 4 || (next != std::string_view("HTTP").substr(0, next.size()) &&
                              next != std::string_view("RTSP").substr(0, next.size()) &&
                              next != std::string_view("ICE").substr(0, next.size())))
        return refuse(input, 400, "bad HTTP version");
      break;
    }
    case kMajor:
    case kMinor:
      if (!digit(c)) return refuse(input, 400, "bad HTTP version");
      if (state_ == kMinor) {
        const std::string_view v = input.substr(version_at_ + 5, 3);
        if (v != "1.1" && v != "1.0") return refuse(input, 505, "HTTP version not supported");
        if (v == "1.0") flags_ |= kHttp10;
      }
      state_ = state_ == kMajor ? kDot : kRequestLineCR;
      break;
    case kDot:
      if (c != '.') return refuse(input, 400, "bad HTTP version");
      state_ = kMinor;
      break;
    case kRequestLineCR:
      if (c != '\r') return refuse(input, 400, "bad HTTP version");
      state_ = kRequestLineLF;
      break;
    case kRequestLineLF:
      if (c != '\n') return refuse(input, 400, "CR without LF");
      state_ = kFieldStart;
      break;
    case kFieldStart:
      if (c == '\r') {
        state_ = kHeadLF;
      } else if (is(kTokenChars, c)) {
        mark_ = pos_;
        state_ = kName;
      } else if (ows(c)) {
        return refuse(input, 400, "whitespace at the start of a field line");
      } else if (c == ':') {
        return refuse(input, 400, "empty field name");
      } else {
        return refuse(input, 400, c == '\n' ? "bare LF" : "bad byte in a field name");
      }
      break;
    case kName:
      if (c == ':') {
        fields_.push_back({mark_, pos_ - mark_, pos_ + 1, 0});
        state_ = kValueWs;
      } else if (!is(kTokenChars, c)) {
        return refuse(input, 400,
                      ows(c) ? "whitespace before the colon" : "bad byte in a field name");
      }
      break;
    case kValueWs:
      if (ows(c)) break;
      fields_.back().value_at = pos_;
      if (c == '\r') {
        state_ = kValueCR;
        break;
      }
      state_ = kValue;
      continue;
    case kValue:
      if (c == '\r') {
        fields_.back().value_size = pos_ - fields_.back().value_at;
        state_ = kValueCR;
      } else if (!is(kValueChars, c)) {
        return refuse(input, 400, c == '\n' ? "bare LF" : "bad byte in a field value");
      }
      break;
    case kValueCR:
      if (c != '\n') return refuse(input, 400, "CR without LF");
      // Judged now, not once the next line shows whether this one is folded: a fold is refused.
      if (const char *problem = end_field(input)) return refuse(input, 400, problem);
      state_ = kAfterField;
      break;
    case kAfterField:
      if (ows(c)) return refuse(input, 400, "obs-fold");
      state_ = kFieldStart;
      continue;
    case kHeadLF:
      if (c != '\n') return refuse(input, 400, "CR without LF");
      ++pos_;
      return finish(input);
    case kHeadDone: return result_;
    }
    ++pos_;
  }
  return {};
}

HeadResult parse_request_head(std::string_view input, const FramingLimits &limits) {
  return HeadParser(limits).parse(input);
}

namespace {

enum ChunkState : std::uint8_t {
  kSizeStart,
  kSize,
  kExtensionStart,
  kExtensionName,
  kExtensionValue,
  kQuoted,
  kQuotedPair,
  kQuotedDone,
  kSizeLF,
  kData,
  kDataCR,
  kDataLF,
  kTrailerStart,
  kTrailerName,
  kTrailerValueWs,
  kTrailerValue,
  kTrailerValueCR,
  kTrailerAfterField,
  kTrailersLF,
  kChunksDone,
};

// The trailer names that matter (rule 17), as bits of ChunkedDecoder::names_.
constexpr std::array<std::string_view, 4> kTrailerNames = {"content-length", "transfer-encoding",
                                                           "connection", "proxy-connection"};
enum : std::uint8_t { kTrailerLength, kTrailerCoding, kTrailerConnection, kTrailerProxyConnection };
constexpr std::uint8_t kAllTrailerNames = 0xf, kOtherTrailer = 0xff;

} // namespace

ChunkedDecoder::State ChunkedDecoder::refuse(int status, const char *reason) {
  status_ = status;
  reason_ = reason;
  state_ = kChunksDone;
  return State::refused;
}

ChunkedDecoder::State ChunkedDecoder::feed(std::string_view input, std::string &body,
                                           std::size_t &consumed) {
  consumed = 0;
  if (state_ == kChunksDone) return status_ ? State::refused : State::done;
  std::size_t i = 0, counted = std::string_view::npos;
  // Leaves `consumed` at the offending byte.
  auto fail = [&](int status, const char *reason) {
    consumed = i;
    return refuse(status, reason);
  };
  auto extension_byte = [&] { return ++extensions_ <= max_extensions; };
  while (i < input.size()) {
    if (state_ == kData) {
      const std::size_t take = std::size_t(std::min<std::uint64_t>(size_, input.size() - i));
      body.append(input.data() + i, take);
      i += take;
      size_ -= take;
      decoded_ += take;
      if (size_ == 0) state_ = kDataCR;
      continue;
    }
    const char c = input[i];
    if (state_ >= kTrailerStart && i != counted) { // once per byte, though it is read twice
      counted = i;
      if (++trailers_ > max_trailers_) return fail(431, "trailers too large");
    }
    switch (ChunkState(state_)) {
    case kSizeStart:
      extensions_ = 0;
      size_ = 0;
      if (hex_value(c) < 0) return fail(400, "bad chunk size");
      state_ = kSize;
      continue;
    case kSize: {
      const int d = hex_value(c);
      if (d >= 0) {
        if (size_ > (UINT64_MAX - unsigned(d)) / 16) return fail(400, "chunk size overflow");
        size_ = size_ * 16 + unsigned(d);
        // Latch (rule 18): refused before any of this chunk's data is read.
        if (size_ > max_body_ - decoded_) return fail(413, "chunked body too large");
      } else if (c == '\r') {
        state_ = kSizeLF;
      } else if (c == ';') {
        state_ = kExtensionStart;
      } else {
        return fail(400, "bad chunk size");
      }
      break;
    }
    case kExtensionStart:
      if (c == ' ' || c == '\r') return fail(400, "bad chunk extension");
      state_ = kExtensionName;
      continue;
    case kExtensionName:
    case kExtensionValue:
      if (c == ';') {
        state_ = kExtensionStart;
      } else if (c == '\r') {
        state_ = kSizeLF;
      } else if (c == '=' && state_ == kExtensionName) {
        state_ = kExtensionValue;
      } else if (c == '"' && state_ == kExtensionValue) {
        state_ = kQuoted;
      } else if (!is(kTokenChars, c)) {
        return fail(400, "bad chunk extension");
      }
      if (c != ';' && c != '\r' && c != '=' && !extension_byte())
        return fail(413, "chunk extensions too large");
      break;
    case kQuoted:
      if (!extension_byte()) return fail(413, "chunk extensions too large");
      if (c == '"') {
        state_ = kQuotedDone;
      } else if (c == '\\') {
        state_ = kQuotedPair;
      } else if (!is(kQdtextChars, c)) {
        return fail(400, "bad chunk extension");
      }
      break;
    case kQuotedPair:
      if (!extension_byte()) return fail(413, "chunk extensions too large");
      if (!is(kValueChars, c)) return fail(400, "bad chunk extension");
      state_ = kQuoted;
      break;
    case kQuotedDone:
      if (c == ';') {
        state_ = kExtensionStart;
      } else if (c == '\r') {
        state_ = kSizeLF;
      } else {
        return fail(400, "bad chunk extension");
      }
      break;
    case kSizeLF:
      if (c != '\n') return fail(400, "CR without LF");
      state_ = size_ == 0 ? kTrailerStart : kData;
      break;
    case kData: break; // handled above
    case kDataCR:
      if (c != '\r') return fail(400, "chunk data not followed by CRLF");
      state_ = kDataLF;
      break;
    case kDataLF:
      if (c != '\n') return fail(400, "chunk data not followed by CRLF");
      state_ = kSizeStart;
      break;
    case kTrailerStart:
      if (c == '\r') {
        state_ = kTrailersLF;
        break;
      }
      if (!is(kTokenChars, c)) return fail(400, "bad trailer field");
      names_ = kAllTrailerNames;
      name_size_ = 0;
      state_ = kTrailerName;
      continue;
    case kTrailerName:
      if (c == ':') {
        field_ = kOtherTrailer;
        for (std::uint8_t k = 0; k < kTrailerNames.size(); ++k)
          if ((names_ & (1u << k)) && kTrailerNames[k].size() == name_size_) field_ = k;
        // As llhttp: the head's Transfer-Encoding conflicts with it.
        if (field_ == kTrailerLength) return fail(400, "Content-Length in trailers");
        connection_ = {};
        state_ = kTrailerValueWs;
        break;
      }
      if (!is(kTokenChars, c)) return fail(400, "bad trailer field");
      for (std::uint8_t k = 0; k < kTrailerNames.size(); ++k)
        if (name_size_ >= kTrailerNames[k].size() || kTrailerNames[k][name_size_] != lower_ascii(c))
          names_ &= std::uint8_t(~(1u << k));
      ++name_size_;
      break;
    case kTrailerValueWs:
      if (ows(c)) break;
      // As llhttp: a second Transfer-Encoding after chunked, unless empty.
      if (c != '\r' && field_ == kTrailerCoding) return fail(400, "Transfer-Encoding in trailers");
      state_ = kTrailerValue;
      continue;
    case kTrailerValue: {
      const bool connection = field_ == kTrailerConnection || field_ == kTrailerProxyConnection;
      if (c == '\r') {
        connection_.end();
        if (connection && (connection_.found & connection_.close)) trailer_close_ = true;
        state_ = kTrailerValueCR;
      } else if (!is(kValueChars, c)) {
        return fail(400, c == '\n' ? "bare LF" : "bad byte in a field value");
      } else if (connection) {
        connection_.feed(c);
      }
      break;
    }
    case kTrailerValueCR:
      if (c != '\n') return fail(400, "CR without LF");
      state_ = kTrailerAfterField;
      break;
    case kTrailerAfterField:
      if (ows(c)) return fail(400, "obs-fold");
      state_ = kTrailerStart;
      continue;
    case kTrailersLF:
      if (c != '\n') return fail(400, "CR without LF");
      consumed = i + 1;
      state_ = kChunksDone;
      return State::done;
    case kChunksDone: break;
    }
    ++i;
  }
  consumed = i;
  return State::more;
}

} // namespace latch::http
