// Unit tests for auth/tokens: HS256 JWT issue and strict decoding.
#include "auth/secure.h"
#include "auth/tokens.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <string>

using namespace latch;
using nlohmann::json;

namespace {

const std::string kKey = "unit-test-secret-0123456789abcdefghijklmnop";
constexpr std::int64_t kNow = 1'700'000'000;

std::string b64(std::string_view s) {
  return secure::base64url_encode(s);
}

// A token signed with HS256 over exactly the header and payload text given.
std::string forge(const std::string &header, const std::string &payload,
                  const std::string &key = kKey) {
  std::string input = b64(header) + "." + b64(payload);
  return input + "." + b64(secure::hmac_sha256(key, input));
}

const std::string kHeader = R"({"alg":"HS256","typ":"JWT"})";

json good_payload() {
  return {{"sub", "user-1"},        {"uid", "user-1"},     {"user_id", "user-1"},
          {"email", "a@b.example"}, {"username", "alice"}, {"token_type", "access"},
          {"jti", "jti-1"},         {"sid", "sid-1"},      {"iat", kNow},
          {"exp", kNow + 900}};
}

Claims sample_claims() {
  Claims c;
  c.user_id = "6f1c1a9e-5b7d-4c1e-9a65-0d6f1b2c3d4e";
  c.email = "alice@example.com";
  c.username = "Alice";
  c.type = TokenType::access;
  c.jti = "jti-abc";
  c.session_id = "session-xyz";
  c.issued_at = kNow;
  c.expires_at = kNow + 900;
  return c;
}

ErrorCode decode_error(const TokenCodec &codec, const std::string &token, std::int64_t now = kNow) {
  auto r = codec.decode(token, now);
  REQUIRE_FALSE(r.ok());
  return r.error().code;
}

std::vector<std::string> split_dots(const std::string &token) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t dot = token.find('.', start);
    parts.push_back(
        token.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return parts;
}

} // namespace

TEST_CASE("an issued token decodes back to every claim it was given") {
  TokenCodec codec(kKey);
  Claims in = sample_claims();
  std::string token = codec.issue(in);
  auto out = codec.decode(token, kNow);
  REQUIRE(out.ok());
  CHECK(out->user_id == in.user_id);
  CHECK(out->email == in.email);
  CHECK(out->username == "Alice");
  CHECK(out->type == TokenType::access);
  CHECK(out->jti == "jti-abc");
  CHECK(out->session_id == "session-xyz");
  CHECK(out->issued_at == kNow);
  CHECK(out->expires_at == kNow + 900);

  const json raw = out->payload_json();
  CHECK(raw.at("sub") == in.user_id);
  CHECK(raw.at("uid") == in.user_id);
  CHECK(raw.at("user_id") == in.user_id);
  CHECK(raw.at("email") == "alice@example.com");
  CHECK(raw.at("username") == "Alice");
  CHECK(raw.at("token_type") == "access");
  CHECK(raw.at("jti") == "jti-abc");
  CHECK(raw.at("sid") == "session-xyz");
  CHECK(raw.at("iat") == kNow);
  CHECK(raw.at("exp") == kNow + 900);
  CHECK(raw.size() == 10);
}

TEST_CASE("an issued token has the fixed HS256 JWT header and a 32-byte signature") {
  TokenCodec codec(kKey);
  std::string token = codec.issue(sample_claims());
  auto parts = split_dots(token);
  REQUIRE(parts.size() == 3);
  CHECK(secure::base64url_decode(parts[0]) == kHeader);
  auto sig = secure::base64url_decode(parts[2]);
  REQUIRE(sig.has_value());
  CHECK(*sig == secure::hmac_sha256(kKey, parts[0] + "." + parts[1]));
}

