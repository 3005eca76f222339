// Unit tests for signing key rings: kid selection in TokenCodec, the stored keys, rotation.
#include "auth/secure.h"
#include "auth/service.h"
#include "auth/tokens.h"
#include "db/schema.h"
#include "db/session_cache.h"
#include "db/sqlite_store.h"

#include "support/temp_dir.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace latch;
using nlohmann::json;

namespace {

constexpr std::int64_t kNow = 1'700'000'000;
const std::string kOldSecret = "old-secret-0123456789abcdefghijklmnopqrstuv";
const std::string kNewSecret = "new-secret-0123456789abcdefghijklmnopqrstuv";

SigningKey key(const std::string &kid, const std::string &secret, bool legacy = false,
               std::int64_t verify_until = 0) {
  SigningKey k;
  k.kid = kid;
  k.secret = secret;
  k.legacy = legacy;
  k.verify_until = verify_until;
  return k;
}

Claims claims() {
  Claims c;
  c.user_id = "user-1";
  c.username = "alice";
  c.jti = "jti-1";
  c.session_id = "sid-1";
  c.issued_at = kNow;
  c.expires_at = kNow + 900;
  return c;
}

std::string b64(std::string_view s) {
  return secure::base64url_encode(s);
}

std::string sign(const std::string &header, const std::string &secret) {
  json payload = {{"sub", "user-1"}, {"jti", "j"},        {"sid", "s"},
                  {"iat", kNow},     {"exp", kNow + 900}, {"token_type", "access"}};
  std::string input = b64(header) + "." + b64(payload.dump());
  return input + "." + b64(secure::hmac_sha256(secret, input));
}

std::string header_with_kid(const std::string &kid) {
  return R"({"alg":"HS256","typ":"JWT","kid":")" + kid + R"("})";
}

json header_of(const std::string &token) {
  auto bytes = secure::base64url_decode(token.substr(0, token.find('.')));
  REQUIRE(bytes.has_value());
  return json::parse(*bytes);
}

ErrorCode decode_error(const TokenCodec &codec, const std::string &token, std::int64_t now = kNow) {
  auto r = codec.decode(token, now);
  REQUIRE_FALSE(r.ok());
  return r.error().code;
}

// Opens the database as another process would (the admin commands), to commit behind the
// back of a store's connection.
void exec_elsewhere(const std::string &path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char *err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string message = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, message);
}

// The one number a query answers, on a connection of its own.
long long count_rows_of(const std::string &path, const std::string &sql) {
  sqlite3 *db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_stmt *st = nullptr;
  REQUIRE(sqlite3_prepare_v2(db, sql.c_str(), -1, &st, nullptr) == SQLITE_OK);
  long long n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
  sqlite3_finalize(st);
  sqlite3_close(db);
  return n;
}

// The text of migration 1 alone: a database as the release before key rings left it.
std::string first_migration() {
  std::string all = db::kSchemaSql;
  size_t start = all.find("-- migration 1");
  size_t end = all.find("-- migration 2");
  REQUIRE(start != std::string::npos);
  REQUIRE(end != std::string::npos);
  return all.substr(start, end - start);
}

} // namespace

TEST_CASE("a key ring's first key signs and names itself in the kid header") {
  TokenCodec codec({key("new", kNewSecret), key("old", kOldSecret, false, kNow + 3600)});
  CHECK(codec.signing_kid() == "new");
  std::string token = codec.issue(claims());
  CHECK(header_of(token) == json{{"alg", "HS256"}, {"typ", "JWT"}, {"kid", "new"}});
  auto out = codec.decode(token, kNow);
  REQUIRE(out.ok());
  CHECK(out->user_id == "user-1");
}

TEST_CASE("a fixed secret issues tokens without a kid and knows its derived kid") {
  TokenCodec codec(kOldSecret);
  CHECK(codec.signing_kid() == derive_kid(kOldSecret));
  CHECK(header_of(codec.issue(claims())) == json{{"alg", "HS256"}, {"typ", "JWT"}});
  CHECK(derive_kid(kOldSecret) == secure::sha256_hex(kOldSecret).substr(0, 12));
  CHECK(valid_kid(derive_kid(kOldSecret)));
  CHECK(derive_kid(kOldSecret) != derive_kid(kNewSecret));
}

