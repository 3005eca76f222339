// The request pipeline: one routing decision per request, then the route's handler or the
// refusal, each answer in the shape of the API that owns the path.
#include "auth/http/dispatch.h"

#include "auth/apis/api.h"
#include "auth/http/body.h"
#include "auth/http/client_address.h"
#include "auth/http/routes.h"
#include "auth/pages.h"
#include "db/store.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>

namespace latch::http {

namespace {

// Authorization: Bearer <token>; anything else counts as no credentials.
std::string bearer_token(const httplib::Request &req) {
  std::string h = req.get_header_value("Authorization");
  if (h.size() < 7 || lower_ascii(h.substr(0, 7)) != "bearer ") return {};
  std::string token = h.substr(7);
  token.erase(0, token.find_first_not_of(' '));
  token.erase(token.find_last_not_of(' ') + 1);
  return token;
}

ErrorCode error_for_status(int status) {
  switch (status) {
  case 404: return ErrorCode::not_found;
  case 405: return ErrorCode::method_not_allowed;
  case 413: return ErrorCode::body_too_large;
  case 415: return ErrorCode::unsupported_media_type;
  case 503: return ErrorCode::busy;
  case 500: return ErrorCode::internal;
  default: return ErrorCode::bad_request; // a request that could not be framed or parsed
  }
}

// The methods metrics and logs name; any other is "other", so requests cannot grow the
// metrics' label set.
std::string_view method_label(std::string_view method) {
  static constexpr std::array<std::string_view, 7> known = {"GET",    "HEAD",    "POST", "PUT",
                                                            "DELETE", "OPTIONS", "PATCH"};
  return std::find(known.begin(), known.end(), method) != known.end() ? method : "other";
}

// When the request being answered on this thread started (a request runs start to finish on
// one worker); zero when none is being timed.
thread_local std::chrono::steady_clock::time_point request_started{};

const std::string kOtherRoute = "other";

// The neutral answer's words for a status.
const char *neutral_message(int status) {
  switch (status) {
  case 404: return "not found";
  case 405: return "method not allowed";
  case 413: return "request body too large";
  case 414: return "request URI too long";
  case 415: return "unsupported media type";
  case 431: return "request header fields too large";
  case 500: return "internal server error";
  case 503: return "service unavailable";
  default: return "bad request";
  }
}

} // namespace

Dispatcher::Dispatcher(const Config &config, AuthService &service)
    : config_(config), service_(service),
      // The configuration is fixed: the document is made once, not per request (75 KB).
      openapi_(openapi_document(config).dump(-1, ' ', false, json::error_handler_t::replace)) {
  std::map<std::string, std::string> methods; // for preflights: what each API path answers
  for (const Route &r : route_table()) {
    if (!config_.apis.count(r.api)) continue;
    add_target(r.path, r.method, {Target::route, &r, r.path, {}});
    methods[r.path] += (methods[r.path].empty() ? "" : ", ") + std::string(r.method);
  }
  // Outside the five APIs' prefixes, so no API's routes or shapes are touched.
  add_target("/healthz", "GET", {Target::healthz, nullptr, "/healthz", {}});
  add_target("/readyz", "GET", {Target::readyz, nullptr, "/readyz", {}});
  add_target("/.well-known/jwks.json", "GET",
             {Target::jwks, nullptr, "/.well-known/jwks.json", {}});
  add_target("/openapi.json", "GET", {Target::openapi, nullptr, "/openapi.json", {}});
  if (config_.metrics && config_.metrics_host.empty())
    add_target("/metrics", "GET", {Target::metrics, nullptr, "/metrics", {}});
  // The default RESET_PASSWORD_URL target: served whenever an API that mails resets is on.
  if (apis::reset_links_mailed(config_.apis)) {
    add_target("/reset-password", "GET", {Target::reset_page, nullptr, "/reset-password", {}});
    // Its script and style, same-origin files, so its CSP allows nothing inline.
    add_target("/reset-password.js", "GET",
               {Target::reset_script, nullptr, "/reset-password.js", {}});
    add_target("/reset-password.css", "GET",
               {Target::reset_style, nullptr, "/reset-password.css", {}});
  }
  // The admin console: one target for everything under /_/, which it routes itself.
  if (config_.console) {
    console_ = std::make_unique<Console>(config_, service_);
    console_tag_ = int(targets_.size());
    targets_.push_back({Target::console, nullptr, "/_/", {}});
  }
  // Preflights for every API route: the methods each path answers.
  if (!config_.cors_origins.empty())
    for (const auto &[path, list] : methods)
      add_target(path, "OPTIONS", {Target::preflight, nullptr, path, list});
}

int Dispatcher::add_target(const std::string &path, const std::string &method, Target target) {
  const int tag = int(targets_.size());
  targets_.push_back(std::move(target));
  by_path_[path].emplace_back(method, tag);
  return tag;
}

Verdict Dispatcher::classify(std::string_view method, std::string_view path) const {
  if (console_ && Console::owns(path))
    return {.tag = console_tag_, .heavy = Console::hashes(method, path)};
  auto at = by_path_.find(path);
  if (at == by_path_.end()) return {.refuse = 404};
  const std::string_view wanted = method == "HEAD" ? "GET" : method; // HEAD is GET, bodiless
  for (const auto &[m, tag] : at->second)
    if (m == wanted) {
      const Target &t = targets_[std::size_t(tag)];
      return {.tag = tag, .heavy = t.api_route && t.api_route->hashes};
    }
  return {.refuse = 405};
}

void Dispatcher::attach(ConnectionLoop &loop) {
  loop_ = &loop;
  auto handler = [this](const httplib::Request &req, httplib::Response &res) { handle(req, res); };
  // Every method cpp-httplib routes, every path: the loop has routed the request already.
  loop.Get(".*", handler);
  loop.Post(".*", handler);
  loop.Put(".*", handler);
  loop.Delete(".*", handler);
  loop.Options(".*", handler);
  loop.Patch(".*", handler);
  loop.set_refusal_handler(
      [this](const httplib::Request &req, httplib::Response &res) { refused(req, res); });
  // Token responses must never be cached, and no response may be sniffed as another type.
  loop.set_default_headers({{"Cache-Control", "no-store"},
                            {"Pragma", "no-cache"},
                            {"X-Content-Type-Options", "nosniff"}});
  // With neither metrics nor an access log there is nothing to record: no clock, no lookups,
  // no shared lock per request.
  if (config_.metrics || !config_.metrics_host.empty() ||
      config_.log_format != Config::LogFormat::off)
    loop.set_logger(
        [this](const httplib::Request &req, const httplib::Response &res) { record(req, res); });
  // What cpp-httplib answers by itself (a multipart body it cannot read): in the API's shape.
  loop.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request &req, httplib::Response &res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled; // ours
        error_without_route(req, res, res.status);
        return httplib::Server::HandlerResponse::Handled;
      }));
  loop.set_exception_handler(
      [this](const httplib::Request &req, httplib::Response &res, std::exception_ptr) {
        std::cerr << "latch: unexpected exception on " << req.method << " " << req.path << "\n";
        error_without_route(req, res, 500);
      });
}

