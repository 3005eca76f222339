// Security primitives: thin wrappers over OpenSSL and libsodium.
#include "auth/secure.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sodium.h>

#include <algorithm>
#include <stdexcept>

namespace latch::secure {

std::string random_bytes(std::size_t n) {
  std::string out(n, '\0');
  if (n && RAND_bytes(reinterpret_cast<unsigned char *>(out.data()), static_cast<int>(n)) != 1)
    throw std::runtime_error("RAND_bytes failed");
  return out;
}

std::string random_token(std::size_t n_bytes) {
  // libsodium's constant-time encoder: these are secrets (refresh ids, reset links, keys).
  std::string bytes = random_bytes(n_bytes);
  const int variant = sodium_base64_VARIANT_URLSAFE_NO_PADDING;
  std::string out(sodium_base64_encoded_len(bytes.size(), variant), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char *>(bytes.data()),
                    bytes.size(), variant);
  out.pop_back(); // the terminating NUL
  return out;
}

std::string uuid_v4() {
  std::string b = random_bytes(16);
  b[6] = static_cast<char>((b[6] & 0x0f) | 0x40); // version 4
  b[8] = static_cast<char>((b[8] & 0x3f) | 0x80); // RFC 4122 variant
  static const char *hex = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (int i = 0; i < 16; ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out += '-';
    auto c = static_cast<unsigned char>(b[static_cast<size_t>(i)]);
    out += hex[c >> 4];
    out += hex[c & 0x0f];
  }
  return out;
}

std::string base64url_encode(std::string_view bytes) {
  // OpenSSL's table encoder, then the URL-safe alphabet without padding.
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                          reinterpret_cast<const unsigned char *>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=')
    out.pop_back();
  for (char &c : out)
    c = c == '+' ? '-' : c == '/' ? '_' : c;
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  // RFC 4648 section 5 only (libsodium 1.0.18, used before, also read bytes 0x80-0xFF as '_').
  auto in_alphabet = [](unsigned char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
  };
  if (text.size() % 4 == 1 || text.size() > (1u << 30) ||
      !std::all_of(text.begin(), text.end(), in_alphabet))
    return std::nullopt;
  // OpenSSL decodes the standard alphabet with padding.
  std::string standard(text);
  for (char &c : standard)
    c = c == '-' ? '+' : c == '_' ? '/' : c;
  const std::size_t padding = (4 - standard.size() % 4) % 4;
  standard.append(padding, '=');
  std::string out(standard.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                          reinterpret_cast<const unsigned char *>(standard.data()),
                          static_cast<int>(standard.size()));
  if (n < 0 || static_cast<std::size_t>(n) != out.size()) return std::nullopt;
  out.resize(out.size() - padding);
  // One spelling per byte string: unused bits must be zero, so encoding back gives the input.
  std::string again(standard.size() + 1, '\0');
  EVP_EncodeBlock(reinterpret_cast<unsigned char *>(again.data()),
                  reinterpret_cast<const unsigned char *>(out.data()),
                  static_cast<int>(out.size()));
  again.pop_back(); // the terminating NUL
  if (again != standard) return std::nullopt;
  return out;
}

struct HmacSha256::State {
  EVP_MAC_CTX *keyed = nullptr;
  ~State() { EVP_MAC_CTX_free(keyed); }
};

HmacSha256::HmacSha256(std::string_view key) : state_(std::make_shared<State>()) {
  static EVP_MAC *const hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr); // fetched once
  if (!hmac || !(state_->keyed = EVP_MAC_CTX_new(hmac)))
    throw std::runtime_error("HMAC unavailable");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                         OSSL_PARAM_construct_end()};
  // An empty key still needs a non-null pointer, or OpenSSL keeps the key it had.
  static const unsigned char empty = 0;
  if (EVP_MAC_init(state_->keyed,
                   key.empty() ? &empty : reinterpret_cast<const unsigned char *>(key.data()),
                   key.size(), params) != 1)
    throw std::runtime_error("HMAC key set-up failed");
}

std::string HmacSha256::mac(std::string_view data) const {
  EVP_MAC_CTX *ctx = EVP_MAC_CTX_dup(state_->keyed);
  unsigned char out[EVP_MAX_MD_SIZE];
  std::size_t len = 0;
  bool ok =
      ctx &&
      EVP_MAC_update(ctx, reinterpret_cast<const unsigned char *>(data.data()), data.size()) == 1 &&
      EVP_MAC_final(ctx, out, &len, sizeof out) == 1;
  EVP_MAC_CTX_free(ctx);
  if (!ok) throw std::runtime_error("HMAC failed");
  return std::string(reinterpret_cast<char *>(out), len);
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  return HmacSha256(key).mac(data);
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed");
  static const char *hex = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (unsigned i = 0; i < len; ++i) {
    out += hex[md[i] >> 4];
    out += hex[md[i] & 0x0f];
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool valid_utf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n;
    unsigned cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false; // truncated sequence
    for (size_t k = 1; k <= n; ++k) {
      auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // overlong forms, surrogates and values past U+10FFFF are not UTF-8
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
      return false;
    i += n + 1;
  }
  return true;
}

} // namespace latch::secure
