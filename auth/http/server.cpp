// cpp-httplib adapter: the route table becomes handlers; limits, bodies, tokens and errors
// are handled here once so API code only sees valid, authenticated requests.
#include "auth/http/server.h"

#include "auth/http/body.h"
#include "auth/http/event_server.h"
#include "auth/http/operations.h"
#include "auth/http/routes.h"
#include "auth/http/worker_pool.h"
#include "auth/pages.h"
#include "db/store.h"

#include <algorithm>
#include <chrono>
#include <charconv>
#include <memory>
#include <cstdio>
#include <iostream>
#include <map>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

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
  case 414:
  case 431:
  case 400: return ErrorCode::bad_request; // cpp-httplib could not read the request itself
  default: return ErrorCode::internal;
  }
}

// Requests a proxy in front of us could read differently from us (request smuggling, RFC 9112
// 6.3 and 11.2) are refused: Content-Length given twice with different values, or alongside
// Transfer-Encoding; NUL, CR or LF inside a header value, which cpp-httplib's
// get_header_value would silently cut at the NUL. A GET body past the size limit gets 413:
// cpp-httplib checks the limit only for POST and would leave that body on the connection, to
// be read as more requests.
std::optional<ErrorCode> framing_problem(const httplib::Request &req, std::size_t max_body) {
  auto breaks_framing = [](char c) { return c == '\0' || c == '\r' || c == '\n'; };
  for (const auto &[name, value] : req.headers)
    if (std::any_of(value.begin(), value.end(), breaks_framing)) return ErrorCode::bad_request;
  auto lengths = req.headers.equal_range("Content-Length");
  for (auto it = lengths.first; it != lengths.second; ++it)
    if (it->second != lengths.first->second) return ErrorCode::bad_request;
  const bool has_length = lengths.first != lengths.second;
  const bool chunked = req.has_header("Transfer-Encoding");
  if (has_length && chunked) return ErrorCode::bad_request;
  if (req.method != "POST") {
    if (chunked) return ErrorCode::bad_request;
    if (has_length) {
      std::size_t n = 0;
      const std::string &v = lengths.first->second;
      auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (ec != std::errc() || ptr != v.data() + v.size()) return ErrorCode::bad_request;
      if (n > max_body) return ErrorCode::body_too_large;
    }
  }
  return std::nullopt;
}

// Ends the connection once this response is written, for requests after which the bytes on
// the connection cannot be trusted. cpp-httplib 0.11 keeps a connection open whatever the
// response says, but closes it when a content provider reports failure, which this one does
// after writing the whole body.
void close_after_response(httplib::Response &res) {
  auto body = std::make_shared<std::string>(std::move(res.body));
  std::string type = res.get_header_value("Content-Type");
  res.body.clear();
  res.headers.erase("Content-Type");
  res.set_header("Connection", "close");
  res.set_content_provider(body->size(), type,
                           [body](std::size_t offset, std::size_t, httplib::DataSink &sink) {
                             sink.write(body->data() + offset, body->size() - offset);
                             return false;
                           });
}

// When the request being answered on this thread started (cpp-httplib runs a request start
// to finish on one thread); zero when it was refused before routing.
thread_local std::chrono::steady_clock::time_point request_started{};

std::unique_ptr<httplib::Server> make_listener(const Config &config) {
  if (config.tls_cert.empty()) {
    EventServer::Options options;
    options.threads = config.threads;
    options.max_threads = std::max(config.threads, config.max_connections);
    options.max_connections = config.max_connections;
    // The routes that hash a password take the heavy lane, one at a time per hashing slot,
    // with --hash-queue more parked: a flood of sign-ins cannot hold every worker.
    std::vector<std::pair<std::string, std::string>> heavy; // (method, path), a dozen at most
    for (const Route &r : route_table())
      if (r.hashes && config.apis.count(r.api)) heavy.emplace_back(r.method, r.path);
    options.heavy = [heavy = std::move(heavy)](std::string_view method, std::string_view path) {
      return std::any_of(heavy.begin(), heavy.end(),
                         [&](const auto &r) { return r.first == method && r.second == path; });
    };
    options.heavy_at_once = config.hash_concurrency;
    options.heavy_queue = config.hash_queue;
    return std::make_unique<EventServer>(options);
  }
  auto tls = std::make_unique<httplib::SSLServer>(config.tls_cert.c_str(), config.tls_key.c_str());
  // One thread a connection: enough ready for the usual load, more on demand, so idle
  // keep-alive and slow clients cannot hold every thread while others wait.
  tls->new_task_queue = [&config] {
    return new WorkerPool(config.threads, std::max(config.threads, config.max_connections));
  };
  return tls;
}

} // namespace

