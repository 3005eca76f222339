// Foreign password hashes: each format's parameters parsed and bounded here, the hashing done by
// libxcrypt (bcrypt and the crypt formats), OpenSSL (PBKDF2, scrypt, SHA-256) and libsodium
// (argon2). The formats are those of the libraries' own output: Django's hashers.py, Werkzeug's
// security.py, libxcrypt's crypt(5), the PHC string format.
#include "auth/password_formats.h"

#include <crypt.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <array>
#include <charconv>
#include <memory>
#include <set>
#include <vector>

namespace latch::password_formats {

namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Decimal digits only (no sign, no space), at most 18 of them.
std::optional<std::uint64_t> number(std::string_view s) {
  if (s.empty() || s.size() > 18) return std::nullopt;
  std::uint64_t n = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
  return n;
}

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  for (;;) {
    std::size_t at = s.find(sep);
    out.push_back(s.substr(0, at));
    if (at == std::string_view::npos) return out;
    s.remove_prefix(at + 1);
  }
}

bool all_of(std::string_view s, std::string_view alphabet) {
  return s.find_first_not_of(alphabet) == std::string_view::npos;
}

constexpr std::string_view kCryptAlphabet =
    "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
constexpr std::string_view kBase64Alphabet =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view kHexLower = "0123456789abcdef";

Checked ok(Format f) {
  return {f, ""};
}
Checked refused(std::string problem) {
  return {std::nullopt, std::move(problem)};
}

// $argon2id$v=19$m=65536,t=3,p=4$SALT$HASH (v= may be absent: version 1.0).
Checked check_argon2(std::string_view s, Format as) {
  std::string_view rest;
  if (starts_with(s, "$argon2id$"))
    rest = s.substr(10);
  else if (starts_with(s, "$argon2i$"))
    rest = s.substr(9);
  else
    return refused("not an argon2id or argon2i PHC string");
  auto parts = split(rest, '$');
  if (!parts.empty() && starts_with(parts[0], "v=")) {
    auto v = number(parts[0].substr(2));
    if (!v || (*v != 19 && *v != 16)) return refused("argon2: unknown version");
    parts.erase(parts.begin());
  }
  if (parts.size() != 3) return refused("argon2: not $m=..,t=..,p=..$salt$hash");
  auto params = split(parts[0], ',');
  if (params.size() != 3 || !starts_with(params[0], "m=") || !starts_with(params[1], "t=") ||
      !starts_with(params[2], "p="))
    return refused("argon2: parameters are not m=..,t=..,p=..");
  auto m = number(params[0].substr(2)), t = number(params[1].substr(2)),
       p = number(params[2].substr(2));
  if (!m || !t || !p || *t == 0 || *p == 0 || *m < 8 * *p) return refused("argon2: bad parameters");
  if (*m > kMaxArgon2MemoryKib || *t > kMaxArgon2Iterations || *m * *t > kMaxArgon2Work ||
      *p > kMaxArgon2Lanes)
    return refused("argon2: m=" + std::to_string(*m) + ",t=" + std::to_string(*t) +
                   ",p=" + std::to_string(*p) +
                   " is past the bounds (m <= 1 GiB, t <= 16, "
                   "m x t <= 4 GiB, p <= 64)");
  if (parts[1].empty() || parts[2].empty() || !all_of(parts[1], kBase64Alphabet) ||
      !all_of(parts[2], kBase64Alphabet))
    return refused("argon2: salt or hash is not base64");
  return ok(as);
}

// $2b$12$ + 22 characters of salt and 31 of hash, crypt's base64 alphabet.
Checked check_bcrypt(std::string_view s, Format as) {
  if (s.size() != 60 || !starts_with(s, "$2") || (s[2] != 'a' && s[2] != 'b' && s[2] != 'y') ||
      s[3] != '$' || s[6] != '$' || !all_of(s.substr(7), kCryptAlphabet))
    return refused("bcrypt: not $2a$, $2b$ or $2y$, a two-digit cost and 53 characters");
  auto cost = number(s.substr(4, 2));
  if (!cost || *cost < 4) return refused("bcrypt: bad cost");
  if (*cost > kMaxBcryptCost)
    return refused("bcrypt: cost " + std::to_string(*cost) + " is past the bound (" +
                   std::to_string(kMaxBcryptCost) + ")");
  return ok(as);
}