TEST_CASE("tokens of the previous key stay valid after set_keys puts a new key first") {
  TokenCodec codec({key("k1", kOldSecret)});
  std::string before = codec.issue(claims());
  codec.set_keys({key("k2", kNewSecret), key("k1", kOldSecret, false, kNow + 3600)});
  std::string after = codec.issue(claims());
  CHECK(header_of(after)["kid"] == "k2");
  CHECK(codec.decode(before, kNow).ok());
  CHECK(codec.decode(after, kNow).ok());
  // A codec that never knew k2 refuses the new token: the kid picks the key, nothing else.
  TokenCodec stale({key("k1", kOldSecret)});
  CHECK(decode_error(stale, after) == ErrorCode::token_bad_signature);
}

TEST_CASE("the kid selects exactly one key: a token signed with another key of the ring fails") {
  TokenCodec codec({key("k2", kNewSecret), key("k1", kOldSecret, false, kNow + 3600)});
  CHECK(codec.decode(sign(header_with_kid("k1"), kOldSecret), kNow).ok());
  CHECK(codec.decode(sign(header_with_kid("k2"), kNewSecret), kNow).ok());
  CHECK(decode_error(codec, sign(header_with_kid("k1"), kNewSecret)) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, sign(header_with_kid("k2"), kOldSecret)) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, sign(header_with_kid("k3"), kNewSecret)) ==
        ErrorCode::token_bad_signature);
}

TEST_CASE("a token without a kid is checked against the legacy key only") {
  const std::string plain = R"({"alg":"HS256","typ":"JWT"})";
  TokenCodec with_legacy({key("k2", kNewSecret), key("k1", kOldSecret, true, kNow + 3600)});
  CHECK(with_legacy.decode(sign(plain, kOldSecret), kNow).ok());
  CHECK(decode_error(with_legacy, sign(plain, kNewSecret)) == ErrorCode::token_bad_signature);

  TokenCodec without_legacy({key("k2", kNewSecret), key("k1", kOldSecret, false, kNow + 3600)});
  CHECK(decode_error(without_legacy, sign(plain, kOldSecret)) == ErrorCode::token_bad_signature);
  CHECK(decode_error(without_legacy, sign(plain, kNewSecret)) == ErrorCode::token_bad_signature);
}

TEST_CASE("a retired key verifies until its verify_until, then refuses") {
  TokenCodec codec({key("k2", kNewSecret), key("k1", kOldSecret, true, kNow + 100)});
  const std::string named = sign(header_with_kid("k1"), kOldSecret);
  const std::string unnamed = sign(R"({"alg":"HS256","typ":"JWT"})", kOldSecret);
  CHECK(codec.decode(named, kNow + 99).ok());
  CHECK(codec.decode(unnamed, kNow + 99).ok());
  CHECK(decode_error(codec, named, kNow + 100) == ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, unnamed, kNow + 100) == ErrorCode::token_bad_signature);
}

TEST_CASE("a key ring is refused when empty, with a bad or repeated kid, or an empty secret") {
  CHECK_THROWS_AS(TokenCodec(std::vector<SigningKey>{}), std::invalid_argument);
  for (const char *kid : {"", "a/b", "../x", "a.b", "a b"}) {
    CAPTURE(kid);
    CHECK_THROWS_AS(TokenCodec({key(kid, kNewSecret)}), std::invalid_argument);
  }
  CHECK_THROWS_AS(TokenCodec({key(std::string(TokenCodec::kMaxKidLength + 1, 'k'), kNewSecret)}),
                  std::invalid_argument);
  CHECK_NOTHROW(TokenCodec({key(std::string(TokenCodec::kMaxKidLength, 'k'), kNewSecret)}));
  CHECK_THROWS_AS(TokenCodec({key("a", kNewSecret), key("a", kOldSecret)}), std::invalid_argument);
  CHECK_THROWS_AS(TokenCodec({key("a", "")}), std::invalid_argument);
  TokenCodec codec({key("a", kNewSecret)});
  CHECK_THROWS_AS(codec.set_keys({}), std::invalid_argument);
  CHECK(codec.signing_kid() == "a"); // a refused ring changes nothing
}

