// JWT (RFC 7519) in compact form, HS256, EdDSA, ES256 or RS256 (OpenSSL EVP), following RFC
// 8725's advice.
#include "auth/tokens.h"

#include "auth/secure.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace latch {

using nlohmann::json;

const char *jwt_alg_name(JwtAlg alg) {
  switch (alg) {
  case JwtAlg::HS256: return "HS256";
  case JwtAlg::EdDSA: return "EdDSA";
  case JwtAlg::ES256: return "ES256";
  case JwtAlg::RS256: return "RS256";
  }
  return "HS256";
}

std::optional<JwtAlg> jwt_alg_from_name(std::string_view name) {
  for (JwtAlg a : {JwtAlg::HS256, JwtAlg::EdDSA, JwtAlg::ES256, JwtAlg::RS256})
    if (name == jwt_alg_name(a)) return a;
  return std::nullopt;
}

namespace {

struct PkeyFree {
  void operator()(EVP_PKEY *k) const { EVP_PKEY_free(k); }
};
using Pkey = std::unique_ptr<EVP_PKEY, PkeyFree>;
struct BioFree {
  void operator()(BIO *b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX *c) const { EVP_MD_CTX_free(c); }
};
struct BnFree {
  void operator()(BIGNUM *b) const { BN_free(b); }
};
using Bn = std::unique_ptr<BIGNUM, BnFree>;
struct EcdsaSigFree {
  void operator()(ECDSA_SIG *s) const { ECDSA_SIG_free(s); }
};

// Never asks for a passphrase (OpenSSL would read one from the terminal): an encrypted key is
// refused.
int no_passphrase(char *, int, int, void *) {
  return 0;
}

Pkey parse_private_key(const std::string &pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return nullptr;
  return Pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
}

// The alg a key's type signs with, or nullopt for a type (or EC curve, or RSA size) Latch
// does not use.
std::optional<JwtAlg> alg_of(EVP_PKEY *k) {
  switch (EVP_PKEY_get_base_id(k)) {
  case EVP_PKEY_ED25519: return JwtAlg::EdDSA;
  case EVP_PKEY_EC: {
    char group[64] = {};
    size_t n = 0;
    if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &n) != 1)
      return std::nullopt;
    if (std::string_view(group) != "prime256v1" && std::string_view(group) != "P-256")
      return std::nullopt;
    return JwtAlg::ES256;
  }
  case EVP_PKEY_RSA:
    // RFC 7518 3.3: 2048 bits or more.
    if (EVP_PKEY_get_bits(k) < 2048) return std::nullopt;
    return JwtAlg::RS256;
  default: return std::nullopt;
  }
}

std::string pem_of(EVP_PKEY *k) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new(BIO_s_mem()));
  // PKCS#8, unencrypted: the database keeps it as it keeps HS256 secrets.
  if (!bio ||
      PEM_write_bio_PKCS8PrivateKey(bio.get(), k, nullptr, nullptr, 0, nullptr, nullptr) != 1)
    throw std::runtime_error("cannot write a private key");
  char *data = nullptr;
  long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(n));
}

std::string bn_param(EVP_PKEY *k, const char *name, int pad) {
  BIGNUM *raw = nullptr;
  if (EVP_PKEY_get_bn_param(k, name, &raw) != 1)
    throw std::runtime_error("key has no " + std::string(name));
  Bn bn(raw);
  std::string out(pad > 0 ? static_cast<size_t>(pad) : static_cast<size_t>(BN_num_bytes(bn.get())),
                  '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char *>(out.data()),
                   static_cast<int>(out.size())) < 0)
    throw std::runtime_error("key member too long");
  return out;
}

