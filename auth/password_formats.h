// Password hashes made by the backends Latch replaces: recognised, bounded and verified with
// libraries only (libxcrypt, OpenSSL, libsodium), so imported users sign in with their password.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace latch::password_formats {

enum class Format {
  argon2,        // $argon2id$ / $argon2i$ PHC (libsodium, argon2-cffi, @node-rs/argon2)
  bcrypt,        // $2a$ / $2b$ / $2y$ (Node bcrypt/bcryptjs, Go x/crypto/bcrypt, python bcrypt)
  sha256_crypt,  // $5$
  sha512_crypt,  // $6$
  yescrypt,      // $y$
  django_pbkdf2, // pbkdf2_sha256$ / pbkdf2_sha1$
  django_argon2, // argon2$argon2id$... (a PHC string after "argon2")
  django_bcrypt, // bcrypt$$2b$...
  django_bcrypt_sha256, // bcrypt_sha256$$2b$... (bcrypt of the hex SHA-256 of the password)
  django_unusable,      // !...: set_unusable_password(); never signs in
  werkzeug_pbkdf2,      // pbkdf2:sha256:ITERATIONS$salt$hex
  werkzeug_scrypt,      // scrypt:N:r:p$salt$hex
};

// The most a stored hash may cost to verify (SECURITY.md, "Imported password hashes"): a hash
// past them is refused at import, and never verified at sign-in, so no row can make a sign-in
// burn a core for minutes or take gigabytes. The times are one core of the test machine.
inline constexpr unsigned kMaxBcryptCost = 16;                   // ~3.5 s (12, the usual: 0.25 s)
inline constexpr std::uint64_t kMaxPbkdf2Iterations = 5'000'000; // ~1.5 s
inline constexpr std::uint64_t kMaxCryptRounds = 5'000'000;      // $5$ / $6$ rounds=: ~1.5 s
inline constexpr std::uint64_t kMaxScryptBytes = 256ULL << 20;   // 128 x N x r: ~0.9 s
inline constexpr std::uint64_t kMaxScryptWork = 1ULL << 30;      // 128 x N x r x p: ~3.5 s
inline constexpr std::uint64_t kMaxArgon2MemoryKib = 1U << 20;   // 1 GiB (libsodium SENSITIVE)
inline constexpr std::uint64_t kMaxArgon2Iterations = 16;        // t
inline constexpr std::uint64_t kMaxArgon2Work = 4U << 20;        // m (KiB) x t: 1 GiB x 4, ~4.5 s
inline constexpr std::uint64_t kMaxArgon2Lanes = 64;             // p
inline constexpr unsigned kMaxYescryptCost = 9; // libxcrypt's cost 9: 256 MiB (11 is 1 GiB)

// What a stored hash is, or why it is refused: an unknown format, a malformed one, or
// parameters past the bounds above.
struct Checked {
  std::optional<Format> format;
  std::string problem; // empty when format is set
  explicit operator bool() const { return format.has_value(); }
};
Checked check(std::string_view stored);

// Whether password is the one stored was made from. False for every hash check() refuses and
// for an unusable one; compares in constant time. Costs what the hash's parameters say.
bool verify(std::string_view stored, std::string_view password);

// "bcrypt", "django pbkdf2_sha256", ...: for messages.
const char *name(Format format);

} // namespace latch::password_formats