TEST_CASE("set_keys while other threads issue and decode never yields a token that fails") {
  TokenCodec codec({key("k0", kOldSecret)});
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0}, checked{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 3; ++t)
    workers.emplace_back([&] {
      while (!stop) {
        if (!codec.decode(codec.issue(claims()), kNow).ok()) ++failures;
        ++checked;
      }
    });
  // Each new ring keeps the keys before it, as rotation does.
  std::vector<SigningKey> ring = {key("k0", kOldSecret)};
  for (int i = 1; i <= 200; ++i) {
    ring.insert(ring.begin(), key("k" + std::to_string(i), kNewSecret + std::to_string(i)));
    codec.set_keys(ring);
  }
  while (checked < 100)
    std::this_thread::yield();
  stop = true;
  for (auto &w : workers)
    w.join();
  CHECK(failures == 0);
  CHECK(codec.signing_kid() == "k200");
}

TEST_CASE("signing_key_retention is the longest token lifetime plus a margin") {
  Config config;
  CHECK(signing_key_retention(config) == 30 * 86400 + 300); // flask's refresh token
  config.lifetimes[Api::envelope].access = 90 * 86400;
  CHECK(signing_key_retention(config) == 90 * 86400 + 300);
}

TEST_CASE("key_ring keeps the store's order and gives retired keys their end") {
  db::SigningKeyRow current{"cur", kNewSecret, kNow, std::nullopt, false, "HS256", kNow};
  db::SigningKeyRow retired{"old", kOldSecret, kNow - 10, kNow - 5, true, "HS256", kNow - 10};
  auto ring = key_ring({current, retired}, 1000);
  REQUIRE(ring.size() == 2);
  CHECK(ring[0].kid == "cur");
  CHECK(ring[0].verify_until == 0);
  CHECK_FALSE(ring[0].legacy);
  CHECK(ring[1].kid == "old");
  CHECK(ring[1].verify_until == kNow - 5 + 1000);
  CHECK(ring[1].legacy);
  CHECK(ring[1].secret == kOldSecret);
}

TEST_CASE("new_signing_key makes a fresh random kid and 256-bit secret") {
  auto a = new_signing_key(kNow), b = new_signing_key(kNow);
  CHECK(valid_kid(a.kid));
  CHECK(a.kid.size() == 8);
  CHECK(a.kid != b.kid);
  CHECK(secure::base64url_decode(a.secret).value_or("").size() == 32);
  CHECK(a.secret != b.secret);
  CHECK(a.created_at == kNow);
  CHECK_FALSE(a.retired_at.has_value());
}

TEST_CASE("ensure_signing_key stores the first key once and keeps it") {
  db::SqliteStore store(":memory:");
  CHECK(store.signing_keys().empty());
  auto first = new_signing_key(kNow);
  auto keys = store.ensure_signing_key(first);
  REQUIRE(keys.size() == 1);
  CHECK(keys[0].kid == first.kid);
  CHECK(keys[0].secret == first.secret);
  CHECK_FALSE(keys[0].retired_at.has_value());
  CHECK_FALSE(keys[0].legacy);
  auto again = store.ensure_signing_key(new_signing_key(kNow + 1));
  REQUIRE(again.size() == 1);
  CHECK(again[0].kid == first.kid);
}

TEST_CASE("rotate_signing_key retires the signing key and puts the new one first") {
  db::SqliteStore store(":memory:");
  auto k1 = new_signing_key(kNow);
  store.ensure_signing_key(k1);
  auto k2 = new_signing_key(kNow + 10);
  store.rotate_signing_key(k2, kNow + 10);
  auto k3 = new_signing_key(kNow + 20);
  store.rotate_signing_key(k3, kNow + 20);
  auto keys = store.signing_keys();
  REQUIRE(keys.size() == 3);
  CHECK(keys[0].kid == k3.kid);
  CHECK_FALSE(keys[0].retired_at.has_value());
  CHECK(keys[1].kid == k2.kid);
  CHECK(keys[1].retired_at == std::optional<std::int64_t>(kNow + 20));
  CHECK(keys[2].kid == k1.kid);
  CHECK(keys[2].retired_at == std::optional<std::int64_t>(kNow + 10));
  // A kid already in the ring is refused and changes nothing.
  CHECK_THROWS_AS(store.rotate_signing_key(k2, kNow + 30), db::StoreError);
  CHECK(store.signing_keys().front().kid == k3.kid);
  CHECK_FALSE(store.signing_keys().front().retired_at.has_value());
}

