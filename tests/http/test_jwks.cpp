// Asymmetric signing keys: GET /.well-known/jwks.json, key states (standby, active, retired),
// latch secret rotate and list, --jwt-private-key, and the alg-pinning refusals (RFC 8725 3.1).
#include "support/latch_process.h"

#include "auth/secure.h"

#include <doctest/doctest.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

const std::string kPassword = "password123";

std::string b64url(std::string_view bytes) {
  return latch::secure::base64url_encode(bytes);
}

json jwt_header(const std::string &token) {
  auto bytes = latch::secure::base64url_decode(token.substr(0, token.find('.')));
  REQUIRE(bytes.has_value());
  return json::parse(*bytes);
}

// The payload and signature parts of a token, as encoded.
std::string payload_part(const std::string &token) {
  size_t a = token.find('.'), b = token.rfind('.');
  return token.substr(a + 1, b - a - 1);
}
std::string signature_part(const std::string &token) {
  return token.substr(token.rfind('.') + 1);
}

std::string hs256(std::string_view key, const json &header, const std::string &encoded_payload) {
  std::string input = b64url(header.dump()) + "." + encoded_payload;
  return input + "." + b64url(latch::secure::hmac_sha256(key, input));
}

// A JWK Set must hold public keys only: a private member ("d", "p", "q", "dp", "dq", "qi",
// "oth") or a symmetric one ("k") there hands out the power to sign. "" when clean.
std::string private_material(const json &jwks) {
  if (!jwks.is_object() || !jwks.contains("keys") || !jwks["keys"].is_array())
    return "not a JWK Set: " + jwks.dump();
  for (const json &k : jwks["keys"])
    for (const char *m : {"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
      if (k.contains(m)) return std::string("a JWK has the private member \"") + m + "\"";
  return "";
}

Reply fetch_jwks(const LatchProcess &latch) {
  Reply r = latch.get("/.well-known/jwks.json");
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type").find("application/json") == 0);
  const std::string problem = private_material(r.body);
  CHECK_MESSAGE(problem.empty(), problem);
  return r;
}

std::vector<std::string> kids(const Reply &jwks) {
  std::vector<std::string> out;
  for (const json &k : jwks.body["keys"])
    out.push_back(k["kid"]);
  return out;
}

bool has_kid(const Reply &jwks, const std::string &kid) {
  auto all = kids(jwks);
  return std::find(all.begin(), all.end(), kid) != all.end();
}

// The JWKS once it holds n keys: the server follows the database's change feed (a rotation
// made by the CLI reaches it within a second); up to 10 s.
Reply jwks_with(const LatchProcess &latch, std::size_t n) {
  for (int i = 0; i < 100; ++i) {
    Reply r = fetch_jwks(latch);
    if (r.body["keys"].size() == n) return r;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return fetch_jwks(latch);
}

struct Account {
  std::string username, email, access, refresh;
};

Account sign_up(const LatchProcess &latch) {
  Account a{unique("jw"), "", "", ""};
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/auth/signup",
                       {{"email", a.email}, {"username", a.username}, {"password", kPassword}});
  REQUIRE(r.status == 201);
  a.access = r.body["access_token"];
  a.refresh = r.body["refresh_token"];
  return a;
}

std::string fresh_access(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/auth/token", {{"username", a.username}, {"password", kPassword}});
  REQUIRE(r.status == 200);
  return r.body["access"];
}

// Waits (up to 10 s) for the server to sign with kid: it follows the database's change feed.
std::string access_signed_by(const LatchProcess &latch, const Account &a, const std::string &kid) {
  for (int i = 0; i < 100; ++i) {
    std::string token = fresh_access(latch, a);
    if (jwt_header(token)["kid"] == kid) return token;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("the server never signed with ", kid);
  return "";
}

CommandResult admin(const LatchProcess &latch, std::vector<std::string> args,
                    std::map<std::string, std::string> env = {}) {
  args.push_back("--db");
  args.push_back(latch.db_path());
  return run_latch(args, env);
}

LatchOptions with_alg(const std::string &alg) {
  return {{}, {{"LATCH_JWT_ALG", alg}}};
}

// The protected access-token routes of the four APIs that have one (envelope has none), and
// whether an answer is that API's own 401 for a bad token.
struct Protected {
  std::string api, method, path, field;
};
const std::vector<Protected> kProtected = {
    {"picflux", "POST", "/api/auth/logout", ""},
    {"simplejwt", "GET", "/auth/getuser", ""},
    {"simplejwt", "POST", "/auth/token/verify", "token"},
    {"flask", "POST", "/auth/logout", ""},
    {"v1", "GET", "/api/v1/authorized/me", ""},
    {"v1", "POST", "/api/v1/verify-token", "token"},
};

Reply present(const LatchProcess &latch, const Protected &p, const std::string &token) {
  if (!p.field.empty()) return latch.post(p.path, {{p.field, token}});
  if (p.method == "GET") return latch.get(p.path, token);
  return latch.post_raw(p.path, "", "application/json", token);
}

std::string refusal_problem(const std::string &api, const Reply &r) {
  const std::string got = "got " + std::to_string(r.status) + " " + r.text.substr(0, 200);
  if (r.status != 401) return "not 401; " + got;
  if (api == "picflux" && r.body != json{{"statusCode", 401}, {"message", "Unauthorized"}})
    return "not NestJS's 401; " + got;
  if (api == "simplejwt" &&
      r.body != json{{"detail", "Token is invalid or expired"}, {"code", "token_not_valid"}})
    return "not SimpleJWT's token_not_valid; " + got;
  // flask-jwt-extended's own words for a bad signature and for an alg it does not allow.
  if (api == "flask" && r.body != json{{"msg", "Signature verification failed"}} &&
      r.body != json{{"msg", "The specified alg value is not allowed"}})
    return "not flask-jwt-extended's signature or alg message; " + got;
  if (api == "v1" && r.body != json{{"error", "invalid token"}}) return "not v1's shape; " + got;
  return "";
}

// A PEM private key made here with OpenSSL, for --jwt-private-key.
std::string write_key(const TempDir &dir, const std::string &name, EVP_PKEY *key) {
  REQUIRE(key != nullptr);
  std::string path = dir.file(name);
  FILE *f = std::fopen(path.c_str(), "w");
  REQUIRE(f != nullptr);
  REQUIRE(PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1);
  std::fclose(f);
  EVP_PKEY_free(key);
  return path;
}

} // namespace

TEST_CASE("with HS256 keys only the JWKS is empty: a symmetric key is never published") {
  LatchProcess latch;
  Account a = sign_up(latch);
  CHECK(jwt_header(a.access)["alg"] == "HS256");
  Reply r = fetch_jwks(latch);
  CHECK(r.body == json{{"keys", json::array()}});
  CHECK(r.header("Cache-Control") == "public, max-age=300");
  CHECK(r.header_count("Pragma") == 0);
  // The secret itself appears nowhere in the answer.
  std::string secret = run_latch({"secret", "list", "--db", latch.db_path()}).output;
  CHECK(secret.find("active") != std::string::npos);
}

TEST_CASE("each asymmetric alg signs every token with a kid and publishes its public key only") {
  struct Expect {
    std::string alg, kty, crv;
    std::vector<std::string> members;
  };
  for (const Expect &e : std::vector<Expect>{{"EdDSA", "OKP", "Ed25519", {"x"}},
                                             {"ES256", "EC", "P-256", {"x", "y"}},
                                             {"RS256", "RSA", "", {"n", "e"}}}) {
    CAPTURE(e.alg);
    LatchProcess latch(with_alg(e.alg));
    Account a = sign_up(latch);
    json header = jwt_header(a.access);
    CHECK(header["alg"] == e.alg);
    REQUIRE(header["kid"].is_string());
    CHECK(jwt_header(a.refresh)["kid"] == header["kid"]);
    Reply r = fetch_jwks(latch);
    REQUIRE(r.body["keys"].size() == 1);
    const json &k = r.body["keys"][0];
    CHECK(k["kid"] == header["kid"]);
    CHECK(k["alg"] == e.alg);
    CHECK(k["use"] == "sig");
    CHECK(k["kty"] == e.kty);
    if (!e.crv.empty()) CHECK(k["crv"] == e.crv);
    std::set<std::string> want = {"kid", "alg", "use", "kty"};
    if (!e.crv.empty()) want.insert("crv");
    for (const auto &m : e.members)
      want.insert(m);
    CHECK(keys(k) == want); // nothing but the public members
    // The token works on the server itself, everywhere.
    CHECK(latch.get("/auth/getuser", a.access).status == 200);
    CHECK(latch.get("/api/v1/authorized/me", a.access).status == 200);
    CHECK(latch.post("/api/v1/refresh", {{"refresh_token", a.refresh}}).status == 200);
  }
}

TEST_CASE("a private or symmetric member in a JWK Set is caught by the check the tests use") {
  // The check must be able to fail: a key with "d", or an HS256 secret as "k", is flagged.
  CHECK_FALSE(private_material(json::parse(R"({"keys":[{"kty":"OKP","x":"a","d":"b"}]})")).empty());
  CHECK_FALSE(private_material(json::parse(R"({"keys":[{"kty":"oct","k":"c2VjcmV0"}]})")).empty());
  CHECK_FALSE(
      private_material(json::parse(R"({"keys":[{"kty":"RSA","n":"a","e":"b","p":"c"}]})")).empty());
  CHECK(private_material(json::parse(R"({"keys":[{"kty":"OKP","x":"a"}]})")).empty());
}

TEST_CASE("each key accepts only its own alg: none, HS256 over public key bytes, another key's "
          "alg and unknown kids are refused in each API's shape") {
  LatchProcess latch(with_alg("EdDSA"));
  Account a = sign_up(latch);
  const std::string ed_kid = jwt_header(a.access)["kid"];
  // A second key of another alg (standby: it verifies, signs nothing).
  CommandResult rotated = admin(latch, {"secret", "rotate", "--alg", "ES256"});
  REQUIRE(rotated.status == 0);
  Reply jwks = jwks_with(latch, 2);
  REQUIRE(jwks.body["keys"].size() == 2);
  std::string es_kid, ed_x;
  for (const json &k : jwks.body["keys"]) {
    if (k["alg"] == "ES256") es_kid = k["kid"];
    if (k["alg"] == "EdDSA") ed_x = k["x"];
  }
  REQUIRE_FALSE(es_kid.empty());
  REQUIRE_FALSE(ed_x.empty());
  const std::string ed_public = *latch::secure::base64url_decode(ed_x);
  const std::string payload = payload_part(a.access);
  const std::string signature = signature_part(a.access); // Ed25519: 64 bytes, as ES256's r||s

  auto with_header = [&](const json &header) {
    return b64url(header.dump()) + "." + payload + "." + signature;
  };
  struct Forgery {
    std::string name, token;
  };
  const std::vector<Forgery> forgeries = {
      {"alg none, kid of the EdDSA key",
       b64url(json{{"alg", "none"}, {"typ", "JWT"}, {"kid", ed_kid}}.dump()) + "." + payload + "."},
      {"alg none, no kid",
       b64url(json{{"alg", "none"}, {"typ", "JWT"}}.dump()) + "." + payload + "."},
      {"HS256 keyed with the EdDSA public key's raw bytes",
       hs256(ed_public, {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", ed_kid}}, payload)},
      {"HS256 keyed with the public key's base64url x",
       hs256(ed_x, {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", ed_kid}}, payload)},
      {"HS256 keyed with the published JWK's text",
       hs256(jwks.body["keys"][0].dump(), {{"alg", "HS256"}, {"typ", "JWT"}, {"kid", ed_kid}},
             payload)},
      {"HS256 keyed with the public key bytes, no kid",
       hs256(ed_public, {{"alg", "HS256"}, {"typ", "JWT"}}, payload)},
      {"the EdDSA signature under alg ES256 with the EdDSA kid",
       with_header({{"alg", "ES256"}, {"typ", "JWT"}, {"kid", ed_kid}})},
      {"the EdDSA signature under the ES256 key's kid",
       with_header({{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", es_kid}})},
      {"alg ES256 and the ES256 key's kid over an EdDSA signature",
       with_header({{"alg", "ES256"}, {"typ", "JWT"}, {"kid", es_kid}})},
      {"alg RS256 with the EdDSA kid",
       with_header({{"alg", "RS256"}, {"typ", "JWT"}, {"kid", ed_kid}})},
      {"an unknown kid", with_header({{"alg", "EdDSA"}, {"typ", "JWT"}, {"kid", "no-such-key"}})},
      {"no kid", with_header({{"alg", "EdDSA"}, {"typ", "JWT"}})},
  };
  for (const Protected &p : kProtected)
    for (const Forgery &f : forgeries) {
      Reply r = present(latch, p, f.token);
      std::string problem = refusal_problem(p.api, r);
      CHECK_MESSAGE(problem.empty(), p.method, " ", p.path, " x ", f.name, ": ", problem);
    }
  // The control: the genuine token, whose header member order these forgeries changed, works.
  for (const Protected &p : kProtected)
    if (p.method == "GET" || !p.field.empty())
      CHECK_MESSAGE(present(latch, p, a.access).status == 200, p.path);
}

TEST_CASE("secret rotate publishes a standby key that signs nothing; --activate makes it sign; "
          "the old key keeps verifying; secret list shows the states") {
  LatchProcess latch(with_alg("EdDSA"));
  Account a = sign_up(latch);
  const std::string first = jwt_header(a.access)["kid"];

  CommandResult r = admin(latch, {"secret", "rotate"}, {{"LATCH_JWT_ALG", "EdDSA"}});
  REQUIRE(r.status == 0);
  CHECK(r.output.find("standby key: ") != std::string::npos);
  CommandResult list = admin(latch, {"secret", "list", "--json"});
  REQUIRE(list.status == 0);
  json keys_listed = json::parse(list.output);
  REQUIRE(keys_listed.size() == 2);
  CHECK(keys_listed[0]["kid"] == first);
  CHECK(keys_listed[0]["state"] == "active");
  CHECK(keys_listed[1]["state"] == "standby");
  CHECK(keys_listed[1]["alg"] == "EdDSA");
  const std::string standby = keys_listed[1]["kid"];
  CHECK(list.output.find("BEGIN") == std::string::npos); // never a private key

  // Published at once, but the server keeps signing with the active key.
  Reply jwks = jwks_with(latch, 2);
  CHECK(has_kid(jwks, first));
  CHECK(has_kid(jwks, standby));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  CHECK(jwt_header(fresh_access(latch, a))["kid"] == first);

  // Before --standby-period has passed a plain rotate refuses and changes nothing.
  CommandResult early = admin(latch, {"secret", "rotate"}, {{"LATCH_JWT_ALG", "EdDSA"}});
  CHECK(early.status == 2);
  CHECK(early.output.find("--activate") != std::string::npos);

  CommandResult activate = admin(latch, {"secret", "rotate", "--activate"});
  REQUIRE(activate.status == 0);
  CHECK(activate.output.find("activated: " + standby) != std::string::npos);
  std::string second_token = access_signed_by(latch, a, standby);
  CHECK(jwt_header(second_token)["alg"] == "EdDSA");
  // The old key's tokens stay valid and the old key stays published until they expire.
  CHECK(latch.get("/auth/getuser", a.access).status == 200);
  jwks = fetch_jwks(latch);
  CHECK(has_kid(jwks, first));
  CHECK(has_kid(jwks, standby));
  list = admin(latch, {"secret", "list"});
  CHECK(list.output.find("retired") != std::string::npos);

  // --retire-now (a leak): the old keys leave the JWKS and their tokens are refused at once.
  CommandResult now =
      admin(latch, {"secret", "rotate", "--retire-now"}, {{"LATCH_JWT_ALG", "EdDSA"}});
  REQUIRE(now.status == 0);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    gone = latch.get("/auth/getuser", a.access).status == 401;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(gone);
  jwks = jwks_with(latch, 1);
  CHECK_FALSE(has_kid(jwks, first));
  CHECK_FALSE(has_kid(jwks, standby));
  CHECK(jwks.body["keys"].size() == 1);
}

TEST_CASE("a standby key becomes the signing key at the first rotate after --standby-period") {
  LatchProcess latch(with_alg("ES256"));
  Account a = sign_up(latch);
  const std::map<std::string, std::string> env = {{"LATCH_JWT_ALG", "ES256"},
                                                  {"LATCH_STANDBY_PERIOD", "1s"}};
  REQUIRE(admin(latch, {"secret", "rotate"}, env).status == 0);
  std::string standby = json::parse(admin(latch, {"secret", "list", "--json"}).output)[1]["kid"];
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  CommandResult r = admin(latch, {"secret", "rotate"}, env);
  REQUIRE(r.status == 0);
  CHECK(r.output.find("activated: " + standby) != std::string::npos);
  access_signed_by(latch, a, standby);
}

TEST_CASE("secret rotate without --alg or LATCH_JWT_ALG keeps the active key's alg") {
  LatchProcess latch(with_alg("ES256"));
  REQUIRE(admin(latch, {"secret", "rotate"}).status == 0); // no LATCH_JWT_ALG here
  json listed = json::parse(admin(latch, {"secret", "list", "--json"}).output);
  REQUIRE(listed.size() == 2);
  CHECK(listed[1]["state"] == "standby");
  CHECK(listed[1]["alg"] == "ES256"); // not HS256, which would sign at once and publish nothing
}

TEST_CASE("switching HS256 to EdDSA is one rotation, and the HS256 key is never published") {
  LatchProcess latch;
  Account a = sign_up(latch);
  const std::string hs_kid = jwt_header(a.access)["kid"];
  CHECK(jwt_header(a.access)["alg"] == "HS256");
  REQUIRE(admin(latch, {"secret", "rotate", "--alg", "EdDSA"}).status == 0);
  Reply jwks = jwks_with(latch, 1);
  REQUIRE(jwks.body["keys"].size() == 1);
  CHECK(jwks.body["keys"][0]["alg"] == "EdDSA");
  const std::string ed_kid = jwks.body["keys"][0]["kid"];
  REQUIRE(admin(latch, {"secret", "rotate", "--activate"}).status == 0);
  std::string token = access_signed_by(latch, a, ed_kid);
  CHECK(jwt_header(token)["alg"] == "EdDSA");
  CHECK(latch.get("/auth/getuser", a.access).status == 200); // the HS256 token still verifies
  CHECK_FALSE(has_kid(fetch_jwks(latch), hs_kid));
  // And back: an HS256 key signs at once (nothing to publish); the EdDSA key stays published
  // while its tokens may live.
  CommandResult back = admin(latch, {"secret", "rotate", "--alg", "HS256"});
  REQUIRE(back.status == 0);
  CHECK(back.output.find("new signing key: ") != std::string::npos);
  CHECK(has_kid(fetch_jwks(latch), ed_kid));
  CHECK(latch.get("/auth/getuser", token).status == 200);
}

TEST_CASE("--jwt-private-key signs with that PEM key, named by its thumbprint; bad keys are "
          "refused at start") {
  TempDir dir;
  const std::string ec =
      write_key(dir, "ec.pem", EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  {
    LatchProcess latch({{"--jwt-private-key", ec}, {}});
    Account a = sign_up(latch);
    json header = jwt_header(a.access);
    CHECK(header["alg"] == "ES256");
    Reply jwks = fetch_jwks(latch);
    REQUIRE(jwks.body["keys"].size() == 1);
    const json &k = jwks.body["keys"][0];
    CHECK(k["kid"] == header["kid"]);
    // RFC 7638: base64url(SHA-256 of {"crv","kty","x","y"} in that order, no spaces).
    json required = {{"crv", k["crv"]}, {"kty", k["kty"]}, {"x", k["x"]}, {"y", k["y"]}};
    unsigned char md[32];
    unsigned int n = 0;
    std::string text = required.dump();
    REQUIRE(EVP_Digest(text.data(), text.size(), md, &n, EVP_sha256(), nullptr) == 1);
    CHECK(k["kid"] == b64url({reinterpret_cast<const char *>(md), n}));
    CHECK(latch.get("/auth/getuser", a.access).status == 200);
    CommandResult r = admin(latch, {"secret", "rotate"}, {{"LATCH_JWT_PRIVATE_KEY", ec}});
    CHECK(r.status == 2);
    CHECK(r.output.find("LATCH_JWT_PRIVATE_KEY") != std::string::npos);
  }
  const std::string small =
      write_key(dir, "rsa1024.pem", EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", size_t{1024}));
  CommandResult r = run_latch(
      {"serve", "--addr", "127.0.0.1:0", "--db", dir.file("a.db"), "--jwt-private-key", small});
  CHECK(r.status != 0);
  CHECK(r.output.find("2048") != std::string::npos);
  std::ofstream(dir.file("junk.pem")) << "not a key\n";
  r = run_latch({"serve", "--addr", "127.0.0.1:0", "--db", dir.file("b.db"), "--jwt-private-key",
                 dir.file("junk.pem")});
  CHECK(r.status != 0);
  CHECK(r.output.find("junk.pem") != std::string::npos);
  r = run_latch({"serve", "--addr", "127.0.0.1:0", "--db", dir.file("c.db"), "--jwt-private-key",
                 ec, "--jwt-alg", "EdDSA"});
  CHECK(r.status != 0);
  r = run_latch({"serve", "--addr", "127.0.0.1:0", "--db", dir.file("d.db"), "--jwt-private-key",
                 dir.file("missing.pem")});
  CHECK(r.status != 0);
  CHECK(r.output.find("cannot open") != std::string::npos);
  r = run_latch({"serve", "--jwt-alg", "PS256"});
  CHECK(r.status == 2);
  CHECK(r.output.find("LATCH_JWT_ALG") == std::string::npos); // the flag is named
  CHECK(r.output.find("--jwt-alg") != std::string::npos);
}
