// What operators need around the five APIs: request ids, the access log, CORS, metrics and
// the OpenAPI description generated from the route table.
#include "auth/http/operations.h"

#include "auth/http/routes.h"
#include "auth/secure.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <strings.h>

namespace latch::http {

using nlohmann::json;

std::string request_id_for(const httplib::Request &req) {
  // get_header_value would stop at a NUL; the framing check refuses those before we get here.
  std::string given = req.get_header_value("X-Request-Id");
  bool sane = !given.empty() && given.size() <= 128 &&
              std::all_of(given.begin(), given.end(), [](unsigned char c) {
                return std::isalnum(c) || c == '.' || c == '_' || c == ':' || c == '-';
              });
  if (sane) return given;
  // Unique, not secret: a random prefix drawn once per process and a counter, so no random
  // bytes are drawn per request.
  static const std::string prefix = secure::random_token(9) + "-";
  static std::atomic<std::uint64_t> counter{0};
  char number[17];
  std::snprintf(number, sizeof number, "%016llx",
                static_cast<unsigned long long>(counter.fetch_add(1, std::memory_order_relaxed)));
  return prefix + number;
}

namespace {

std::string utc_now() {
  auto now = std::chrono::system_clock::now();
  std::time_t t = std::chrono::system_clock::to_time_t(now);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, int(ms.count()));
  return buf;
}

} // namespace

std::string access_log_line(Config::LogFormat format, const AccessRecord &r) {
  const double ms = r.seconds * 1000;
  if (format == Config::LogFormat::json) {
    json line = {{"time", utc_now()},
                 {"method", r.method},
                 {"route", r.path},
                 {"status", r.status},
                 {"ms", std::round(ms * 1000) / 1000},
                 {"client", r.client},
                 {"request_id", r.request_id}};
    return line.dump(-1, ' ', false, json::error_handler_t::replace);
  }
  char duration[32];
  std::snprintf(duration, sizeof duration, "%.3fms", ms);
  std::string path = r.path;
  std::replace_if(
      path.begin(), path.end(), [](unsigned char c) { return c < 0x21 || c == 0x7f; },
      '?'); // one request, one line
  return utc_now() + " " + r.method + " " + path + " " + std::to_string(r.status) + " " + duration +
         " " + r.client + " id=" + r.request_id;
}

namespace {

// cpp-httplib's set_header adds a copy on every call, and CORS headers are set more than once
// for one response (for every request, then again by the preflight handler): a browser refuses
// a preflight whose Access-Control-Allow-Origin is given twice, so each is replaced, not added.
void replace_header(httplib::Response &res, const char *name, const std::string &value) {
  res.headers.erase(name); // httplib::Headers compares names ignoring case
  res.set_header(name, value);
}

// Adds token to the response's one Vary header, keeping whatever else it names.
void add_vary(httplib::Response &res, const std::string &token) {
  std::string merged;
  auto [first, last] = res.headers.equal_range("Vary");
  for (auto it = first; it != last; ++it) {
    std::istringstream names(it->second);
    for (std::string name; std::getline(names, name, ',');) {
      name.erase(0, name.find_first_not_of(" \t"));
      name.erase(name.find_last_not_of(" \t") + 1);
      if (name.empty() || strcasecmp(name.c_str(), token.c_str()) == 0) continue;
      merged += (merged.empty() ? "" : ", ") + name;
    }
  }
  replace_header(res, "Vary", merged.empty() ? token : merged + ", " + token);
}

} // namespace