TEST_CASE("purge_signing_keys deletes only keys retired at or before the cut-off") {
  db::SqliteStore store(":memory:");
  auto k1 = new_signing_key(kNow);
  store.ensure_signing_key(k1);
  store.rotate_signing_key(new_signing_key(kNow + 10), kNow + 10); // k1 retired at +10
  store.rotate_signing_key(new_signing_key(kNow + 20), kNow + 20); // the second at +20
  CHECK(store.purge_signing_keys(kNow + 9) == 0);
  CHECK(store.purge_signing_keys(kNow + 10) == 1);
  auto keys = store.signing_keys();
  REQUIRE(keys.size() == 2);
  for (const auto &k : keys)
    CHECK(k.kid != k1.kid);
  CHECK(store.purge_signing_keys(kNow + 1000) == 1);
  REQUIRE(store.signing_keys().size() == 1);
  CHECK_FALSE(store.signing_keys().front().retired_at.has_value()); // never the signing key
}

TEST_CASE("migration 2 turns the jwt_secret setting into the first, legacy key") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  exec_elsewhere(path, "BEGIN;" + first_migration() +
                           "INSERT INTO settings(key, value) VALUES ('jwt_secret', '" + kOldSecret +
                           "'); PRAGMA user_version = 1; COMMIT;");
  db::SqliteStore store(path);
  CHECK(store.schema_version() >= 2);
  CHECK(count_rows_of(path, "SELECT count(*) FROM settings WHERE key = 'jwt_secret'") == 0);
  auto keys = store.signing_keys();
  REQUIRE(keys.size() == 1);
  CHECK(keys[0].secret == kOldSecret);
  CHECK(keys[0].legacy);
  CHECK_FALSE(keys[0].retired_at.has_value());
  CHECK(valid_kid(keys[0].kid));

  // A token the old release signed (no kid) still verifies, and new ones name the key.
  Config config;
  auto codec = make_token_codec(config, store, kNow);
  CHECK(codec->decode(sign(R"({"alg":"HS256","typ":"JWT"})", kOldSecret), kNow).ok());
  CHECK(header_of(codec->issue(claims()))["kid"] == keys[0].kid);
  CHECK(store.signing_keys().size() == 1); // no second key was made
}

TEST_CASE("a database without jwt_secret gets no legacy key: the server makes a fresh one") {
  db::SqliteStore store(":memory:");
  CHECK(store.signing_keys().empty());
  Config config;
  auto codec = make_token_codec(config, store, kNow);
  auto keys = store.signing_keys();
  REQUIRE(keys.size() == 1);
  CHECK_FALSE(keys[0].legacy);
  CHECK(codec->signing_kid() == keys[0].kid);
  CHECK(decode_error(*codec, sign(R"({"alg":"HS256","typ":"JWT"})", keys[0].secret)) ==
        ErrorCode::token_bad_signature);
}

TEST_CASE("with LATCH_JWT_SECRET the codec uses that secret alone and stores no key") {
  db::SqliteStore store(":memory:");
  Config config;
  config.jwt_secret = kNewSecret;
  auto codec = make_token_codec(config, store, kNow);
  CHECK(store.signing_keys().empty());
  CHECK(codec->signing_kid() == derive_kid(kNewSecret));
  CHECK(codec->decode(sign(R"({"alg":"HS256","typ":"JWT"})", kNewSecret), kNow).ok());
}

TEST_CASE("the change feed shows another connection's key change, and our own") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  db::SqliteStore store(path);
  const std::int64_t p0 = store.snapshot(0).position;
  store.ensure_signing_key(new_signing_key(kNow));
  exec_elsewhere(path, "UPDATE signing_keys SET created_at = created_at + 1");
  auto changes = store.changes_since(p0, 100);
  REQUIRE(changes.has_value());
  REQUIRE(changes->size() == 2);
  for (const auto &c : *changes)
    CHECK(c.kind == db::ChangeFeed::Change::Kind::signing_keys);
}