TEST_CASE("a refresh token without an email round-trips with the refresh type and no email") {
  TokenCodec codec(kKey);
  Claims in = sample_claims();
  in.type = TokenType::refresh;
  in.email.reset();
  auto out = codec.decode(codec.issue(in), kNow);
  REQUIRE(out.ok());
  CHECK(out->type == TokenType::refresh);
  CHECK_FALSE(out->email.has_value());
  CHECK_FALSE(out->payload_json().contains("email"));
  CHECK(out->payload_json().at("token_type") == "refresh");
  CHECK(std::string(token_type_name(TokenType::refresh)) == "refresh");
  CHECK(std::string(token_type_name(TokenType::access)) == "access");
}

TEST_CASE("a hand-made token with the right header, claims and key is accepted") {
  // Guards the forging helper: the rejections below fail for the reason they name.
  TokenCodec codec(kKey);
  auto out = codec.decode(forge(kHeader, good_payload().dump()), kNow);
  REQUIRE(out.ok());
  CHECK(out->user_id == "user-1");
  CHECK(out->email == std::optional<std::string>("a@b.example"));
}

TEST_CASE("alg none is refused in every spelling, signed or unsigned") {
  TokenCodec codec(kKey);
  const std::string payload = good_payload().dump();
  for (const char *alg : {"none", "None", "NONE", "nOnE"}) {
    CAPTURE(alg);
    std::string header = std::string(R"({"alg":")") + alg + R"(","typ":"JWT"})";
    std::string unsigned_token = b64(header) + "." + b64(payload) + ".";
    CHECK(decode_error(codec, unsigned_token) == ErrorCode::token_bad_signature);
    CHECK(decode_error(codec, forge(header, payload)) == ErrorCode::token_bad_signature);
  }
}

TEST_CASE("other algorithms in the header are refused even with a valid HS256 signature") {
  TokenCodec codec(kKey);
  const std::string payload = good_payload().dump();
  for (const char *alg : {"HS512", "HS384", "RS256", "ES256", "hs256", "HS256 "}) {
    CAPTURE(alg);
    std::string header = std::string(R"({"alg":")") + alg + R"(","typ":"JWT"})";
    CHECK(decode_error(codec, forge(header, payload)) == ErrorCode::token_bad_signature);
  }
  CHECK(decode_error(codec, forge(R"({"typ":"JWT"})", payload)) == ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, forge(R"({"alg":null,"typ":"JWT"})", payload)) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, forge(R"({"alg":["HS256"],"typ":"JWT"})", payload)) ==
        ErrorCode::token_bad_signature);
}

TEST_CASE("header parameters beyond alg, typ and kid are refused") {
  TokenCodec codec(kKey);
  const std::string payload = good_payload().dump();
  for (const char *extra :
       {R"("jku":"https://evil.example/jwks")", R"("x5u":"https://evil.example/cert")",
        R"("crit":["exp"])", R"("jwk":{"kty":"oct","k":"AAAA"})", R"("x5c":["AAAA"])",
        R"("cty":"JWT")"}) {
    CAPTURE(extra);
    std::string header = std::string(R"({"alg":"HS256","typ":"JWT",)") + extra + "}";
    CHECK(decode_error(codec, forge(header, payload)) == ErrorCode::token_malformed);
  }
  CHECK(decode_error(codec, forge(R"({"alg":"HS256","typ":"JWS"})", payload)) ==
        ErrorCode::token_malformed);
}