Server::Server(const Config &config, AuthService &service)
    : config_(config), service_(service), server_(make_listener(config)),
      events_(dynamic_cast<EventServer *>(server_.get())) {
  for (const Route &r : route_table())
    if (config.apis.count(r.api)) known_paths_.insert(r.path);
  server_->set_payload_max_length(config.max_body_bytes);
  server_->set_read_timeout(5, 0);
  server_->set_write_timeout(5, 0);
  server_->set_keep_alive_timeout(5);
  server_->set_keep_alive_max_count(1000);
  server_->set_tcp_nodelay(true); // without it each small response waits on a delayed ACK
  // Debian's cpp-httplib is built with a listen backlog of 5, so a burst of new connections
  // waits a second per retry; remember the listening socket to deepen it after bind().
  server_->set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = sock;
  });
  // Token responses must never be cached, and no response may be sniffed as another type.
  server_->set_default_headers({{"Cache-Control", "no-store"}, {"Pragma", "no-cache"},
                               {"X-Content-Type-Options", "nosniff"}});
  register_routes();
  register_operations(*server_);
  // After every response: the metrics and one access-log line. With neither metrics nor an
  // access log there is nothing to record: no clock, no lookups, no shared lock per request.
  const bool metered = config_.metrics || !config_.metrics_host.empty();
  if (metered || config_.log_format != Config::LogFormat::off)
    server_->set_logger([this, metered](const httplib::Request &req, const httplib::Response &res) {
      double seconds = 0;
      if (request_started.time_since_epoch().count() != 0) {
        seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - request_started)
                      .count();
        request_started = {};
      }
      const std::string &route = known_paths_.count(req.path) ? req.path : kOtherRoute;
      if (metered) metrics_.observe(route, req.method, res.status, seconds);
      if (config_.log_format == Config::LogFormat::off) return;
      std::string line =
          access_log_line(config_.log_format, {req.method, route == kOtherRoute ? req.path : route,
                                               res.status, seconds, client_address(req),
                                               res.get_header_value("X-Request-Id")});
      std::lock_guard lock(log_mutex_);
      std::fwrite(line.data(), 1, line.size(), stdout);
      std::fputc('\n', stdout);
      std::fflush(stdout);
    });

  // Last, once cpp-httplib has added its own Connection or Keep-Alive header: a response that
  // ends the connection says so once, and offers no keep-alive.
  server_->set_post_routing_handler([](const httplib::Request &, httplib::Response &res) {
    auto connection = res.headers.equal_range("Connection");
    if (connection.first == connection.second) return;
    const bool closing = std::any_of(connection.first, connection.second,
                                     [](const auto &h) { return h.second == "close"; });
    if (!closing) return;
    res.headers.erase(connection.first, connection.second);
    res.headers.erase("Keep-Alive");
    res.headers.emplace("Connection", "close");
  });

  // Requests no handler answered (unknown path, wrong method, body too large, unparsable
  // request line) still get the owning API's error shape.
  server_->set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request &req, httplib::Response &res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled; // a handler's own
    if (!res.has_header("X-Request-Id")) res.set_header("X-Request-Id", request_id_for(req));
    int status = res.status;
    if (status == 404) {
      bool path_known = std::any_of(route_table().begin(), route_table().end(), [&](const Route &r) {
        return req.path == r.path && config_.apis.count(r.api);
      });
      if (path_known) status = 405;
    }
    auto api = api_for_path(req.path, config_.apis);
    if (!api) {
      // The request line could not be read (or names no API): no shape to answer in.
      send_json(res, status, {{"error", status == 404 ? "not found" : "bad request"}});
      res.status = status;
    } else {
      Ctx ctx{req, res, service_, config_, *api};
      send_error(ctx, Error{error_for_status(status), ""});
    }
    // cpp-httplib refused the request before reading all of it (bad request line or headers,
    // a body over the limit): the rest of it must not be read as another request.
    if (status != 404 && status != 405) close_after_response(res);
    return httplib::Server::HandlerResponse::Handled;
  }));
  // A POST with neither Content-Length nor Transfer-Encoding has no body (RFC 9112 6.3), but
  // cpp-httplib 0.11 would wait for one until its read timeout. This runs before the body is
  // read, so such requests are routed here at once with an empty body.
  server_->set_pre_routing_handler([this](const httplib::Request &req, httplib::Response &res) {
    request_started = std::chrono::steady_clock::now();
    res.set_header("X-Request-Id", request_id_for(req));
    apply_cors(config_, req, res);
    if (auto problem = framing_problem(req, config_.max_body_bytes)) {
      Ctx ctx{req, res, service_, config_, api_for_path(req.path, config_.apis).value_or(Api::v1)};
      send_error(ctx, Error{*problem, ""});
      close_after_response(res);
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.method != "POST" || req.has_header("Content-Length") ||
        req.has_header("Transfer-Encoding"))
      return httplib::Server::HandlerResponse::Unhandled;
    for (const Route &route : route_table()) {
      if (req.method == route.method && req.path == route.path && config_.apis.count(route.api)) {
        dispatch(route, req, res);
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    res.status = 404; // the error handler renders it in the owning API's shape
    return httplib::Server::HandlerResponse::Handled;
  });
  server_->set_exception_handler(
      [this](const httplib::Request &req, httplib::Response &res, std::exception_ptr) {
        std::cerr << "latch: unexpected exception on " << req.method << " " << req.path << "\n";
        Ctx ctx{req, res, service_, config_, api_for_path(req.path, config_.apis).value_or(Api::v1)};
        send_error(ctx, Error{ErrorCode::internal, ""});
      });
}

void Server::register_routes() {
  for (const Route &route : route_table()) {
    if (!config_.apis.count(route.api)) continue;
    auto handler = [this, &route](const httplib::Request &req, httplib::Response &res) {
      dispatch(route, req, res);
    };
    if (std::string(route.method) == "GET") server_->Get(route.path, handler);
    else server_->Post(route.path, handler);
  }
  // The default RESET_PASSWORD_URL target: served whenever an API that mails resets is on.
  if (config_.apis.count(Api::v1) || config_.apis.count(Api::flask)) {
    const bool via_v1 = config_.apis.count(Api::v1) > 0;
    server_->Get("/reset-password", [via_v1](const httplib::Request &, httplib::Response &res) {
      res.set_header("Content-Security-Policy",
                     "default-src 'none'; script-src 'self'; style-src 'self'; "
                     "connect-src 'self'; form-action 'self'; frame-ancestors 'none'");
      res.set_header("Referrer-Policy", "no-referrer"); // the token is in the URL
      res.set_content(pages::reset_password_page(via_v1), "text/html; charset=utf-8");
    });
    // Its script and style, same-origin files, so its CSP allows nothing inline.
    server_->Get(R"(/reset-password\.js)", [](const httplib::Request &, httplib::Response &res) {
      res.set_content(pages::reset_password_script(), "text/javascript; charset=utf-8");
    });
    server_->Get(R"(/reset-password\.css)", [](const httplib::Request &, httplib::Response &res) {
      res.set_content(pages::reset_password_stylesheet(), "text/css; charset=utf-8");
    });
    known_paths_.insert({"/reset-password.js", "/reset-password.css"});
  }
}

void Server::register_operations(httplib::Server &listener) {
  // Outside the five APIs' prefixes, so no API's routes or shapes are touched.
  listener.Get("/healthz", [](const httplib::Request &, httplib::Response &res) {
    send_json(res, 200, {{"status", "ok"}});
  });
  listener.Get("/readyz", [this](const httplib::Request &, httplib::Response &res) {
    bool ready = service_.database_ready();
    send_json(res, ready ? 200 : 503, {{"status", ready ? "ready" : "database unavailable"}});
  });
  listener.Get("/openapi.json", [this](const httplib::Request &, httplib::Response &res) {
    send_json(res, 200, openapi_document(config_));
  });
  known_paths_.insert({"/healthz", "/readyz", "/openapi.json", "/reset-password"});
  if (config_.metrics && config_.metrics_host.empty()) {
    listener.Get("/metrics", [this](const httplib::Request &, httplib::Response &res) {
      res.set_content(render_metrics(), "text/plain; version=0.0.4");
    });
    known_paths_.insert("/metrics");
  }
  if (!config_.cors_origins.empty()) {
    // Preflights for every route: the methods each path answers.
    std::map<std::string, std::string> methods;
    for (const Route &r : route_table())
      if (config_.apis.count(r.api))
        methods[r.path] += (methods[r.path].empty() ? "" : ", ") + std::string(r.method);
    for (const auto &[path, list] : methods)
      listener.Options(path, [this, allowed = list](const httplib::Request &req,
                                                    httplib::Response &res) {
        answer_preflight(config_, req, res, allowed);
      });
  }
}

std::string Server::render_metrics() {
  const auto &counts = service_.sign_in_counts();
  auto load = service_.hashing_load();
  Metrics::Gauges g;
  g.sign_ins_succeeded = counts.succeeded;
  g.sign_ins_failed = counts.failed;
  g.sign_ins_throttled = counts.throttled;
  g.hashes_running = load.active;
  g.hashes_waiting = load.waiting;
  if (events_) {
    auto s = events_->stats();
    g.connections_open = std::int64_t(s.connections);
    g.http_workers = std::int64_t(s.threads);
    g.hashes_waiting += unsigned(s.heavy_parked); // parked by the connection loop, in line too
  }
  try {
    g.active_sessions = service_.active_sessions();
  } catch (const db::StoreError &) {
    metrics_.database_error(); // the gauge is left out rather than the whole page failing
  }
  return metrics_.render(g);
}

std::string Server::client_address(const httplib::Request &req) const {
  const auto &proxies = config_.trusted_proxies;
  auto trusted = [&](const std::string &a) {
    return std::find(proxies.begin(), proxies.end(), a) != proxies.end();
  };
  if (proxies.empty() || !trusted(req.remote_addr)) return req.remote_addr;
  // Walk X-Forwarded-For from the right: the first address not one of our proxies is the
  // client; anything left of it was written by the client and proves nothing.
  std::string xff = req.get_header_value("X-Forwarded-For");
  std::string candidate = req.remote_addr;
  while (!xff.empty()) {
    size_t comma = xff.rfind(',');
    std::string hop = xff.substr(comma == std::string::npos ? 0 : comma + 1);
    hop.erase(0, hop.find_first_not_of(' '));
    hop.erase(hop.find_last_not_of(' ') + 1);
    if (hop.empty()) break;
    candidate = hop;
    if (!trusted(hop)) break;
    xff = comma == std::string::npos ? std::string() : xff.substr(0, comma);
  }
  return candidate;
}

void Server::dispatch(const Route &route, const httplib::Request &req, httplib::Response &res) {
  Ctx ctx{req, res, service_, config_, route.api, &route};
  try {
    ctx.client_address = client_address(req);
    if (route.throttled) {
      if (int wait = service_.throttle_address(ctx.client_address))
        return send_error(ctx, Error{ErrorCode::rate_limited, "", wait});
    }
    if (route.access != Access::open) {
      ctx.bearer = bearer_token(req);
      if (ctx.bearer.empty()) return send_error(ctx, Error{ErrorCode::token_missing, ""});
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

bool Server::bind() {
  if (!server_->is_valid()) {
    std::cerr << "latch: cannot use --tls-cert " << config_.tls_cert << " with --tls-key "
              << config_.tls_key << " (unreadable, not PEM, or not a pair)\n";
    return false;
  }
  if (!config_.metrics_host.empty()) {
    metrics_server_ = std::make_unique<httplib::Server>();
    metrics_server_->Get("/metrics", [this](const httplib::Request &, httplib::Response &res) {
      res.set_content(render_metrics(), "text/plain; version=0.0.4");
    });
    metrics_server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
    if (!metrics_server_->bind_to_port(config_.metrics_host, config_.metrics_port)) {
      std::cerr << "latch: cannot listen on --metrics-addr " << config_.metrics_host << ":"
                << config_.metrics_port << "\n";
      return false;
    }
  }
  bool bound = false;
  if (config_.port == 0) {
    port_ = server_->bind_to_any_port(config_.host);
    bound = port_ > 0;
  } else {
    port_ = config_.port;
    bound = server_->bind_to_port(config_.host, config_.port);
  }
  // listen() again on a listening socket only changes its backlog (Linux).
  if (bound && listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
  return bound;
}

bool Server::run() {
  std::thread metrics_thread;
  if (metrics_server_) metrics_thread = std::thread([this] { metrics_server_->listen_after_bind(); });
  bool ok = server_->listen_after_bind();
  if (events_) events_->drain();
  if (metrics_server_) {
    metrics_server_->stop();
    metrics_thread.join();
  }
  stopped_ = true;
  return ok;
}

void Server::stop() {
  // Stop accepting now; requests in flight get shutdown_timeout to finish, then we go anyway.
  server_->stop();
  int limit = config_.shutdown_timeout;
  std::thread([this, limit] {
    for (int waited = 0; waited < limit * 10; ++waited) {
      if (stopped_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::cerr << "latch: requests still running " << limit << " s after the stop signal; exiting\n";
    std::_Exit(1);
  }).detach();
}

} // namespace latch::http
