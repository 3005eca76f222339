// Unit tests for auth/password_formats: each foreign format recognised, bounded and verified.
// The hashes below are the real output of the libraries named (python3-bcrypt, argon2-cffi,
// Django 3.2's make_password, Werkzeug 2.2's generate_password_hash, Python's crypt, mkpasswd),
// all of the password "correct horse"; the black-box tests (http/test_import.cpp) make fresh ones.
#include "auth/password.h"
#include "auth/password_formats.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace latch;
namespace pf = latch::password_formats;

namespace {

const std::string kPassword = "correct horse";

struct Sample {
  pf::Format format;
  std::string hash;
};

const std::vector<Sample> &samples() {
  static const std::vector<Sample> all = {
      {pf::Format::bcrypt, "$2b$04$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2"},
      {pf::Format::argon2,
       "$argon2id$v=19$m=64,t=1,p=2$yE+UOAVU++4XJ4QJuOPdzA$VEDA1kDZPjXUtLN+QMNeSQ"},
      {pf::Format::argon2,
       "$argon2i$v=19$m=64,t=1,p=1$UnTbhT8+qtTZOn8WySWfXA$GIuZ7OywjXP+mu5eYH7UiQ"},
      {pf::Format::django_pbkdf2, "pbkdf2_sha256$260000$ofpgfSihi9ngpZp169WWD1$"
                                  "zU8by1nFxY4A7GS2FVOQBjyCjuVFy3dM8o2JbFNIovc="},
      {pf::Format::django_pbkdf2,
       "pbkdf2_sha1$260000$6NbIJAU4bTw3k2JMtp7XxL$tDaO4LnOvgFrRQtx4s+Arjjm55Y="},
      {pf::Format::django_argon2, "argon2$argon2id$v=19$m=102400,t=2,p=8$"
                                  "dmQ3UXVKMkNxNHVjUmIyRTZHZ3JWdQ$aDxMS/TyeldwcYcjcSEuhg"},
      {pf::Format::django_bcrypt_sha256,
       "bcrypt_sha256$$2b$12$.YSloglRySLhExJbm4PioO4NC6UQj6zUeLiIm1oXJGfs4PyyRy.mW"},
      {pf::Format::django_bcrypt,
       "bcrypt$$2b$12$JSwDfmgVHhtNy093FnhcBORluQPtokZo9qULiggITYozryiS3d6Dq"},
      {pf::Format::werkzeug_pbkdf2,
       "pbkdf2:sha256:1000$GlMKAPHhmUrCW4yd$"
       "58eda91e224dc3837dd3261721eb64d6d583f97a28fe2d32f6861796a6797e0f"},
      {pf::Format::werkzeug_pbkdf2,
       "pbkdf2:sha1:1000$thXT0f1BgwhflqOW$3f9b4d87be3e75b9aea826ed306d2479cadecdfc"},
      // Werkzeug 3's scrypt format (Debian's Werkzeug 2.2 predates it): hashlib.scrypt, dklen 64.
      {pf::Format::werkzeug_scrypt,
       "scrypt:1024:8:1$Zq3aX9sPqLm2Tn7w$"
       "f98c0fbd0cef0cd83a79ee14ee4d7524f07d49dfdcdb47d11b23e54bae8"
       "bcfc445e3139b8f4f15fd5eac7d7609a0cf16494113c39b0c6797b79e73cbe5104b78"},
      {pf::Format::sha512_crypt,
       "$6$Iy/dm1Wu0J0FAU1D$RXn11y9mT/x1ygOqz289bhM5DQygBi6a.zLLW6RuQ5crxV7pb7XKPyUkfSYWoOCcaXLs4"
       "xFyKCh5YIQi4VocA0"},
      {pf::Format::sha256_crypt,
       "$5$rounds=1000$abcdefgh$ue35C0ITbth1b5zVUjrjm2mMmsmMKiodEeH2UV/Hq10"},
      {pf::Format::yescrypt,
       "$y$j9T$ar7XGEnf6k6gFdfvE9FIH.$eDqhXKhalpQqqz/J/E/jUPg/A21c80Fy2NjJhh0pxq."},
  };
  return all;
}

} // namespace

