// JWT (RFC 7519) in compact form, HS256 only, following RFC 8725's advice.
#include "auth/tokens.h"

#include "auth/secure.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace latch {

using nlohmann::json;

const char *token_type_name(TokenType t) { return t == TokenType::access ? "access" : "refresh"; }

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > TokenCodec::kMaxKidLength) return false;
  return std::all_of(kid.begin(), kid.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '_' || c == '-'; });
}

std::string derive_kid(std::string_view secret) { return secure::sha256_hex(secret).substr(0, 12); }

std::shared_ptr<const TokenCodec::Ring> TokenCodec::make_ring(std::vector<SigningKey> keys,
                                                              bool kid_header) {
  if (keys.empty()) throw std::invalid_argument("a key ring needs at least one key");
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!valid_kid(keys[i].kid)) throw std::invalid_argument("bad kid in key ring");
    if (keys[i].secret.empty()) throw std::invalid_argument("empty secret in key ring");
    for (size_t j = 0; j < i; ++j)
      if (keys[j].kid == keys[i].kid) throw std::invalid_argument("kid repeated in key ring");
  }
  auto ring = std::make_shared<Ring>();
  // A valid kid needs no JSON escaping.
  ring->encoded_header = secure::base64url_encode(
      kid_header ? R"({"alg":"HS256","typ":"JWT","kid":")" + keys.front().kid + R"("})"
                 : std::string(R"({"alg":"HS256","typ":"JWT"})"));
  ring->keys = std::move(keys);
  return ring;
}

TokenCodec::TokenCodec(std::string secret) {
  SigningKey key;
  key.kid = derive_kid(secret);
  key.secret = std::move(secret);
  key.legacy = true;
  ring_ = make_ring({std::move(key)}, /*kid_header=*/false);
}

TokenCodec::TokenCodec(std::vector<SigningKey> keys) : ring_(make_ring(std::move(keys), true)) {}

void TokenCodec::set_keys(std::vector<SigningKey> keys) {
  auto fresh = make_ring(std::move(keys), true);
  std::lock_guard lock(mutex_);
  ring_ = std::move(fresh);
}

std::shared_ptr<const TokenCodec::Ring> TokenCodec::ring() const {
  std::lock_guard lock(mutex_);
  return ring_;
}

std::string TokenCodec::signing_kid() const { return ring()->keys.front().kid; }

std::string TokenCodec::issue(const Claims &c) const {
  json payload = {
      {"sub", c.user_id},
      {"uid", c.user_id},
      {"user_id", c.user_id},
      {"username", c.username},
      {"token_type", token_type_name(c.type)},
      {"jti", c.jti},
      {"sid", c.session_id},
      {"iat", c.issued_at},
      {"exp", c.expires_at},
  };
  if (c.email) payload["email"] = *c.email;
  auto r = ring();
  std::string signing_input = r->encoded_header + "." + secure::base64url_encode(payload.dump());
  return signing_input + "." +
         secure::base64url_encode(secure::hmac_sha256(r->keys.front().secret, signing_input));
}

namespace {

Error malformed(const char *why) { return Error{ErrorCode::token_malformed, why}; }

std::optional<json> decode_json_object(std::string_view part) {
  auto bytes = secure::base64url_decode(part);
  if (!bytes) return std::nullopt;
  json j = json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

bool string_claim(const json &p, const char *name, std::string &out) {
  auto it = p.find(name);
  if (it == p.end() || !it->is_string()) return false;
  out = it->get<std::string>();
  return !out.empty();
}

bool integer_claim(const json &p, const char *name, std::int64_t &out) {
  auto it = p.find(name);
  if (it == p.end() || !it->is_number_integer()) return false;
  out = it->get<std::int64_t>();
  return true;
}

} // namespace

Result<Claims> TokenCodec::decode(std::string_view token, std::int64_t now) const {
  if (token.empty() || token.size() > kMaxTokenLength) return malformed("length");
  size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return malformed("segments");
  size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return malformed("segments");
  std::string_view header_part = token.substr(0, dot1);
  std::string_view payload_part = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_part = token.substr(dot2 + 1);

  // The header may say only what we issue: alg HS256 (pinned, so no "none" and no
  // algorithm switching), typ JWT and kid; jku, x5u, crit and friends are refused. A kid only
  // ever selects a key of our own ring by exact name: it is never a path, URL or query.
  auto header = decode_json_object(header_part);
  if (!header) return malformed("header");
  std::optional<std::string> kid;
  for (auto it = header->begin(); it != header->end(); ++it) {
    if (it.key() == "alg") {
      if (!it->is_string() || it->get<std::string>() != "HS256")
        return Error{ErrorCode::token_bad_signature, "algorithm"};
    } else if (it.key() == "typ") {
      if (!it->is_string() || it->get<std::string>() != "JWT") return malformed("typ");
    } else if (it.key() == "kid") {
      if (!it->is_string() || !valid_kid(it->get<std::string>())) return malformed("kid");
      kid = it->get<std::string>();
    } else {
      return malformed("header parameter");
    }
  }
  if (!header->contains("alg")) return Error{ErrorCode::token_bad_signature, "algorithm"};

  // The one key the token names (or, without a kid, the legacy key); never a search over keys.
  auto r = ring();
  const SigningKey *key = nullptr;
  for (const auto &k : r->keys)
    if (kid ? k.kid == *kid : k.legacy) key = &k;
  if (!key || (key->verify_until != 0 && now >= key->verify_until))
    return Error{ErrorCode::token_bad_signature, "kid"};

  auto signature = secure::base64url_decode(signature_part);
  std::string expected =
      secure::hmac_sha256(key->secret, token.substr(0, dot2)); // header.payload as received
  if (!signature || !secure::constant_time_equal(*signature, expected))
    return Error{ErrorCode::token_bad_signature, "signature"};

  auto payload = decode_json_object(payload_part);
  if (!payload) return malformed("payload");
  Claims c;
  std::string type;
  if (!string_claim(*payload, "sub", c.user_id) || !string_claim(*payload, "jti", c.jti) ||
      !string_claim(*payload, "sid", c.session_id) ||
      !string_claim(*payload, "token_type", type) ||
      !integer_claim(*payload, "iat", c.issued_at) ||
      !integer_claim(*payload, "exp", c.expires_at))
    return malformed("claims");
  if (type == "access")
    c.type = TokenType::access;
  else if (type == "refresh")
    c.type = TokenType::refresh;
  else
    return malformed("token_type");
  string_claim(*payload, "username", c.username);
  std::string email;
  if (string_claim(*payload, "email", email)) c.email = email;

  if (c.expires_at <= now) return Error{ErrorCode::token_expired, "exp"};
  if (c.issued_at > now + kClockLeeway) return Error{ErrorCode::token_not_yet_valid, "iat"};
  std::int64_t nbf = 0;
  if (payload->contains("nbf") && (!integer_claim(*payload, "nbf", nbf) || nbf > now + kClockLeeway))
    return Error{ErrorCode::token_not_yet_valid, "nbf"};
  c.raw = std::move(*payload);
  return c;
}

} // namespace latch
