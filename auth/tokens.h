// JWT issue and verification (HS256, EdDSA, ES256, RS256): each key's algorithm is pinned, never
// read from the token.
#pragma once

#include "auth/result.h"
#include "auth/secure.h"

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

struct evp_pkey_st; // OpenSSL's EVP_PKEY

namespace latch {

enum class TokenType { access, refresh };
const char *token_type_name(TokenType t);

struct Claims {
  std::string user_id; // sub, uid and user_id
  std::optional<std::string> email;
  std::string username;
  TokenType type = TokenType::access;
  std::string jti;
  std::string session_id;      // sid
  std::int64_t issued_at = 0;  // iat
  std::int64_t expires_at = 0; // exp
  std::string payload;         // the payload JSON as signed, for the APIs that echo claims
  // The payload as a JSON object, parsed on demand: only the APIs that echo claims need it.
  nlohmann::json payload_json() const;
};

// The JWS algorithms Latch signs with (RFC 7518 3.2-3.4, RFC 8037 3.1).
enum class JwtAlg { HS256, EdDSA, ES256, RS256 };
const char *jwt_alg_name(JwtAlg alg);
std::optional<JwtAlg> jwt_alg_from_name(std::string_view name);

// One key of a key ring. Its kid is public (it names the key in token headers).
struct SigningKey {
  std::string kid;
  JwtAlg alg = JwtAlg::HS256;
  std::string secret;            // HS256: the secret; otherwise the private key, PKCS#8 PEM
  bool legacy = false;           // also verifies tokens with no kid (signed before key rings)
  std::int64_t verify_until = 0; // unix seconds from which it verifies nothing; 0: no end
  bool standby = false;          // published in the JWKS and verifying, but signing nothing
};

// A new private key for an asymmetric alg (Ed25519, P-256, RSA 2048), PKCS#8 PEM, made by
// OpenSSL. Throws std::runtime_error.
std::string generate_private_key(JwtAlg alg);
// A PEM private key as --jwt-private-key gives it: its alg (from the key's type: Ed25519, P-256,
// RSA of at least 2048 bits) and the key as PKCS#8 PEM; or the reason it is refused.
struct LoadedKey {
  JwtAlg alg = JwtAlg::EdDSA;
  std::string pem;
};
std::variant<LoadedKey, std::string> read_private_key(const std::string &pem);
// The public JWK (RFC 7517) of an asymmetric key: kty and its public members only.
nlohmann::json public_jwk(JwtAlg alg, const std::string &private_pem);
// The RFC 7638 thumbprint of that JWK (base64url of SHA-256): the kid of a key from a file.
std::string jwk_thumbprint(const nlohmann::json &jwk);

// A kid Latch accepts: 1 to kMaxKidLength characters of [A-Za-z0-9_-].
bool valid_kid(std::string_view kid);
// The kid of a fixed secret (LATCH_JWT_SECRET): 12 hex digits of its SHA-256.
std::string derive_kid(std::string_view secret);

class TokenCodec {
public:
  static constexpr std::size_t kMaxTokenLength = 8192;
  static constexpr std::size_t kMaxKidLength = 64;
  static constexpr std::int64_t kClockLeeway = 30; // seconds of skew tolerated for nbf

  // One fixed key (LATCH_JWT_SECRET): tokens are issued without a kid, as before key rings,
  // and verified whether they carry none or derive_kid(secret).
  explicit TokenCodec(std::string secret);
  // A key ring (see set_keys).
  explicit TokenCodec(std::vector<SigningKey> keys);
  TokenCodec(const TokenCodec &) = delete;
  TokenCodec &operator=(const TokenCodec &) = delete;

  // Replaces the key ring, safely while other threads issue and decode. keys.front() signs
  // and names itself in the kid header; each key verifies the tokens whose kid names it, and
  // a legacy key also those with no kid. Throws std::invalid_argument for an empty ring, a
  // bad or repeated kid, or an empty secret.
  void set_keys(std::vector<SigningKey> keys);
  std::string signing_kid() const;
  JwtAlg signing_alg() const;

  // The JWK Set (RFC 7517 5) of the ring's asymmetric keys that verify at `now` (the standby
  // key included): public members, kid, alg and use only. HS256 keys never appear.
  nlohmann::json jwks(std::int64_t now) const;

  // Signs the claims (raw is ignored) and returns the compact JWT.
  std::string issue(const Claims &claims) const;

  // Verifies structure, header (alg must be HS256; kid, if any, must name a key of the ring),
  // signature and times; does not check the token type or revocation, which the service does.
  Result<Claims> decode(std::string_view token, std::int64_t now) const;

private:
  struct Key {
    SigningKey key;
    std::optional<secure::HmacSha256> hmac; // HS256, keyed once
    std::shared_ptr<evp_pkey_st> pkey;      // the others: the private key, parsed once
    std::string encoded_header;             // base64url of the header naming this key's kid
    nlohmann::json jwk;                     // the others: the public JWK
    std::string sign(std::string_view input) const;
    bool verify(std::string_view input, std::string_view signature) const;
  };
  struct Ring {
    std::vector<Key> keys;
    std::string encoded_header;        // for issuing with keys.front(), the signing key
    std::string encoded_legacy_header; // the header of tokens with no kid
  };
  static std::unique_ptr<const Ring> make_ring(std::vector<SigningKey> keys, bool kid_header);
  // The key a header names, found by comparing the header as received with the ones this
  // ring issues, so the usual token needs no JSON parse of its header. nullptr: not one of
  // ours verbatim (decode then reads it).
  static const Key *key_for_exact_header(const Ring &ring, std::string_view header_part);
  const Ring &ring() const { return *ring_.load(std::memory_order_acquire); }

  // The ring in use, read lock-free on every token; the rings it replaced stay alive (a few
  // hundred bytes per key rotation) so a reader never holds a freed one.
  std::atomic<const Ring *> ring_{nullptr};
  std::mutex mutex_; // guards rings_
  std::vector<std::unique_ptr<const Ring>> rings_;

  // A token whose header, signature and claims checked out, with what the time checks need.
  struct Verified {
    const Ring *ring = nullptr;
    const Key *key = nullptr;
    Claims claims;
    std::optional<std::int64_t> nbf;
  };
  // Everything but the time checks (exp, iat, nbf).
  Result<Verified> verify(std::string_view token, const Ring &ring) const;

  // Access tokens that verified, by their exact text: a client sends the same access token
  // until it expires, so its signature and claims are checked once. A hit still gets the time
  // checks and its key's retirement, and only counts for the ring that verified it.
  static constexpr std::size_t kMaxVerified = 1024; // then the cache starts over
  struct TextHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::shared_mutex verified_mutex_;
  mutable std::unordered_map<std::string, Verified, TextHash, std::equal_to<>> verified_;
};

} // namespace latch