json jwk_of(JwtAlg alg, EVP_PKEY *k) {
  switch (alg) {
  case JwtAlg::EdDSA: {
    unsigned char raw[32];
    size_t n = sizeof raw;
    if (EVP_PKEY_get_raw_public_key(k, raw, &n) != 1 || n != sizeof raw)
      throw std::runtime_error("cannot read an Ed25519 public key");
    return {{"kty", "OKP"},
            {"crv", "Ed25519"},
            {"x", secure::base64url_encode({reinterpret_cast<const char *>(raw), n})}};
  }
  case JwtAlg::ES256:
    return {{"kty", "EC"},
            {"crv", "P-256"},
            {"x", secure::base64url_encode(bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, 32))},
            {"y", secure::base64url_encode(bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, 32))}};
  case JwtAlg::RS256:
    return {{"kty", "RSA"},
            {"n", secure::base64url_encode(bn_param(k, OSSL_PKEY_PARAM_RSA_N, 0))},
            {"e", secure::base64url_encode(bn_param(k, OSSL_PKEY_PARAM_RSA_E, 0))}};
  case JwtAlg::HS256: break;
  }
  throw std::invalid_argument("an HS256 key has no public JWK");
}

} // namespace

std::string generate_private_key(JwtAlg alg) {
  EVP_PKEY *k = nullptr;
  switch (alg) {
  case JwtAlg::EdDSA: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519"); break;
  case JwtAlg::ES256: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"); break;
  case JwtAlg::RS256: k = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{2048}); break;
  case JwtAlg::HS256: throw std::invalid_argument("HS256 keys are secrets, not key pairs");
  }
  if (!k) throw std::runtime_error("OpenSSL could not make a key pair");
  Pkey key(k);
  return pem_of(key.get());
}

std::variant<LoadedKey, std::string> read_private_key(const std::string &pem) {
  Pkey k = parse_private_key(pem);
  if (!k) return std::string("not a PEM private key (or an encrypted one)");
  auto alg = alg_of(k.get());
  if (!alg) return std::string("not an Ed25519, P-256 or RSA (2048 bits or more) private key");
  return LoadedKey{*alg, pem_of(k.get())};
}

json public_jwk(JwtAlg alg, const std::string &private_pem) {
  Pkey k = parse_private_key(private_pem);
  if (!k) throw std::invalid_argument("bad private key");
  return jwk_of(alg, k.get());
}

std::string jwk_thumbprint(const json &jwk) {
  // RFC 7638 3: the required members only, sorted, no white space (nlohmann sorts keys).
  json required;
  for (const char *m : {"crv", "e", "kty", "n", "x", "y"})
    if (jwk.contains(m)) required[m] = jwk[m];
  const std::string text = required.dump();
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  if (EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256 failed");
  return secure::base64url_encode({reinterpret_cast<const char *>(md), n});
}

std::string TokenCodec::Key::sign(std::string_view input) const {
  if (hmac) return hmac->mac(input);
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  // Ed25519 hashes inside (no digest given); ES256 and RS256 sign the SHA-256 of the input.
  const EVP_MD *md = key.alg == JwtAlg::EdDSA ? nullptr : EVP_sha256();
  const auto *in = reinterpret_cast<const unsigned char *>(input.data());
  size_t n = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, pkey.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &n, in, input.size()) != 1)
    throw std::runtime_error("signing failed");
  std::string sig(n, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(sig.data()), &n, in,
                     input.size()) != 1)
    throw std::runtime_error("signing failed");
  sig.resize(n);
  if (key.alg != JwtAlg::ES256) return sig;
  // JWS wants ECDSA as r || s, 32 bytes each (RFC 7518 3.4), not OpenSSL's DER.
  const auto *der = reinterpret_cast<const unsigned char *>(sig.data());
  std::unique_ptr<ECDSA_SIG, EcdsaSigFree> es(d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(n)));
  if (!es) throw std::runtime_error("signing failed");
  std::string raw(64, '\0');
  auto *out = reinterpret_cast<unsigned char *>(raw.data());
  if (BN_bn2binpad(ECDSA_SIG_get0_r(es.get()), out, 32) != 32 ||
      BN_bn2binpad(ECDSA_SIG_get0_s(es.get()), out + 32, 32) != 32)
    throw std::runtime_error("signing failed");
  return raw;
}