void Dispatcher::handle(const httplib::Request &req, httplib::Response &res) {
  request_started = std::chrono::steady_clock::now();
  const int tag = ConnectionLoop::tag_of(req);
  if (tag < 0 || std::size_t(tag) >= targets_.size()) // not routed by the loop: nothing to run
    return error_without_route(req, res, 404);
  const Target &target = targets_[std::size_t(tag)];
  res.set_header("X-Request-Id", request_id_for(req));
  if (target.kind == Target::preflight) return answer_preflight(config_, req, res, target.methods);
  // Same-origin only: no CORS header ever answers for the console.
  if (target.kind == Target::console) return console_->serve(req, res);
  apply_cors(config_, req, res);
  if (target.kind == Target::route) return dispatch(*target.api_route, req, res);
  serve_operation(target, req, res);
}

void Dispatcher::refused(const httplib::Request &req, httplib::Response &res) {
  request_started = std::chrono::steady_clock::now();
  res.set_header("X-Request-Id", request_id_for(req));
  apply_cors(config_, req, res);
  error_without_route(req, res, ConnectionLoop::refusal_status(req));
}

// An error for a request no route handler answers: in the shape of the API whose prefix the
// path is under, or a neutral one.
void Dispatcher::error_without_route(const httplib::Request &req, httplib::Response &res,
                                     int status) {
  if (!res.has_header("X-Request-Id")) res.set_header("X-Request-Id", request_id_for(req));
  if (auto api = api_for_path(req.path, config_.apis)) {
    Ctx ctx{req, res, service_, config_, *api};
    const ErrorCode code = error_for_status(status);
    return send_error(ctx, Error{code, "", 0, code == ErrorCode::bad_request ? status : 0});
  }
  // No API's path (or a request line that could not be read): no shape to answer in.
  send_json(res, status, {{"error", neutral_message(status)}});
}