void apply_cors(const Config &config, const httplib::Request &req, httplib::Response &res) {
  const auto &allowed = config.cors_origins;
  if (allowed.empty()) return;
  if (std::find(allowed.begin(), allowed.end(), "*") != allowed.end()) {
    // Any origin, for local development, and the same answer whatever the Origin, so nothing
    // varies. Bearer tokens need no credentials mode, and the wildcard cannot be combined with it.
    replace_header(res, "Access-Control-Allow-Origin", "*");
  } else {
    // The answer depends on the Origin, also when it carries no CORS headers: every answer says
    // so, or a cache could hand one origin's answer to another.
    add_vary(res, "Origin");
    std::string origin = req.get_header_value("Origin");
    if (origin.empty() || std::find(allowed.begin(), allowed.end(), origin) == allowed.end())
      return;
    replace_header(res, "Access-Control-Allow-Origin", origin);
    replace_header(res, "Access-Control-Allow-Credentials", "true");
  }
  replace_header(res, "Access-Control-Expose-Headers",
                 "X-Request-Id, Retry-After, WWW-Authenticate");
}

void answer_preflight(const Config &config, const httplib::Request &req, httplib::Response &res,
                      const std::string &methods) {
  res.status = 204;
  apply_cors(config, req, res);
  if (!res.has_header("Access-Control-Allow-Origin")) return; // not an allowed origin
  replace_header(res, "Access-Control-Allow-Methods", methods + ", OPTIONS");
  std::string asked = req.get_header_value("Access-Control-Request-Headers");
  bool sane = asked.size() <= 512 && std::all_of(asked.begin(), asked.end(), [](unsigned char c) {
                return std::isalnum(c) || c == '-' || c == '_' || c == ',' || c == ' ';
              });
  replace_header(res, "Access-Control-Allow-Headers",
                 !asked.empty() && sane ? asked : "Authorization, Content-Type, X-Request-Id");
  replace_header(res, "Access-Control-Max-Age", "600");
}

void Metrics::observe(const std::string &route, const std::string &method, int status,
                      double seconds) {
  std::lock_guard lock(mutex_);
  ++requests_[{route, method, status}];
  Latency &l = latency_[route];
  for (std::size_t i = 0; i < kBuckets.size(); ++i)
    if (seconds <= kBuckets[i]) ++l.buckets[i];
  ++l.count;
  l.sum += seconds;
}

std::string Metrics::render(const Gauges &g) const {
  std::ostringstream out;
  auto label = [](const std::string &v) { return json(v).dump(); }; // quoted and escaped
  out << "# HELP latch_http_requests_total HTTP requests answered, by route, method and status.\n"
         "# TYPE latch_http_requests_total counter\n";
  std::lock_guard lock(mutex_);
  for (const auto &[key, n] : requests_) {
    const auto &[route, method, status] = key;
    out << "latch_http_requests_total{route=" << label(route) << ",method=" << label(method)
        << ",status=\"" << status << "\"} " << n << "\n";
  }
  out << "# HELP latch_http_request_duration_seconds Time from reading the request to answering.\n"
         "# TYPE latch_http_request_duration_seconds histogram\n";
  for (const auto &[route, l] : latency_) {
    for (std::size_t i = 0; i < kBuckets.size(); ++i)
      out << "latch_http_request_duration_seconds_bucket{route=" << label(route) << ",le=\""
          << kBuckets[i] << "\"} " << l.buckets[i] << "\n";
    out << "latch_http_request_duration_seconds_bucket{route=" << label(route) << ",le=\"+Inf\"} "
        << l.count << "\n"
        << "latch_http_request_duration_seconds_sum{route=" << label(route) << "} " << l.sum << "\n"
        << "latch_http_request_duration_seconds_count{route=" << label(route) << "} " << l.count
        << "\n";
  }
  out << "# HELP latch_sign_ins_total Sign-in attempts by outcome.\n"
         "# TYPE latch_sign_ins_total counter\n"
         "latch_sign_ins_total{result=\"succeeded\"} "
      << g.sign_ins_succeeded << "\nlatch_sign_ins_total{result=\"failed\"} " << g.sign_ins_failed
      << "\nlatch_sign_ins_total{result=\"throttled\"} " << g.sign_ins_throttled << "\n";
  if (g.active_sessions >= 0)
    out << "# HELP latch_active_sessions Sessions neither expired nor revoked.\n"
           "# TYPE latch_active_sessions gauge\nlatch_active_sessions "
        << g.active_sessions << "\n";
  out << "# HELP latch_password_hashes_running Password hashes computing now.\n"
         "# TYPE latch_password_hashes_running gauge\nlatch_password_hashes_running "
      << g.hashes_running
      << "\n# HELP latch_password_hash_queue_depth Requests waiting for a hashing slot.\n"
         "# TYPE latch_password_hash_queue_depth gauge\nlatch_password_hash_queue_depth "
      << g.hashes_waiting << "\n";
  if (g.connections_open >= 0)
    out << "# HELP latch_http_connections_open Client connections open now.\n"
           "# TYPE latch_http_connections_open gauge\nlatch_http_connections_open "
        << g.connections_open
        << "\n# HELP latch_http_workers Threads serving requests now (more start while some are "
           "stuck).\n# TYPE latch_http_workers gauge\nlatch_http_workers "
        << g.http_workers << "\n";
  if (g.connections_refused >= 0)
    out << "# HELP latch_http_connections_refused_total Connections closed at once because their "
           "address held --max-connections-per-address.\n"
           "# TYPE latch_http_connections_refused_total counter\nlatch_http_connections_refused_total "
        << g.connections_refused << "\n";
  out << "# HELP latch_database_errors_total Requests that failed on a database error.\n"
         "# TYPE latch_database_errors_total counter\nlatch_database_errors_total "
      << database_errors_.load() << "\n";
  return out.str();
}

