// The admin console's HTTP side: the checks every /_/api/ request passes (same origin, an
// admin session, the CSRF token), each endpoint in the console's words, and the static files.
// Every rule is AuthService's; nothing here decides what an admin may do to a user.
#include "auth/http/console.h"

#include "auth/http/body.h"
#include "auth/http/client_address.h"
#include "auth/http/connection_loop.h"
#include "auth/identity.h"
#include "auth/secure.h"
#include "db/store.h"

#include <charconv>
#include <iostream>
#include <optional>
#include <vector>

namespace latch::http {

using nlohmann::json;

namespace {

constexpr const char *kCookie = "latch_console";
constexpr std::size_t kDefaultPage = 50, kMaxPage = 200;
// Events on a user's page: the newest; the audit view pages through the rest.
constexpr std::size_t kRecentEvents = 20;

// Sets a header once: the connection loop's defaults (Cache-Control) are already there.
void put_header(httplib::Response &res, const std::string &name, const std::string &value) {
  res.headers.erase(name);
  res.set_header(name, value);
}

// Every answer under /_/: nothing inline runs, nothing frames it, nothing caches it.
void protect(httplib::Response &res) {
  put_header(res, "Content-Security-Policy",
             "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
             "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
             "frame-ancestors 'none'");
  put_header(res, "X-Frame-Options", "DENY");
  put_header(res, "Cache-Control", "no-store");
  put_header(res, "X-Content-Type-Options", "nosniff");
  put_header(res, "Referrer-Policy", "no-referrer");
  put_header(res, "Cross-Origin-Opener-Policy", "same-origin");
  res.headers.erase("Pragma");
}

// JSON whose <, > and & are escaped too (\u003c ...): a user's display name that is a script
// tag stays inert even where a careless reader takes the answer for HTML.
void send(httplib::Response &res, int status, const json &body) {
  std::string text = body.dump(-1, ' ', false, json::error_handler_t::replace);
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    if (ch == '<')
      out += "\\u003c";
    else if (ch == '>')
      out += "\\u003e";
    else if (ch == '&')
      out += "\\u0026";
    else
      out += ch;
  }
  res.status = status;
  res.set_content(out, "application/json");
}

// The console's one error shape: {"error": {"code", "message"}}.
void fail(httplib::Response &res, int status, const std::string &code, const std::string &message,
          int retry_after = 0) {
  if (retry_after > 0) put_header(res, "Retry-After", std::to_string(retry_after));
  send(res, status, {{"error", {{"code", code}, {"message", message}}}});
}

// A core Error in the console's words.
void fail(httplib::Response &res, const Error &e) {
  switch (e.code) {
  case ErrorCode::weak_password:
    return fail(res, 400, "weak_password", "the password is too short");
  case ErrorCode::password_too_long:
    return fail(res, 400, "password_too_long", "the password is too long");
  case ErrorCode::invalid_credentials:
    return fail(res, 401, "invalid_credentials", "wrong email or password");
  case ErrorCode::account_locked:
    return fail(res, 429, "account_locked", "too many failed sign-ins; try again later",
                e.retry_after);
  case ErrorCode::rate_limited:
    return fail(res, 429, "rate_limited", "too many requests; try again later", e.retry_after);
  case ErrorCode::busy: return fail(res, 503, "busy", "the server is busy; try again", 1);
  case ErrorCode::user_not_found:
    if (e.detail == "session") return fail(res, 404, "session_not_found", "no such session");
    if (e.detail == "no email") return fail(res, 409, "no_email", "the user has no email");
    return fail(res, 404, "user_not_found", "no such user");
  case ErrorCode::invalid_email: return fail(res, 409, "no_email", "the user has no email");
  case ErrorCode::bad_body:
    return fail(res, 400, "invalid_body", "the body must be a JSON object of UTF-8 text");
  case ErrorCode::unsupported_media_type:
    return fail(res, 415, "unsupported_media_type", "the body must be application/json");
  default: return fail(res, 500, "internal", "internal server error");
  }
}

std::string cookie_value(const httplib::Request &req, const std::string &name) {
  const std::string header = req.get_header_value("Cookie");
  std::size_t at = 0;
  while (at < header.size()) {
    std::size_t end = header.find(';', at);
    if (end == std::string::npos) end = header.size();
    std::string pair = header.substr(at, end - at);
    pair.erase(0, pair.find_first_not_of(' '));
    if (pair.size() > name.size() && pair.compare(0, name.size(), name) == 0 &&
        pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    at = end + 1;
  }
  return {};
}

// scheme://host[:port] of a URL.
std::string origin_of(const std::string &url) {
  const auto scheme = url.find("://");
  if (scheme == std::string::npos) return {};
  const auto path = url.find('/', scheme + 3);
  return lower_ascii(path == std::string::npos ? url : url.substr(0, path));
}

std::vector<std::string> split_path(std::string_view rest) {
  std::vector<std::string> parts;
  std::size_t at = 0;
  while (at <= rest.size()) {
    std::size_t end = rest.find('/', at);
    if (end == std::string_view::npos) end = rest.size();
    parts.emplace_back(rest.substr(at, end - at));
    at = end + 1;
  }
  return parts;
}

json user_row(const db::User &u) {
  return {{"id", u.id},
          {"username", u.username},
          {"email", u.email ? json(*u.email) : json(nullptr)},
          {"email_verified", u.email_verified},
          {"active", u.active},
          {"created_at", u.created_at}};
}

json user_detail(const db::User &u) {
  json j = user_row(u);
  j["display_name"] = u.display_name;
  j["profile_picture"] = u.profile_picture;
  j["phone_number"] = u.phone_number;
  j["updated_at"] = u.updated_at;
  return j;
}

// A whole decimal number of the query string, within [low, high], or none.
std::optional<std::int64_t> number_param(const std::string &text, std::int64_t low,
                                         std::int64_t high) {
  std::int64_t n = 0;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || ec != std::errc() || ptr != text.data() + text.size() || n < low || n > high)
    return std::nullopt;
  return n;
}

std::string cursor_of(const db::User &u) {
  return std::to_string(u.created_at) + ":" + u.id;
}

std::optional<db::UserCursor> parse_cursor(const std::string &text) {
  const auto colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= text.size() || text.size() > 200)
    return std::nullopt;
  db::UserCursor c;
  const char *begin = text.data(), *end = text.data() + colon;
  auto [ptr, ec] = std::from_chars(begin, end, c.created_at);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  c.id = text.substr(colon + 1);
  return c;
}

