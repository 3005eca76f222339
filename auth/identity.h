// What makes two usernames or two emails the same account: canonical keys, confusable skeletons.
//
// Usernames follow Unicode's NFKC_Casefold (NFKC with full case folding, ICU's
// getNFKCCasefoldInstance), and refuse what that mapping would hide or a reader would not see:
// default-ignorable code points (zero-width space, soft hyphen, BOM, ...), bidi controls,
// whitespace, controls, and unassigned or private-use code points (so a key never changes when
// a later Unicode version assigns them). Two usernames with the same key are one account; two
// whose keys share a UTS #39 confusable skeleton (Cyrillic "а" and Latin "a") are refused as
// look-alikes at sign-up. Emails follow the WHATWG "valid email address" rule of
// <input type="email">, ASCII only, and their key is the address lower-cased.
// Pure functions over ICU (Debian's libicu); no store.
#pragma once

#include "db/store.h"

#include <cstddef>
#include <string>
#include <string_view>

namespace latch {

// Why a username or an email is refused.
enum class IdentityRefusal {
  none,
  empty,
  too_long, // a username over kMaxUsernameLength characters, an email over RFC 5321's lengths
  not_utf8,
  control,      // C0/C1 controls, NUL included
  whitespace,   // any Unicode White_Space, before or after normalisation (NBSP, U+00A8's space)
  invisible,    // Default_Ignorable_Code_Point: ZWSP, ZWJ, soft hyphen, BOM, variation selectors
  bidi_control, // Bidi_Control: RLO, LRI, ALM, ...
  unassigned,   // unassigned, noncharacter or private-use code points
  not_email,    // not a WHATWG valid email address
};

// A comparison key, or why there is none.
struct Canonical {
  std::string key; // empty when refused
  IdentityRefusal refusal = IdentityRefusal::none;
  explicit operator bool() const { return refusal == IdentityRefusal::none; }
};

// Usernames are 1 to 150 characters (code points, as typed); picflux narrows this to 4-30.
constexpr std::size_t kMaxUsernameLength = 150;

// The key two usernames are compared by: NFKC_Casefold of the typed text, or a refusal.
// canonical_username(key).key == key for every key it returns.
Canonical canonical_username(std::string_view typed);

// The key two emails are compared by: the address lower-cased, if it is a WHATWG valid email
// address (local part of ASCII atext and dots; domain of letter-digit-hyphen labels of 1-63
// characters, neither starting nor ending with a hyphen) within RFC 5321's lengths (64 before
// the @, 254 in all), else a refusal. "user@localhost" is valid; non-ASCII is not.
Canonical canonical_email(std::string_view typed);

// The UTS #39 confusable skeleton of a username key (ICU uspoof_getSkeleton): two keys with
// the same skeleton look alike ("аdmin" in Cyrillic and "admin"; also "rn" and "m").
std::string username_skeleton(std::string_view key);

// canonical_username and username_skeleton as the store applies them to rows that lack keys.
db::UsernameRule username_rule();

// A phrase for messages: "contains an invisible character", ...
const char *describe(IdentityRefusal refusal);

// The username with what a reader would not see (controls, whitespace, invisible and bidi
// characters, unassigned code points) written as \u{XXXX}, for logs and terminals.
std::string visible_username(std::string_view username);

} // namespace latch
