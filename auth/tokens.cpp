// JWT (RFC 7519) in compact form, HS256 only, following RFC 8725's advice.
#include "auth/tokens.h"

#include "auth/secure.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace latch {

using nlohmann::json;

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
  for (size_t i = 0; i < keys.size(); ++i) {
    if (!valid_kid(keys[i].kid)) throw std::invalid_argument("bad kid in key ring");
    if (keys[i].secret.empty()) throw std::invalid_argument("empty secret in key ring");
    for (size_t j = 0; j < i; ++j)
      if (keys[j].kid == keys[i].kid) throw std::invalid_argument("kid repeated in key ring");
  }
  // A valid kid needs no JSON escaping.
  auto header_with_kid = [](const std::string &kid) {
    return secure::base64url_encode(R"({"alg":"HS256","typ":"JWT","kid":")" + kid + R"("})");
  };
  auto ring = std::make_unique<Ring>();
  ring->encoded_legacy_header = secure::base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  for (SigningKey &k : keys) {
    secure::HmacSha256 hmac(k.secret);
    std::string header = header_with_kid(k.kid);
    ring->keys.push_back(Key{std::move(k), std::move(hmac), std::move(header)});
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
    return a.kid == b.kid && a.secret == b.secret && a.legacy == b.legacy &&
           a.verify_until == b.verify_until;
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
  return signing_input + "." + secure::base64url_encode(r.keys.front().hmac.mac(signing_input));
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

  // The header may say only what we issue: alg HS256 (pinned, so no "none" and no
  // algorithm switching), typ JWT and kid; jku, x5u, crit and friends are refused. A kid only
  // ever selects a key of our own ring by exact name: it is never a path, URL or query.
  const Key *key = key_for_exact_header(r, header_part); // the usual case: our own header
  if (!key) {
    auto header = decode_json_object(header_part);
    if (!header) return malformed("header");
    std::optional<std::string> kid;
    for (auto it = header->begin(); it != header->end(); ++it) {
      if (it.key() == "alg") {
        if (!it->is_string() || it->get<std::string>() != "HS256")
          return Error{ErrorCode::token_bad_signature, "algorithm"};
      } else if (it.key() == "typ") {
        if (!it->is_string() || it->get<std::string>() != "JWT") return malformed("typ");
      } else if (it.key() == "kid") {
        if (!it->is_string() || !valid_kid(it->get<std::string>())) return malformed("kid");
        kid = it->get<std::string>();
      } else {
        return malformed("header parameter");
      }
    }
    if (!header->contains("alg")) return Error{ErrorCode::token_bad_signature, "algorithm"};
    // The one key the token names (or, without a kid, the legacy key); never a search.
    for (const auto &k : r.keys)
      if (kid ? k.key.kid == *kid : k.key.legacy) key = &k;
    if (!key) return Error{ErrorCode::token_bad_signature, "kid"};
  }
  auto signature = secure::base64url_decode(signature_part);
  std::string expected = key->hmac.mac(token.substr(0, dot2)); // header.payload as received
  if (!signature || !secure::constant_time_equal(*signature, expected))
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
