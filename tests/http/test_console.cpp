// Black-box tests of the admin console's API (/_/api/): admins from the CLI, the session
// cookie, CSRF and same-origin refusals, each action's effect seen through the public APIs,
// the headers of every answer, and escaping of user-controlled fields.
#include "support/latch_process.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <regex>
#include <string>
#include <vector>

using namespace latch::test;

namespace {

const std::string kPassword = "password123";

// Adds an admin with the CLI (a password it makes) and returns the password.
std::string add_admin(const LatchProcess &latch, const std::string &email) {
  CommandResult r = run_latch({"admin", "add", email, "--db", latch.db_path()});
  REQUIRE_MESSAGE(r.status == 0, r.output);
  std::smatch m;
  REQUIRE(std::regex_search(r.output, m, std::regex("password: (\\S+)")));
  return m[1];
}

// A browser of the console: its cookie and the CSRF token its page read.
struct Browser {
  const LatchProcess &latch;
  std::string cookie; // latch_console=...
  std::string csrf;
  std::string origin; // sent as Origin when not empty

  Reply call(const std::string &method, const std::string &path, const json &body = nullptr,
             httplib::Headers extra = {}) const {
    httplib::Client c("127.0.0.1", latch.port());
    c.set_read_timeout(30, 0);
    httplib::Headers h = std::move(extra);
    if (!cookie.empty() && !h.count("Cookie")) h.emplace("Cookie", cookie);
    if (!csrf.empty() && !h.count("X-CSRF-Token")) h.emplace("X-CSRF-Token", csrf);
    if (!origin.empty() && !h.count("Origin")) h.emplace("Origin", origin);
    const std::string text = body.is_null() ? "" : body.dump();
    httplib::Result res = method == "GET"      ? c.Get(path, h)
                          : method == "DELETE" ? c.Delete(path, h, text, "application/json")
                          : method == "PUT"    ? c.Put(path, h, text, "application/json")
                                               : c.Post(path, h, text, "application/json");
    REQUIRE(res);
    Reply r;
    r.status = res->status;
    r.text = res->body;
    r.headers = res->headers;
    r.body = json::parse(r.text, nullptr, false);
    return r;
  }
};

// Signs in; the browser then carries the cookie and the CSRF token.
Browser sign_in(const LatchProcess &latch, const std::string &email, const std::string &password) {
  Browser b{latch, "", "", ""};
  Reply r = b.call("POST", "/_/api/session", {{"email", email}, {"password", password}});
  REQUIRE_MESSAGE(r.status == 200, r.text);
  const std::string set = r.header("Set-Cookie");
  REQUIRE(set.rfind("latch_console=", 0) == 0);
  b.cookie = set.substr(0, set.find(';'));
  b.csrf = r.body["csrf_token"];
  return b;
}

struct Person {
  std::string username, email, access, refresh;
};

// A user who signed up and in through picflux.
Person picflux_user(const LatchProcess &latch) {
  Person p{unique("con"), "", "", ""};
  p.email = lower(p.username) + "@example.com";
  REQUIRE(latch
              .post("/api/auth/signup",
                    {{"username", p.username}, {"email", p.email}, {"password", kPassword}})
              .status == 201);
  Reply in = latch.post("/api/auth/signin", {{"email", p.email}, {"password", kPassword}});
  REQUIRE(in.status == 200);
  p.access = in.body["access_token"];
  p.refresh = in.body["refresh_token"];
  return p;
}

std::string user_id(const Browser &b, const std::string &email) {
  Reply r = b.call("GET", "/_/api/users?q=" + email);
  REQUIRE(r.status == 200);
  REQUIRE(r.body["users"].size() == 1);
  return r.body["users"][0]["id"];
}

// The console's error shape, with this code.
void check_error(const Reply &r, int status, const std::string &code) {
  CHECK_MESSAGE(r.status == status, r.text);
  CHECK(keys(r.body) == std::set<std::string>{"error"});
  CHECK(r.body["error"]["code"] == code);
  CHECK(r.body["error"]["message"].is_string());
}

void check_headers(const Reply &r) {
  const std::string csp = r.header("Content-Security-Policy");
  CHECK(csp.find("default-src 'self'") != std::string::npos);
  CHECK(csp.find("frame-ancestors 'none'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(r.header("X-Frame-Options") == "DENY");
  CHECK(r.header("Cache-Control") == "no-store");
  CHECK(r.header("X-Content-Type-Options") == "nosniff");
}

} // namespace

TEST_CASE("the console answers 404 until an admin exists, and never with --console off") {
  LatchProcess latch;
  CHECK(latch.get("/_/").status == 404);
  CHECK(latch.post("/_/api/session", {{"email", "a@example.com"}, {"password", "x"}}).status ==
        404);
  const std::string password = add_admin(latch, "Boss@Example.com");
  Reply page = latch.get("/_/");
  CHECK(page.status == 200);
  CHECK(page.header("Content-Type").rfind("text/html", 0) == 0);
  check_headers(page);
  CHECK(latch.get("/_/no-such-file.js").status == 404);

  CommandResult list = run_latch({"admin", "list", "--db", latch.db_path()});
  CHECK(list.status == 0);
  CHECK(list.output.find("boss@example.com") != std::string::npos); // stored lower-case
  CHECK(run_latch({"admin", "add", "boss@example.com", "--db", latch.db_path()}).status == 1);
  CHECK(run_latch({"admin", "add", "not-an-email", "--db", latch.db_path()}).status == 2);
  CHECK(run_latch({"admin", "delete", "nobody@example.com", "--db", latch.db_path()}).status == 3);

  LatchProcess off({{"--console", "off"}, {}});
  add_admin(off, "boss@example.com");
  CHECK(off.get("/_/").status == 404);
  CHECK(off.get("/_/api/session").status == 404);
  CHECK(
      off.post("/_/api/session", {{"email", "boss@example.com"}, {"password", password}}).status ==
      404);
}

TEST_CASE("console sign-in: the cookie's attributes, the session, the headers, sign-out") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  Browser anon{latch, "", "", ""};
  check_error(anon.call("POST", "/_/api/session",
                        {{"email", "boss@example.com"}, {"password", "wrong-password"}}),
              401, "invalid_credentials");
  check_error(anon.call("POST", "/_/api/session",
                        {{"email", "nobody@example.com"}, {"password", password}}),
              401, "invalid_credentials");
  check_error(anon.call("POST", "/_/api/session", {{"email", "boss@example.com"}}), 400,
              "missing_field");
  Reply bad = latch.post_raw("/_/api/session", "{\"email\":", "application/json");
  check_error(bad, 400, "invalid_body");

  Reply in =
      anon.call("POST", "/_/api/session", {{"email", "BOSS@example.com"}, {"password", password}});
  REQUIRE(in.status == 200);
  check_headers(in);
  CHECK(in.body["admin"] == json{{"email", "boss@example.com"}});
  const std::string set = in.header("Set-Cookie");
  CHECK(set.find("HttpOnly") != std::string::npos);
  CHECK(set.find("SameSite=Strict") != std::string::npos);
  CHECK(set.find("Path=/_/") != std::string::npos);
  CHECK(set.find("Secure") == std::string::npos); // plain HTTP, no https public URL
  // The token is stored only as its hash.
  const std::string token = set.substr(14, set.find(';') - 14);
  if (latch.db_path().rfind("postgres", 0) != 0) {
    CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM console_sessions") == "1");
    CHECK(sql_value(latch.db_path(), "SELECT count(*) FROM console_sessions WHERE token_hash = '" +
                                         token + "'") == "0");
  }

  Browser b = sign_in(latch, "boss@example.com", password);
  Reply me = b.call("GET", "/_/api/session");
  CHECK(me.status == 200);
  CHECK(me.body["csrf_token"] == b.csrf);
  check_headers(me);
  check_error(anon.call("GET", "/_/api/session"), 401, "unauthenticated");
  check_error(Browser{latch, "latch_console=forged", "", ""}.call("GET", "/_/api/session"), 401,
              "unauthenticated");

  // Signing out needs the CSRF token, and ends the session for good.
  Browser no_csrf = b;
  no_csrf.csrf.clear();
  check_error(no_csrf.call("DELETE", "/_/api/session"), 403, "csrf_failed");
  Reply out = b.call("DELETE", "/_/api/session");
  CHECK(out.status == 204);
  CHECK(out.header("Set-Cookie").find("Max-Age=0") != std::string::npos);
  check_error(b.call("GET", "/_/api/session"), 401, "unauthenticated");
  check_error(b.call("GET", "/_/api/users"), 401, "unauthenticated");
}

TEST_CASE("the cookie is Secure when Latch is reached over HTTPS (--public-url https://...)") {
  LatchProcess latch({{"--public-url", "https://auth.example.com"}, {}});
  const std::string password = add_admin(latch, "boss@example.com");
  Reply in = latch.post("/_/api/session", {{"email", "boss@example.com"}, {"password", password}});
  REQUIRE(in.status == 200);
  CHECK(in.header("Set-Cookie").find("; Secure") != std::string::npos);
  // The public origin is the console's own.
  Browser b = sign_in(latch, "boss@example.com", password);
  b.origin = "https://auth.example.com";
  CHECK(b.call("GET", "/_/api/status").status == 200);
  b.origin = "https://evil.example.com";
  check_error(b.call("GET", "/_/api/status"), 403, "cross_site");
}

TEST_CASE("every console endpoint refuses no session (401), a wrong or missing CSRF token on "
          "state changes (403), and requests from other sites (403)") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  Person p = picflux_user(latch);
  const std::string id = user_id(b, p.email);
  Reply detail = b.call("GET", "/_/api/users/" + id);
  REQUIRE(detail.body["sessions"].size() == 2); // sign-up's and sign-in's
  const std::string sid = detail.body["sessions"][0]["id"];