void Dispatcher::serve_operation(const Target &target, const httplib::Request &,
                                 httplib::Response &res) {
  switch (target.kind) {
  case Target::healthz: return send_json(res, 200, {{"status", "ok"}});
  case Target::readyz: {
    if (auto why = service_.database_unready())
      return send_json(res, 503, {{"status", "database unavailable"}, {"reason", *why}});
    return send_json(res, 200, {{"status", "ready"}});
  }
  case Target::jwks:
    // Public keys only; cached no longer than a standby key waits, so verifiers have it before
    // it signs.
    res.headers.erase("Cache-Control"); // the default no-store, for every other answer
    res.headers.erase("Pragma");
    res.set_header("Cache-Control", "public, max-age=" + std::to_string(jwks_max_age(config_)));
    return res.set_content(service_.jwks().dump(), "application/json");
  case Target::openapi: return res.set_content(openapi_, "application/json");
  case Target::metrics: return res.set_content(metrics_text(), "text/plain; version=0.0.4");
  case Target::reset_page: {
    const bool via_v1 = config_.apis.count(Api::v1) > 0;
    res.set_header("Content-Security-Policy",
                   "default-src 'none'; script-src 'self'; style-src 'self'; "
                   "connect-src 'self'; form-action 'self'; frame-ancestors 'none'");
    res.set_header("Referrer-Policy", "no-referrer"); // the token is in the URL
    return res.set_content(pages::reset_password_page(via_v1), "text/html; charset=utf-8");
  }
  case Target::reset_script:
    return res.set_content(pages::reset_password_script(), "text/javascript; charset=utf-8");
  case Target::reset_style:
    return res.set_content(pages::reset_password_stylesheet(), "text/css; charset=utf-8");
  case Target::route:
  case Target::preflight:
  case Target::console: break;
  }
}

