// Unit tests for auth/secure: base64url, UUIDs, HMAC/SHA-256, constant-time compare, UTF-8.
#include "auth/secure.h"

#include <doctest/doctest.h>

#include <set>
#include <string>

using namespace latch;

namespace {

std::string to_hex(const std::string &bytes) {
  static const char *digits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += digits[c >> 4];
    out += digits[c & 0x0f];
  }
  return out;
}

// xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx in lower-case hex, V one of 8 9 a b.
bool uuid_v4_layout(const std::string &id) {
  if (id.size() != 36) return false;
  for (size_t i = 0; i < id.size(); ++i) {
    const char c = id[i];
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (c != '-') return false;
    } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
  }
  return id[14] == '4' && std::string("89ab").find(id[19]) != std::string::npos;
}

} // namespace

TEST_CASE("base64url encodes the RFC 4648 vectors without padding") {
  CHECK(secure::base64url_encode("") == "");
  CHECK(secure::base64url_encode("f") == "Zg");
  CHECK(secure::base64url_encode("fo") == "Zm8");
  CHECK(secure::base64url_encode("foo") == "Zm9v");
  CHECK(secure::base64url_encode("foob") == "Zm9vYg");
  CHECK(secure::base64url_encode("fooba") == "Zm9vYmE");
  CHECK(secure::base64url_encode("foobar") == "Zm9vYmFy");
}

TEST_CASE("base64url uses the URL-safe alphabet instead of plus and slash") {
  // Standard base64 of fb ff bf is "+/+/"; the URL-safe alphabet gives "-_-_".
  CHECK(secure::base64url_encode(std::string("\xfb\xff\xbf", 3)) == "-_-_");
  CHECK(secure::base64url_encode(std::string("\xfb\xff", 2)) == "-_8");
  CHECK(secure::base64url_decode("-_-_") == std::string("\xfb\xff\xbf", 3));
}

TEST_CASE("base64url decoding inverts encoding for every byte value and length") {
  std::string all;
  for (int i = 0; i < 256; ++i)
    all += static_cast<char>(i);
  for (size_t len = 0; len <= all.size(); len += 7) {
    std::string bytes = all.substr(0, len);
    auto decoded = secure::base64url_decode(secure::base64url_encode(bytes));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == bytes);
  }
  CHECK(secure::base64url_decode(secure::base64url_encode(all)) == all);
  CHECK(secure::base64url_decode("") == std::string());
}

TEST_CASE("base64url decoding is strict: no padding, no standard alphabet, no junk") {
  CHECK(secure::base64url_decode("Zg") == std::string("f"));
  CHECK_FALSE(secure::base64url_decode("Zg==").has_value());
  CHECK_FALSE(secure::base64url_decode("Zm8=").has_value());
  CHECK_FALSE(secure::base64url_decode("+/+/").has_value());
  CHECK_FALSE(secure::base64url_decode("ab+c").has_value());
  CHECK_FALSE(secure::base64url_decode("ab/c").has_value());
  CHECK_FALSE(secure::base64url_decode("Zm9v YmFy").has_value());
  CHECK_FALSE(secure::base64url_decode("Zm9v\n").has_value());
  CHECK_FALSE(secure::base64url_decode("Zm9v!").has_value());
  CHECK_FALSE(secure::base64url_decode(std::string("Zm9v\0", 5)).has_value());
  // A single leftover character cannot encode a byte.
  CHECK_FALSE(secure::base64url_decode("Zm9vY").has_value());
  // Non-zero unused trailing bits: "Zh" would also read as "f" if they were ignored.
  CHECK_FALSE(secure::base64url_decode("Zh").has_value());
  // Bytes above 0x7f are not '_' (libsodium 1.0.18 alone would read them so).
  for (int c = 0x80; c <= 0xff; ++c) {
    std::string text = "Zm9v";
    text[3] = static_cast<char>(c);
    CHECK_FALSE(secure::base64url_decode(text).has_value());
  }
}

TEST_CASE("random tokens are base64url of the requested number of random bytes") {
  CHECK(secure::random_bytes(0).empty());
  CHECK(secure::random_bytes(32).size() == 32);
  std::string t = secure::random_token(16);
  CHECK(t.size() == 22);
  auto raw = secure::base64url_decode(t);
  REQUIRE(raw.has_value());
  CHECK(raw->size() == 16);
  CHECK(secure::random_token(16) != t);
  CHECK(secure::random_bytes(32) != secure::random_bytes(32));
}

TEST_CASE("uuid_v4 has the RFC 4122 layout, version 4 and the 10xx variant") {
  std::set<char> variants;
  for (int i = 0; i < 200; ++i) {
    std::string id = secure::uuid_v4();
    REQUIRE(id.size() == 36);
    CHECK(uuid_v4_layout(id));
    CHECK(id[14] == '4');
    variants.insert(id[19]);
  }
  // The two variant bits are fixed and the other two random: all four digits turn up.
  CHECK(variants == std::set<char>{'8', '9', 'a', 'b'});
}

TEST_CASE("the uuid layout check itself refuses near misses") {
  CHECK(uuid_v4_layout("123e4567-e89b-42d3-a456-426614174000"));
  CHECK_FALSE(uuid_v4_layout("123e4567-e89b-12d3-a456-426614174000")); // version 1
  CHECK_FALSE(uuid_v4_layout("123e4567-e89b-42d3-c456-426614174000")); // variant 110x
  CHECK_FALSE(uuid_v4_layout("123E4567-E89B-42D3-A456-426614174000")); // upper case
  CHECK_FALSE(uuid_v4_layout("123e4567e89b42d3a456426614174000"));     // no dashes
}

