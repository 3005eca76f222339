// Hostile input on every route gets a 4xx in its API's own error shape: never a 5xx, never a hang.
#include "support/latch_process.h"
#include "support/raw_client.h"

#include "auth/http/routes.h"
#include "auth/secure.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace latch::test;

namespace {

constexpr std::size_t kBodyLimit = 64 * 1024; // Config::max_body_bytes, the default
constexpr int kTimeout = 10;                  // seconds: no answer by then is a hang
constexpr int kSlowTimeout = 20;              // for requests that wait on the read timeout (5 s)
const std::string kPassword = "Passw0rd!23";  // strong enough for envelope, short for picflux
// Users the barrage signs up get another password, so a sign-up whose username is, say, "%"
// never makes a sign-in with that username and kPassword succeed.
const std::string kNewPassword = "N3wUser!pass";

// ---------------------------------------------------------------------------------------------
// Raw HTTP/1.1 requests: every byte is ours (no Content-Type, lying lengths, NUL bytes in
// headers), sent by RawClient, and every exchange has a deadline, so a hang is a failure.

struct Request {
  std::string method = "POST";
  std::string target;
  std::optional<std::string> content_type = "application/json";
  std::string body;
  std::string authorization;                              // the whole header value, if any
  std::vector<std::pair<std::string, std::string>> extra; // more headers, sent as given
  std::optional<std::string> length;                      // Content-Length; default: the truth
  bool send_length = true;
  bool keep_alive = false;  // leave the connection open after the answer (no Connection: close)
  bool until_close = false; // read until the server closes, not just the first answer
  int timeout_s = kTimeout;
};

// What came back on one connection.
struct Wire {
  bool answered = false; // a whole response arrived before the deadline
  std::string failure;   // why not
  RawResponse response;  // the first response
  json parsed;           // its body as JSON (discarded if it is not JSON)
  std::string raw;       // every byte that arrived
};

std::string render(const Request &r) {
  std::vector<std::pair<std::string, std::string>> headers = {{"Host", "127.0.0.1"}};
  if (!r.keep_alive) headers.emplace_back("Connection", "close");
  if (!r.authorization.empty()) headers.emplace_back("Authorization", r.authorization);
  if (r.content_type) headers.emplace_back("Content-Type", *r.content_type);
  if (r.send_length)
    headers.emplace_back("Content-Length", r.length.value_or(std::to_string(r.body.size())));
  headers.insert(headers.end(), r.extra.begin(), r.extra.end());
  return raw_request(r.method, r.target, headers, r.body);
}

// One request on a fresh connection, sent while reading (a server may answer before it has read
// a large body). Without doctest macros, so worker threads may run it.
Wire exchange(int port, const Request &r) {
  Wire w;
  RawClient c(port);
  if (!c.connected()) return w.failure = "connect() failed", w;
  w.raw = c.send_while_reading(render(r), r.until_close ? RawClient::until_closed : 1,
                               std::chrono::seconds(r.timeout_s));
  const auto responses = c.responses();
  if (!responses.empty() && responses.front().status != 0) {
    w.answered = true;
    w.response = responses.front();
    w.parsed = json::parse(w.response.body, nullptr, false);
  } else if (c.closed()) {
    w.failure =
        "connection closed without a whole response (" + std::to_string(w.raw.size()) + " bytes)";
  } else {
    w.failure = "no answer within " + std::to_string(r.timeout_s) + " s (hang)";
  }
  return w;
}

// ---------------------------------------------------------------------------------------------
// The error shape of each API (SPEC.md "Each API" and auth/apis/*.cpp): "" when body has it.

bool all_strings(const json &list) {
  return list.is_array() && !list.empty() &&
         std::all_of(list.begin(), list.end(), [](const json &v) { return v.is_string(); });
}

std::string shape_problem(const std::string &api, int status, const json &b) {
  if (!b.is_object()) return "body is not a JSON object";
  auto only = [&](const std::set<std::string> &allowed) {
    for (const auto &k : keys(b))
      if (!allowed.count(k)) return "unexpected key \"" + k + "\"";
    return std::string();
  };
  if (api == "picflux") { // NestJS: {statusCode, message, error?}
    if (!b.contains("statusCode") || b["statusCode"] != status)
      return "statusCode is not " + std::to_string(status);
    if (!b.contains("message") || !(b["message"].is_string() || all_strings(b["message"])))
      return "message is neither a string nor a list of strings";
    if (b.contains("error") && !b["error"].is_string()) return "error is not a string";
    return only({"statusCode", "message", "error"});
  }
  if (api == "simplejwt") { // DRF: {detail, code?} or {field: ["..."]}
    if (b.empty()) return "empty object";
    if (b.contains("detail")) {
      if (!b["detail"].is_string()) return "detail is not a string";
      if (b.contains("code") && !b["code"].is_string()) return "code is not a string";
      return only({"detail", "code"});
    }
    for (const auto &item : b.items())
      if (!all_strings(item.value()))
        return "field \"" + item.key() + "\" is not a list of strings";
    return {};
  }
  if (api == "flask") { // {"message"} or flask-jwt-extended's {"msg"} (401 only)
    if (b.size() != 1) return "not exactly one key";
    if (b.contains("message")) return b["message"].is_string() ? "" : "message is not a string";
    if (b.contains("msg"))
      return !b["msg"].is_string() ? "msg is not a string"
             : status != 401       ? "msg with a non-401"
                                   : "";
    return "neither message nor msg";
  }
  if (api == "v1") { // Gin: {"error"}
    if (!b.contains("error") || !b["error"].is_string()) return "no error string";
    return only({"error"});
  }
  if (api == "envelope") {
    if (keys(b) != std::set<std::string>{"code", "requestTime", "message", "apiVersion", "data"})
      return "keys are not the envelope's";
    if (b["code"] != status) return "code is not the status";
    static const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)");
    if (!b["requestTime"].is_string() ||
        !std::regex_match(b["requestTime"].get<std::string>(), iso))
      return "requestTime is not ISO 8601 with milliseconds";
    if (!b["message"].is_string() || !b["apiVersion"].is_string() || !b["data"].is_array())
      return "message, apiVersion or data has the wrong type";
    return {};
  }
  return "unknown API " + api;
}

// ---------------------------------------------------------------------------------------------
// Accounts and tokens, made without doctest macros so worker threads may call them.

struct Account {
  std::string username, email, password;
};

std::optional<Account> make_account(const LatchProcess &latch) {
  Account a{unique("hz"), "", kPassword};
  a.email = lower(a.username) + "@example.com";
  Reply r = latch.post("/api/v1/register?sendEmail=false",
                       {{"email", a.email}, {"username", a.username}, {"password", a.password}});
  if (r.status != 201) return std::nullopt;
  return a;
}

struct Tokens {
  std::string access, refresh, error;
};

// Signs in through the API's own sign-in route.
Tokens sign_in(const LatchProcess &latch, const std::string &api, const Account &a) {
  Tokens t;
  Reply r;
  if (api == "picflux")
    r = latch.post("/api/auth/signin", {{"email", a.email}, {"password", a.password}});
  else if (api == "simplejwt")
    r = latch.post("/auth/token", {{"username", a.username}, {"password", a.password}});
  else if (api == "flask")
    r = latch.post("/auth/login", {{"username", a.username}, {"password", a.password}});
  else
    r = latch.post("/api/v1/login", {{"email", a.email}, {"password", a.password}});
  if (r.status != 200 || !r.body.is_object()) {
    t.error = api + " sign-in answered " + std::to_string(r.status) + " " + r.text;
    return t;
  }
  for (const char *k : {"access", "access_token"})
    if (r.body.contains(k)) t.access = r.body[k];
  for (const char *k : {"refresh", "refresh_token"})
    if (r.body.contains(k)) t.refresh = r.body[k];
  return t;
}

// A reset token for a; the server runs with --reset-token-in-response.
std::string reset_token(const LatchProcess &latch, const Account &a) {
  Reply r = latch.post("/auth/forget-password", {{"email", a.email}});
  return r.status == 200 && r.body.contains("reset_token")
             ? r.body["reset_token"].get<std::string>()
             : std::string();
}

