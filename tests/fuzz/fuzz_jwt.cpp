// libFuzzer: TokenCodec::decode on any bytes, and on codec-issued tokens with bytes changed.
#include "auth/secure.h"
#include "auth/tokens.h"

#include "fuzz_request.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

using namespace latch;

// Input, first byte even: the rest is decoded as a token. First byte odd: the rest is five
// lines (sub, username, email, jti, sid) that are signed into a token, which must decode to
// the same claims; then every three bytes after the fifth line edit it (two bytes of position,
// one of value; the top bits of the first pick replace, erase, insert or truncate), and the
// edited token must be refused unless it is the issued one again.

namespace {

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kSecret = "fuzz-jwt-secret-0123456789abcdef-0123456";

const TokenCodec &codec() {
  static const TokenCodec codec(kSecret);
  return codec;
}

// The signature decode must have checked, computed here with OpenSSL and not the codec.
bool signature_matches(std::string_view token) {
  const std::size_t dot = token.rfind('.');
  if (dot == std::string::npos) return false;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
            reinterpret_cast<const unsigned char *>(token.data()), dot, mac, &len))
    return false;
  return token.substr(dot + 1) ==
         secure::base64url_encode(std::string_view(reinterpret_cast<char *>(mac), len));
}

bool same_claims(const Claims &a, const Claims &b) {
  return a.user_id == b.user_id && a.email == b.email && a.username == b.username &&
         a.type == b.type && a.jti == b.jti && a.session_id == b.session_id &&
         a.issued_at == b.issued_at && a.expires_at == b.expires_at;
}

void decode_any(std::string_view token) {
  auto claims = codec().decode(token, kNow);
  if (!claims) return;
  if (!signature_matches(token)) fuzz::fail("decode accepted a token not signed with the secret");
  if (claims->user_id.empty() || claims->jti.empty() || claims->session_id.empty() ||
      claims->expires_at <= kNow)
    fuzz::fail("decode accepted a token without sub, jti, sid or a future exp");
}

void issue_and_edit(std::string rest) {
  Claims signed_claims;
  signed_claims.user_id = fuzz::take_line(rest);
  signed_claims.username = fuzz::take_line(rest);
  if (std::string email = fuzz::take_line(rest); !email.empty()) signed_claims.email = email;
  signed_claims.jti = fuzz::take_line(rest);
  signed_claims.session_id = fuzz::take_line(rest);
  signed_claims.type = rest.size() % 2 ? TokenType::refresh : TokenType::access;
  signed_claims.issued_at = kNow - 10;
  signed_claims.expires_at = kNow + 3600;
  for (const std::string *s : {&signed_claims.user_id, &signed_claims.username, &signed_claims.jti,
                               &signed_claims.session_id})
    if (!secure::valid_utf8(*s)) return; // the service only signs what it has validated
  if (signed_claims.email && !secure::valid_utf8(*signed_claims.email)) return;

  const std::string token = codec().issue(signed_claims);
  const bool decodable = !signed_claims.user_id.empty() && !signed_claims.jti.empty() &&
                         !signed_claims.session_id.empty() &&
                         token.size() <= TokenCodec::kMaxTokenLength;
  auto round_trip = codec().decode(token, kNow);
  if (decodable && !round_trip) fuzz::fail("an issued token did not decode", token);
  if (round_trip && !same_claims(round_trip.value(), signed_claims))
    fuzz::fail("an issued token decoded to other claims", token);

  std::string edited = token;
  for (std::size_t i = 0; i + 3 <= rest.size() && !edited.empty(); i += 3) {
    const auto op = static_cast<unsigned char>(rest[i]) >> 6;
    const std::size_t at = ((static_cast<unsigned char>(rest[i]) & 0x3f) << 8 |
                            static_cast<unsigned char>(rest[i + 1])) %
                           edited.size();
    const char value = rest[i + 2];
    if (op == 0)
      edited[at] = value;
    else if (op == 1)
      edited.erase(at, 1);
    else if (op == 2)
      edited.insert(edited.begin() + static_cast<std::ptrdiff_t>(at), value);
    else
      edited.resize(at);
  }
  decode_any(edited);
  if (codec().decode(edited, kNow) && edited != token)
    fuzz::fail("decode accepted an edited token", edited);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size) {
  if (size == 0) return 0;
  std::string rest(reinterpret_cast<const char *>(data) + 1, size - 1);
  if (data[0] % 2 == 0)
    decode_any(rest);
  else
    issue_and_edit(std::move(rest));
  return 0;
}