  struct Endpoint {
    std::string method, path;
    json body;
  };
  const std::vector<Endpoint> reads = {
      {"GET", "/_/api/session", nullptr},     {"GET", "/_/api/users", nullptr},
      {"GET", "/_/api/users/" + id, nullptr}, {"GET", "/_/api/audit", nullptr},
      {"GET", "/_/api/keys", nullptr},        {"GET", "/_/api/status", nullptr}};
  const std::vector<Endpoint> writes = {
      {"DELETE", "/_/api/session", nullptr},
      {"POST", "/_/api/users/" + id + "/sessions/" + sid + "/revoke", nullptr},
      {"POST", "/_/api/users/" + id + "/sessions/revoke", nullptr},
      {"POST", "/_/api/users/" + id + "/verify-email", nullptr},
      {"POST", "/_/api/users/" + id + "/reset-mail", nullptr},
      {"POST", "/_/api/users/" + id + "/password", {{"password", "new-password-1"}}},
      {"DELETE", "/_/api/users/" + id, {{"confirm", p.username}}}};

  Browser anon{latch, "", "", ""};
  Browser wrong = b;
  wrong.csrf = "not-the-token";
  Browser none = b;
  none.csrf.clear();
  Browser other_site = b;
  other_site.origin = "https://evil.example.com";
  for (const auto &list : {reads, writes})
    for (const Endpoint &e : list) {
      INFO(e.method << " " << e.path);
      check_error(anon.call(e.method, e.path, e.body), 401, "unauthenticated");
      check_error(other_site.call(e.method, e.path, e.body), 403, "cross_site");
      check_error(b.call(e.method, e.path, e.body, {{"Sec-Fetch-Site", "cross-site"}}), 403,
                  "cross_site");
      check_error(Browser{latch, b.cookie, b.csrf, "null"}.call(e.method, e.path, e.body), 403,
                  "cross_site");
    }
  for (const Endpoint &e : writes) {
    INFO(e.method << " " << e.path);
    check_error(wrong.call(e.method, e.path, e.body), 403, "csrf_failed");
    check_error(none.call(e.method, e.path, e.body), 403, "csrf_failed");
  }
  // Nothing above happened: the user is there with its sessions and password.
  Reply still = b.call("GET", "/_/api/users/" + id);
  REQUIRE(still.status == 200);
  for (const auto &s : still.body["sessions"])
    CHECK(s["revoked"] == false);
  CHECK(latch.post("/api/auth/signin", {{"email", p.email}, {"password", kPassword}}).status ==
        200);
  // Same-origin requests (the console's own page) pass.
  Browser own = b;
  own.origin = latch.base_url();
  CHECK(own.call("GET", "/_/api/status", nullptr, {{"Sec-Fetch-Site", "same-origin"}}).status ==
        200);
}