// ---------------------------------------------------------------------------------------------
// The routes as this suite attacks them. `latch routes` lists the routes; this table says how
// each one takes input and how to make a valid request that hostile payloads then corrupt.

enum class Input {
  json,       // a JSON body only
  json_form,  // JSON or urlencoded
  json_multi, // JSON, urlencoded or multipart
  ignored,    // no body is read (Bearer-only routes); a body is accepted and ignored
  query,      // GET: the query string (and headers)
};

struct Env {
  const LatchProcess &latch;
  Account shared; // signs in; its password never changes
};

struct Prepared {
  json body = json::object(); // a valid body: the fields a correct client sends
  std::string bearer;         // a valid token for Bearer routes
  std::string error;          // preparing failed
};

struct Spec {
  std::string method, path;
  Input input;
  bool creates = false;                   // valid input creates a user
  bool bearer = false;                    // Authorization: Bearer is the route's credential
  std::vector<std::string> fields = {};   // string fields of the valid body
  std::set<std::string> free_fields = {}; // fields for which any text is a valid value
  std::function<Prepared(const Env &)> prepare;
  std::set<std::string> optional = {}; // fields that may be blank (an absent value)
  std::string api = {};                // filled from `latch routes`
  bool reads_input() const { return input != Input::ignored && !(input == Input::query && bearer); }
};

Prepared body_only(json body) {
  Prepared p;
  p.body = std::move(body);
  return p;
}

json new_user_body(bool display_name = false) {
  std::string name = unique("hn");
  json b = {
      {"username", name}, {"email", lower(name) + "@example.com"}, {"password", kNewPassword}};
  if (display_name) b["display_name"] = "Hostile Tester";
  return b;
}

// Fresh tokens for each case: hostile bodies that a route ignores may still log out or rotate.
Prepared with_tokens(const Env &env, const std::string &api, bool refresh,
                     const char *body_field = nullptr) {
  Prepared p;
  Tokens t = sign_in(env.latch, api, env.shared);
  if (!t.error.empty()) return p.error = t.error, p;
  const std::string &token = refresh ? t.refresh : t.access;
  if (body_field)
    p.body[body_field] = token;
  else
    p.bearer = token;
  return p;
}

// A fresh account and a reset token for it (a valid reset changes that account only).
Prepared with_reset(const Env &env, bool v1) {
  Prepared p;
  auto a = make_account(env.latch);
  if (!a) return p.error = "could not make an account", p;
  std::string token = reset_token(env.latch, *a);
  if (token.empty()) return p.error = "no reset token", p;
  if (v1)
    p.body = {{"token", token},
              {"new_password", "N3wPassw0rd!"},
              {"new_password_confirm", "N3wPassw0rd!"}};
  else
    p.body = {{"reset_token", token}, {"new_password", "N3wPassw0rd!"}};
  return p;
}

std::vector<Spec> specs() {
  using I = Input;
  auto shared_body = [](std::vector<std::string> names) {
    return [names](const Env &env) {
      json b = json::object();
      for (const auto &n : names) {
        if (n == "email")
          b[n] = env.shared.email;
        else if (n == "username")
          b[n] = env.shared.username;
        else if (n == "identity")
          b[n] = env.shared.username;
        else if (n == "password")
          b[n] = env.shared.password;
      }
      return body_only(b);
    };
  };
  auto tokens = [](std::string api, bool refresh, const char *field = nullptr) {
    return [api, refresh, field](const Env &env) { return with_tokens(env, api, refresh, field); };
  };
  auto new_user = [](bool display_name) {
    return [display_name](const Env &) { return body_only(new_user_body(display_name)); };
  };
  return {
      {.method = "POST",
       .path = "/api/auth/signup",
       .input = I::json_form,
       .creates = true,
       .fields = {"email", "username", "password"},
       .prepare = new_user(false)},
      {.method = "POST",
       .path = "/api/auth/signin",
       .input = I::json_form,
       .fields = {"email", "password"},
       .prepare = shared_body({"email", "password"})},
      {.method = "POST",
       .path = "/api/auth/logout",
       .input = I::ignored,
       .bearer = true,
       .prepare = tokens("picflux", false)},
      {.method = "POST",
       .path = "/api/auth/refresh",
       .input = I::ignored,
       .bearer = true,
       .prepare = tokens("picflux", true)},
      {.method = "POST",
       .path = "/auth/token",
       .input = I::json_multi,
       .fields = {"username", "password"},
       .prepare = shared_body({"username", "password"})},
      {.method = "POST",
       .path = "/auth/token/refresh",
       .input = I::json_multi,
       .fields = {"refresh"},
       .prepare = tokens("simplejwt", true, "refresh")},
      {.method = "POST",
       .path = "/auth/token/verify",
       .input = I::json_multi,
       .fields = {"token"},
       .prepare = tokens("simplejwt", false, "token")},
      {.method = "POST",
       .path = "/auth/register",
       .input = I::json_multi,
       .creates = true,
       .fields = {"username", "password", "email"},
       .prepare = new_user(false),
       .optional = {"email"}},
      {.method = "GET",
       .path = "/auth/getuser",
       .input = I::query,
       .bearer = true,
       .prepare = tokens("simplejwt", false)},
      {.method = "POST",
       .path = "/auth/signup",
       .input = I::json,
       .creates = true,
       .fields = {"username", "email", "password"},
       .prepare = new_user(false)},
      {.method = "POST",
       .path = "/auth/login",
       .input = I::json,
       .fields = {"username", "password"},
       .prepare = shared_body({"username", "password"})},
      {.method = "POST",
       .path = "/auth/refresh",
       .input = I::ignored,
       .bearer = true,
       .prepare = tokens("flask", true)},
      {.method = "POST",
       .path = "/auth/forget-password",
       .input = I::json,
       .fields = {"email"},
       .prepare = shared_body({"email"})},
      {.method = "POST",
       .path = "/auth/reset-password",
       .input = I::json,
       .fields = {"reset_token", "new_password"},
       .free_fields = {"new_password"},
       .prepare = [](const Env &env) { return with_reset(env, false); }},
      {.method = "POST",
       .path = "/auth/logout",
       .input = I::ignored,
       .bearer = true,
       .prepare = tokens("flask", false)},
      {.method = "POST",
       .path = "/api/v1/register",
       .input = I::json,
       .creates = true,
       .fields = {"email", "username", "password"},
       .prepare = new_user(false)},
      {.method = "POST",
       .path = "/api/v1/login",
       .input = I::json,
       .fields = {"email", "password"},
       .prepare = shared_body({"email", "password"})},
      {.method = "POST",
       .path = "/api/v1/refresh",
       .input = I::json,
       .fields = {"refresh_token"},
       .prepare = tokens("v1", true, "refresh_token")},
      {.method = "POST",
       .path = "/api/v1/verify",
       .input = I::json,
       .fields = {"token"},
       .prepare = tokens("v1", false, "token")},
      {.method = "POST",
       .path = "/api/v1/verify-token",
       .input = I::json,
       .fields = {"token"},
       .prepare = tokens("v1", false, "token")},
      {.method = "GET",
       .path = "/api/v1/verify",
       .input = I::query,
       .prepare = [](const Env &) { return Prepared{}; }},
      // Answers 200 to any email and username, so it tells nobody who has an account.
      {.method = "POST",
       .path = "/api/v1/password-reset",
       .input = I::json,
       .fields = {"email", "username"},
       .free_fields = {"email", "username"},
       .prepare = shared_body({"email", "username"})},
      {.method = "POST",
       .path = "/api/v1/password-reset-confirm",
       .input = I::json,
       .fields = {"token", "new_password", "new_password_confirm"},
       .prepare = [](const Env &env) { return with_reset(env, true); }},
      {.method = "GET",
       .path = "/api/v1/authorized/me",
       .input = I::query,
       .bearer = true,
       .prepare = tokens("v1", false)},
      {.method = "POST",
       .path = "/api/v1/logout",
       .input = I::ignored,
       .bearer = true,
       .prepare = tokens("v1", false)},
      {.method = "POST",
       .path = "/api/v1/auth/login",
       .input = I::json,
       .fields = {"identity", "password"},
       .prepare = shared_body({"identity", "password"})},
      {.method = "POST",
       .path = "/api/v1/auth/signUp",
       .input = I::json,
       .creates = true,
       .fields = {"username", "email", "password", "display_name"},
       .free_fields = {"display_name"},
       .prepare = new_user(true)},
  };
}