TEST_CASE("a kid is accepted only when it names a key the codec holds") {
  TokenCodec codec(kKey);
  const std::string payload = good_payload().dump();
  // Well-formed names of keys the codec does not hold: a bad signature, whatever signed it.
  for (const char *kid : {"key-1", "0", "AAAAAAAA", "legacy"}) {
    CAPTURE(kid);
    std::string header = std::string(R"({"alg":"HS256","typ":"JWT","kid":")") + kid + R"("})";
    CHECK(decode_error(codec, forge(header, payload)) == ErrorCode::token_bad_signature);
    CHECK(decode_error(codec, forge(header, payload, "")) == ErrorCode::token_bad_signature);
  }
  // Anything that is not a short [A-Za-z0-9_-] string never reaches key selection.
  for (const char *kid : {R"("../../../../dev/null")", R"("/etc/passwd")", R"("")", R"("a b")",
                          R"("key.1")", R"(42)", R"(null)", R"(["key-1"])", R"({"k":"v"})"}) {
    CAPTURE(kid);
    std::string header = std::string(R"({"alg":"HS256","typ":"JWT","kid":)") + kid + "}";
    CHECK(decode_error(codec, forge(header, payload)) == ErrorCode::token_malformed);
  }
  std::string too_long(TokenCodec::kMaxKidLength + 1, 'k');
  CHECK(decode_error(codec, forge(R"({"alg":"HS256","typ":"JWT","kid":")" + too_long + R"("})",
                                  payload)) == ErrorCode::token_malformed);
  // The kid of the codec's own fixed key is accepted, with the right signature only.
  std::string own = R"({"alg":"HS256","typ":"JWT","kid":")" + derive_kid(kKey) + R"("})";
  CHECK(codec.decode(forge(own, payload), kNow).ok());
  CHECK(decode_error(codec, forge(own, payload, kKey + "x")) == ErrorCode::token_bad_signature);
}

TEST_CASE("a header that is not a base64url JSON object is malformed") {
  TokenCodec codec(kKey);
  const std::string payload = good_payload().dump();
  CHECK(decode_error(codec, forge("[]", payload)) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, forge("not json", payload)) == ErrorCode::token_malformed);
  std::string valid = forge(kHeader, payload);
  auto parts = split_dots(valid);
  CHECK(decode_error(codec, "!!!." + parts[1] + "." + parts[2]) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, parts[0] + "==." + parts[1] + "." + parts[2]) ==
        ErrorCode::token_malformed);
}

TEST_CASE("a token signed with another key is refused") {
  TokenCodec issuer("another-secret-that-is-long-enough-000000");
  TokenCodec codec(kKey);
  CHECK(decode_error(codec, issuer.issue(sample_claims())) == ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, forge(kHeader, good_payload().dump(), kKey + "x")) ==
        ErrorCode::token_bad_signature);
}

TEST_CASE("a tampered payload under the old signature is refused") {
  TokenCodec codec(kKey);
  std::string token = codec.issue(sample_claims());
  auto parts = split_dots(token);
  json payload = json::parse(*secure::base64url_decode(parts[1]));
  payload["sub"] = payload["uid"] = payload["user_id"] = "someone-else";
  std::string tampered = parts[0] + "." + b64(payload.dump()) + "." + parts[2];
  CHECK(decode_error(codec, tampered) == ErrorCode::token_bad_signature);

  json longer = json::parse(*secure::base64url_decode(parts[1]));
  longer["exp"] = kNow + 10 * 365 * 86400;
  CHECK(decode_error(codec, parts[0] + "." + b64(longer.dump()) + "." + parts[2]) ==
        ErrorCode::token_bad_signature);
}

TEST_CASE("a stripped or mangled signature is refused") {
  TokenCodec codec(kKey);
  std::string token = codec.issue(sample_claims());
  auto parts = split_dots(token);
  CHECK(decode_error(codec, parts[0] + "." + parts[1] + ".") == ErrorCode::token_bad_signature);
  // The same signature with padding, or in the standard alphabet, is not accepted.
  CHECK(decode_error(codec, token + "=") == ErrorCode::token_bad_signature);
  std::string sig = parts[2];
  sig[0] = sig[0] == 'A' ? 'B' : 'A';
  CHECK(decode_error(codec, parts[0] + "." + parts[1] + "." + sig) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, parts[0] + "." + parts[1] + "." + parts[2].substr(1)) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, parts[0] + "." + parts[1] + ".+/" + parts[2].substr(2)) ==
        ErrorCode::token_bad_signature);
}