TEST_CASE("users: list, search by username or email, pages, one user; bad parameters are 400") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  std::vector<Person> people;
  for (int i = 0; i < 5; ++i)
    people.push_back(picflux_user(latch));

  Reply all = b.call("GET", "/_/api/users");
  REQUIRE(all.status == 200);
  check_headers(all);
  CHECK(all.body["users"].size() == 5);
  CHECK(all.body["next"].is_null());
  CHECK(keys(all.body["users"][0]) ==
        std::set<std::string>{"id", "username", "email", "email_verified", "active", "created_at"});

  // Pages of two, following next, give every user once.
  std::set<std::string> seen;
  std::string after;
  for (int page = 0; page < 3; ++page) {
    Reply r = b.call("GET", "/_/api/users?limit=2" + (after.empty() ? "" : "&after=" + after));
    REQUIRE(r.status == 200);
    for (const auto &u : r.body["users"])
      CHECK(seen.insert(u["username"].get<std::string>()).second);
    if (r.body["next"].is_null()) break;
    after = r.body["next"];
  }
  CHECK(seen.size() == 5);

  // By a prefix of the username (any case) or of the email.
  Reply by_name = b.call("GET", "/_/api/users?q=" + upper(people[2].username));
  REQUIRE(by_name.body["users"].size() == 1);
  CHECK(by_name.body["users"][0]["email"] == people[2].email);
  Reply by_email = b.call("GET", "/_/api/users?q=" + people[3].email.substr(0, 12));
  CHECK(by_email.body["users"].size() >= 1);
  CHECK(b.call("GET", "/_/api/users?q=nobody-like-this").body["users"].empty());

  const std::string id = user_id(b, people[0].email);
  Reply one = b.call("GET", "/_/api/users/" + id);
  REQUIRE(one.status == 200);
  CHECK(keys(one.body) == std::set<std::string>{"user", "sessions", "events"});
  CHECK(one.body["user"]["username"] == people[0].username);
  CHECK(keys(one.body["user"]) == std::set<std::string>{"id", "username", "email", "display_name",
                                                        "profile_picture", "phone_number",
                                                        "email_verified", "active", "created_at",
                                                        "updated_at"});
  CHECK(keys(one.body["sessions"][0]) ==
        std::set<std::string>{"id", "api", "created_at", "expires_at", "revoked"});
  CHECK(one.body["sessions"][0]["api"] == "picflux");
  CHECK(one.text.find("password") == std::string::npos); // never a hash

  for (const std::string &q :
       std::vector<std::string>{"limit=0", "limit=201", "limit=x", "after=garbage",
                                "after=1:", "q=" + std::string(300, 'a')})
    check_error(b.call("GET", "/_/api/users?" + q), 400, "invalid_parameter");
  check_error(b.call("GET", "/_/api/users/no-such-id"), 404, "user_not_found");
  check_error(b.call("GET", "/_/api/nothing"), 404, "not_found");
  check_error(b.call("PUT", "/_/api/users"), 405, "method_not_allowed");
  check_error(b.call("POST", "/_/api/users/" + id + "/password", json::array()), 400,
              "invalid_body");
}