// `latch routes` as (method, path, api, access) rows.
std::vector<std::vector<std::string>> listed_routes() {
  CommandResult out = run_latch({"routes"});
  std::vector<std::vector<std::string>> rows;
  std::istringstream lines(out.output);
  std::string line;
  std::getline(lines, line); // the heading
  while (std::getline(lines, line)) {
    std::istringstream words(line);
    std::vector<std::string> row(4);
    if (words >> row[0] >> row[1] >> row[2] >> row[3]) rows.push_back(row);
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Payloads. Each one corrupts the valid request of a route; its Expect says what a correct
// server must answer.

enum class Expect {
  refuse,        // 4xx where the route reads this input; elsewhere 2xx or 4xx
  refuse_always, // 4xx on every route (the request itself is broken, or the credential is)
  unreadable,    // 4xx with {"error": "..."}: the request line cannot be read, so its path and
                 // with it the API are unknown and no API's shape applies
  too_large,     // 413 on every route
  value,         // a well-formed value: 4xx unless the route creates users, the field takes any
                 // text, or the route does not read it
  either,        // 2xx or 4xx
  fits,          // 2xx or 4xx, but not 413: the body is within the limit
};

struct Case {
  const Spec *spec;
  std::string payload;
  std::string field; // the field it attacks, if one
  Expect expect;
  std::function<Request(const Prepared &)> make;
};

// A JSON string of raw bytes, not escaped: so invalid UTF-8 and control bytes get through.
std::string quoted(const std::string &raw) {
  return "\"" + raw + "\"";
}

// The valid body with field's value replaced by raw JSON text (which may be invalid JSON).
std::string with_raw(const json &body, const std::string &field, const std::string &raw) {
  std::string out = "{";
  bool seen = false;
  for (const auto &item : body.items()) {
    if (out.size() > 1) out += ",";
    out += json(item.key()).dump() + ":";
    if (item.key() == field) {
      out += raw;
      seen = true;
    } else {
      out += item.value().dump();
    }
  }
  if (!seen) out += std::string(out.size() > 1 ? "," : "") + json(field).dump() + ":" + raw;
  return out + "}";
}

std::string value_of(const json &body, const std::string &field) {
  return body.contains(field) && body[field].is_string() ? body[field].get<std::string>() : "x";
}

// The value with the character before any '@' (or the last one) replaced by c: a LIKE pattern
// that would match the real value.
std::string wildcard(std::string v, char c) {
  size_t at = v.find('@');
  size_t i = at == std::string::npos ? v.size() - 1 : at - 1;
  if (!v.empty()) v[i] = c;
  return v;
}

std::string form_of(const json &body) {
  std::string out;
  for (const auto &item : body.items()) {
    if (!out.empty()) out += "&";
    std::string v =
        item.value().is_string() ? item.value().get<std::string>() : item.value().dump();
    std::string enc;
    for (unsigned char c : v) {
      if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~')
        enc += static_cast<char>(c);
      else {
        char hex[4];
        std::snprintf(hex, sizeof hex, "%%%02X", c);
        enc += hex;
      }
    }
    out += item.key() + "=" + enc;
  }
  return out;
}

std::string deep(const std::string &open, const std::string &middle, const std::string &close,
                 size_t n) {
  std::string out;
  out.reserve((open.size() + close.size()) * n + middle.size());
  for (size_t i = 0; i < n; ++i)
    out += open;
  out += middle;
  for (size_t i = 0; i < n; ++i)
    out += close;
  return out;
}

// The body a payload corrupts: the route's own, or for routes that ignore bodies a plausible one.
json body_of(const Spec &s, const Prepared &p) {
  return s.input == Input::ignored ? json{{"email", "someone@example.com"}, {"password", kPassword}}
                                   : p.body;
}

// The request a correct client would send: the route's method and path, its token, its body.
Request base_request(const Spec &s, const Prepared &p) {
  Request r;
  r.method = s.method;
  r.target = s.path;
  if (!p.bearer.empty()) r.authorization = "Bearer " + p.bearer;
  if (s.input == Input::query) {
    r.content_type.reset();
    r.send_length = false;
  } else {
    r.body = body_of(s, p).dump();
  }
  return r;
}

std::string first_field(const Spec &s) {
  return s.fields.empty() ? "email" : s.fields.front();
}

std::vector<Case> cases_for(const Spec &spec) {
  std::vector<Case> out;
  const Spec *s = &spec;
  auto add = [&](std::string name, Expect e, std::function<Request(const Prepared &)> make,
                 std::string field = "") {
    out.push_back({.spec = s,
                   .payload = std::move(name),
                   .field = std::move(field),
                   .expect = e,
                   .make = std::move(make)});
  };
  // A payload that replaces the whole body text.
  auto body = [&](std::string name, Expect e, std::function<std::string(const json &)> text,
                  std::optional<std::string> type = "application/json") {
    add(std::move(name), e, [s, text, type](const Prepared &p) {
      Request r = base_request(*s, p);
      r.body = text(body_of(*s, p));
      r.content_type = type;
      return r;
    });
  };
  // A payload that replaces one field's value with raw JSON text.
  auto field_raw = [&](const std::string &f, std::string name, Expect e,
                       std::function<std::string(const std::string &valid)> raw) {
    add(
        name + " in " + f, e,
        [s, f, raw](const Prepared &p) {
          Request r = base_request(*s, p);
          json b = body_of(*s, p);
          r.body = with_raw(b, f, raw(value_of(b, f)));
          return r;
        },
        f);
  };
  const std::string f0 = first_field(spec);

  if (spec.input == Input::query) {
    // GET: hostile query strings. getuser and authorized/me ignore their query (with a valid
    // token they may answer 200); v1's confirmation link reads ?token=.
    auto query = [&](std::string name, Expect e, std::function<std::string(const Prepared &)> q,
                     int timeout = kTimeout) {
      add("query " + name, e, [s, q, timeout](const Prepared &p) {
        Request r = base_request(*s, p);
        std::string qs = q(p);
        if (!qs.empty()) r.target += "?" + qs;
        r.timeout_s = timeout;
        return r;
      });
    };
    auto fixed = [](std::string qs) { return [qs](const Prepared &) { return qs; }; };
    query("token=' OR 1=1 --", Expect::value, fixed("token=%27%20OR%201%3D1%20--"));
    query("token=\"; DROP TABLE users; --", Expect::value,
          fixed("token=%22%3B%20DROP%20TABLE%20users%3B%20--"));
    query("token[$ne]=null", Expect::refuse, fixed("token%5B%24ne%5D=null"));
    query("token={\"$ne\":null}", Expect::value, fixed("token=%7B%22%24ne%22%3Anull%7D"));
    query("token[]=a&token[]=b", Expect::refuse, fixed("token[]=a&token[]=b"));
    query("token=a&token=b", Expect::value, fixed("token=a&token=b"));
    query("token=%00", Expect::value, fixed("token=%00"));
    query("token=abc%00def", Expect::value, fixed("token=abc%00def"));
    query("token with invalid UTF-8 (%FF%FE)", Expect::refuse, fixed("token=%FF%FE"));
    query("token with an overlong encoding (%C0%AF)", Expect::refuse, fixed("token=%C0%AF"));
    query("malformed percent-encoding (%ZZ)", Expect::refuse, fixed("token=%ZZ"));
    query("a lone %", Expect::refuse, fixed("token=%"));
    query("empty token=", Expect::refuse, fixed("token="));
    query("no query at all", Expect::refuse, fixed(""));
    query("1000 parameters", Expect::refuse, [](const Prepared &) {
      std::string qs;
      for (int i = 0; i < 1000; ++i)
        qs += (i ? "&p" : "p") + std::to_string(i) + "=1";
      return qs;
    });
    query("token of 7000 characters", Expect::value, fixed("token=" + std::string(7000, 'a')));
    query("token past the URI limit (100 000 characters)", Expect::unreadable,
          fixed("token=" + std::string(100000, 'a')), kSlowTimeout);
    query("a JWT as the token", Expect::value, [](const Prepared &p) {
      return "token=" + (p.bearer.empty() ? std::string("eyJhbGciOiJIUzI1NiJ9.e30.x") : p.bearer);
    });
    add("raw space inside the request target", Expect::unreadable, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.target += "?token=a b";
      return r;
    });
    add("raw bytes 0xFF in the request target", Expect::unreadable, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.target += "?token=\xff\xfe";
      return r;
    });
    add("a GET with a body past the size limit", Expect::too_large, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.content_type = "application/json";
      r.send_length = true;
      r.body = "{\"token\":\"" + std::string(1 << 20, 'a') + "\"}";
      return r;
    });
  } else {
    // Malformed JSON.
    body("truncated JSON", Expect::refuse, [](const json &b) {
      std::string t = b.dump();
      return t.substr(0, t.size() - 3);
    });
    body("JSON cut after a key", Expect::refuse, [f0](const json &) { return "{\"" + f0 + "\":"; });
    body("trailing garbage", Expect::refuse, [](const json &b) { return b.dump() + "xyz"; });
    body("two JSON objects", Expect::refuse, [](const json &b) { return b.dump() + b.dump(); });
    body("single quotes", Expect::refuse, [](const json &b) {
      std::string t = b.dump();
      std::replace(t.begin(), t.end(), '"', '\'');
      return t;
    });
    body("unquoted keys", Expect::refuse,
         [f0](const json &b) { return "{" + f0 + ":" + json(value_of(b, f0)).dump() + "}"; });
    body("a trailing comma", Expect::refuse, [](const json &b) {
      std::string t = b.dump();
      return t.substr(0, t.size() - 1) + ",}";
    });
    body("a comment", Expect::refuse, [](const json &b) { return "/* hi */" + b.dump(); });
    body("NaN as a value", Expect::refuse, [f0](const json &b) { return with_raw(b, f0, "NaN"); });
    body("a lone high surrogate escape", Expect::refuse,
         [f0](const json &b) { return with_raw(b, f0, quoted("a\\ud800b")); });
    body("a UTF-8 byte order mark before the JSON", Expect::either,
         [](const json &b) { return "\xef\xbb\xbf" + b.dump(); });
    // JSON that is not an object.
    body("a JSON array", Expect::refuse, [](const json &b) { return "[" + b.dump() + "]"; });
    body("an empty JSON array", Expect::refuse, [](const json &) { return "[]"; });
    body("a JSON string", Expect::refuse, [](const json &) { return "\"hello\""; });
    body("JSON null", Expect::refuse, [](const json &) { return "null"; });
    body("a JSON number", Expect::refuse, [](const json &) { return "42"; });
    body("JSON true", Expect::refuse, [](const json &) { return "true"; });
    body("an empty object", Expect::refuse, [](const json &) { return "{}"; });
    body("an empty body", Expect::refuse, [](const json &) { return ""; });
    body("a body of whitespace", Expect::refuse, [](const json &) { return "  \r\n\t "; });
    // NoSQL operator objects everywhere.
    body("NoSQL operators in every field ($ne / $gt)", Expect::refuse, [s](const json &b) {
      json o = b;
      bool ne = true;
      for (const auto &f :
           s->fields.empty() ? std::vector<std::string>{"email", "password"} : s->fields) {
        o[f] = ne ? json{{"$ne", nullptr}} : json{{"$gt", ""}};
        ne = !ne;
      }
      return o.dump();
    });
    body("{\"username\": {\"$ne\": null}, \"password\": {\"$gt\": \"\"}}", Expect::refuse,
         [](const json &) {
           return R"({"username": {"$ne": null}, "password": {"$gt": ""}, "email": {"$ne": null}})";
         });
    // Deep nesting: 100 000 levels (past the size limit, so 413) and as deep as fits.
    body("100 000-deep arrays", Expect::too_large,
         [](const json &) { return deep("[", "", "]", 100000); });
    body("100 000-deep arrays, never closed", Expect::too_large,
         [](const json &) { return deep("[", "", "", 100000); });
    body("100 000-deep objects", Expect::too_large,
         [](const json &) { return deep("{\"a\":", "1", "}", 100000); });
    body("30 000-deep arrays (within the size limit)", Expect::refuse,
         [](const json &) { return deep("[", "", "]", 30000); });
    body("12 000-deep objects (within the size limit)", Expect::refuse,
         [](const json &) { return deep("{\"a\":", "1", "}", 12000); });
    body("30 000-deep arrays inside a field", Expect::refuse,
         [f0](const json &b) { return with_raw(b, f0, deep("[", "", "]", 30000)); });
    body("30 000 closing brackets", Expect::refuse,
         [](const json &) { return std::string(30000, ']'); });
    field_raw(f0, "30 000 opening brackets inside a string", Expect::value,
              [](const std::string &) { return quoted(std::string(30000, '[')); });
    // Sizes. The default body limit is 64 KiB (Config::max_body_bytes).
    body("a body exactly at the size limit", Expect::fits, [](const json &b) {
      std::string t = with_raw(b, "pad", "\"\"");
      return with_raw(b, "pad", quoted(std::string(kBodyLimit - t.size(), 'p')));
    });
    body("a body one byte past the size limit", Expect::too_large, [](const json &b) {
      std::string t = with_raw(b, "pad", "\"\"");
      return with_raw(b, "pad", quoted(std::string(kBodyLimit + 1 - t.size(), 'p')));
    });
    body("a 1 MB password", Expect::too_large,
         [](const json &b) { return with_raw(b, "password", quoted(std::string(1 << 20, 'p'))); });
    body("a 100 KB username", Expect::too_large, [](const json &b) {
      return with_raw(b, "username", quoted(std::string(100 * 1024, 'u')));
    });
    // Content types.
    body(
        "text/plain with a valid JSON body", Expect::refuse, [](const json &b) { return b.dump(); },
        "text/plain");
    body(
        "application/xml", Expect::refuse,
        [](const json &) { return "<user><username>a</username><password>b</password></user>"; },
        "application/xml");
    body(
        "text/html", Expect::refuse, [](const json &b) { return b.dump(); }, "text/html");
    body(
        "application/octet-stream with binary bytes", Expect::refuse,
        [](const json &) { return std::string("\x00\x01\xff\xfe{}", 6); },
        "application/octet-stream");
    body(
        "no Content-Type and a valid JSON body", Expect::either,
        [](const json &b) { return b.dump(); }, std::nullopt);
    body(
        "no Content-Type and malformed JSON", Expect::refuse,
        [](const json &b) { return b.dump() + "}"; }, std::nullopt);
    body(
        "no Content-Type and NoSQL operators", Expect::refuse,
        [](const json &) {
          return R"({"username": {"$ne": null}, "password": {"$gt": ""}, "email": {"$ne": null}})";
        },
        std::nullopt);
    body(
        "urlencoded Content-Type with a JSON body", Expect::refuse,
        [](const json &b) { return b.dump(); }, "application/x-www-form-urlencoded");
    body(
        "a JSON Content-Type with Latin-1 bytes", Expect::refuse,
        [f0](const json &b) { return with_raw(b, f0, quoted("caf\xe9")); },
        "application/json; charset=latin-1");
    const bool takes_form = spec.input == Input::json_form || spec.input == Input::json_multi;
    body(
        "the valid fields as a urlencoded form", takes_form ? Expect::either : Expect::refuse,
        [](const json &b) { return form_of(b); }, "application/x-www-form-urlencoded");
    body(
        "a urlencoded form with NoSQL brackets", Expect::refuse,
        [s](const json &) {
          std::string form;
          for (const auto &f : s->fields.empty() ? std::vector<std::string>{"email"} : s->fields)
            form += (form.empty() ? "" : "&") + f + "%5B%24ne%5D=1";
          return form;
        },
        "application/x-www-form-urlencoded");
    body(
        "a urlencoded form with invalid UTF-8", Expect::refuse,
        [](const json &b) {
          std::string form = form_of(b);
          return form + (form.empty() ? "" : "&") + "x=%FF%FE";
        },
        "application/x-www-form-urlencoded");
    body(
        "multipart with a broken boundary", Expect::refuse,
        [](const json &) { return "--nope\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n"; },
        "multipart/form-data; boundary=b0undary");
    // Duplicate keys.
    body("duplicate keys, the valid value first", Expect::either, [f0](const json &b) {
      std::string t = with_raw(b, f0, json(value_of(b, f0)).dump());
      return t.substr(0, t.size() - 1) + "," + json(f0).dump() + ":\"bogus\"}";
    });
    body("duplicate keys, the valid value last", Expect::either, [f0](const json &b) {
      std::string t = with_raw(b, f0, json(value_of(b, f0)).dump());
      return "{" + json(f0).dump() + ":\"bogus\"," + t.substr(1);
    });
    // Lying framing. A Content-Length longer than the body must end at the read timeout.
    add("Content-Length longer than the body", Expect::refuse_always, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.length = std::to_string(r.body.size() + 100);
      r.timeout_s = kSlowTimeout;
      return r;
    });
    add("Content-Length shorter than the body", Expect::refuse, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.length = std::to_string(r.body.size() / 2);
      return r;
    });
    add("Content-Length that is not a number", Expect::refuse, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.length = "abc";
      return r;
    });
    add("a negative Content-Length", Expect::refuse, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.length = "-1";
      return r;
    });
    add("a 20-digit Content-Length", Expect::refuse_always, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.length = "99999999999999999999";
      r.timeout_s = kSlowTimeout;
      return r;
    });
    add("two Content-Length headers that disagree", Expect::refuse, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.extra.emplace_back("Content-Length", std::to_string(r.body.size() + 7));
      r.timeout_s = kSlowTimeout;
      return r;
    });
    add("a chunked body cut short", Expect::refuse_always, [s](const Prepared &p) {
      Request r = base_request(*s, p);
      r.send_length = false;
      r.extra.emplace_back("Transfer-Encoding", "chunked");
      r.body = "400\r\n" + r.body;
      r.timeout_s = kSlowTimeout;
      return r;
    });

    // Field by field: wrong types, operator objects, broken strings, SQL and friends.
    for (const std::string &f : spec.fields) {
      for (const auto &[name, raw] : std::vector<std::pair<std::string, std::string>>{
               {"a number", "42"},
               {"a negative number", "-1"},
               {"a float", "1.5e308"},
               {"a number too big for a double", "1e999"},
               {"true", "true"},
               {"false", "false"},
               {"an empty array", "[]"},
               {"an array of the value", ""},
               {"an empty object", "{}"},
               {"an object", "{\"value\":\"x\"}"},
               {"{\"$ne\": null}", R"({"$ne": null})"},
               {"{\"$gt\": \"\"}", R"({"$gt": ""})"},
               {"{\"$regex\": \".*\"}", R"({"$regex": ".*"})"},
               {"{\"$where\": \"1 == 1\"}", R"({"$where": "1 == 1"})"},
               {"invalid UTF-8 (FF FE)", quoted("a\xff\xfe")},
               {"an overlong UTF-8 encoding (C0 AF)", quoted("a\xc0\xaf")},
               {"a truncated UTF-8 sequence (E2 82)", quoted("a\xe2\x82")},
               {"an encoded surrogate (ED A0 80)", quoted("a\xed\xa0\x80")},
               {"a raw NUL byte", quoted(std::string("a\0b", 3))},
               {"a raw control character", quoted("a\x01z")},
               {"an empty string", "\"\""},
               {"whitespace", "\"   \""},
           }) {
        std::string text = raw;
        bool blank = text == "\"\"" || text == "\"   \"";
        Expect e = blank && spec.optional.count(f) ? Expect::either : Expect::refuse;
        field_raw(f, name, e, [text](const std::string &valid) {
          return text.empty() ? json::array({valid}).dump() : text;
        });
      }
      for (const auto &[name, make] :
           std::vector<std::pair<std::string, std::function<std::string(const std::string &)>>>{
               {"' OR 1=1 --", [](const std::string &) { return std::string("' OR 1=1 --"); }},
               {"\"; DROP TABLE users; --",
                [](const std::string &) { return std::string("\"; DROP TABLE users; --"); }},
               {"' UNION SELECT 1,2,3 --",
                [](const std::string &) { return std::string("' UNION SELECT 1,2,3 --"); }},
               {"the value + ' OR '1'='1", [](const std::string &v) { return v + "' OR '1'='1"; }},
               {"the value + '--", [](const std::string &v) { return v + "'--"; }},
               {"the LIKE pattern %", [](const std::string &) { return std::string("%"); }},
               {"the value with a % wildcard",
                [](const std::string &v) { return wildcard(v, '%'); }},
               {"the value with a _ wildcard",
                [](const std::string &v) { return wildcard(v, '_'); }},
               {"the value + escaped NUL + more",
                [](const std::string &v) { return v + std::string("\0x", 2); }},
               {"an escaped NUL alone", [](const std::string &) { return std::string("\0", 1); }},
               {"50 000 characters", [](const std::string &) { return std::string(50000, 'v'); }},
           }) {
        auto m = make;
        field_raw(f, name, Expect::value,
                  [m](const std::string &valid) { return json(m(valid)).dump(); });
      }
    }
  }

  // The credential itself: hostile Authorization headers on Bearer routes.
  if (spec.bearer) {
    auto auth = [&](std::string name, std::function<std::string(const std::string &token)> value,
                    int timeout = kTimeout) {
      add("Authorization " + name, Expect::refuse_always, [s, value, timeout](const Prepared &p) {
        Request r = base_request(*s, p);
        r.authorization = value(p.bearer);
        r.timeout_s = timeout;
        return r;
      });
    };
    auto fixed = [](std::string v) { return [v](const std::string &) { return v; }; };
    auto payload_of = [](const std::string &t) {
      size_t a = t.find('.'), b = t.find('.', a + 1);
      return t.substr(a + 1, b - a - 1);
    };
    auth("Bearer ' OR 1=1 --", fixed("Bearer ' OR 1=1 --"));
    auth("Bearer {\"$ne\":null}", fixed("Bearer {\"$ne\":null}"));
    auth("Bearer with nothing after it", fixed("Bearer "));
    auth("Bearer alone", fixed("Bearer"));
    auth("Basic credentials", fixed("Basic dXNlcjpwYXNzd29yZA=="));
    auth("Bearer with invalid UTF-8", fixed("Bearer \xff\xfe\xfd"));
    auth("the valid token + garbage", [](const std::string &t) { return "Bearer " + t + "x"; });
    auth("the valid token twice", [](const std::string &t) { return "Bearer " + t + " " + t; });
    auth("the valid token + a raw NUL + garbage",
         [](const std::string &t) { return "Bearer " + t + std::string("\0x", 2); });
    auth("the valid token cut by a raw NUL", [](const std::string &t) {
      return "Bearer " + t.substr(0, 20) + std::string("\0", 1) + t.substr(20);
    });
    auth("an alg:none token with the valid claims", [payload_of](const std::string &t) {
      return "Bearer " + latch::secure::base64url_encode(R"({"alg":"none","typ":"JWT"})") + "." +
             payload_of(t) + ".";
    });
    auth("a token of 7000 characters", fixed("Bearer " + std::string(7000, 'a')));
    auth("a token of 100 000 characters (past the header limit)",
         fixed("Bearer " + std::string(100000, 'a')), kSlowTimeout);
  }
  add("a 100 KB header", Expect::refuse_always, [s](const Prepared &p) {
    Request r = base_request(*s, p);
    r.extra.emplace_back("X-Junk", std::string(100 * 1024, 'j'));
    r.timeout_s = kSlowTimeout;
    return r;
  });
  return out;
}