// $5$[rounds=N$]SALT$HASH and $6$...: libxcrypt checks the rest; the rounds are bounded here.
Checked check_sha_crypt(std::string_view s) {
  const Format f = s[1] == '5' ? Format::sha256_crypt : Format::sha512_crypt;
  const std::size_t hash_length = f == Format::sha256_crypt ? 43 : 86;
  auto parts = split(s.substr(3), '$');
  if (parts.size() == 3) {
    if (!starts_with(parts[0], "rounds=")) return refused("sha-crypt: bad rounds=");
    auto rounds = number(parts[0].substr(7));
    if (!rounds) return refused("sha-crypt: bad rounds=");
    if (*rounds > kMaxCryptRounds)
      return refused("sha-crypt: rounds=" + std::to_string(*rounds) + " is past the bound (" +
                     std::to_string(kMaxCryptRounds) + ")");
    parts.erase(parts.begin());
  }
  if (parts.size() != 2 || parts[0].size() > 16 || parts[1].size() != hash_length ||
      !all_of(parts[1], kCryptAlphabet))
    return refused("sha-crypt: not [rounds=N$]salt$hash");
  return ok(f);
}

// The parameter fields libxcrypt itself writes for yescrypt costs 1 to kMaxYescryptCost
// (crypt_gensalt_rn): a hash with any other is refused rather than decoded by hand.
const std::set<std::string> &yescrypt_parameters() {
  static const std::set<std::string> allowed = [] {
    std::set<std::string> out;
    const std::array<char, 16> entropy{};
    for (unsigned long cost = 1; cost <= kMaxYescryptCost; ++cost) {
      char setting[CRYPT_GENSALT_OUTPUT_SIZE];
      if (!crypt_gensalt_rn("$y$", cost, entropy.data(), static_cast<int>(entropy.size()), setting,
                            sizeof setting))
        continue;
      std::string_view text(setting);
      text.remove_prefix(3);
      out.emplace(text.substr(0, text.find('$')));
    }
    return out;
  }();
  return allowed;
}

Checked check_yescrypt(std::string_view s) {
  auto parts = split(s.substr(3), '$');
  if (parts.size() != 3 || parts[1].empty() || parts[2].empty() ||
      !all_of(parts[1], kCryptAlphabet) || !all_of(parts[2], kCryptAlphabet))
    return refused("yescrypt: not $y$params$salt$hash");
  if (!yescrypt_parameters().count(std::string(parts[0])))
    return refused("yescrypt: parameters '" + std::string(parts[0]) +
                   "' are past the bounds (those libxcrypt makes for costs 1 to " +
                   std::to_string(kMaxYescryptCost) + ", at most 256 MiB)");
  return ok(Format::yescrypt);
}

const EVP_MD *digest_named(std::string_view name) {
  if (name == "sha256") return EVP_sha256();
  if (name == "sha1") return EVP_sha1();
  if (name == "sha512") return EVP_sha512();
  return nullptr;
}

Checked check_pbkdf2_iterations(std::optional<std::uint64_t> iterations) {
  if (!iterations || *iterations == 0) return refused("pbkdf2: bad iteration count");
  if (*iterations > kMaxPbkdf2Iterations)
    return refused("pbkdf2: " + std::to_string(*iterations) + " iterations is past the bound (" +
                   std::to_string(kMaxPbkdf2Iterations) + ")");
  return {};
}

// pbkdf2_sha256$ITERATIONS$SALT$BASE64 (Django's PBKDF2PasswordHasher and its SHA-1 sibling).
Checked check_django_pbkdf2(std::string_view s) {
  auto parts = split(s, '$');
  if (parts.size() != 4) return refused("django pbkdf2: not algorithm$iterations$salt$hash");
  const std::size_t length = parts[0] == "pbkdf2_sha256" ? 44 : 28; // base64 of 32 or 20 bytes
  if (auto bad = check_pbkdf2_iterations(number(parts[1])); !bad.problem.empty()) return bad;
  const std::string_view hash = parts[3];
  const std::size_t padding = hash.find('=');
  if (parts[2].empty() || hash.size() != length ||
      !all_of(hash.substr(0, padding), kBase64Alphabet) ||
      (padding != std::string_view::npos && !all_of(hash.substr(padding), "=")))
    return refused("django pbkdf2: bad salt or hash");
  return ok(Format::django_pbkdf2);
}