TEST_CASE("a display name that is a script tag comes back JSON-escaped") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  const std::string name = unique("xss");
  const std::string script = "<script>alert(1)</script>";
  REQUIRE(latch
              .post("/api/v1/auth/signUp", {{"username", name},
                                            {"email", lower(name) + "@example.com"},
                                            {"password", "Envelope-Pass-1!"},
                                            {"display_name", script}})
              .status < 300);
  Reply r = b.call("GET", "/_/api/users/" + user_id(b, lower(name) + "@example.com"));
  REQUIRE(r.status == 200);
  CHECK(r.header("Content-Type") == "application/json");
  CHECK(r.text.find("<script>") == std::string::npos);
  CHECK(r.text.find("\\u003cscript\\u003e") != std::string::npos);
  CHECK(r.body["user"]["display_name"] == script); // the same text, once parsed
}

TEST_CASE("a session ended in the console refuses its tokens at once, on picflux and simplejwt") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  Person p = picflux_user(latch);
  const std::string id = user_id(b, p.email);
  Reply simple = latch.post("/auth/token", {{"username", p.username}, {"password", kPassword}});
  REQUIRE(simple.status == 200);
  const std::string simple_access = simple.body["access"];
  CHECK(latch.get("/auth/getuser", p.access).status == 200);
  CHECK(latch.get("/auth/getuser", simple_access).status == 200);

  // End the picflux sign-in's session only: its tokens die, simplejwt's live.
  Reply detail = b.call("GET", "/_/api/users/" + id);
  std::string picflux_sid;
  for (const auto &s : detail.body["sessions"])
    if (s["id"] == jwt_payload(p.access)["sid"]) picflux_sid = s["id"];
  REQUIRE(!picflux_sid.empty());
  check_error(b.call("POST", "/_/api/users/" + id + "/sessions/no-such-session/revoke"), 404,
              "session_not_found");
  CHECK(b.call("POST", "/_/api/users/" + id + "/sessions/" + picflux_sid + "/revoke").status ==
        204);
  CHECK(latch.get("/auth/getuser", p.access).status == 401);
  CHECK(latch.post_raw("/api/auth/refresh", "", "application/json", p.refresh).status == 401);
  CHECK(latch.get("/auth/getuser", simple_access).status == 200);

  // End every session: simplejwt's access and refresh die too.
  CHECK(b.call("POST", "/_/api/users/" + id + "/sessions/revoke").status == 204);
  CHECK(latch.get("/auth/getuser", simple_access).status == 401);
  CHECK(latch.post("/auth/token/refresh", {{"refresh", simple.body["refresh"]}}).status == 401);
  const Reply after = b.call("GET", "/_/api/users/" + id); // kept: the loop reads its body
  for (const auto &s : after.body["sessions"])
    CHECK(s["revoked"] == true);
}