TEST_CASE("every format is recognised and verifies its password, and only its password") {
  for (const auto &s : samples()) {
    CAPTURE(s.hash);
    pf::Checked checked = pf::check(s.hash);
    REQUIRE(checked);
    CHECK(*checked.format == s.format);
    CHECK(pf::verify(s.hash, kPassword));
    CHECK_FALSE(pf::verify(s.hash, "correct horsE"));
    CHECK_FALSE(pf::verify(s.hash, ""));
  }
}

TEST_CASE("a hash altered by one character no longer verifies") {
  for (const auto &s : samples()) {
    CAPTURE(s.hash);
    std::string altered = s.hash;
    char &last = altered[altered.size() - 2]; // the last may carry unused bits
    last = last == 'a' ? 'b' : 'a';
    CHECK_FALSE(pf::verify(altered, kPassword));
  }
}

TEST_CASE("bcrypt variants $2a$ and $2y$ verify as $2b$ does") {
  // The same salt and hash under each prefix: libxcrypt's bcrypt treats them alike for ASCII.
  const std::string b = "$2b$04$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2";
  CHECK(pf::verify("$2a$" + b.substr(4), kPassword));
  CHECK(pf::verify("$2y$" + b.substr(4), kPassword));
  CHECK_FALSE(pf::verify("$2x$" + b.substr(4), kPassword)); // not a format we accept
}

TEST_CASE("Django's unusable password is recognised and never verifies") {
  const std::string unusable = "!AgSClLT2kUE0LKr0BOuLh7WkhUIb3d91yLnQAmC1";
  REQUIRE(pf::check(unusable));
  CHECK(*pf::check(unusable).format == pf::Format::django_unusable);
  CHECK_FALSE(pf::verify(unusable, kPassword));
  CHECK_FALSE(pf::verify(unusable, unusable));
  CHECK_FALSE(pf::verify(unusable, ""));
}

TEST_CASE("parameters past the bounds are refused before anything is computed") {
  const std::vector<std::string> refused = {
      "$2b$31$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2",
      "$2b$17$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2",
      "pbkdf2_sha256$1000000000$ofpgfSihi9ngpZp169WWD1$"
      "zU8by1nFxY4A7GS2FVOQBjyCjuVFy3dM8o2JbFNIovc=",
      "pbkdf2:sha256:1000000000$GlMKAPHhmUrCW4yd$"
      "58eda91e224dc3837dd3261721eb64d6d583f97a28fe2d32f6861796a6797e0f",
      "scrypt:1073741824:8:1$Zq3aX9sPqLm2Tn7w$" + std::string(128, 'a'),
      "scrypt:524288:8:1$Zq3aX9sPqLm2Tn7w$" + std::string(128, 'a'), // 512 MiB
      "scrypt:16384:8:65$Zq3aX9sPqLm2Tn7w$" + std::string(128, 'a'), // 1 GiB of work and more
      "$argon2id$v=19$m=2097152,t=1,p=1$yE+UOAVU++4XJ4QJuOPdzA$VEDA1kDZPjXUtLN+QMNeSQ",
      "$argon2id$v=19$m=1048576,t=5,p=1$yE+UOAVU++4XJ4QJuOPdzA$VEDA1kDZPjXUtLN+QMNeSQ",
      "$argon2id$v=19$m=65536,t=17,p=1$yE+UOAVU++4XJ4QJuOPdzA$VEDA1kDZPjXUtLN+QMNeSQ",
      "argon2$argon2id$v=19$m=4194304,t=2,p=8$dmQ3UXVKMkNxNHVjUmIyRTZHZ3JWdQ$aDxMS/"
      "TyeldwcYcjcSEuhg",
      "$6$rounds=999999999$Iy/dm1Wu0J0FAU1D$RXn11y9mT/"
      "x1ygOqz289bhM5DQygBi6a.zLLW6RuQ5crxV7pb7XKPyUk"
      "fSYWoOCcaXLs4xFyKCh5YIQi4VocA0",
      "$y$jFT$ar7XGEnf6k6gFdfvE9FIH.$eDqhXKhalpQqqz/J/E/jUPg/A21c80Fy2NjJhh0pxq.", // 1 GiB
  };
  for (const auto &hash : refused) {
    CAPTURE(hash);
    pf::Checked checked = pf::check(hash);
    CHECK_FALSE(checked);
    CHECK(checked.problem.find("past the bound") != std::string::npos);
    CHECK_FALSE(pf::verify(hash, kPassword));
  }
  // At the bounds themselves: accepted.
  CHECK(pf::check("scrypt:131072:16:1$salt$" + std::string(128, 'a'))); // 256 MiB
  CHECK(pf::check("scrypt:16384:8:64$salt$" + std::string(128, 'a')));  // 1 GiB of work
  CHECK(pf::check("$2b$16$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2"));
}