const char *key_state(const db::SigningKeyRow &k) {
  if (k.retired_at) return "retired";
  return k.standby() ? "standby" : "active";
}

} // namespace

// One /_/api/ request on its way through.
struct Console::Call {
  const httplib::Request &req;
  httplib::Response &res;
  std::vector<std::string> parts; // the path after /_/api/, by '/'
  std::string method;             // HEAD as GET
  std::optional<db::ConsoleSession> session;
  json body = json::object();
};

Console::Console(const Config &config, AuthService &service)
    : config_(config), service_(service), started_(std::chrono::steady_clock::now()),
      // Whenever browsers reach Latch over HTTPS, the cookie never travels over plain HTTP.
      secure_cookie_(!config.tls_cert.empty() || config.public_url.rfind("https://", 0) == 0) {}

bool Console::owns(std::string_view path) {
  return path == "/_" || path.rfind("/_/", 0) == 0;
}

bool Console::hashes(std::string_view method, std::string_view path) {
  if (method != "POST") return false;
  if (path == "/_/api/session") return true;
  return path.rfind("/_/api/users/", 0) == 0 && path.size() > 9 &&
         path.substr(path.size() - 9) == "/password";
}

void Console::serve(const httplib::Request &req, httplib::Response &res) {
  // Until an admin exists there is no console: the answer of a server without one.
  if (!service_.has_admins()) return send(res, 404, {{"error", "not found"}});
  protect(res);
  if (req.path == "/_") {
    res.status = 308;
    return put_header(res, "Location", "/_/");
  }
  if (req.path.rfind("/_/api/", 0) != 0) return serve_file(req, res);
  Call call{req,
            res,
            split_path(std::string_view(req.path).substr(7)),
            req.method == "HEAD" ? "GET" : req.method,
            std::nullopt,
            json::object()};
  try {
    api(call);
  } catch (const db::StoreUnavailable &e) {
    std::cerr << "latch: database unavailable on " << req.method << " " << req.path << ": "
              << e.what() << "\n";
    fail(res, 503, "busy", "the database cannot be reached now; try again", 1);
  } catch (const std::exception &e) {
    std::cerr << "latch: error on " << req.method << " " << req.path << ": " << e.what() << "\n";
    fail(res, 500, "internal", "internal server error");
  }
}