TEST_CASE("console actions: verify the email, set a password, send a reset mail, delete") {
  SmtpSink smtp;
  LatchProcess latch({{"--require-verified-email", "--smtp-url", smtp.url()}, {}});
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  const std::string name = unique("act");
  const std::string email = lower(name) + "@example.com";
  REQUIRE(latch
              .post("/api/v1/register?sendEmail=false",
                    {{"email", email}, {"username", name}, {"password", kPassword}})
              .status == 201);
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", kPassword}}).status == 401);
  const std::string id = user_id(b, email);

  // Verified: v1 lets the user in.
  CHECK(b.call("POST", "/_/api/users/" + id + "/verify-email").status == 204);
  CHECK(b.call("GET", "/_/api/users/" + id).body["user"]["email_verified"] == true);
  Reply in = latch.post("/api/v1/login", {{"email", email}, {"password", kPassword}});
  REQUIRE(in.status == 200);

  // A new password: the sign-up rule, then the old one is refused and sessions end.
  check_error(b.call("POST", "/_/api/users/" + id + "/password", {{"password", "short"}}), 400,
              "weak_password");
  check_error(b.call("POST", "/_/api/users/" + id + "/password", json::object()), 400,
              "missing_field");
  CHECK(
      b.call("POST", "/_/api/users/" + id + "/password", {{"password", "brand-new-pass"}}).status ==
      204);
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", kPassword}}).status == 401);
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", "brand-new-pass"}}).status ==
        200);

  // A reset mail: its link sets a password through flask.
  CHECK(b.call("POST", "/_/api/users/" + id + "/reset-mail").status == 202);
  const std::string mail = smtp.wait_for_message(1);
  REQUIRE(!mail.empty());
  const std::string token = token_from_link(mail);
  REQUIRE(!token.empty());
  CHECK(
      latch.post("/auth/reset-password", {{"reset_token", token}, {"new_password", "reset-pass-9"}})
          .status == 200);
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", "reset-pass-9"}}).status ==
        200);

  // A user without email has no mail to get.
  const std::string bare = unique("bare");
  REQUIRE(latch.post("/auth/register", {{"username", bare}, {"password", kPassword}}).status ==
          201);
  const std::string bare_id = user_id(b, bare);
  check_error(b.call("POST", "/_/api/users/" + bare_id + "/reset-mail"), 409, "no_email");
  check_error(b.call("POST", "/_/api/users/" + bare_id + "/verify-email"), 409, "no_email");

  // Delete: only with the username or email typed again; then the user is gone everywhere.
  const std::string access = in.body["data"]["accessToken"].is_string()
                                 ? in.body["data"]["accessToken"].get<std::string>()
                                 : std::string();
  check_error(b.call("DELETE", "/_/api/users/" + id), 400, "confirmation_mismatch");
  check_error(b.call("DELETE", "/_/api/users/" + id, {{"confirm", "someone-else"}}), 400,
              "confirmation_mismatch");
  CHECK(b.call("DELETE", "/_/api/users/" + id, {{"confirm", upper(email)}}).status == 204);
  check_error(b.call("GET", "/_/api/users/" + id), 404, "user_not_found");
  CHECK(latch.post("/api/v1/login", {{"email", email}, {"password", "reset-pass-9"}}).status ==
        401);
  CHECK(latch.post("/api/auth/signin", {{"email", email}, {"password", "reset-pass-9"}}).status ==
        401);
  CHECK(b.call("DELETE", "/_/api/users/" + bare_id, {{"confirm", bare}}).status == 204);
}