TEST_CASE("tokens with other than three segments are malformed") {
  TokenCodec codec(kKey);
  std::string token = codec.issue(sample_claims());
  auto parts = split_dots(token);
  CHECK(decode_error(codec, "") == ErrorCode::token_malformed);
  CHECK(decode_error(codec, "abc") == ErrorCode::token_malformed);
  CHECK(decode_error(codec, parts[0] + "." + parts[1]) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, token + ".extra") == ErrorCode::token_malformed);
  CHECK(decode_error(codec, token + ".") == ErrorCode::token_malformed);
  CHECK(decode_error(codec, "..") == ErrorCode::token_malformed);
}

TEST_CASE("a correctly signed payload that is not base64url JSON is malformed") {
  TokenCodec codec(kKey);
  auto sign_raw = [&](const std::string &payload_segment) {
    std::string input = b64(kHeader) + "." + payload_segment;
    return input + "." + b64(secure::hmac_sha256(kKey, input));
  };
  CHECK(decode_error(codec, sign_raw("***")) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, sign_raw(b64(good_payload().dump()) + "=")) ==
        ErrorCode::token_malformed);
  CHECK(decode_error(codec, sign_raw(b64("[1,2]"))) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, sign_raw(b64("{\"sub\":"))) == ErrorCode::token_malformed);
}

TEST_CASE("a token longer than kMaxTokenLength is refused, one at the limit is not") {
  TokenCodec codec(kKey);
  std::string at_limit, over_limit;
  for (size_t pad = 5000; pad < 7000 && (at_limit.empty() || over_limit.empty()); ++pad) {
    json p = good_payload();
    p["pad"] = std::string(pad, 'x');
    std::string t = forge(kHeader, p.dump());
    if (t.size() == TokenCodec::kMaxTokenLength) at_limit = t;
    if (t.size() > TokenCodec::kMaxTokenLength && over_limit.empty()) over_limit = t;
  }
  REQUIRE(at_limit.size() == TokenCodec::kMaxTokenLength);
  REQUIRE(over_limit.size() > TokenCodec::kMaxTokenLength);
  CHECK(codec.decode(at_limit, kNow).ok());
  CHECK(decode_error(codec, over_limit) == ErrorCode::token_malformed);
}

TEST_CASE("a token is expired once exp is at or before now") {
  TokenCodec codec(kKey);
  Claims c = sample_claims();
  std::string token = codec.issue(c);
  CHECK(codec.decode(token, c.expires_at - 1).ok());
  CHECK(decode_error(codec, token, c.expires_at) == ErrorCode::token_expired);
  CHECK(decode_error(codec, token, c.expires_at + 3600) == ErrorCode::token_expired);
}

TEST_CASE("iat in the future is no reason to refuse a token (a wall clock stepped back)") {
  // RFC 7519 asks nothing of iat; a server whose clock was stepped back an hour would
  // otherwise refuse every token it issued in that hour, refresh tokens included.
  TokenCodec codec(kKey);
  json p = good_payload();
  for (std::int64_t ahead : {std::int64_t(0), TokenCodec::kClockLeeway + 1, std::int64_t(3600)}) {
    p["iat"] = kNow + ahead;
    p["exp"] = kNow + ahead + 600;
    CHECK(codec.decode(forge(kHeader, p.dump()), kNow).ok());
  }
}

TEST_CASE("nbf in the future beyond the leeway is not yet valid") {
  TokenCodec codec(kKey);
  json p = good_payload();
  p["nbf"] = kNow + TokenCodec::kClockLeeway;
  CHECK(codec.decode(forge(kHeader, p.dump()), kNow).ok());
  p["nbf"] = kNow + TokenCodec::kClockLeeway + 1;
  CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_not_yet_valid);
  p["nbf"] = "soon";
  CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_not_yet_valid);
  p["nbf"] = kNow - 60;
  CHECK(codec.decode(forge(kHeader, p.dump()), kNow).ok());
}