// What is wrong with the answer to a case ("" if nothing).
std::string judge(const Case &c, const Wire &w) {
  if (!w.answered) return w.failure;
  const Spec &s = *c.spec;
  const int st = w.response.status;
  const bool ok2 = st >= 200 && st < 300, ok4 = st >= 400 && st < 500;
  std::string wrong;
  switch (c.expect) {
  case Expect::refuse:
    if (!(ok4 || (ok2 && !s.reads_input()))) wrong = "expected 4xx";
    break;
  case Expect::refuse_always:
    if (!ok4) wrong = "expected 4xx";
    break;
  case Expect::unreadable:
    if (!ok4)
      wrong = "expected 4xx";
    else if (!(w.parsed.is_object() && w.parsed.size() == 1 && w.parsed["error"].is_string()))
      wrong = "expected {\"error\": \"...\"}";
    else
      return {};
    break;
  case Expect::too_large:
    if (st != 413) wrong = "expected 413";
    break;
  case Expect::value: {
    bool may_pass = !s.reads_input() || s.creates || s.free_fields.count(c.field) > 0;
    if (!(ok4 || (ok2 && may_pass))) wrong = may_pass ? "expected 2xx or 4xx" : "expected 4xx";
    break;
  }
  case Expect::either:
    if (!(ok2 || ok4)) wrong = "expected 2xx or 4xx";
    break;
  case Expect::fits:
    if (!(ok2 || ok4) || st == 413) wrong = "expected 2xx or a 4xx other than 413";
    break;
  }
  if (!wrong.empty()) return wrong;
  if (ok4) {
    if (w.response.header("Content-Type").rfind("application/json", 0) != 0)
      return "error without Content-Type application/json";
    std::string shape = shape_problem(s.api, st, w.parsed);
    if (!shape.empty()) return "not " + s.api + "'s error shape: " + shape;
  }
  return {};
}

