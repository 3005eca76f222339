// Canonical keys and confusable skeletons of usernames and emails, from ICU's tables.
#include "auth/identity.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/uspoof.h>
#include <unicode/utf8.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>

namespace latch {

namespace {

// What a reader could not see or tell apart, for one code point; none if it may stay.
IdentityRefusal refusal_of(UChar32 c) {
  // Bidi controls first: most are also default-ignorable, and this reason says more.
  if (u_hasBinaryProperty(c, UCHAR_BIDI_CONTROL)) return IdentityRefusal::bidi_control;
  if (u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT)) return IdentityRefusal::invisible;
  if (u_hasBinaryProperty(c, UCHAR_WHITE_SPACE)) return IdentityRefusal::whitespace;
  switch (u_charType(c)) {
  case U_CONTROL_CHAR: return IdentityRefusal::control;
  case U_UNASSIGNED:
  case U_PRIVATE_USE_CHAR:
  case U_SURROGATE: return IdentityRefusal::unassigned;
  default: return IdentityRefusal::none;
  }
}

// Walks UTF-8 text: the first refused code point's reason (or not_utf8), and the count.
IdentityRefusal scan(std::string_view text, std::size_t *code_points) {
  const auto *s = reinterpret_cast<const std::uint8_t *>(text.data());
  const auto length = static_cast<std::int32_t>(text.size());
  std::size_t n = 0;
  for (std::int32_t i = 0; i < length; ++n) {
    UChar32 c = 0;
    U8_NEXT(s, i, length, c);
    if (c < 0) return IdentityRefusal::not_utf8; // ill-formed: overlong, surrogate, truncated
    if (IdentityRefusal r = refusal_of(c); r != IdentityRefusal::none) return r;
  }
  if (code_points) *code_points = n;
  return IdentityRefusal::none;
}

const icu::Normalizer2 &nfkc_casefold() {
  UErrorCode status = U_ZERO_ERROR;
  // ICU owns the instance (never deleted) and it is safe to share between threads.
  static const icu::Normalizer2 *instance = icu::Normalizer2::getNFKCCasefoldInstance(status);
  if (!instance) throw std::runtime_error("ICU has no NFKC_Casefold data");
  return *instance;
}

struct SpoofCheckerDeleter {
  void operator()(USpoofChecker *p) const { uspoof_close(p); }
};

// One checker for the process: uspoof_getSkeleton takes it const, which ICU documents as safe
// from several threads at once.
const USpoofChecker &spoof_checker() {
  static const std::unique_ptr<USpoofChecker, SpoofCheckerDeleter> checker = [] {
    UErrorCode status = U_ZERO_ERROR;
    std::unique_ptr<USpoofChecker, SpoofCheckerDeleter> c(uspoof_open(&status));
    if (U_FAILURE(status) || !c) throw std::runtime_error("ICU has no confusables data");
    return c;
  }();
  return *checker;
}

bool ascii_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// WHATWG's atext, the local part's characters besides the dot.
bool atext(char c) {
  return ascii_alnum(c) ||
         std::string_view("!#$%&'*+/=?^_`{|}~-").find(c) != std::string_view::npos;
}

// One domain label: 1 to 63 letters, digits and hyphens, not starting or ending with a hyphen.
bool ldh_label(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
    return false;
  for (char c : label)
    if (!ascii_alnum(c) && c != '-') return false;
  return true;
}

} // namespace

Canonical canonical_username(std::string_view typed) {
  std::size_t length = 0;
  if (typed.empty()) return {{}, IdentityRefusal::empty};
  // 150 code points take at most 600 bytes: longer text is refused before ICU reads it.
  if (typed.size() > kMaxUsernameLength * 4) return {{}, IdentityRefusal::too_long};
  if (IdentityRefusal r = scan(typed, &length); r != IdentityRefusal::none) return {{}, r};
  if (length > kMaxUsernameLength) return {{}, IdentityRefusal::too_long};
  UErrorCode status = U_ZERO_ERROR;
  std::string key;
  icu::StringByteSink<std::string> sink(&key);
  nfkc_casefold().normalizeUTF8(
      0, icu::StringPiece(typed.data(), static_cast<std::int32_t>(typed.size())), sink, nullptr,
      status);
  if (U_FAILURE(status)) return {{}, IdentityRefusal::not_utf8};
  // Compatibility mappings can make what the input did not hold: U+00A8 becomes a space and a
  // combining diaeresis. The key is checked as the text was.
  if (IdentityRefusal r = scan(key, nullptr); r != IdentityRefusal::none) return {{}, r};
  if (key.empty()) return {{}, IdentityRefusal::empty};
  return {std::move(key), IdentityRefusal::none};
}