TEST_CASE("SigningKeyWatcher reloads the codec within two seconds of a rotation elsewhere (the "
          "feed says so)") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  db::SqliteStore store(path);
  Config config;
  auto codec = make_token_codec(config, store, kNow);
  const std::string first_kid = codec->signing_kid();
  std::string old_token = codec->issue(claims());
  SigningKeyWatcher watcher(config, store, *codec);
  db::SessionCache cache(store, store); // as the server wires it: the feed says keys changed
  cache.follow([&watcher] { watcher.reload(); });

  {
    db::SqliteStore admin(path); // as latch secret rotate does, on its own connection
    admin.rotate_signing_key(new_signing_key(kNow), kNow);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(3);
  while (codec->signing_kid() == first_kid && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(codec->signing_kid() != first_kid);
  CHECK(codec->signing_kid() == store.signing_keys().front().kid);
  CHECK(codec->decode(old_token, kNow).ok());
}

TEST_CASE("SigningKeyWatcher leaves a LATCH_JWT_SECRET codec alone") {
  latch::test::TempDir dir;
  const std::string path = dir.file("auth.db");
  db::SqliteStore store(path);
  Config config;
  config.jwt_secret = kNewSecret;
  auto codec = make_token_codec(config, store, kNow);
  SigningKeyWatcher watcher(config, store, *codec);
  db::SessionCache cache(store, store);
  cache.follow([&watcher] { watcher.reload(); });
  {
    db::SqliteStore admin(path);
    admin.rotate_signing_key(new_signing_key(kNow), kNow);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(codec->signing_kid() == derive_kid(kNewSecret));
  CHECK(header_of(codec->issue(claims())) == json{{"alg", "HS256"}, {"typ", "JWT"}});
}

TEST_CASE("a token checked once is still refused later when it expires, its key retires or goes") {
  // decode() remembers access tokens that verified; none of these may outlive what made
  // the first answer right.
  TokenCodec codec({key("k1", kOldSecret)});
  std::string token = codec.issue(claims());
  REQUIRE(codec.decode(token, kNow).ok());
  REQUIRE(codec.decode(token, kNow + 1).ok()); // answered from memory
  CHECK(decode_error(codec, token, kNow + 900) == ErrorCode::token_expired);
  CHECK(codec.decode(token, kNow + 2).ok());

  // Same text up to the last signature character: a different token, checked in full.
  std::string altered = token;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  CHECK(decode_error(codec, altered) == ErrorCode::token_bad_signature);

  // Retired: valid until its time, then refused although it was checked before.
  codec.set_keys({key("k2", kNewSecret), key("k1", kOldSecret, false, kNow + 60)});
  CHECK(codec.decode(token, kNow + 59).ok());
  CHECK(decode_error(codec, token, kNow + 60) == ErrorCode::token_bad_signature);

  // Gone from the ring: refused at once.
  REQUIRE(codec.decode(token, kNow + 10).ok());
  codec.set_keys({key("k2", kNewSecret)});
  CHECK(decode_error(codec, token, kNow + 10) == ErrorCode::token_bad_signature);
}

// --- asymmetric keys -------------------------------------------------------------------------

namespace {

SigningKey asymmetric(const std::string &kid, JwtAlg alg, std::int64_t verify_until = 0,
                      bool standby = false) {
  SigningKey k;
  k.kid = kid;
  k.alg = alg;
  k.secret = generate_private_key(alg);
  k.verify_until = verify_until;
  k.standby = standby;
  return k;
}

} // namespace

TEST_CASE("each asymmetric alg issues tokens that its key verifies, with a JOSE-sized signature") {
  for (auto [alg, bytes] : std::vector<std::pair<JwtAlg, std::size_t>>{
           {JwtAlg::EdDSA, 64}, {JwtAlg::ES256, 64}, {JwtAlg::RS256, 256}}) {
    CAPTURE(jwt_alg_name(alg));
    TokenCodec codec(std::vector<SigningKey>{asymmetric("k1", alg)});
    std::string token = codec.issue(claims());
    CHECK(header_of(token) == json{{"alg", jwt_alg_name(alg)}, {"typ", "JWT"}, {"kid", "k1"}});
    // ES256 is r || s (RFC 7518 3.4), never DER: 64 bytes exactly.
    CHECK(secure::base64url_decode(token.substr(token.rfind('.') + 1))->size() == bytes);
    auto c = codec.decode(token, kNow);
    REQUIRE(c.ok());
    CHECK(c.value().user_id == "user-1");
    // A changed payload byte breaks the signature.
    std::string bad = token;
    bad[token.find('.') + 5] = bad[token.find('.') + 5] == 'A' ? 'B' : 'A';
    CHECK(decode_error(codec, bad) != ErrorCode::token_expired);
    CHECK(codec.signing_alg() == alg);
  }
}

TEST_CASE("a kid selects one alg: another alg's header under that kid is refused") {
  SigningKey ed = asymmetric("ed", JwtAlg::EdDSA);
  SigningKey es = asymmetric("es", JwtAlg::ES256);
  TokenCodec codec(std::vector<SigningKey>{ed, es});
  std::string token = codec.issue(claims());
  std::string rest = token.substr(token.find('.'));
  auto with = [&](const std::string &header) { return b64(header) + rest; };
  CHECK(decode_error(codec, with(R"({"alg":"ES256","typ":"JWT","kid":"ed"})")) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, with(R"({"alg":"EdDSA","typ":"JWT","kid":"es"})")) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, with(R"({"alg":"none","typ":"JWT","kid":"ed"})")) ==
        ErrorCode::token_bad_signature);
  CHECK(decode_error(codec, with(R"({"alg":"EdDSA","typ":"JWT"})")) ==
        ErrorCode::token_bad_signature); // no kid: only an HS256 legacy key takes those
  CHECK(decode_error(codec, with(R"({"alg":"EdDSA","typ":"JWT","kid":"nope"})")) ==
        ErrorCode::token_bad_signature);
  CHECK(codec.decode(token, kNow).ok()); // the control
}