void Console::serve_file(const httplib::Request &req, httplib::Response &res) {
  const auto &files = console_files();
  auto at = files.find(req.path);
  if (at == files.end()) return fail(res, 404, "not_found", "no such page");
  if (req.method != "GET" && req.method != "HEAD")
    return fail(res, 405, "method_not_allowed", "only GET");
  res.status = 200;
  res.set_content(at->second.body, at->second.content_type.c_str());
}

void Console::api(Call &c) {
  const auto &p = c.parts;
  httplib::Response &res = c.res;

  // A request another site's page made is refused before anything else: a browser says so in
  // Sec-Fetch-Site, and in Origin on every state-changing request.
  if (c.req.get_header_value("Sec-Fetch-Site") == "cross-site")
    return fail(res, 403, "cross_site", "requests from other sites are refused");
  if (c.req.has_header("Origin")) {
    const std::string origin = lower_ascii(c.req.get_header_value("Origin"));
    const std::string host = lower_ascii(c.req.get_header_value("Host"));
    const bool same =
        (!host.empty() && origin == (config_.tls_cert.empty() ? "http://" : "https://") + host) ||
        origin == origin_of(config_.effective_public_url());
    if (!same) return fail(res, 403, "cross_site", "requests from other origins are refused");
  }

  // Which endpoint, and the methods its path answers.
  enum class Ep {
    none,
    session,
    users,
    user,
    session_revoke,
    sessions_revoke,
    verify_email,
    reset_mail,
    password,
    audit,
    keys,
    status
  } ep = Ep::none;
  const char *methods = "";
  if (p.size() == 1 && p[0] == "session")
    ep = Ep::session, methods = "GET POST DELETE";
  else if (p.size() == 1 && p[0] == "users")
    ep = Ep::users, methods = "GET";
  else if (p.size() == 1 && p[0] == "audit")
    ep = Ep::audit, methods = "GET";
  else if (p.size() == 1 && p[0] == "keys")
    ep = Ep::keys, methods = "GET";
  else if (p.size() == 1 && p[0] == "status")
    ep = Ep::status, methods = "GET";
  else if (p.size() >= 2 && p[0] == "users" && !p[1].empty()) {
    if (p.size() == 2)
      ep = Ep::user, methods = "GET DELETE";
    else if (p.size() == 5 && p[2] == "sessions" && !p[3].empty() && p[4] == "revoke")
      ep = Ep::session_revoke, methods = "POST";
    else if (p.size() == 4 && p[2] == "sessions" && p[3] == "revoke")
      ep = Ep::sessions_revoke, methods = "POST";
    else if (p.size() == 3 && p[2] == "verify-email")
      ep = Ep::verify_email, methods = "POST";
    else if (p.size() == 3 && p[2] == "reset-mail")
      ep = Ep::reset_mail, methods = "POST";
    else if (p.size() == 3 && p[2] == "password")
      ep = Ep::password, methods = "POST";
  }
  if (ep == Ep::none) return fail(res, 404, "not_found", "no such endpoint");
  if (std::string_view(methods).find(c.method) == std::string_view::npos ||
      (c.method != "GET" && c.method != "POST" && c.method != "DELETE"))
    return fail(res, 405, "method_not_allowed", "this endpoint does not answer " + c.method);

  const bool sign_in = ep == Ep::session && c.method == "POST";
  if (!sign_in) {
    c.session = service_.console_session(cookie_value(c.req, kCookie));
    if (!c.session) return fail(res, 401, "unauthenticated", "sign in to the console first");
    // Every state change carries the session's CSRF token, which a page of another site
    // cannot read (the answer that holds it is same-origin).
    if (c.method != "GET" &&
        !secure::constant_time_equal(c.req.get_header_value("X-CSRF-Token"), c.session->csrf_token))
      return fail(res, 403, "csrf_failed", "the X-CSRF-Token header is missing or wrong");
  }
  if (c.method != "GET" && !c.req.body.empty()) {
    auto body = parse_body(c.req, BodyKind::json_only);
    if (!body) return fail(res, body.error());
    c.body = std::move(body.value());
  }
  // Who does what this request changes, for the audit log: the admin, from the client's address.
  auto by = [&] {
    Caller who{client_address(c.req, config_.trusted_proxies), !ConnectionLoop::line_full(c.req)};
    who.user_agent = c.req.get_header_value("User-Agent");
    who.request_id = res.get_header_value("X-Request-Id");
    who.actor = "console:" + c.session->admin_email;
    return who;
  };
  auto text_field = [&](const char *name) -> std::optional<std::string> {
    auto at = c.body.find(name);
    if (at == c.body.end() || !at->is_string()) return std::nullopt;
    return at->get<std::string>();
  };

  switch (ep) {
  case Ep::session: {
    if (c.method == "GET")
      return send(
          res, 200,
          {{"admin", {{"email", c.session->admin_email}}}, {"csrf_token", c.session->csrf_token}});
    if (c.method == "DELETE") {
      service_.console_sign_out(cookie_value(c.req, kCookie));
      res.status = 204;
      return put_header(res, "Set-Cookie",
                        std::string(kCookie) + "=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/_/" +
                            (secure_cookie_ ? "; Secure" : ""));
    }
    const std::string address = client_address(c.req, config_.trusted_proxies);
    if (int wait = service_.throttle_address(address))
      return fail(res, 429, "rate_limited", "too many requests; try again later", wait);
    auto email = text_field("email"), password = text_field("password");
    if (!email || !password || email->empty() || password->empty())
      return fail(res, 400, "missing_field", "email and password are required");
    auto login = service_.console_sign_in(*email, *password,
                                          Caller{address, !ConnectionLoop::line_full(c.req)});
    if (!login) return fail(res, login.error());
    put_header(res, "Set-Cookie",
               std::string(kCookie) + "=" + login->token + "; HttpOnly; SameSite=Strict; Path=/_/" +
                   (secure_cookie_ ? "; Secure" : ""));
    return send(res, 200,
                {{"admin", {{"email", login->admin.email}}}, {"csrf_token", login->csrf_token}});
  }
  case Ep::users: {
    const std::string q = c.req.get_param_value("q");
    const std::string after = c.req.get_param_value("after");
    const std::string limit_text = c.req.get_param_value("limit");
    std::size_t limit = kDefaultPage;
    if (!limit_text.empty()) {
      auto [ptr, ec] =
          std::from_chars(limit_text.data(), limit_text.data() + limit_text.size(), limit);
      if (ec != std::errc() || ptr != limit_text.data() + limit_text.size() || limit < 1 ||
          limit > kMaxPage)
        return fail(res, 400, "invalid_parameter", "limit must be 1 to 200");
    }
    if (q.size() > 254 || !secure::valid_utf8(q))
      return fail(res, 400, "invalid_parameter", "q must be UTF-8 text of at most 254 bytes");
    std::optional<db::UserCursor> cursor;
    if (!after.empty() && !(cursor = parse_cursor(after)))
      return fail(res, 400, "invalid_parameter", "after is not a cursor this list gave");
    // One more than asked tells whether there is a next page.
    auto users = service_.page_users(q, cursor, limit + 1);
    json next = nullptr;
    if (users.size() > limit) {
      users.resize(limit);
      next = cursor_of(users.back());
    }
    json rows = json::array();
    for (const auto &u : users)
      rows.push_back(user_row(u));
    return send(res, 200, {{"users", rows}, {"next", next}});
  }
  case Ep::audit: {
    db::AuditQuery q;
    q.limit = kDefaultPage;
    if (const std::string user = c.req.get_param_value("user"); !user.empty()) {
      if (user.size() > 200 || !secure::valid_utf8(user))
        return fail(res, 400, "invalid_parameter", "user must be a user id");
      q.user_id = user;
    }
    if (const std::string event = c.req.get_param_value("event"); !event.empty()) {
      if (event.size() > 64 || !secure::valid_utf8(event))
        return fail(res, 400, "invalid_parameter", "event must be an event name");
      q.event = event;
    }
    auto number = [&](const char *name, std::int64_t low, std::int64_t high,
                      std::optional<std::int64_t> &into) {
      const std::string text = c.req.get_param_value(name);
      if (text.empty()) return true;
      into = number_param(text, low, high);
      return into.has_value();
    };
    std::optional<std::int64_t> limit_asked;
    if (!number("since", 0, std::int64_t{1} << 40, q.since) ||
        !number("before", 1, std::int64_t{1} << 62, q.before_id) ||
        !number("limit", 1, static_cast<std::int64_t>(kMaxPage), limit_asked))
      return fail(res, 400, "invalid_parameter",
                  "since (unix seconds), before (an event id) and limit (1 to 200) are whole "
                  "numbers");
    const std::size_t limit = limit_asked ? static_cast<std::size_t>(*limit_asked) : kDefaultPage;
    q.limit = limit + 1; // one more than asked tells whether there is a next page
    auto events = service_.audit_events(q);
    json next = nullptr;
    if (events.size() > limit) {
      events.resize(limit);
      next = events.back().id;
    }
    json rows = json::array();
    for (const auto &e : events)
      rows.push_back(audit_event_json(e));
    return send(res, 200, {{"events", rows}, {"next", next}});
  }
  case Ep::keys: {
    json keys = json::array();
    for (const auto &k : service_.signing_keys())
      keys.push_back({{"kid", k.kid},
                      {"alg", k.alg},
                      {"state", key_state(k)},
                      {"created_at", k.created_at},
                      {"activated_at", k.activated_at ? json(*k.activated_at) : json(nullptr)}});
    return send(res, 200, {{"keys", keys}});
  }
  case Ep::status: {
    const auto figures = service_.console_figures();
    const auto up = std::chrono::duration_cast<std::chrono::seconds>(
                        std::chrono::steady_clock::now() - started_)
                        .count();
    return send(res, 200,
                {{"version", LATCH_VERSION},
                 {"uptime_seconds", static_cast<std::int64_t>(up)},
                 {"users", figures.users},
                 {"active_sessions", figures.active_sessions},
                 {"database_bytes", figures.database_bytes}});
  }
  default: break;
  }

  // The endpoints of one user.
  auto user = p[1].size() <= 200 ? service_.find_user_by_id(p[1]) : std::nullopt;
  if (!user) return fail(res, 404, "user_not_found", "no such user");
  switch (ep) {
  case Ep::user: {
    if (c.method == "GET") {
      json sessions = json::array();
      for (const auto &s : service_.list_sessions(user->id))
        sessions.push_back({{"id", s.id},
                            {"api", s.api},
                            {"created_at", s.created_at},
                            {"expires_at", s.expires_at},
                            {"revoked", s.revoked}});
      db::AuditQuery recent;
      recent.user_id = user->id;
      recent.limit = kRecentEvents;
      json events = json::array();
      for (const auto &e : service_.audit_events(recent))
        events.push_back(audit_event_json(e));
      return send(res, 200,
                  {{"user", user_detail(*user)}, {"sessions", sessions}, {"events", events}});
    }
    // DELETE: only with the user's username or email typed again.
    auto confirm = text_field("confirm");
    const bool confirmed =
        confirm && (*confirm == user->username ||
                    (user->email && !confirm->empty() && lower_ascii(*confirm) == *user->email));
    if (!confirmed)
      return fail(res, 400, "confirmation_mismatch",
                  "confirm must be the user's username or email");
    if (Status done = service_.delete_user(*user, by()); !done) return fail(res, done.error());
    res.status = 204;
    return;
  }
  case Ep::session_revoke: {
    if (Status done = service_.end_session(*user, p[3], by()); !done)
      return fail(res, done.error());
    res.status = 204;
    return;
  }
  case Ep::sessions_revoke:
    service_.revoke_sessions(*user, by());
    res.status = 204;
    return;
  case Ep::verify_email: {
    if (Status done = service_.mark_email_verified(*user, by()); !done)
      return fail(res, done.error());
    res.status = 204;
    return;
  }
  case Ep::reset_mail: {
    if (!user->email) return fail(res, 409, "no_email", "the user has no email");
    auto sent = service_.start_password_reset(*user, config_.reset_ttl, TokenDelivery::mail, by());
    if (!sent) return fail(res, sent.error());
    res.status = 202; // the mail waits in the outbox for the sender
    return;
  }
  case Ep::password: {
    auto password = text_field("password");
    if (!password) return fail(res, 400, "missing_field", "password is required");
    if (Status done = service_.set_password(*user, *password, by()); !done)
      return fail(res, done.error());
    res.status = 204;
    return;
  }
  default: return fail(res, 404, "not_found", "no such endpoint");
  }
}

} // namespace latch::http