std::string excerpt(const std::string &text, size_t n = 300) {
  std::string out = text.size() > n ? text.substr(0, n) + "..." : text;
  for (char &ch : out)
    if (static_cast<unsigned char>(ch) < 0x20 && ch != '\n') ch = '?';
  return out;
}

// Runs every case on a few threads (slow cases first), then returns the answers in order.
struct Outcome {
  Wire wire;
  std::string prep_error;
};

std::vector<Outcome> run_all(const Env &env, std::vector<Case> &cases, unsigned threads) {
  // Valid requests are prepared in the workers, one per case; slow requests (those that wait
  // on the server's read timeout) go first so they overlap with the rest.
  std::vector<Outcome> outcomes(cases.size());
  std::vector<size_t> order(cases.size());
  for (size_t i = 0; i < order.size(); ++i)
    order[i] = i;
  std::vector<int> slow(cases.size(), 0);
  {
    Prepared dummy;
    dummy.bearer = "eyJhbGciOiJIUzI1NiJ9.eyJhIjoxfQ.x";
    for (size_t i = 0; i < cases.size(); ++i)
      slow[i] = cases[i].make(dummy).timeout_s > kTimeout;
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return slow[a] > slow[b]; });
  std::atomic<size_t> next{0};
  auto worker = [&] {
    for (size_t k; (k = next++) < order.size();) {
      size_t i = order[k];
      const Case &c = cases[i];
      Prepared p = c.spec->prepare(env);
      if (!p.error.empty()) {
        outcomes[i].prep_error = p.error;
        continue;
      }
      outcomes[i].wire = exchange(env.latch.port(), c.make(p));
    }
  };
  std::vector<std::thread> pool;
  for (unsigned t = 0; t < threads; ++t)
    pool.emplace_back(worker);
  for (auto &t : pool)
    t.join();
  return outcomes;
}