bool TokenCodec::Key::verify(std::string_view input, std::string_view signature) const {
  if (hmac) return secure::constant_time_equal(signature, hmac->mac(input));
  std::string der;
  if (key.alg == JwtAlg::ES256) {
    if (signature.size() != 64) return false;
    const auto *raw = reinterpret_cast<const unsigned char *>(signature.data());
    std::unique_ptr<ECDSA_SIG, EcdsaSigFree> es(ECDSA_SIG_new());
    Bn r(BN_bin2bn(raw, 32, nullptr)), s(BN_bin2bn(raw + 32, 32, nullptr));
    if (!es || !r || !s || ECDSA_SIG_set0(es.get(), r.get(), s.get()) != 1) return false;
    r.release(); // owned by es now
    s.release();
    unsigned char *out = nullptr;
    int len = i2d_ECDSA_SIG(es.get(), &out);
    if (len <= 0) return false;
    der.assign(reinterpret_cast<const char *>(out), static_cast<size_t>(len));
    OPENSSL_free(out);
    signature = der;
  }
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  const EVP_MD *md = key.alg == JwtAlg::EdDSA ? nullptr : EVP_sha256();
  return ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, pkey.get()) == 1 &&
         EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char *>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char *>(input.data()),
                          input.size()) == 1;
}

nlohmann::json Claims::payload_json() const {
  return json::parse(payload, nullptr, /*allow_exceptions=*/false); // checked by decode()
}

const char *token_type_name(TokenType t) {
  return t == TokenType::access ? "access" : "refresh";
}

bool valid_kid(std::string_view kid) {
  if (kid.empty() || kid.size() > TokenCodec::kMaxKidLength) return false;
  return std::all_of(kid.begin(), kid.end(),
                     [](unsigned char c) { return std::isalnum(c) != 0 || c == '_' || c == '-'; });
}

std::string derive_kid(std::string_view secret) {
  return secure::sha256_hex(secret).substr(0, 12);
}

std::unique_ptr<const TokenCodec::Ring> TokenCodec::make_ring(std::vector<SigningKey> keys,
                                                              bool kid_header) {
  if (keys.empty()) throw std::invalid_argument("a key ring needs at least one key");
  if (keys.front().standby) throw std::invalid_argument("a standby key cannot sign");
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!valid_kid(keys[i].kid)) throw std::invalid_argument("bad kid in key ring");
    if (keys[i].legacy && keys[i].alg != JwtAlg::HS256)
      throw std::invalid_argument("only an HS256 key can be legacy");
    if (keys[i].secret.empty()) throw std::invalid_argument("empty secret in key ring");
    for (size_t j = 0; j < i; ++j)
      if (keys[j].kid == keys[i].kid) throw std::invalid_argument("kid repeated in key ring");
  }
  // A valid kid needs no JSON escaping.
  auto header_with_kid = [](JwtAlg alg, const std::string &kid) {
    return secure::base64url_encode(R"({"alg":")" + std::string(jwt_alg_name(alg)) +
                                    R"(","typ":"JWT","kid":")" + kid + R"("})");
  };
  auto ring = std::make_unique<Ring>();
  ring->encoded_legacy_header = secure::base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  for (SigningKey &k : keys) {
    Key key;
    if (k.alg == JwtAlg::HS256) {
      key.hmac.emplace(k.secret);
    } else {
      Pkey pkey = parse_private_key(k.secret);
      // The stored alg must be the key's own: a kid then selects exactly one algorithm.
      if (!pkey || alg_of(pkey.get()) != k.alg)
        throw std::invalid_argument("key " + k.kid + " is not a " + jwt_alg_name(k.alg) + " key");
      key.jwk = jwk_of(k.alg, pkey.get());
      key.pkey = std::shared_ptr<evp_pkey_st>(pkey.release(), PkeyFree{});
    }
    key.encoded_header = header_with_kid(k.alg, k.kid);
    key.key = std::move(k);
    ring->keys.push_back(std::move(key));
  }
  ring->encoded_header =
      kid_header ? ring->keys.front().encoded_header : ring->encoded_legacy_header;
  return ring;
}

TokenCodec::TokenCodec(std::string secret) {
  SigningKey key;
  key.kid = derive_kid(secret);
  key.secret = std::move(secret);
  key.legacy = true;
  rings_.push_back(make_ring({std::move(key)}, /*kid_header=*/false));
  ring_.store(rings_.back().get(), std::memory_order_release);
}