TEST_CASE("malformed and unknown hashes are refused with a reason") {
  const std::vector<std::string> bad = {
      "",
      "plaintext-password",
      "md5$salt$0123456789abcdef0123456789abcdef",
      "sha1$salt$0123",
      "$1$saltsalt$abcdefghijklmnopqrstuv", // md5-crypt: not accepted
      "$2b$04$short",
      "$2b$4x$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2",
      "pbkdf2_sha256$-5$salt$zU8by1nFxY4A7GS2FVOQBjyCjuVFy3dM8o2JbFNIovc=",
      "pbkdf2_sha256$260000$$zU8by1nFxY4A7GS2FVOQBjyCjuVFy3dM8o2JbFNIovc=",
      "pbkdf2_sha256$260000$salt$tooshort",
      "pbkdf2:sha256$GlMKAPHhmUrCW4yd$58eda91e", // no iteration count
      "pbkdf2:md5:1000$GlMKAPHhmUrCW4yd$58eda91e224dc3837dd3261721eb64d6",
      "scrypt:1000:8:1$salt$" + std::string(128, 'a'), // N not a power of two
      "scrypt:1024:8$salt$" + std::string(128, 'a'),
      "$argon2d$v=19$m=64,t=1,p=1$yE+UOAVU++4XJ4QJuOPdzA$VEDA1kDZPjXUtLN+QMNeSQ",
      "$argon2id$v=19$t=1,m=64,p=1$yE+UOAVU++4XJ4QJuOPdzA$VEDA1kDZPjXUtLN+QMNeSQ",
      "$argon2id$v=19$m=64,t=1,p=1$$VEDA1kDZPjXUtLN+QMNeSQ",
      "$y$zzz$ar7XGEnf6k6gFdfvE9FIH.$eDqhXKhalpQqqz/J/E/jUPg/A21c80Fy2NjJhh0pxq.",
      "$2b$04$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2\n",
      std::string("$2b$04$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq\0", 60),
  };
  for (const auto &hash : bad) {
    CAPTURE(hash);
    pf::Checked checked = pf::check(hash);
    CHECK_FALSE(checked);
    CHECK_FALSE(checked.problem.empty());
    CHECK_FALSE(pf::verify(hash, kPassword));
  }
}

TEST_CASE("a password holding a NUL never matches a crypt hash of its prefix") {
  CHECK_FALSE(pf::verify("$2b$04$9xSycSidOvm3AdlMQJxJc.XhACfI5seLjSrCpr/8.v.PyN7Dt4cq2",
                         std::string("correct horse\0tail", 18)));
}

TEST_CASE("PasswordHasher verifies an imported hash and asks for its replacement") {
  PasswordParams cheap;
  cheap.memory_kib = 128; // not the samples' m=64: an argon2id sample is replaced too
  cheap.iterations = 1;
  PasswordHasher hasher(cheap, 1, 1);
  for (const auto &s : samples()) {
    CAPTURE(s.hash);
    auto right = hasher.verify(s.hash, kPassword);
    REQUIRE(right);
    CHECK(right->match);
    CHECK(right->needs_rehash);
    auto wrong = hasher.verify(s.hash, "wrong");
    REQUIRE(wrong);
    CHECK_FALSE(wrong->match);
  }
  // Ours at our own parameters: nothing to replace.
  auto ours = hasher.hash(kPassword);
  REQUIRE(ours);
  auto verdict = hasher.verify(ours.value(), kPassword);
  REQUIRE(verdict);
  CHECK(verdict->match);
  CHECK_FALSE(verdict->needs_rehash);
}