void check_log_is_clean(const LatchProcess &latch) {
  std::string log = latch.log();
  for (const char *bad : {"unexpected exception", "database error", "latch: error on"}) {
    INFO("server log: ", excerpt(log, 4000));
    CHECK_MESSAGE(log.find(bad) == std::string::npos, "the log contains \"", bad, "\"");
  }
}

// Sign-up through picflux and sign-in through every API, as a normal client.
void check_normal_use(const LatchProcess &latch) {
  std::string name = unique("norm");
  std::string email = lower(name) + "@example.com";
  Reply up = latch.post("/api/auth/signup",
                        {{"email", email}, {"username", name}, {"password", kPassword}});
  CHECK(up.status == 201);
  CHECK(up.body.contains("access_token"));
  Account a{name, email, kPassword};
  for (const char *api : {"picflux", "simplejwt", "flask", "v1"}) {
    Tokens t = sign_in(latch, api, a);
    CHECK_MESSAGE(t.error.empty(), api, ": ", t.error);
    if (t.error.empty())
      CHECK(latch.get("/auth/getuser", t.access).body == json{{"username", name}});
  }
  Reply env = latch.post("/api/v1/auth/login", {{"identity", email}, {"password", kPassword}});
  CHECK(env.status == 200);
}

// The responses that arrived on one connection, as "status body" lines.
std::vector<std::string> responses_in(const std::string &raw) {
  static const std::regex response(R"(HTTP/1\.[01] (\d{3}) [\s\S]*?\r\n\r\n(\{[^}]*\}?)?)");
  std::vector<std::string> out;
  for (auto it = std::sregex_iterator(raw.begin(), raw.end(), response);
       it != std::sregex_iterator(); ++it)
    out.push_back((*it)[1].str() + " " + (*it)[2].str().substr(0, 80));
  return out;
}

std::string joined(const std::vector<std::string> &lines) {
  std::string out;
  for (const auto &l : lines)
    out += "\n    " + l;
  return out;
}

int sign_in_status(const LatchProcess &latch, const std::string &username,
                   const std::string &password) {
  return latch.post("/auth/login", {{"username", username}, {"password", password}}).status;
}

} // namespace

TEST_CASE("every route answers every hostile request with a 4xx in its API's own error shape") {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  auto shared = make_account(latch);
  REQUIRE(shared);
  Env env{latch, *shared};

  // Every route `latch routes` lists is attacked, and nothing else.
  std::vector<Spec> table = specs();
  auto rows = listed_routes();
  REQUIRE(rows.size() == latch::http::route_table().size());
  std::set<std::string> listed, known;
  for (const auto &row : rows) {
    listed.insert(row[0] + " " + row[1]);
    for (Spec &s : table)
      if (s.method == row[0] && s.path == row[1]) {
        s.api = row[2];
        CHECK_MESSAGE(s.bearer == (row[3] != "public"), row[0], " ", row[1], " access ", row[3]);
      }
  }
  for (const Spec &s : table)
    known.insert(s.method + " " + s.path);
  REQUIRE(listed == known);

  std::vector<Case> cases;
  std::map<std::string, int> per_route;
  for (const Spec &s : table) {
    auto more = cases_for(s);
    per_route[s.method + " " + s.path] = static_cast<int>(more.size());
    cases.insert(cases.end(), std::make_move_iterator(more.begin()),
                 std::make_move_iterator(more.end()));
  }
  auto outcomes = run_all(env, cases, 16);

  std::map<std::string, int> statuses; // answer statuses, for the record
  int failures = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case &c = cases[i];
    const Outcome &o = outcomes[i];
    const std::string name = c.spec->method + " " + c.spec->path + " <- " + c.payload;
    if (!o.prep_error.empty()) {
      FAIL_CHECK(name, ": could not prepare a valid request: ", o.prep_error);
      ++failures;
      continue;
    }
    std::string verdict = judge(c, o.wire);
    ++statuses[std::to_string(o.wire.response.status)];
    if (!verdict.empty()) ++failures;
    CHECK_MESSAGE(verdict.empty(), name, ": ", verdict, "; answered ", o.wire.response.status, " ",
                  excerpt(o.wire.response.body));
  }
  std::ostringstream summary;
  for (const auto &[st, n] : statuses)
    summary << " " << st << "x" << n;
  MESSAGE("hostile cases: ", cases.size(), " over ", per_route.size(),
          " routes; failed: ", failures, "; statuses:", summary.str());
  for (const auto &[route, n] : per_route)
    CHECK_MESSAGE(n > 0, route, " has no hostile case");

  // Afterwards the server still works, and nothing went wrong inside it.
  check_normal_use(latch);
  CHECK(latch.post("/api/v1/login", {{"email", shared->email}, {"password", shared->password}})
            .status == 200);
  check_log_is_clean(latch);
}