TEST_CASE("keys and status") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  picflux_user(latch);
  Reply k = b.call("GET", "/_/api/keys");
  REQUIRE(k.status == 200);
  REQUIRE(k.body["keys"].size() >= 1);
  CHECK(keys(k.body["keys"][0]) ==
        std::set<std::string>{"kid", "alg", "state", "created_at", "activated_at"});
  CHECK(k.body["keys"][0]["state"] == "active");
  CHECK(k.text.find("secret") == std::string::npos);
  Reply s = b.call("GET", "/_/api/status");
  REQUIRE(s.status == 200);
  CHECK(keys(s.body) == std::set<std::string>{"version", "uptime_seconds", "users",
                                              "active_sessions", "database_bytes"});
  CHECK(s.body["users"] == 1);
  CHECK(s.body["active_sessions"] == 2);
  CHECK(s.body["database_bytes"].get<long long>() > 0);
  Reply a = b.call("GET", "/_/api/audit");
  CHECK(a.status == 200);
  CHECK(a.body["events"].is_array());
}

TEST_CASE("deleting an admin ends its console sessions") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  const std::string other = add_admin(latch, "other@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  Browser o = sign_in(latch, "other@example.com", other);
  CHECK(b.call("GET", "/_/api/users").status == 200);
  CommandResult r = run_latch({"admin", "delete", "boss@example.com", "--db", latch.db_path()});
  CHECK(r.status == 0);
  check_error(b.call("GET", "/_/api/users"), 401, "unauthenticated");
  CHECK(o.call("GET", "/_/api/users").status == 200);
  check_error(
      Browser{latch, "", "", ""}.call("POST", "/_/api/session",
                                      {{"email", "boss@example.com"}, {"password", password}}),
      401, "invalid_credentials");
}

TEST_CASE("console sign-in: the failed sign-in lockout and the per-address rate limit") {
  {
    LatchProcess latch({{"--max-failed-logins", "3"}, {}});
    const std::string password = add_admin(latch, "boss@example.com");
    Browser anon{latch, "", "", ""};
    for (int i = 0; i < 3; ++i)
      check_error(anon.call("POST", "/_/api/session",
                            {{"email", "boss@example.com"}, {"password", "wrong-password"}}),
                  401, "invalid_credentials");
    Reply locked = anon.call("POST", "/_/api/session",
                             {{"email", "boss@example.com"}, {"password", password}});
    check_error(locked, 429, "account_locked");
    CHECK(!locked.header("Retry-After").empty());
  }
  {
    LatchProcess latch({{"--rate-limit", "2"}, {}});
    const std::string password = add_admin(latch, "boss@example.com");
    Browser anon{latch, "", "", ""};
    CHECK(
        anon.call("POST", "/_/api/session", {{"email", "boss@example.com"}, {"password", password}})
            .status == 200);
    CHECK(
        anon.call("POST", "/_/api/session", {{"email", "boss@example.com"}, {"password", password}})
            .status == 200);
    check_error(anon.call("POST", "/_/api/session",
                          {{"email", "boss@example.com"}, {"password", password}}),
                429, "rate_limited");
  }
}

