// Security primitives, all delegated to OpenSSL and libsodium: no cryptography is written here.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace latch::secure {

std::string random_bytes(std::size_t n);       // OpenSSL RAND_bytes
std::string random_token(std::size_t n_bytes); // base64url of n random bytes (libsodium)
std::string uuid_v4();                         // RFC 4122 v4 from random bytes
// No padding; OpenSSL's table encoder, for what is public once sent (the parts of tokens).
std::string base64url_encode(std::string_view bytes);
// Strict (no padding, RFC 4648 section 5 alphabet only, unused bits zero); OpenSSL's table
// decoder, as what it reads is never secret: the parts of tokens clients present.
std::optional<std::string> base64url_decode(std::string_view text);
std::string hmac_sha256(std::string_view key, std::string_view data); // OpenSSL HMAC

// HMAC-SHA256 under one key, set up once (OpenSSL EVP_MAC): each mac() copies the keyed
// state instead of fetching the algorithm and hashing the key again. Safe to share between
// threads: mac() never changes the keyed state.
class HmacSha256 {
public:
  explicit HmacSha256(std::string_view key);
  std::string mac(std::string_view data) const;

private:
  struct State;
  std::shared_ptr<State> state_;
};
std::string sha256_hex(std::string_view data);                    // OpenSSL EVP
bool constant_time_equal(std::string_view a, std::string_view b); // CRYPTO_memcmp
bool valid_utf8(std::string_view s);

} // namespace latch::secure