TEST_CASE("SQL metacharacters in usernames, emails and passwords are stored literally") {
  LatchProcess latch;
  const std::string id = unique("");
  struct Literal {
    std::string username, email, password;
  };
  std::vector<Literal> users = {
      {.username = "x'OR'1'='1" + id,
       .email = "x'or'1'='1" + id + "@example.com",
       .password = "' OR 1=1 --"},
      {.username = "x\";DROP/**/TABLE/**/users;--" + id,
       .email = "drop" + id + "@example.com",
       .password = "\"; DROP TABLE users; --"},
      {.username = "robert');DROP/**/TABLE/**/users;--" + id,
       .email = "bobby" + id + "@example.com",
       .password = "'); DELETE FROM users; --"},
      {.username = "admin'--" + id,
       .email = "admin'--" + id + "@example.com",
       .password = "x' UNION SELECT * FROM users --"},
  };
  for (const Literal &u : users) {
    INFO("username: ", u.username);
    Reply r = latch.post("/api/v1/register?sendEmail=false",
                         {{"email", u.email}, {"username", u.username}, {"password", u.password}});
    REQUIRE(r.status == 201);
  }
  for (const Literal &u : users) {
    INFO("username: ", u.username);
    // Signs in with exactly what was given, through a username API and an email API.
    Reply by_name = latch.post("/auth/login", {{"username", u.username}, {"password", u.password}});
    REQUIRE(by_name.status == 200);
    CHECK(jwt_payload(by_name.body["access_token"])["username"] == u.username);
    CHECK(jwt_payload(by_name.body["access_token"])["email"] == u.email);
    Reply by_email = latch.post("/api/v1/login", {{"email", u.email}, {"password", u.password}});
    CHECK(by_email.status == 200);
    // Not with the SQL alone, nor with a password that differs.
    CHECK(sign_in_status(latch, u.username, u.password + "x") == 401);
    CHECK(sign_in_status(latch, u.username.substr(0, u.username.find_first_of("'\"")),
                         u.password) == 401);
  }
  // SQL with spaces is refused as a username (no whitespace), not executed.
  Reply spaced = latch.post("/auth/signup", {{"username", "' OR 1=1 --"},
                                             {"email", "spaced" + id + "@example.com"},
                                             {"password", kPassword}});
  CHECK(spaced.status == 400);
  CHECK(sign_in_status(latch, "' OR 1=1 --", kPassword) == 401);
  CHECK(sign_in_status(latch, "' OR '1'='1", "' OR '1'='1") == 401);

  // LIKE wildcards match nobody but themselves.
  std::string wild = "wild" + id;
  REQUIRE(latch
              .post("/auth/signup",
                    {{"username", wild}, {"email", wild + "@example.com"}, {"password", kPassword}})
              .status == 201);
  CHECK(sign_in_status(latch, "%", kPassword) == 401);
  CHECK(sign_in_status(latch, "wild%", kPassword) == 401);
  CHECK(sign_in_status(latch, wildcard(wild, '_'), kPassword) == 401);
  CHECK(latch.post("/api/v1/login", {{"email", "%@example.com"}, {"password", kPassword}}).status ==
        401);
  CHECK(latch
            .post("/api/v1/login",
                  {{"email", wildcard(wild + "@example.com", '_')}, {"password", kPassword}})
            .status == 401);

  // The users table survived: everyone still signs in, and new users can sign up.
  for (const Literal &u : users)
    CHECK(sign_in_status(latch, u.username, u.password) == 200);
  CHECK(sign_in_status(latch, wild, kPassword) == 200);
  check_normal_use(latch);
  check_log_is_clean(latch);
}

TEST_CASE("NUL bytes inside strings are refused or kept whole, never cut short") {
  LatchProcess latch;
  const std::string nul(1, '\0');
  std::string name = unique("nul");
  std::string email = lower(name) + "@example.com";

  // A NUL in a username or an email is refused (control characters are not allowed there).
  Reply r1 =
      latch.post("/api/v1/register?sendEmail=false",
                 {{"email", email}, {"username", name + nul + "x"}, {"password", kPassword}});
  CHECK(r1.status == 400);
  CHECK(sign_in_status(latch, name, kPassword) == 401);
  Reply r2 = latch.post(
      "/api/v1/register?sendEmail=false",
      {{"email", name + nul + "@example.com"}, {"username", name}, {"password", kPassword}});
  CHECK(r2.status == 400);

  // A NUL in a password is either refused or part of the password: the part before it alone,
  // or with another tail, does not sign in.
  const std::string password = kPassword + nul + "tail";
  Reply r3 = latch.post("/api/v1/register?sendEmail=false",
                        {{"email", email}, {"username", name}, {"password", password}});
  CHECK((r3.status == 201 || r3.status == 400));
  if (r3.status == 201) {
    CHECK(sign_in_status(latch, name, password) == 200);
    CHECK(sign_in_status(latch, name, kPassword) == 401);
    CHECK(sign_in_status(latch, name, kPassword + nul + "other") == 401);
    CHECK(sign_in_status(latch, name, kPassword + nul) == 401);
    MESSAGE("a password with a NUL byte is accepted and kept whole");
  } else {
    MESSAGE("a password with a NUL byte is refused");
  }

  // A NUL in a form field (simplejwt) is part of the value, never a terminator.
  std::string other = unique("nulf");
  REQUIRE(latch.post("/auth/register", {{"username", other}, {"password", kPassword}}).status ==
          201);
  CHECK(
      latch.post_form("/auth/token", "username=" + other + "%00x&password=Passw0rd%2123").status ==
      401);
  CHECK(
      latch.post_form("/auth/token", "username=" + other + "&password=Passw0rd%2123%00x").status ==
      401);
  CHECK(latch.post_form("/auth/token", "username=" + other + "&password=Passw0rd%2123").status ==
        200);

  // A token with a NUL and garbage after it is not the token.
  Reply in = latch.post("/auth/token", {{"username", other}, {"password", kPassword}});
  REQUIRE(in.status == 200);
  std::string access = in.body["access"];
  CHECK(latch.post("/auth/token/verify", {{"token", access + nul + "x"}}).status == 401);
  CHECK(latch.post("/api/v1/verify", {{"token", access + nul + "x"}}).status == 401);
  CHECK(latch.post("/auth/token/verify", {{"token", access}}).status == 200);
  check_log_is_clean(latch);
}