TokenCodec::TokenCodec(std::vector<SigningKey> keys) {
  rings_.push_back(make_ring(std::move(keys), true));
  ring_.store(rings_.back().get(), std::memory_order_release);
}

void TokenCodec::set_keys(std::vector<SigningKey> keys) {
  std::lock_guard lock(mutex_);
  const Ring &now = ring();
  auto same = [](const SigningKey &a, const SigningKey &b) {
    return a.kid == b.kid && a.alg == b.alg && a.secret == b.secret && a.legacy == b.legacy &&
           a.verify_until == b.verify_until && a.standby == b.standby;
  };
  if (keys.size() == now.keys.size() &&
      std::equal(keys.begin(), keys.end(), now.keys.begin(),
                 [&](const SigningKey &k, const Key &in_use) { return same(k, in_use.key); }))
    return; // nothing changed: keep the ring, so reloads cost no memory
  rings_.push_back(make_ring(std::move(keys), true));
  ring_.store(rings_.back().get(), std::memory_order_release);
}

std::string TokenCodec::signing_kid() const {
  return ring().keys.front().key.kid;
}

JwtAlg TokenCodec::signing_alg() const {
  return ring().keys.front().key.alg;
}

json TokenCodec::jwks(std::int64_t now) const {
  json keys = json::array();
  for (const Key &k : ring().keys) {
    // A symmetric key is never published: it would let anyone mint tokens.
    if (k.key.alg == JwtAlg::HS256) continue;
    if (k.key.verify_until != 0 && now >= k.key.verify_until) continue;
    json jwk = k.jwk;
    jwk["kid"] = k.key.kid;
    jwk["alg"] = jwt_alg_name(k.key.alg);
    jwk["use"] = "sig";
    keys.push_back(std::move(jwk));
  }
  return {{"keys", std::move(keys)}};
}

const TokenCodec::Key *TokenCodec::key_for_exact_header(const Ring &ring,
                                                        std::string_view header_part) {
  for (const Key &k : ring.keys)
    if (header_part == k.encoded_header ||
        (k.key.legacy && header_part == ring.encoded_legacy_header))
      return &k;
  return nullptr;
}

namespace {

// A JSON string: ids and jtis ([A-Za-z0-9_-]) as they are, anything else escaped by nlohmann.
void append_quoted(std::string &out, const std::string &value) {
  bool plain = std::all_of(value.begin(), value.end(), [](unsigned char ch) {
    return std::isalnum(ch) != 0 || ch == '-' || ch == '_';
  });
  if (plain) {
    out += '"';
    out += value;
    out += '"';
  } else {
    out += json(value).dump();
  }
}

} // namespace

std::string TokenCodec::issue(const Claims &c) const {
  // Written out directly rather than built as a JSON object and dumped (which took most of
  // the time of a refresh); the members in the order nlohmann would sort them.
  std::string payload;
  payload.reserve(320 + c.username.size() + (c.email ? c.email->size() : 0));
  auto member = [&payload](const char *name) {
    payload += payload.empty() ? "{\"" : ",\"";
    payload += name;
    payload += "\":";
  };
  if (c.email) {
    member("email");
    append_quoted(payload, *c.email);
  }
  member("exp");
  payload += std::to_string(c.expires_at);
  member("iat");
  payload += std::to_string(c.issued_at);
  member("jti");
  append_quoted(payload, c.jti);
  member("sid");
  append_quoted(payload, c.session_id);
  member("sub");
  append_quoted(payload, c.user_id);
  member("token_type");
  append_quoted(payload, token_type_name(c.type));
  member("uid");
  append_quoted(payload, c.user_id);
  member("user_id");
  append_quoted(payload, c.user_id);
  member("username");
  append_quoted(payload, c.username);
  payload += '}';
  const Ring &r = ring();
  std::string signing_input = r.encoded_header + "." + secure::base64url_encode(payload);
  return signing_input + "." + secure::base64url_encode(r.keys.front().sign(signing_input));
}