void Dispatcher::dispatch(const Route &route, const httplib::Request &req, httplib::Response &res) {
  Ctx ctx{req, res, service_, config_, route.api, &route};
  try {
    ctx.client_address = client_address(req, config_.trusted_proxies);
    ctx.hash_line_full = ConnectionLoop::line_full(req);
    if (route.throttled) {
      if (int wait = service_.throttle_address(ctx.client_address))
        return send_error(ctx, Error{ErrorCode::rate_limited, "", wait});
    }
    if (route.access != Access::open) {
      ctx.bearer = bearer_token(req);
      if (ctx.bearer.empty()) {
        // One longer than cpp-httplib reads was left out by the loop: a bad credential, not none.
        const bool too_long = ConnectionLoop::field_dropped(req, "authorization");
        return send_error(
            ctx, Error{too_long ? ErrorCode::token_malformed : ErrorCode::token_missing, ""});
      }
      if (route.access == Access::access_token) {
        auto claims = service_.check_token(ctx.bearer, TokenType::access);
        if (!claims) return send_error(ctx, claims.error());
        ctx.claims = std::move(claims.value());
      }
    }
    auto body = parse_body(req, route.body);
    if (!body) return send_error(ctx, body.error());
    ctx.body = std::move(body.value());
    route.handler(ctx);
  } catch (const db::StoreUnavailable &e) {
    metrics_.database_error();
    // The database cannot be reached now (PostgreSQL stopped, a statement timed out): 503, as
    // a full line is, so the client tries again.
    std::cerr << "latch: database unavailable on " << route.method << " " << route.path << ": "
              << e.what() << "\n";
    send_error(ctx, Error{ErrorCode::busy, ""});
  } catch (const db::StoreError &e) {
    metrics_.database_error();
    // Logged for the operator; the client learns only that something failed.
    std::cerr << "latch: database error on " << route.method << " " << route.path << ": "
              << e.what() << "\n";
    send_error(ctx, Error{ErrorCode::internal, ""});
  } catch (const std::exception &e) {
    std::cerr << "latch: error on " << route.method << " " << route.path << ": " << e.what()
              << "\n";
    send_error(ctx, Error{ErrorCode::internal, ""});
  }
}

void Dispatcher::record(const httplib::Request &req, const httplib::Response &res) {
  double seconds = 0;
  if (request_started.time_since_epoch().count() != 0) {
    seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - request_started).count();
    request_started = {};
  }
  const int tag = ConnectionLoop::tag_of(req);
  const std::string &route = tag >= 0 && std::size_t(tag) < targets_.size()
                                 ? targets_[std::size_t(tag)].path
                                 : kOtherRoute;
  const std::string method(method_label(req.method));
  if (config_.metrics || !config_.metrics_host.empty())
    metrics_.observe(route, method, res.status, seconds);
  if (config_.log_format == Config::LogFormat::off) return;
  std::string line = access_log_line(config_.log_format,
                                     {method, route == kOtherRoute ? req.path : route, res.status,
                                      seconds, client_address(req, config_.trusted_proxies),
                                      res.get_header_value("X-Request-Id")});
  std::lock_guard lock(log_mutex_);
  std::fwrite(line.data(), 1, line.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

std::string Dispatcher::metrics_text() const {
  const auto &counts = service_.sign_in_counts();
  auto load = service_.hashing_load();
  Metrics::Gauges g;
  g.sign_ins_succeeded = counts.succeeded;
  g.sign_ins_failed = counts.failed;
  g.sign_ins_throttled = counts.throttled;
  g.hashes_running = load.active;
  g.hashes_waiting = load.waiting;
  if (loop_) {
    auto s = loop_->stats();
    g.connections_open = std::int64_t(s.connections);
    g.http_workers = std::int64_t(s.threads);
    g.connections_refused = std::int64_t(s.refused_per_address);
    g.descriptor_limit_reached = std::int64_t(s.descriptor_limit_reached);
    g.hashes_waiting += unsigned(s.heavy_parked); // parked by the connection loop, in line too
  }
  g.active_sessions = service_.active_sessions(); // from memory: a scrape costs no query
  const auto mail = service_.mail_counts();       // likewise: the sender counts as it goes
  g.mail_queued = mail.queued;
  g.mail_sent = mail.sent;
  g.mail_failed = mail.failed;
  g.mail_dropped = mail.dropped;
  if (auto cache = service_.cache_counts()) {
    g.cache_loads = std::int64_t(cache->loads);
    g.cache_changes = std::int64_t(cache->changes);
  }
  return metrics_.render(g);
}

} // namespace latch::http