TEST_CASE("duplicate keys in a body resolve one way on every API, and validation sees that value") {
  LatchProcess latch;
  // Which of two usernames in one JSON body each sign-up route keeps.
  struct SignUp {
    std::string path;
    std::string extra = {}; // more fields, JSON text without braces
  };
  const std::vector<SignUp> routes = {
      {.path = "/api/auth/signup"},
      {.path = "/auth/register"},
      {.path = "/auth/signup"},
      {.path = "/api/v1/register?sendEmail=false"},
      {.path = "/api/v1/auth/signUp", .extra = R"(,"display_name":"Dup")"},
  };
  std::set<std::string> rules;
  for (const SignUp &route : routes) {
    std::string first = unique("dupA"), second = unique("dupB");
    std::string email = lower(first) + "@example.com";
    std::string text = R"({"username":")" + first + R"(","username":")" + second +
                       R"(","email":")" + email + R"(","password":")" + kPassword + "\"" +
                       route.extra + "}";
    Reply r = latch.post_raw(route.path, text, "application/json");
    INFO(route.path, " answered ", r.status, " ", r.text);
    CHECK((r.status >= 200 && r.status < 300));
    bool first_in = sign_in_status(latch, first, kPassword) == 200;
    bool second_in = sign_in_status(latch, second, kPassword) == 200;
    CHECK_MESSAGE(first_in != second_in, "exactly one of the two usernames must exist");
    rules.insert(first_in ? "first" : second_in ? "last" : "none");
  }
  CHECK_MESSAGE(rules.size() == 1, "JSON sign-ups disagree on duplicate keys");
  std::string json_rule = rules.empty() ? "?" : *rules.begin();

  // Validation and use see the same duplicate: a short password next to a valid one.
  std::string name = unique("dupP");
  std::string text = R"({"username":")" + name + R"(","email":")" + lower(name) +
                     R"(@example.com","password":"short","password":")" + kPassword + "\"}";
  Reply r = latch.post_raw("/api/v1/register?sendEmail=false", text, "application/json");
  CHECK((r.status == 201 || r.status == 400));
  if (r.status == 201) {
    CHECK(sign_in_status(latch, name, kPassword) == 200);
    CHECK(sign_in_status(latch, name, "short") == 401);
  } else {
    CHECK(sign_in_status(latch, name, kPassword) == 401);
  }
  text = R"({"username":")" + name + "2" + R"(","email":")" + lower(name) +
         R"(2@example.com","password":")" + kPassword + R"(","password":"short"})";
  r = latch.post_raw("/api/v1/register?sendEmail=false", text, "application/json");
  CHECK((r.status == 201 || r.status == 400));
  if (r.status == 201) CHECK(sign_in_status(latch, name + "2", "short") == 401);

  // Urlencoded forms (picflux, simplejwt): one rule for both.
  std::set<std::string> form_rules;
  for (const std::string path : {"/api/auth/signup", "/auth/register"}) {
    std::string first = unique("dfA"), second = unique("dfB");
    Reply f = latch.post_form(path, "username=" + first + "&username=" + second + "&email=" +
                                        lower(first) + "%40example.com&password=Passw0rd%2123");
    INFO(path, " answered ", f.status, " ", f.text);
    CHECK((f.status >= 200 && f.status < 300));
    bool first_in = sign_in_status(latch, first, kPassword) == 200;
    bool second_in = sign_in_status(latch, second, kPassword) == 200;
    CHECK(first_in != second_in);
    form_rules.insert(first_in ? "first" : second_in ? "last" : "none");
  }
  CHECK(form_rules.size() == 1);
  // One rule for every body type, so nothing in front of Latch can read a different value.
  CHECK(form_rules == std::set<std::string>{json_rule});
  MESSAGE("duplicate keys: JSON bodies keep the ", json_rule, " value; urlencoded forms keep the ",
          form_rules.empty() ? "?" : *form_rules.begin(), " value");
  check_log_is_clean(latch);
}

TEST_CASE("a 1000-byte password works and a 2000-byte one is refused with a 4xx everywhere") {
  LatchProcess latch({{"--reset-token-in-response"}, {}});
  const std::string long_ok = "Aa1!" + std::string(996, 'p');   // 1000 bytes
  const std::string too_long = "Aa1!" + std::string(1996, 'p'); // 2000 bytes
  REQUIRE(long_ok.size() == 1000);

  // Sign-up with 1000 bytes works wherever the API allows that length (picflux caps at 30).
  struct Up {
    std::string path, api;
    bool long_ok;
  };
  const std::vector<Up> sign_ups = {
      {.path = "/api/auth/signup", .api = "picflux", .long_ok = false},
      {.path = "/auth/register", .api = "simplejwt", .long_ok = true},
      {.path = "/auth/signup", .api = "flask", .long_ok = true},
      {.path = "/api/v1/register?sendEmail=false", .api = "v1", .long_ok = true},
      {.path = "/api/v1/auth/signUp", .api = "envelope", .long_ok = true},
  };
  for (const Up &up : sign_ups) {
    INFO(up.path);
    std::string name = unique("long");
    json body = {
        {"username", name}, {"email", lower(name) + "@example.com"}, {"display_name", "L"}};
    body["password"] = long_ok;
    Reply ok = latch.post(up.path, body);
    if (up.long_ok) {
      CHECK(ok.status / 100 == 2);
      CHECK(sign_in_status(latch, name, long_ok) == 200);
    } else {
      CHECK(ok.status == 400);
      CHECK(shape_problem(up.api, ok.status, ok.body) == "");
    }
    body["username"] = name + "b";
    body["email"] = lower(name) + "b@example.com";
    body["password"] = too_long;
    Reply bad = latch.post(up.path, body);
    CHECK(bad.status == 400);
    CHECK(shape_problem(up.api, bad.status, bad.body) == "");
    CHECK(sign_in_status(latch, name + "b", too_long) == 401);
  }

  // Sign-in and reset routes refuse 2000 bytes with a 4xx in their shape.
  auto a = make_account(latch);
  REQUIRE(a);
  struct In {
    std::string path, api;
    json body;
  };
  std::string t1 = reset_token(latch, *a), t2 = reset_token(latch, *a);
  REQUIRE(!t1.empty());
  const std::vector<In> sign_ins = {
      {.path = "/api/auth/signin",
       .api = "picflux",
       .body = {{"email", a->email}, {"password", too_long}}},
      {.path = "/auth/token",
       .api = "simplejwt",
       .body = {{"username", a->username}, {"password", too_long}}},
      {.path = "/auth/login",
       .api = "flask",
       .body = {{"username", a->username}, {"password", too_long}}},
      {.path = "/api/v1/login", .api = "v1", .body = {{"email", a->email}, {"password", too_long}}},
      {.path = "/api/v1/auth/login",
       .api = "envelope",
       .body = {{"identity", a->username}, {"password", too_long}}},
      {.path = "/auth/reset-password",
       .api = "flask",
       .body = {{"reset_token", t1}, {"new_password", too_long}}},
      {.path = "/api/v1/password-reset-confirm",
       .api = "v1",
       .body = {{"token", t2}, {"new_password", too_long}, {"new_password_confirm", too_long}}},
  };
  for (const In &in : sign_ins) {
    Reply r = latch.post(in.path, in.body);
    INFO(in.path, " answered ", r.status, " ", r.text);
    CHECK(r.status / 100 == 4);
    CHECK(shape_problem(in.api, r.status, r.body) == "");
  }
  // The refused resets changed nothing: the old password still works.
  CHECK(sign_in_status(latch, a->username, a->password) == 200);
  check_log_is_clean(latch);
}

TEST_CASE("a request body is never taken for more requests on the same connection") {
  LatchProcess latch;
  auto a = make_account(latch);
  REQUIRE(a);
  Tokens t = sign_in(latch, "v1", *a);
  REQUIRE(t.error.empty());
  // Requests hidden in the body of one request: a server that does not consume the whole body
  // reads them as pipelined requests of their own (HTTP desync). One request, one answer.
  const std::string inner = "GET /api/v1/verify?token=smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Length: 0\r\n\r\n";
  std::string small = inner + inner, large;
  while (large.size() <= kBodyLimit)
    large += inner;
  struct Probe {
    std::string method, target;
    bool bearer;
  };
  const std::vector<Probe> probes = {
      {.method = "GET", .target = "/auth/getuser", .bearer = true},
      {.method = "GET", .target = "/api/v1/authorized/me", .bearer = true},
      {.method = "GET", .target = "/api/v1/verify?token=abc", .bearer = false},
      {.method = "POST", .target = "/api/v1/logout", .bearer = true},
      {.method = "POST", .target = "/api/v1/login", .bearer = false}};
  struct Run {
    Request request;
    Wire wire = {};
  };
  std::vector<Run> runs;
  for (const Probe &probe : probes) {
    for (const std::string *body : {&small, &large}) {
      Request r;
      r.method = probe.method;
      r.target = probe.target;
      r.content_type = "application/json";
      r.body = *body;
      if (probe.bearer) r.authorization = "Bearer " + sign_in(latch, "v1", *a).access;
      r.keep_alive = true;
      r.until_close = true; // the server closes idle connections after 5 s
      r.timeout_s = kSlowTimeout;
      runs.push_back({.request = r});
    }
  }
  // In parallel: each run ends only when the server drops the idle connection.
  std::vector<std::thread> threads;
  for (Run &run : runs)
    threads.emplace_back([&run, &latch] { run.wire = exchange(latch.port(), run.request); });
  for (auto &th : threads)
    th.join();
  for (const Run &run : runs) {
    INFO(run.request.method, " ", run.request.target, " with a body of ", run.request.body.size(),
         " bytes");
    CHECK_MESSAGE(run.wire.answered, run.wire.failure);
    auto answers = responses_in(run.wire.raw);
    CHECK_MESSAGE(answers.size() == 1, answers.size(), " answers to one request:", joined(answers));
  }
  check_log_is_clean(latch);
}