TEST_CASE("each required claim missing, empty or of the wrong type makes the token malformed") {
  TokenCodec codec(kKey);
  for (const char *name : {"sub", "jti", "sid", "token_type", "iat", "exp"}) {
    CAPTURE(name);
    json p = good_payload();
    p.erase(name);
    CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_malformed);
  }
  for (const char *name : {"sub", "jti", "sid"}) {
    CAPTURE(name);
    json p = good_payload();
    p[name] = "";
    CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_malformed);
    p[name] = 42;
    CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_malformed);
  }
  for (const char *name : {"iat", "exp"}) {
    CAPTURE(name);
    json p = good_payload();
    p[name] = std::to_string(kNow + 900);
    CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_malformed);
    p[name] = static_cast<double>(kNow) + 900.5;
    CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_malformed);
  }
}

TEST_CASE("a token_type other than access or refresh is malformed") {
  TokenCodec codec(kKey);
  for (const char *type : {"id", "ACCESS", "Refresh", "access ", "reset"}) {
    CAPTURE(type);
    json p = good_payload();
    p["token_type"] = type;
    CHECK(decode_error(codec, forge(kHeader, p.dump())) == ErrorCode::token_malformed);
  }
  json p = good_payload();
  p["token_type"] = "refresh";
  auto r = codec.decode(forge(kHeader, p.dump()), kNow);
  REQUIRE(r.ok());
  CHECK(r->type == TokenType::refresh);
}

TEST_CASE("the issued payload is byte for byte the JSON nlohmann writes, escapes included") {
  TokenCodec codec(kKey);
  Claims c = sample_claims();
  c.username = "quote\" back\\slash tab\t é 🙂";
  c.email = "o'neil+x@example.com";
  auto parts = split_dots(codec.issue(c));
  json expected = {{"sub", c.user_id},       {"uid", c.user_id},       {"user_id", c.user_id},
                   {"username", c.username}, {"token_type", "access"}, {"jti", c.jti},
                   {"sid", c.session_id},    {"iat", c.issued_at},     {"exp", c.expires_at},
                   {"email", *c.email}};
  CHECK(secure::base64url_decode(parts[1]) == expected.dump());
  c.email.reset();
  c.type = TokenType::refresh;
  expected.erase("email");
  expected["token_type"] = "refresh";
  CHECK(secure::base64url_decode(split_dots(codec.issue(c))[1]) == expected.dump());
}

TEST_CASE("claims are read as a JSON object would hold them: the last of a repeated claim wins") {
  TokenCodec codec(kKey);
  std::string base = good_payload().dump();
  base.pop_back(); // reopen the object to append members after the good ones
  auto with = [&](const std::string &members) {
    return forge(kHeader, base + "," + members + "}");
  };
  // A later good value replaces an earlier one.
  auto later = codec.decode(with(R"("sub":"user-2")"), kNow);
  REQUIRE(later.ok());
  CHECK(later->user_id == "user-2");
  // A later value of the wrong type removes the claim, as it would in a parsed object.
  CHECK(decode_error(codec, with(R"("sub":42)")) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, with(R"("exp":"soon")")) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, with(R"("jti":{"a":"b"})")) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, with(R"("sid":["x"])")) == ErrorCode::token_malformed);
  CHECK(decode_error(codec, with(R"("nbf":"later")")) == ErrorCode::token_not_yet_valid);
  // Claims nested in other members are not claims.
  auto nested = codec.decode(with(R"("extra":{"sub":"user-3","exp":1,"list":[{"jti":""}]})"), kNow);
  REQUIRE(nested.ok());
  CHECK(nested->user_id == "user-1");
  CHECK(nested->expires_at == kNow + 900);
  CHECK(nested->jti == "jti-1");
  // The payload must be one object and nothing else.
  CHECK(decode_error(codec, forge(kHeader, "[" + good_payload().dump() + "]")) ==
        ErrorCode::token_malformed);
  CHECK(decode_error(codec, forge(kHeader, good_payload().dump() + " {}")) ==
        ErrorCode::token_malformed);
  CHECK(decode_error(codec, forge(kHeader, "\"text\"")) == ErrorCode::token_malformed);
  // payload_json() gives the object as signed, for the APIs that echo it.
  CHECK(later->payload_json().at("sub") == "user-2");
}