namespace {

Error malformed(const char *why) {
  return Error{ErrorCode::token_malformed, why};
}

std::optional<json> decode_json_object(std::string_view part) {
  auto bytes = secure::base64url_decode(part);
  if (!bytes) return std::nullopt;
  json j = json::parse(*bytes, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  return j;
}

// Reads the claims Latch needs from a payload in one pass, without building a JSON tree (the
// token check's largest cost before). The payload must be one JSON object; of a repeated
// claim the last wins, as when nlohmann builds an object; a claim of the wrong type counts
// as absent.
class ClaimReader final : public nlohmann::json_sax<json> {
public:
  std::optional<std::string> sub, jti, sid, token_type, username, email;
  std::optional<std::int64_t> iat, exp, nbf;
  bool has_nbf = false;

  bool null() override { return other(); }
  bool boolean(bool) override { return other(); }
  bool number_integer(number_integer_t v) override { return integer(v); }
  bool number_unsigned(number_unsigned_t v) override {
    return integer(static_cast<std::int64_t>(v)); // as get<std::int64_t>() read it
  }
  bool number_float(number_float_t, const string_t &) override { return other(); }
  bool string(string_t &v) override {
    if (depth_ == 0) return false; // not an object
    if (depth_ == 1) {
      clear_current();
      if (auto *field = string_field()) *field = std::move(v);
    }
    return true;
  }
  bool binary(binary_t &) override { return other(); }
  bool start_object(std::size_t) override {
    if (depth_ == 1) clear_current();
    ++depth_;
    return true;
  }
  bool end_object() override {
    --depth_;
    return true;
  }
  bool start_array(std::size_t) override {
    if (depth_ == 0) return false;
    if (depth_ == 1) clear_current();
    ++depth_;
    return true;
  }
  bool end_array() override {
    --depth_;
    return true;
  }
  bool key(string_t &k) override {
    if (depth_ == 1) key_ = std::move(k);
    return true;
  }
  bool parse_error(std::size_t, const std::string &, const nlohmann::detail::exception &) override {
    return false;
  }

private:
  std::optional<std::string> *string_field() {
    if (key_ == "sub") return &sub;
    if (key_ == "jti") return &jti;
    if (key_ == "sid") return &sid;
    if (key_ == "token_type") return &token_type;
    if (key_ == "username") return &username;
    if (key_ == "email") return &email;
    return nullptr;
  }
  std::optional<std::int64_t> *integer_field() {
    if (key_ == "iat") return &iat;
    if (key_ == "exp") return &exp;
    if (key_ == "nbf") return &nbf;
    return nullptr;
  }
  // A new value for the current key: whatever it held before is gone.
  void clear_current() {
    if (auto *field = string_field()) field->reset();
    if (auto *field = integer_field()) field->reset();
    if (key_ == "nbf") has_nbf = true;
  }
  bool integer(std::int64_t v) {
    if (depth_ == 0) return false;
    if (depth_ == 1) {
      clear_current();
      if (auto *field = integer_field()) *field = v;
    }
    return true;
  }
  bool other() {
    if (depth_ == 0) return false;
    if (depth_ == 1) clear_current();
    return true;
  }

  int depth_ = 0;
  std::string key_;
};

// A required string claim: present, a string, not empty.
bool required(const std::optional<std::string> &claim, std::string &out) {
  if (!claim || claim->empty()) return false;
  out = *claim;
  return true;
}

} // namespace

Result<Claims> TokenCodec::decode(std::string_view token, std::int64_t now) const {
  if (token.empty() || token.size() > kMaxTokenLength) return malformed("length");
  const Ring &r = ring();
  std::optional<Verified> v;
  {
    std::shared_lock lock(verified_mutex_);
    auto it = verified_.find(token);
    if (it != verified_.end() && it->second.ring == &r) v = it->second;
  }
  const bool seen = v.has_value();
  if (!seen) {
    auto fresh = verify(token, r);
    if (!fresh) return fresh.error();
    v = std::move(fresh.value());
  }
  // A retired key verifies nothing once its time is up, cached or not.
  if (v->key->key.verify_until != 0 && now >= v->key->key.verify_until)
    return Error{ErrorCode::token_bad_signature, "kid"};
  const Claims &c = v->claims;
  if (c.expires_at <= now) return Error{ErrorCode::token_expired, "exp"};
  // iat in the future is no reason to refuse (RFC 7519 asks nothing of it): after the wall
  // clock is stepped back, every token issued meanwhile would be.
  if (v->nbf && *v->nbf > now + kClockLeeway) return Error{ErrorCode::token_not_yet_valid, "nbf"};
  if (!seen && c.type == TokenType::access) {
    std::unique_lock lock(verified_mutex_);
    if (verified_.size() >= kMaxVerified) verified_.clear();
    verified_.insert_or_assign(std::string(token), *v);
  }
  return std::move(v->claims);
}

Result<TokenCodec::Verified> TokenCodec::verify(std::string_view token, const Ring &r) const {
  size_t dot1 = token.find('.');
  if (dot1 == std::string_view::npos) return malformed("segments");
  size_t dot2 = token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos)
    return malformed("segments");
  std::string_view header_part = token.substr(0, dot1);
  std::string_view payload_part = token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string_view signature_part = token.substr(dot2 + 1);