TEST_CASE("uuid_v4 does not repeat over ten thousand draws") {
  std::set<std::string> seen;
  for (int i = 0; i < 10000; ++i)
    seen.insert(secure::uuid_v4());
  CHECK(seen.size() == 10000);
}

TEST_CASE("hmac_sha256 matches RFC 4231 test case 2") {
  std::string mac = secure::hmac_sha256("Jefe", "what do ya want for nothing?");
  CHECK(mac.size() == 32);
  CHECK(to_hex(mac) == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST_CASE("hmac_sha256 matches RFC 4231 test case 1 and depends on the key") {
  std::string key(20, '\x0b');
  CHECK(to_hex(secure::hmac_sha256(key, "Hi There")) ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(secure::hmac_sha256("Jefe", "data") != secure::hmac_sha256("Jeff", "data"));
}

TEST_CASE("sha256_hex gives the FIPS 180-2 digests of abc and of the empty string") {
  CHECK(secure::sha256_hex("abc") ==
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(secure::sha256_hex("") ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("constant_time_equal is true only for identical byte strings") {
  CHECK(secure::constant_time_equal("", ""));
  CHECK(secure::constant_time_equal("secret", "secret"));
  CHECK_FALSE(secure::constant_time_equal("secret", "secreT"));
  CHECK_FALSE(secure::constant_time_equal("secret", "Secret"));
  CHECK_FALSE(secure::constant_time_equal("secret", "secret!"));
  CHECK_FALSE(secure::constant_time_equal("secret", "secre"));
  CHECK_FALSE(secure::constant_time_equal("", "x"));
  CHECK(secure::constant_time_equal(std::string("a\0b", 3), std::string("a\0b", 3)));
  CHECK_FALSE(secure::constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST_CASE("valid_utf8 accepts ASCII and well-formed multi-byte sequences") {
  CHECK(secure::valid_utf8(""));
  CHECK(secure::valid_utf8("plain ascii ~"));
  CHECK(secure::valid_utf8(std::string("nul\0inside", 10)));
  CHECK(secure::valid_utf8("caf\xc3\xa9"));                 // U+00E9
  CHECK(secure::valid_utf8("\xc2\x80"));                    // U+0080, smallest two-byte
  CHECK(secure::valid_utf8("\xe2\x82\xac"));                // U+20AC euro sign
  CHECK(secure::valid_utf8("\xe0\xa0\x80"));                // U+0800, smallest three-byte
  CHECK(secure::valid_utf8("\xed\x9f\xbf"));                // U+D7FF, just below the surrogates
  CHECK(secure::valid_utf8("\xee\x80\x80"));                // U+E000, just above them
  CHECK(secure::valid_utf8("\xef\xbf\xbf"));                // U+FFFF
  CHECK(secure::valid_utf8("\xf0\x9f\x98\x80"));            // U+1F600
  CHECK(secure::valid_utf8("\xf4\x8f\xbf\xbf"));            // U+10FFFF, the last code point
  CHECK(secure::valid_utf8("a\xc3\xa9z\xf0\x9f\x98\x80!")); // mixed
}

TEST_CASE("valid_utf8 refuses overlong encodings") {
  CHECK_FALSE(secure::valid_utf8("\xc0\xaf")); // '/' in two bytes
  CHECK_FALSE(secure::valid_utf8("\xc1\xbf"));
  CHECK_FALSE(secure::valid_utf8("\xc0\x80"));         // NUL in two bytes
  CHECK_FALSE(secure::valid_utf8("\xe0\x80\xaf"));     // '/' in three bytes
  CHECK_FALSE(secure::valid_utf8("\xe0\x9f\xbf"));     // U+07FF in three bytes
  CHECK_FALSE(secure::valid_utf8("\xf0\x80\x80\xaf")); // '/' in four bytes
  CHECK_FALSE(secure::valid_utf8("\xf0\x8f\xbf\xbf")); // U+FFFF in four bytes
}

TEST_CASE("valid_utf8 refuses UTF-16 surrogates") {
  CHECK_FALSE(secure::valid_utf8("\xed\xa0\x80"));             // U+D800
  CHECK_FALSE(secure::valid_utf8("\xed\xbf\xbf"));             // U+DFFF
  CHECK_FALSE(secure::valid_utf8("\xed\xa0\xbd\xed\xb8\x80")); // CESU-8 pair for U+1F600
}

TEST_CASE("valid_utf8 refuses truncated sequences and stray bytes") {
  CHECK_FALSE(secure::valid_utf8("\xc3"));
  CHECK_FALSE(secure::valid_utf8("\xe2\x82"));
  CHECK_FALSE(secure::valid_utf8("\xf0\x9f\x98"));
  CHECK_FALSE(secure::valid_utf8("abc\xf0\x9f"));
  CHECK_FALSE(secure::valid_utf8("\xc3"
                                 "a")); // continuation missing mid-string
  CHECK_FALSE(secure::valid_utf8("\xe2\x82"
                                 "a"));
  CHECK_FALSE(secure::valid_utf8("\x80")); // lone continuation byte
  CHECK_FALSE(secure::valid_utf8("a\xbf"
                                 "b"));
  CHECK_FALSE(secure::valid_utf8("\xfe"));
  CHECK_FALSE(secure::valid_utf8("\xff"));
  CHECK_FALSE(secure::valid_utf8("\xf8\x88\x80\x80\x80")); // five-byte form
}

TEST_CASE("valid_utf8 refuses code points beyond U+10FFFF") {
  CHECK_FALSE(secure::valid_utf8("\xf4\x90\x80\x80")); // U+110000
  CHECK_FALSE(secure::valid_utf8("\xf5\x80\x80\x80"));
  CHECK_FALSE(secure::valid_utf8("\xf7\xbf\xbf\xbf")); // U+1FFFFF
}