Canonical canonical_email(std::string_view typed) {
  // WHATWG: /^[a-zA-Z0-9.!#$%&'*+\/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?
  //          (?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/
  const std::size_t at = typed.find('@');
  if (at == std::string_view::npos) return {{}, IdentityRefusal::not_email};
  std::string_view local = typed.substr(0, at), domain = typed.substr(at + 1);
  if (local.empty()) return {{}, IdentityRefusal::not_email};
  for (char c : local)
    if (!atext(c) && c != '.') return {{}, IdentityRefusal::not_email};
  for (std::size_t start = 0;;) {
    const std::size_t dot = domain.find('.', start);
    if (!ldh_label(domain.substr(start, dot == std::string_view::npos ? dot : dot - start)))
      return {{}, IdentityRefusal::not_email};
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // RFC 5321's limits: no mail reaches a longer address, so none is stored.
  if (local.size() > 64 || typed.size() > 254) return {{}, IdentityRefusal::too_long};
  std::string key(typed);
  for (char &c : key)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return {std::move(key), IdentityRefusal::none};
}

std::string username_skeleton(std::string_view key) {
  UErrorCode status = U_ZERO_ERROR;
  icu::UnicodeString in = icu::UnicodeString::fromUTF8(
      icu::StringPiece(key.data(), static_cast<std::int32_t>(key.size())));
  icu::UnicodeString skeleton;
  // The type argument is ignored since ICU 58.
  uspoof_getSkeletonUnicodeString(&spoof_checker(), 0, in, skeleton, &status);
  if (U_FAILURE(status))
    throw std::runtime_error(std::string("ICU skeleton: ") + u_errorName(status));
  std::string out;
  skeleton.toUTF8String(out);
  return out;
}

const char *describe(IdentityRefusal refusal) {
  switch (refusal) {
  case IdentityRefusal::none: return "is acceptable";
  case IdentityRefusal::empty: return "is empty";
  case IdentityRefusal::too_long: return "is too long";
  case IdentityRefusal::not_utf8: return "is not UTF-8";
  case IdentityRefusal::control: return "contains a control character";
  case IdentityRefusal::whitespace: return "contains a space or other whitespace";
  case IdentityRefusal::invisible: return "contains an invisible character";
  case IdentityRefusal::bidi_control: return "contains a bidirectional control character";
  case IdentityRefusal::unassigned: return "contains an unassigned or private-use character";
  case IdentityRefusal::not_email: return "is not an email address";
  }
  return "is not acceptable";
}

std::string visible_username(std::string_view username) {
  const auto *s = reinterpret_cast<const std::uint8_t *>(username.data());
  const auto length = static_cast<std::int32_t>(username.size());
  std::string out;
  for (std::int32_t i = 0; i < length;) {
    const std::int32_t start = i;
    UChar32 c = 0;
    U8_NEXT(s, i, length, c);
    if (c >= 0 && c != '\\' && refusal_of(c) == IdentityRefusal::none) {
      out.append(
          username.substr(static_cast<std::size_t>(start), static_cast<std::size_t>(i - start)));
      continue;
    }
    char buf[16];
    if (c == '\\') {
      out += "\\\\";
      continue;
    }
    if (c < 0) { // a byte of ill-formed UTF-8
      std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned>(s[start]));
      i = start + 1;
    } else {
      std::snprintf(buf, sizeof buf, "\\u{%04X}", static_cast<unsigned>(c));
    }
    out += buf;
  }
  return out;
}

} // namespace latch

namespace latch {

db::UsernameRule username_rule() {
  return [](const std::string &username) -> std::optional<db::UsernameKeys> {
    Canonical key = canonical_username(username);
    if (!key) return std::nullopt;
    std::string skeleton = username_skeleton(key.key);
    return db::UsernameKeys{std::move(key.key), std::move(skeleton)};
  };
}

} // namespace latch