namespace {

json operation(const std::string &id, const std::string &summary, const std::string &tag) {
  return {{"operationId", id}, {"summary", summary}, {"tags", {tag}}};
}

json media_types(BodyKind kind) {
  json object_schema = {{"schema", {{"type", "object"}}}};
  json content = {{"application/json", object_schema}};
  if (kind == BodyKind::json_form || kind == BodyKind::json_form_multi)
    content["application/x-www-form-urlencoded"] = object_schema;
  if (kind == BodyKind::json_form_multi) content["multipart/form-data"] = object_schema;
  return content;
}

} // namespace

json openapi_document(const Config &config) {
  json paths = json::object();
  for (const Route &r : route_table()) {
    if (!config.apis.count(r.api)) continue;
    std::string method = r.method;
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    std::string id = std::string(api_name(r.api)) + "_" + method;
    for (char c : std::string(r.path))
      id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    json op = operation(id, r.summary, api_name(r.api));
    if (r.access != Access::open) op["security"] = json::array({{{"bearer", json::array()}}});
    if (r.body != BodyKind::none)
      op["requestBody"] = {{"required", false}, {"content", media_types(r.body)}};
    json responses = {{"2XX", {{"description", "success"}}},
                      {"4XX",
                       {{"description",
                         std::string("an error in the ") + api_name(r.api) + " API's own shape"}}}};
    if (r.throttled) responses["429"] = {{"description", "rate limited; see Retry-After"}};
    op["responses"] = responses;
    paths[r.path][method] = op;
  }
  auto plain = [&](const char *path, const char *id, const char *summary, const char *type) {
    json op = operation(id, summary, "operations");
    op["responses"] = {{"200", {{"description", "OK"}, {"content", {{type, json::object()}}}}}};
    paths[path]["get"] = op;
  };
  plain("/healthz", "healthz", "the process is alive", "application/json");
  plain("/readyz", "readyz", "the database answers (503 when it does not)", "application/json");
  plain("/openapi.json", "openapi", "this document", "application/json");
  if (config.metrics && config.metrics_port == 0)
    plain("/metrics", "metrics", "Prometheus metrics", "text/plain");
  if (config.apis.count(Api::v1) || config.apis.count(Api::flask))
    plain("/reset-password", "reset_password_page", "the password reset page (?token=)",
          "text/html");
  return {{"openapi", "3.1.0"},
          {"info",
           {{"title", "Latch"},
            {"version", LATCH_VERSION},
            {"description", "Five auth APIs over one user store; each route answers errors in "
                            "its own API's shape."}}},
          {"components",
           {{"securitySchemes",
             {{"bearer", {{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"}}}}}}},
          {"paths", paths}};
}

} // namespace latch::http