// pbkdf2:sha256:ITERATIONS$SALT$HEX and scrypt:N:r:p$SALT$HEX (Werkzeug's
// generate_password_hash, which always writes the parameters).
Checked check_werkzeug(std::string_view s) {
  auto parts = split(s, '$');
  if (parts.size() != 3 || parts[1].empty())
    return refused("werkzeug: not method$salt$hash with a salt");
  auto method = split(parts[0], ':');
  if (method[0] == "pbkdf2") {
    if (method.size() != 3) return refused("werkzeug pbkdf2: not pbkdf2:HASH:ITERATIONS");
    const EVP_MD *md = digest_named(method[1]);
    if (!md)
      return refused("werkzeug pbkdf2: hash '" + std::string(method[1]) +
                     "' is not sha256, sha1 or sha512");
    if (auto bad = check_pbkdf2_iterations(number(method[2])); !bad.problem.empty()) return bad;
    if (parts[2].size() != 2 * static_cast<std::size_t>(EVP_MD_get_size(md)) ||
        !all_of(parts[2], kHexLower))
      return refused("werkzeug pbkdf2: bad hash");
    return ok(Format::werkzeug_pbkdf2);
  }
  if (method.size() != 4) return refused("werkzeug scrypt: not scrypt:N:r:p");
  auto n = number(method[1]), r = number(method[2]), p = number(method[3]);
  if (!n || !r || !p || *n < 2 || (*n & (*n - 1)) != 0 || *r == 0 || *p == 0 || *r > 1024)
    return refused("werkzeug scrypt: bad N, r or p (N a power of two)");
  // Each factor is bounded before the products, so none overflows.
  if (*n > kMaxScryptBytes || *p > kMaxScryptWork || 128 * *n * *r > kMaxScryptBytes ||
      128 * *n * *r * *p > kMaxScryptWork)
    return refused("werkzeug scrypt: N=" + std::to_string(*n) + ", r=" + std::to_string(*r) +
                   ", p=" + std::to_string(*p) +
                   " is past the bounds (128 x N x r <= 256 MiB, and x p <= 1 GiB)");
  if (parts[2].size() != 128 || !all_of(parts[2], kHexLower))
    return refused("werkzeug scrypt: bad hash");
  return ok(Format::werkzeug_scrypt);
}

// crypt_rn's answer for a password: the whole hash, or "" when it fails or the password holds
// a NUL (C strings would cut it there, and another password would match).
std::string crypt_hash(std::string_view password, std::string_view setting) {
  if (password.find('\0') != std::string_view::npos) return "";
  auto data = std::make_unique<crypt_data>(); // ~32 KiB: not on the stack
  const std::string key(password), salt(setting);
  const char *out = crypt_rn(key.c_str(), salt.c_str(), data.get(), sizeof *data);
  std::string result = out && out[0] != '*' ? out : "";
  sodium_memzero(data.get(), sizeof *data);
  return result;
}

bool same(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool verify_crypt(std::string_view stored, std::string_view password) {
  std::string made = crypt_hash(password, stored);
  return !made.empty() && same(made, stored);
}

bool verify_argon2(std::string_view phc, std::string_view password) {
  const std::string text(phc);
  return crypto_pwhash_str_verify(text.c_str(), password.data(), password.size()) == 0;
}

std::string hex(const unsigned char *bytes, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) {
    out += kHexLower[bytes[i] >> 4];
    out += kHexLower[bytes[i] & 15];
  }
  return out;
}

std::optional<std::string> pbkdf2(std::string_view password, std::string_view salt,
                                  std::uint64_t iterations, const EVP_MD *md) {
  std::string out(static_cast<std::size_t>(EVP_MD_get_size(md)), '\0');
  if (PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()),
                        reinterpret_cast<const unsigned char *>(salt.data()),
                        static_cast<int>(salt.size()), static_cast<int>(iterations), md,
                        static_cast<int>(out.size()),
                        reinterpret_cast<unsigned char *>(out.data())) != 1)
    return std::nullopt;
  return out;
}

