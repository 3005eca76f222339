// Forged and misused tokens at every protected route of every API: each must get a 401.
#include "support/latch_process.h"

#include "auth/secure.h"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <chrono>
#include <functional>
#include <set>
#include <string>
#include <vector>

using namespace latch::test;

namespace {

// The server runs with this secret, so the test can sign tokens exactly as the server does:
// expired ones, ones from the future, ones for users that never existed.
const std::string kSecret = "forged-tokens-test-secret-0123456789abcdef";
const std::string kPassword = "password123";
const std::string kHs256Header = R"({"alg":"HS256","typ":"JWT"})";

std::int64_t now_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string b64url(std::string_view bytes) {
  return latch::secure::base64url_encode(bytes);
}

// Standard base64 with '+', '/' and '=' padding (what a lenient decoder might also accept).
std::string b64_standard(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out.data()),
                          reinterpret_cast<const unsigned char *>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string hmac(const EVP_MD *md, std::string_view key, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  static const char empty = 0;
  HMAC(md, key.empty() ? &empty : key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char *>(data.data()), data.size(), out, &len);
  return std::string(reinterpret_cast<char *>(out), len);
}

// header.payload signed by hand (never with the server's TokenCodec).
std::string sign(const EVP_MD *md, std::string_view key, const std::string &header_json,
                 const json &payload) {
  std::string input = b64url(header_json) + "." + b64url(payload.dump());
  return input + "." + b64url(hmac(md, key, input));
}

std::string sign_hs256(const json &payload) {
  return sign(EVP_sha256(), kSecret, kHs256Header, payload);
}

struct Parts {
  std::string header, payload, signature; // as encoded in the token
};

Parts split(const std::string &token) {
  size_t a = token.find('.'), b = token.find('.', a + 1);
  REQUIRE(a != std::string::npos);
  REQUIRE(b != std::string::npos);
  return {token.substr(0, a), token.substr(a + 1, b - a - 1), token.substr(b + 1)};
}

// A user made for one case and the session its sign-up opened.
struct Victim {
  std::string user_id, username, email, access, refresh;
};

Victim new_victim(const LatchProcess &latch) {
  Victim v;
  v.username = unique("fv");
  v.email = lower(v.username) + "@example.com";
  Reply r = latch.post("/api/auth/signup",
                       {{"email", v.email}, {"username", v.username}, {"password", kPassword}});
  REQUIRE(r.status == 201);
  v.access = r.body["access_token"].get<std::string>();
  v.refresh = r.body["refresh_token"].get<std::string>();
  v.user_id = jwt_payload(v.access)["sub"].get<std::string>();
  return v;
}

enum class Api { picflux, simplejwt, flask, v1 };
enum class Wants { access, refresh, either };

// A protected route, how a token is presented to it, and which token forgeries start from.
struct Route {
  Api api;
  std::string method, path;
  std::string field; // body field holding the token; empty: Authorization: Bearer
  Wants wants;
  bool from_refresh; // forgeries are made from the victim's refresh token, else its access token
  std::string name() const {
    std::string n = method + " " + path;
    if (wants == Wants::either) n += from_refresh ? " (refresh-based)" : " (access-based)";
    return n;
  }
};

// Every route whose access in auth/http/routes.cpp is access_token or refresh_token, and the
// open routes that take a token in the body. envelope has no protected route.
const std::vector<Route> &routes() {
  static const std::vector<Route> all = {
      {Api::picflux, "POST", "/api/auth/logout", "", Wants::access, false},
      {Api::picflux, "POST", "/api/auth/refresh", "", Wants::refresh, true},
      {Api::simplejwt, "GET", "/auth/getuser", "", Wants::access, false},
      {Api::simplejwt, "POST", "/auth/token/refresh", "refresh", Wants::refresh, true},
      {Api::simplejwt, "POST", "/auth/token/verify", "token", Wants::either, false},
      {Api::simplejwt, "POST", "/auth/token/verify", "token", Wants::either, true},
      {Api::flask, "POST", "/auth/refresh", "", Wants::refresh, true},
      {Api::flask, "POST", "/auth/logout", "", Wants::access, false},
      {Api::v1, "GET", "/api/v1/authorized/me", "", Wants::access, false},
      {Api::v1, "POST", "/api/v1/logout", "", Wants::access, false},
      {Api::v1, "POST", "/api/v1/refresh", "refresh_token", Wants::refresh, true},
      {Api::v1, "POST", "/api/v1/verify", "token", Wants::either, false},
      {Api::v1, "POST", "/api/v1/verify", "token", Wants::either, true},
      {Api::v1, "POST", "/api/v1/verify-token", "token", Wants::either, false},
  };
  return all;
}

Reply present(const LatchProcess &latch, const Route &route, const std::string &token) {
  if (!route.field.empty()) return latch.post(route.path, {{route.field, token}});
  if (route.method == "GET") return latch.get(route.path, token);
  return latch.post_raw(route.path, "", "application/json", token);
}

std::string describe(const Reply &r) {
  return "got " + std::to_string(r.status) + " " + r.text.substr(0, 300);
}

// "" when r is the API's 401 for a bad token; otherwise what is wrong with it.
std::string refusal_problem(Api api, const Reply &r, const std::string &flask_msg) {
  if (r.status != 401) return "status is not 401; " + describe(r);
  switch (api) {
  case Api::picflux:
    if (r.body != json{{"statusCode", 401}, {"message", "Unauthorized"}})
      return "not NestJS's 401 body; " + describe(r);
    return "";
  case Api::simplejwt:
    if (r.body != json{{"detail", "Token is invalid or expired"}, {"code", "token_not_valid"}})
      return "not SimpleJWT's token_not_valid body; " + describe(r);
    if (r.header("WWW-Authenticate") != "Bearer realm=\"api\"")
      return "no WWW-Authenticate: Bearer realm=\"api\"; " + describe(r);
    return "";
  case Api::flask:
    if (keys(r.body) != std::set<std::string>{"msg"} || !r.body["msg"].is_string() ||
        r.body["msg"].get<std::string>().empty())
      return "not flask-jwt-extended's {\"msg\"} body; " + describe(r);
    if (!flask_msg.empty() && r.body["msg"] != flask_msg)
      return "msg is not \"" + flask_msg + "\"; " + describe(r);
    return "";
  case Api::v1:
    if (r.body != json{{"error", "invalid token"}})
      return "not v1's invalid token body; " + describe(r);
    return "";
  }
  return "unknown API";
}

// For a token too big to reach token checking: a 4xx size refusal in the API's own shape.
std::string size_refusal_problem(Api api, const Reply &r) {
  if (r.status != 400 && r.status != 413 && r.status != 431)
    return "neither 401 nor a size refusal; " + describe(r);
  bool shaped = false;
  switch (api) {
  case Api::picflux:
    shaped = r.body.is_object() && r.body["statusCode"] == r.status && r.body.contains("message");
    break;
  case Api::simplejwt: shaped = r.body.is_object() && r.body["detail"].is_string(); break;
  case Api::flask: shaped = r.body.is_object() && r.body["message"].is_string(); break;
  case Api::v1: shaped = r.body.is_object() && r.body["error"].is_string(); break;
  }
  return shaped ? "" : "size refusal not in the API's shape; " + describe(r);
}

// Deletes the user's row from the database the server has open, as an operator would by hand
// (another process: the sqlite3 CLI or psql). cascade: its sessions go with it, as the schema
// says; otherwise they are left behind, as with the sqlite3 CLI's default (foreign keys off),
// or on PostgreSQL with the foreign keys' triggers off for that statement (its own triggers,
// which feed the servers' change log, stay on, as SQLite's do).
void delete_user_by_hand(const std::string &db_path, const std::string &user_id, bool cascade) {
  const std::string where = " FROM users WHERE id = '" + user_id + "'";
  std::string sql = "DELETE" + where + ";";
  if (!on_postgres(db_path))
    sql = (cascade ? "PRAGMA foreign_keys=ON; " : "PRAGMA foreign_keys=OFF; ") + sql;
  else if (!cascade)
    sql = "ALTER TABLE users DISABLE TRIGGER ALL; ALTER TABLE users ENABLE TRIGGER USER; " + sql +
          " ALTER TABLE users ENABLE TRIGGER ALL;";
  REQUIRE(sql_value(db_path, "SELECT count(*)" + where) == "1");
  sql_exec(db_path, sql);
  CHECK(sql_value(db_path, "SELECT count(*)" + where) == "0");
  CHECK(sql_value(db_path, "SELECT count(*) FROM sessions WHERE user_id = '" + user_id + "'") ==
        (cascade ? "0" : "1"));
}

// What one forgery is made from.
struct Case {
  const LatchProcess &latch;
  const Route &route;
  const Victim &victim;
  const std::string &bystander_id; // another user that exists
  const std::string &base() const { return route.from_refresh ? victim.refresh : victim.access; }
  const std::string &other_type() const {
    return route.from_refresh ? victim.access : victim.refresh;
  }
  json claims() const { return jwt_payload(base()); }
  Parts parts() const { return split(base()); }
};

// A change made by another process reaches the server through the database's change feed,
// within milliseconds: waited for on a route that changes nothing (up to 2 s).
void wait_until_refused(const Case &c) {
  for (int i = 0; i < 200 && c.latch.get("/auth/getuser", c.victim.access).status == 200; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
}

struct Forgery {
  using Make = std::function<std::string(const Case &)>;
  Forgery(std::string name_, Make make_, std::string flask_msg_ = "", bool type_confusion_ = false,
          bool oversized_ = false, bool elsewhere_ = false)
      : name(std::move(name_)), make(std::move(make_)), flask_msg(std::move(flask_msg_)),
        type_confusion(type_confusion_), oversized(oversized_), elsewhere(elsewhere_) {}
  std::string name;
  Make make;
  std::string flask_msg; // flask-jwt-extended's message when it is certain; "" any
  bool type_confusion;   // only where one token type is expected
  bool oversized;        // may be refused by size before token checking
  // Done by another process (the sqlite3 CLI or psql): the server follows the database's change
  // feed and applies it within milliseconds (make() waits for it on a read-only route).
  bool elsewhere;
};

json with_user(json c, const std::string &id) {
  c["sub"] = c["uid"] = c["user_id"] = id;
  return c;
}

std::vector<Forgery> forgeries() {
  const std::string kAlgNotAllowed = "The specified alg value is not allowed";
  const std::string kBadSignature = "Signature verification failed";
  const std::string kRevoked = "Token has been revoked";
  std::vector<Forgery> out;

  // alg "none" in every spelling, unsigned and with the original signature kept.
  for (const std::string alg : {"none", "None", "NONE", "nOnE"}) {
    std::string header = R"({"alg":")" + alg + R"(","typ":"JWT"})";
    out.push_back(
        {"alg \"" + alg + "\", empty signature",
         [header](const Case &c) { return b64url(header) + "." + c.parts().payload + "."; },
         kAlgNotAllowed});
    out.push_back({"alg \"" + alg + "\", original signature",
                   [header](const Case &c) {
                     Parts p = c.parts();
                     return b64url(header) + "." + p.payload + "." + p.signature;
                   },
                   kAlgNotAllowed});
  }

  // Algorithm switching: another alg in the header with the original signature, signed with
  // a guessed key, and signed with the server's own key (HS384/HS512 as such; RS256/ES256
  // with HMAC-SHA256, the key-confusion attack).
  struct Alg {
    std::string name;
    const EVP_MD *md;
  };
  for (const Alg &alg : {Alg{"HS512", EVP_sha512()}, Alg{"HS384", EVP_sha384()},
                         Alg{"RS256", EVP_sha256()}, Alg{"ES256", EVP_sha256()}}) {
    std::string header = R"({"alg":")" + alg.name + R"(","typ":"JWT"})";
    out.push_back({"alg " + alg.name + ", original signature",
                   [header](const Case &c) {
                     Parts p = c.parts();
                     return b64url(header) + "." + p.payload + "." + p.signature;
                   },
                   kAlgNotAllowed});
    out.push_back(
        {"alg " + alg.name + ", signed with the guessed key \"secret\"",
         [header, alg](const Case &c) { return sign(alg.md, "secret", header, c.claims()); },
         kAlgNotAllowed});
    out.push_back(
        {"alg " + alg.name + ", signed with the server's key",
         [header, alg](const Case &c) { return sign(alg.md, kSecret, header, c.claims()); },
         kAlgNotAllowed});
  }

  out.push_back({"HS256 re-signed with a wrong key",
                 [](const Case &c) {
                   return sign(EVP_sha256(), "not-the-server-secret-0123456789abcdef", kHs256Header,
                               c.claims());
                 },
                 kBadSignature});
  out.push_back({"HS256 signed with the empty key",
                 [](const Case &c) { return sign(EVP_sha256(), "", kHs256Header, c.claims()); },
                 kBadSignature});

  // The payload changed under the original signature.
  auto tampered = [](const std::string &name, std::function<json(const Case &)> change) {
    return Forgery{"payload tampered (" + name + "), original signature",
                   [change](const Case &c) {
                     Parts p = c.parts();
                     return p.header + "." + b64url(change(c).dump()) + "." + p.signature;
                   },
                   "Signature verification failed"};
  };
  out.push_back(tampered("sub of another user",
                         [](const Case &c) { return with_user(c.claims(), c.bystander_id); }));
  out.push_back(tampered("exp a year later", [](const Case &c) {
    json j = c.claims();
    j["exp"] = j["exp"].get<std::int64_t>() + 365 * 86400;
    return j;
  }));
  out.push_back(tampered("token_type flipped", [](const Case &c) {
    json j = c.claims();
    j["token_type"] = j["token_type"] == "access" ? "refresh" : "access";
    return j;
  }));
  out.push_back(tampered("sid of another session", [](const Case &c) {
    json j = c.claims();
    j["sid"] = jwt_payload(c.other_type())["jti"]; // any other id
    return j;
  }));

  // Structure.
  out.push_back({"signature stripped (header.payload.)", [](const Case &c) {
                   Parts p = c.parts();
                   return p.header + "." + p.payload + ".";
                 }});
  out.push_back({"two parts (header.payload)", [](const Case &c) {
                   Parts p = c.parts();
                   return p.header + "." + p.payload;
                 }});
  out.push_back({"four parts (a trailing dot)", [](const Case &c) { return c.base() + "."; }});
  out.push_back({"five parts (JWE-like)", [](const Case &c) {
                   Parts p = c.parts();
                   return p.header + "." + p.payload + "." + p.signature + ".AAAA." + p.signature;
                 }});
  out.push_back({"signature in padded standard base64", [](const Case &c) {
                   Parts p = c.parts();
                   auto raw = latch::secure::base64url_decode(p.signature);
                   REQUIRE(raw);
                   std::string padded = b64_standard(*raw);
                   REQUIRE(padded.back() == '=');
                   return p.header + "." + p.payload + "." + padded;
                 }});
  out.push_back({"non-base64url bytes in the signature", [](const Case &c) {
                   Parts p = c.parts();
                   return p.header + "." + p.payload + ".*~$!" + p.signature.substr(4);
                 }});
  out.push_back({"non-base64url bytes in the header", [](const Case &c) {
                   Parts p = c.parts();
                   return "%7B*!~" + p.header + "." + p.payload + "." + p.signature;
                 }});
  out.push_back({"header a JSON array, original signature", [](const Case &c) {
                   Parts p = c.parts();
                   return b64url(R"(["HS256","JWT"])") + "." + p.payload + "." + p.signature;
                 }});
  out.push_back({"9 KB token signed with the server's key",
                 [](const Case &c) {
                   json j = c.claims();
                   j["pad"] = std::string(9 * 1024, 'p');
                   return sign_hs256(j);
                 },
                 "", false, true});
  out.push_back({"100 KB token signed with the server's key",
                 [](const Case &c) {
                   json j = c.claims();
                   j["pad"] = std::string(100 * 1024, 'p');
                   return sign_hs256(j);
                 },
                 "", false, true});

  // kid pointing at a file, signed with the empty key (what /dev/null would hold) or keeping
  // the original signature; and one signed with the server's key.
  for (const std::string kid : {"../../../../dev/null", "/etc/passwd"}) {
    std::string header = R"({"alg":"HS256","typ":"JWT","kid":")" + kid + R"("})";
    out.push_back({"kid \"" + kid + "\", signed with the empty key",
                   [header](const Case &c) { return sign(EVP_sha256(), "", header, c.claims()); }});
    out.push_back({"kid \"" + kid + "\", original signature", [header](const Case &c) {
                     Parts p = c.parts();
                     return b64url(header) + "." + p.payload + "." + p.signature;
                   }});
  }
  out.push_back({"kid \"../../../../dev/null\", signed with the server's key", [](const Case &c) {
                   return sign(EVP_sha256(), kSecret,
                               R"({"alg":"HS256","typ":"JWT","kid":"../../../../dev/null"})",
                               c.claims());
                 }});

  // Correctly signed with the server's key, but not valid.
  out.push_back({"signed with the server's key, expired a minute ago",
                 [](const Case &c) {
                   json j = c.claims();
                   j["iat"] = now_seconds() - 3600;
                   j["exp"] = now_seconds() - 60;
                   return sign_hs256(j);
                 },
                 "Token has expired"});
  out.push_back({"signed with the server's key, nbf 2 minutes in the future",
                 [](const Case &c) {
                   json j = c.claims();
                   j["nbf"] = now_seconds() + 120;
                   return sign_hs256(j);
                 },
                 "The token is not yet valid (nbf)"});
  out.push_back({"signed with the server's key, exp a string", [](const Case &c) {
                   json j = c.claims();
                   j["exp"] = std::to_string(j["exp"].get<std::int64_t>());
                   return sign_hs256(j);
                 }});
  out.push_back({"signed with the server's key, no sid", [](const Case &c) {
                   json j = c.claims();
                   j.erase("sid");
                   return sign_hs256(j);
                 }});
  out.push_back({"signed with the server's key, token_type \"admin\"", [](const Case &c) {
                   json j = c.claims();
                   j["token_type"] = "admin";
                   return sign_hs256(j);
                 }});
  out.push_back({"signed with the server's key, a user id that never existed",
                 [](const Case &c) {
                   json j = with_user(c.claims(), latch::secure::uuid_v4());
                   j["sid"] = latch::secure::random_token(16);
                   j["jti"] = latch::secure::random_token(16);
                   return sign_hs256(j);
                 },
                 kRevoked});
  out.push_back(
      {"signed with the server's key, a user id that never existed in a live session",
       [](const Case &c) { return sign_hs256(with_user(c.claims(), latch::secure::uuid_v4())); },
       kRevoked});
  out.push_back({"signed with the server's key, another existing user in a live session",
                 [](const Case &c) { return sign_hs256(with_user(c.claims(), c.bystander_id)); },
                 kRevoked});

  // Real tokens, misused.
  out.push_back(
      {"a token of the other type", [](const Case &c) { return c.other_type(); }, "", true});
  out.push_back(
      {"logged out (the access token presented at logout, and its session's refresh)",
       [](const Case &c) {
         REQUIRE(
             c.latch.post_raw("/api/auth/logout", "", "application/json", c.victim.access).status ==
             200);
         return c.base();
       },
       kRevoked});
  out.push_back(
      {"session revoked by a logout with another access token of it",
       [](const Case &c) {
         Reply more = c.latch.post_raw("/auth/refresh", "", "application/json",
                                       c.victim.refresh); // flask: same session
         REQUIRE(more.status == 200);
         std::string other = more.body["access_token"];
         REQUIRE(jwt_payload(other)["sid"] == jwt_payload(c.victim.access)["sid"]);
         REQUIRE(c.latch.post_raw("/api/v1/logout", "", "application/json", other).status == 200);
         return c.base();
       },
       kRevoked});
  out.push_back(
      {"session revoked by refresh-token reuse (its newest tokens)",
       [](const Case &c) {
         Reply second =
             c.latch.post_raw("/api/auth/refresh", "", "application/json", c.victim.refresh);
         REQUIRE(second.status == 200);
         Reply next = c.latch.post_raw("/api/auth/refresh", "", "application/json",
                                       second.body["refresh_token"].get<std::string>());
         REQUIRE(next.status == 200);
         // Two rotations back, so theft whatever --refresh-reuse-interval allows one step back.
         REQUIRE(c.latch.post_raw("/api/auth/refresh", "", "application/json", c.victim.refresh)
                     .status == 401);
         return next.body[c.route.from_refresh ? "refresh_token" : "access_token"]
             .get<std::string>();
       },
       kRevoked});
  out.push_back({"user deleted (its sessions cascade)",
                 [](const Case &c) {
                   delete_user_by_hand(c.latch.db_path(), c.victim.user_id, true);
                   wait_until_refused(c);
                   return c.base();
                 },
                 kRevoked, false, false, true});
  out.push_back({"user row deleted by hand, sessions left behind (foreign keys off)",
                 [](const Case &c) {
                   delete_user_by_hand(c.latch.db_path(), c.victim.user_id, false);
                   wait_until_refused(c);
                   return c.base();
                 },
                 kRevoked, false, false, true});
  return out;
}

LatchOptions with_known_secret() {
  return {{}, {{"LATCH_JWT_SECRET", kSecret}}};
}

} // namespace

TEST_CASE("tokens signed by hand with the configured secret are accepted when nothing is wrong") {
  // The control for the signed forgeries below: the test's signer matches the server's, so
  // those are refused for what they change, not for how they were signed.
  LatchProcess latch(with_known_secret());
  Victim v = new_victim(latch);
  json access = jwt_payload(v.access);
  access["jti"] = latch::secure::random_token(16);
  access["iat"] = now_seconds() + 3600; // issued "later": a clock stepped back, no reason to refuse
  access["nbf"] = now_seconds() + 10;   // inside the 30 s leeway
  access["exp"] = now_seconds() + 600;
  std::string token = sign_hs256(access);
  CHECK(token.substr(0, token.find('.')) == v.access.substr(0, v.access.find('.')));
  Reply me = latch.get("/auth/getuser", token);
  CHECK(me.status == 200);
  CHECK(me.body == json{{"username", v.username}});
  CHECK(latch.get("/api/v1/authorized/me", token).status == 200);
  CHECK(latch.post("/auth/token/verify", {{"token", token}}).status == 200);

  json refresh = jwt_payload(v.refresh);
  refresh["exp"] = refresh["exp"].get<std::int64_t>() + 60;
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", sign_hs256(refresh)}}).status == 200);
  Reply rotated = latch.post_raw("/api/auth/refresh", "", "application/json", sign_hs256(refresh));
  CHECK(rotated.status == 200);
}

TEST_CASE("every forged or misused token gets a 401 in the API's own shape at every protected "
          "route") {
  LatchProcess latch(with_known_secret());
  const std::string bystander = new_victim(latch).user_id;
  const std::vector<Forgery> all = forgeries();

  int cases = 0, refused = 0;
  for (const Route &route : routes()) {
    for (const Forgery &forgery : all) {
      if (forgery.type_confusion && route.wants == Wants::either) continue;
      ++cases;
      const std::string name = route.name() + " x " + forgery.name;
      Victim victim = new_victim(latch);
      Case c{latch, route, victim, bystander};
      std::string token = forgery.make(c);
      Reply r = present(latch, route, token);

      std::string flask_msg = forgery.flask_msg;
      if (forgery.type_confusion)
        flask_msg = route.wants == Wants::refresh ? "Only refresh tokens are allowed"
                                                  : "Only non-refresh tokens are allowed";
      std::string problem = refusal_problem(route.api, r, flask_msg);
      if (!problem.empty() && forgery.oversized && r.status != 401)
        problem = size_refusal_problem(route.api, r);
      CHECK_MESSAGE(problem.empty(), name, ": ", problem);
      if (problem.empty()) ++refused;
    }
  }
  MESSAGE("forged-token cases (route x forgery): ", cases, " over ", routes().size(),
          " routes and ", all.size(), " forgeries; refused correctly: ", refused);
  CHECK(cases >= 13 * 50);

  // After the barrage the server still answers a real token at every route.
  Victim v = new_victim(latch);
  Reply me = latch.get("/auth/getuser", v.access);
  CHECK(me.status == 200);
  CHECK(me.body == json{{"username", v.username}});
  Reply claims = latch.get("/api/v1/authorized/me", v.access);
  CHECK(claims.status == 200);
  CHECK(claims.body["claims"]["sub"] == v.user_id);
  CHECK(latch.post("/auth/token/verify", {{"token", v.access}}).status == 200);
  CHECK(latch.post("/api/v1/verify", {{"token", v.refresh}}).status == 200);
  CHECK(latch.post("/api/v1/refresh", {{"refresh_token", v.refresh}}).status == 200);
  CHECK(latch.post_raw("/auth/refresh", "", "application/json", v.refresh).status == 200);
  Reply rotated = latch.post_raw("/api/auth/refresh", "", "application/json", v.refresh);
  REQUIRE(rotated.status == 200);
  Reply again = latch.post("/auth/token/refresh", {{"refresh", rotated.body["refresh_token"]}});
  REQUIRE(again.status == 200);
  std::string access = again.body["access"];
  CHECK(latch.post_raw("/auth/logout", "", "application/json", access).status == 200);
  CHECK(latch.get("/auth/getuser", access).status == 401);
  CHECK(latch.log().find("error on") == std::string::npos);
  CHECK(latch.log().find("unexpected exception") == std::string::npos);
}