#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
TEST_CASE("a console session expires after 12 hours unused; each use slides it") {
  const char *faketime = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";
  if (access(faketime, R_OK) != 0) {
    MESSAGE("libfaketime is not installed (Debian: faketime): skipped");
    return;
  }
  TempDir dir;
  const std::string file = dir.file("faketime");
  auto step = [&](const std::string &offset) { std::ofstream(file) << offset << "\n"; };
  step("+0");
  LatchProcess latch({{},
                      {{"LD_PRELOAD", faketime},
                       {"FAKETIME_TIMESTAMP_FILE", file},
                       {"FAKETIME_NO_CACHE", "1"},
                       {"FAKETIME_DONT_FAKE_MONOTONIC", "1"}}});
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  Browser idle = sign_in(latch, "boss@example.com", password);
  step("+11h");
  CHECK(b.call("GET", "/_/api/session").status == 200); // used: 12 hours from now
  step("+22h");
  CHECK(b.call("GET", "/_/api/session").status == 200);
  check_error(idle.call("GET", "/_/api/session"), 401, "unauthenticated"); // 22 h unused
  step("+35h");
  check_error(b.call("GET", "/_/api/session"), 401, "unauthenticated");
  check_error(b.call("GET", "/_/api/users"), 401, "unauthenticated");
}
#endif

TEST_CASE("the audit view: a failed sign-in and the console's own actions, by whom, filtered and "
          "paged; a user's page shows their recent events") {
  LatchProcess latch;
  const std::string password = add_admin(latch, "boss@example.com");
  Browser b = sign_in(latch, "boss@example.com", password);
  Person p = picflux_user(latch);
  const std::string id = user_id(b, p.email);
  REQUIRE(latch.post("/api/auth/signin", {{"email", p.email}, {"password", "not the password"}})
              .status == 401);
  REQUIRE(b.call("POST", "/_/api/users/" + id + "/sessions/revoke").status == 204);

  Reply failed = b.call("GET", "/_/api/audit?event=sign_in_failed");
  REQUIRE_MESSAGE(failed.status == 200, failed.text);
  REQUIRE(failed.body["events"].size() == 1);
  CHECK(failed.body["events"][0]["user_id"] == id);
  CHECK(failed.body["events"][0]["detail"] == "wrong_password");
  CHECK(failed.body["events"][0]["api"] == "picflux");

  Reply mine = b.call("GET", "/_/api/audit?user=" + id + "&event=admin_revoke_sessions");
  REQUIRE(mine.status == 200);
  REQUIRE(mine.body["events"].size() == 1);
  CHECK(mine.body["events"][0]["actor"] == "console:boss@example.com");

  // Newest first, a page at a time: sign_up, sign_in, sign_in_failed, admin_revoke_sessions.
  Reply first = b.call("GET", "/_/api/audit?user=" + id + "&limit=3");
  REQUIRE(first.status == 200);
  REQUIRE(first.body["events"].size() == 3);
  CHECK(first.body["events"][0]["event"] == "admin_revoke_sessions");
  REQUIRE(first.body["next"].is_number());
  Reply second = b.call("GET", "/_/api/audit?user=" + id + "&limit=3&before=" +
                                   std::to_string(first.body["next"].get<std::int64_t>()));
  REQUIRE(second.status == 200);
  REQUIRE(second.body["events"].size() == 1);
  CHECK(second.body["events"][0]["event"] == "sign_up");
  CHECK(second.body["next"].is_null());

  Reply page = b.call("GET", "/_/api/users/" + id);
  REQUIRE(page.status == 200);
  CHECK(page.body["events"].size() == 4);

  check_error(b.call("GET", "/_/api/audit?limit=0"), 400, "invalid_parameter");
  check_error(b.call("GET", "/_/api/audit?since=yesterday"), 400, "invalid_parameter");
  check_error(Browser{latch, "", "", ""}.call("GET", "/_/api/audit"), 401, "unauthenticated");
  // Nothing recorded holds the password tried.
  CHECK(b.call("GET", "/_/api/audit?limit=200").text.find("not the password") == std::string::npos);
}
