// Security primitives, all delegated to OpenSSL and libsodium: no cryptography is written here.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace latch::secure {

std::string random_bytes(std::size_t n);                 // OpenSSL RAND_bytes
std::string random_token(std::size_t n_bytes);           // base64url of n random bytes
std::string uuid_v4();                                   // RFC 4122 v4 from random bytes
std::string base64url_encode(std::string_view bytes);    // libsodium, no padding
std::optional<std::string> base64url_decode(std::string_view text); // strict: no padding
std::string hmac_sha256(std::string_view key, std::string_view data); // OpenSSL HMAC
std::string sha256_hex(std::string_view data);           // OpenSSL EVP
bool constant_time_equal(std::string_view a, std::string_view b); // CRYPTO_memcmp
bool valid_utf8(std::string_view s);

} // namespace latch::secure