  // The header may say only what we issue: alg (the named key's own, pinned, so no "none" and
  // no algorithm switching), typ JWT and kid; jku, x5u, crit and friends are refused. A kid
  // only ever selects a key of our own ring by exact name: it is never a path, URL or query.
  const Key *key = key_for_exact_header(r, header_part); // the usual case: our own header
  if (!key) {
    auto header = decode_json_object(header_part);
    if (!header) return malformed("header");
    std::optional<std::string> kid;
    std::optional<JwtAlg> alg;
    for (auto it = header->begin(); it != header->end(); ++it) {
      if (it.key() == "alg") {
        if (it->is_string()) alg = jwt_alg_from_name(it->get<std::string>());
        if (!alg) return Error{ErrorCode::token_bad_signature, "algorithm"};
      } else if (it.key() == "typ") {
        if (!it->is_string() || it->get<std::string>() != "JWT") return malformed("typ");
      } else if (it.key() == "kid") {
        if (!it->is_string() || !valid_kid(it->get<std::string>())) return malformed("kid");
        kid = it->get<std::string>();
      } else {
        return malformed("header parameter");
      }
    }
    if (!alg) return Error{ErrorCode::token_bad_signature, "algorithm"};
    // The one key the token names (or, without a kid, the legacy key); never a search.
    for (const auto &k : r.keys)
      if (kid ? k.key.kid == *kid : k.key.legacy) key = &k;
    if (!key) return Error{ErrorCode::token_bad_signature, "kid"};
    // Each key verifies only its own algorithm (RFC 8725 3.1): HS256 "signed" with a public
    // key's bytes names an EdDSA key's kid and is refused here.
    if (*alg != key->key.alg) return Error{ErrorCode::token_bad_signature, "algorithm"};
  }
  auto signature = secure::base64url_decode(signature_part);
  // header.payload as received
  if (!signature || !key->verify(token.substr(0, dot2), *signature))
    return Error{ErrorCode::token_bad_signature, "signature"};

  auto payload = secure::base64url_decode(payload_part);
  ClaimReader claims;
  if (!payload || !json::sax_parse(*payload, &claims)) return malformed("payload");
  Claims c;
  if (!required(claims.sub, c.user_id) || !required(claims.jti, c.jti) ||
      !required(claims.sid, c.session_id) || !claims.token_type || !claims.iat || !claims.exp)
    return malformed("claims");
  c.issued_at = *claims.iat;
  c.expires_at = *claims.exp;
  if (*claims.token_type == "access")
    c.type = TokenType::access;
  else if (*claims.token_type == "refresh")
    c.type = TokenType::refresh;
  else
    return malformed("token_type");
  if (claims.username) c.username = *claims.username;
  if (claims.email && !claims.email->empty()) c.email = *claims.email;

  // An nbf that is there but no integer is never valid.
  if (claims.has_nbf && !claims.nbf) return Error{ErrorCode::token_not_yet_valid, "nbf"};
  c.payload = std::move(*payload);
  return Verified{&r, key, std::move(c), claims.nbf};
}

} // namespace latch