TEST_CASE("the JWKS lists asymmetric keys that verify now, never an HS256 key or private part") {
  SigningKey active = asymmetric("act", JwtAlg::ES256);
  SigningKey standby = asymmetric("stb", JwtAlg::EdDSA, 0, true);
  SigningKey retired = asymmetric("old", JwtAlg::RS256, kNow + 100);
  SigningKey gone = asymmetric("gone", JwtAlg::EdDSA, kNow - 1);
  SigningKey hs = key("hs", kOldSecret, false, kNow + 100);
  TokenCodec codec(std::vector<SigningKey>{active, standby, retired, gone, hs});
  json jwks = codec.jwks(kNow);
  std::vector<std::string> kids;
  for (const json &k : jwks["keys"]) {
    kids.push_back(k["kid"]);
    CHECK(k["use"] == "sig");
    for (const char *m : {"d", "p", "q", "dp", "dq", "qi", "k"})
      CHECK_FALSE(k.contains(m));
  }
  CHECK(kids == std::vector<std::string>{"act", "stb", "old"});
  CHECK(codec.jwks(kNow + 100)["keys"].size() == 2); // the retired key's time is up
  // A standby key signs nothing but verifies (another server may already sign with it).
  CHECK(codec.signing_kid() == "act");
  CHECK_THROWS_AS(TokenCodec(std::vector<SigningKey>{standby}), std::invalid_argument);
}

TEST_CASE("a key whose stored alg is not its type is refused, as is an HS256 legacy-only rule "
          "broken") {
  SigningKey wrong = asymmetric("w", JwtAlg::EdDSA);
  wrong.alg = JwtAlg::ES256;
  CHECK_THROWS_AS(TokenCodec(std::vector<SigningKey>{wrong}), std::invalid_argument);
  SigningKey legacy = asymmetric("l", JwtAlg::EdDSA);
  legacy.legacy = true;
  CHECK_THROWS_AS(TokenCodec(std::vector<SigningKey>{legacy}), std::invalid_argument);
}

TEST_CASE("read_private_key takes Ed25519, P-256 and RSA 2048+ PEM and refuses the rest") {
  for (JwtAlg alg : {JwtAlg::EdDSA, JwtAlg::ES256, JwtAlg::RS256}) {
    auto r = read_private_key(generate_private_key(alg));
    REQUIRE(std::holds_alternative<LoadedKey>(r));
    CHECK(std::get<LoadedKey>(r).alg == alg);
  }
  CHECK(std::holds_alternative<std::string>(read_private_key("not a key")));
  CHECK(std::holds_alternative<std::string>(read_private_key("")));
  // An RFC 7638 thumbprint: 43 base64url characters, a valid kid.
  std::string pem = generate_private_key(JwtAlg::EdDSA);
  std::string kid = jwk_thumbprint(public_jwk(JwtAlg::EdDSA, pem));
  CHECK(kid.size() == 43);
  CHECK(valid_kid(kid));
  CHECK(kid == jwk_thumbprint(public_jwk(JwtAlg::EdDSA, pem)));
}