bool verify_django_pbkdf2(std::string_view stored, std::string_view password) {
  auto parts = split(stored, '$');
  const EVP_MD *md = parts[0] == "pbkdf2_sha256" ? EVP_sha256() : EVP_sha1();
  auto key = pbkdf2(password, parts[2], *number(parts[1]), md);
  if (!key) return false;
  std::string encoded(4 * ((key->size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(encoded.data()),
                                reinterpret_cast<const unsigned char *>(key->data()),
                                static_cast<int>(key->size()));
  encoded.resize(static_cast<std::size_t>(n));
  return same(encoded, parts[3]);
}

bool verify_werkzeug(std::string_view stored, std::string_view password) {
  auto parts = split(stored, '$');
  auto method = split(parts[0], ':');
  std::optional<std::string> key;
  if (method[0] == "pbkdf2") {
    key = pbkdf2(password, parts[1], *number(method[2]), digest_named(method[1]));
  } else {
    key.emplace(64, '\0');
    // Enough for N and r within the bounds (OpenSSL needs 128 x r x (N + p + 2) bytes or so).
    const std::uint64_t maxmem = kMaxScryptBytes * 2;
    if (EVP_PBE_scrypt(password.data(), password.size(),
                       reinterpret_cast<const unsigned char *>(parts[1].data()), parts[1].size(),
                       *number(method[1]), *number(method[2]), *number(method[3]), maxmem,
                       reinterpret_cast<unsigned char *>(key->data()), key->size()) != 1)
      key.reset();
  }
  if (!key) return false;
  return same(hex(reinterpret_cast<const unsigned char *>(key->data()), key->size()), parts[2]);
}

// Django's BCryptSHA256PasswordHasher: bcrypt of the hex SHA-256 of the password (so bcrypt's
// 72-byte limit does not cut it).
bool verify_django_bcrypt_sha256(std::string_view inner, std::string_view password) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(password.data(), password.size(), digest, &length, EVP_sha256(), nullptr) != 1)
    return false;
  return verify_crypt(inner, hex(digest, length));
}

} // namespace

Checked check(std::string_view s) {
  if (s.empty()) return refused("empty");
  if (s.size() > 1024) return refused("longer than any hash");
  if (s.find_first_of(std::string_view("\0\n\r ", 4)) != std::string_view::npos)
    return refused("contains a NUL, a space or a line break");
  if (s[0] == '!') return ok(Format::django_unusable);
  if (starts_with(s, "$argon2")) return check_argon2(s, Format::argon2);
  if (starts_with(s, "$2")) return check_bcrypt(s, Format::bcrypt);
  if (starts_with(s, "$5$") || starts_with(s, "$6$")) return check_sha_crypt(s);
  if (starts_with(s, "$y$")) return check_yescrypt(s);
  if (starts_with(s, "pbkdf2_sha256$") || starts_with(s, "pbkdf2_sha1$"))
    return check_django_pbkdf2(s);
  if (starts_with(s, "argon2$")) {
    Checked inner = check_argon2(s.substr(6), Format::django_argon2);
    if (!inner) inner.problem = "django " + inner.problem;
    return inner;
  }
  if (starts_with(s, "bcrypt_sha256$$"))
    return check_bcrypt(s.substr(14), Format::django_bcrypt_sha256);
  if (starts_with(s, "bcrypt$$")) return check_bcrypt(s.substr(7), Format::django_bcrypt);
  if (starts_with(s, "pbkdf2:") || starts_with(s, "scrypt:")) return check_werkzeug(s);
  return refused("unknown hash format");
}

bool verify(std::string_view stored, std::string_view password) {
  Checked checked = check(stored);
  if (!checked) return false; // past the bounds or not understood: never computed
  switch (*checked.format) {
  case Format::argon2: return verify_argon2(stored, password);
  case Format::django_argon2: return verify_argon2(stored.substr(6), password);
  case Format::bcrypt:
  case Format::sha256_crypt:
  case Format::sha512_crypt:
  case Format::yescrypt: return verify_crypt(stored, password);
  case Format::django_bcrypt: return verify_crypt(stored.substr(7), password);
  case Format::django_bcrypt_sha256:
    return verify_django_bcrypt_sha256(stored.substr(14), password);
  case Format::django_pbkdf2: return verify_django_pbkdf2(stored, password);
  case Format::werkzeug_pbkdf2:
  case Format::werkzeug_scrypt: return verify_werkzeug(stored, password);
  case Format::django_unusable: return false; // Django's set_unusable_password()
  }
  return false;
}

const char *name(Format format) {
  switch (format) {
  case Format::argon2: return "argon2 (PHC)";
  case Format::bcrypt: return "bcrypt";
  case Format::sha256_crypt: return "sha256-crypt";
  case Format::sha512_crypt: return "sha512-crypt";
  case Format::yescrypt: return "yescrypt";
  case Format::django_pbkdf2: return "django pbkdf2";
  case Format::django_argon2: return "django argon2";
  case Format::django_bcrypt: return "django bcrypt";
  case Format::django_bcrypt_sha256: return "django bcrypt_sha256";
  case Format::django_unusable: return "django unusable password";
  case Format::werkzeug_pbkdf2: return "werkzeug pbkdf2";
  case Format::werkzeug_scrypt: return "werkzeug scrypt";
  }
  return "unknown";
}

} // namespace latch::password_formats
