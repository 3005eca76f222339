// What operators need around the five APIs: request ids, the access log, CORS, metrics and
// the OpenAPI description generated from the route table.
#include "auth/http/operations.h"

#include "auth/apis/api.h"
#include "auth/http/route_doc.h"
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
  // One unlabelled metric: its HELP and TYPE lines and its value.
  auto metric = [&out](const char *name, const char *type, const char *help, auto value) {
    out << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n'
        << name << ' ' << value << '\n';
  };
  if (g.active_sessions >= 0)
    metric("latch_active_sessions", "gauge", "Sessions neither expired nor revoked.",
           g.active_sessions);
  metric("latch_password_hashes_running", "gauge", "Password hashes computing now.",
         g.hashes_running);
  metric("latch_password_hash_queue_depth", "gauge", "Requests waiting for a hashing slot.",
         g.hashes_waiting);
  if (g.connections_open >= 0) {
    metric("latch_http_connections_open", "gauge", "Client connections open now.",
           g.connections_open);
    metric("latch_http_workers", "gauge",
           "Threads serving requests now (more start while some are stuck).", g.http_workers);
  }
  if (g.descriptor_limit_reached >= 0)
    metric("latch_file_descriptor_limit_reached_total", "counter",
           "Times the process ran out of file descriptors (new connections waited).",
           g.descriptor_limit_reached);
  if (g.cache_loads >= 0) {
    metric("latch_session_cache_loads_total", "counter",
           "Times the whole revocation state was read from the database (once at start; again "
           "only if the server fell behind the change log).",
           g.cache_loads);
    metric("latch_session_cache_changes_total", "counter",
           "Changed rows applied to the revocation state one by one.", g.cache_changes);
  }
  if (g.connections_refused >= 0)
    metric("latch_http_connections_refused_total", "counter",
           "Connections closed at once because their address held "
           "--max-connections-per-address.",
           g.connections_refused);
  if (g.mail_queued >= 0)
    metric("latch_mail_queued", "gauge",
           "Mail in the outbox waiting to be sent (failed mail not included).", g.mail_queued);
  metric("latch_mail_sent_total", "counter", "Mail this server handed to SMTP (or the log).",
         g.mail_sent);
  metric("latch_mail_failed_total", "counter",
         "Mail this server gave up on: SMTP 5xx, or temporary failures past --mail-give-up.",
         g.mail_failed);
  metric("latch_mail_dropped_total", "counter",
         "Mail this server deleted unsent: its link expired or was used while it waited.",
         g.mail_dropped);
  metric("latch_database_errors_total", "counter", "Requests that failed on a database error.",
         database_errors_.load());
  return out.str();
}

namespace {

// A schema as route_doc.h writes it: JSON Schema text, or the name of a component.
json schema_of(const char *text) {
  if (text[0] == '{') return json::parse(text);
  return {{"$ref", std::string("#/components/schemas/") + text}};
}

// The answers of one operation, gathered by status, then written as OpenAPI responses: each
// status lists its media types, and schemas given for one media type more than once become
// alternatives (anyOf).
class Answers {
public:
  void add(int status, const json &schema, const std::string &description,
           const std::string &media_type = "application/json", const json &headers = nullptr) {
    Status &s = by_status_[status];
    if (std::find(s.descriptions.begin(), s.descriptions.end(), description) ==
        s.descriptions.end())
      s.descriptions.push_back(description);
    if (!schema.is_null()) {
      auto &alternatives = s.media[media_type];
      if (std::find(alternatives.begin(), alternatives.end(), schema) == alternatives.end())
        alternatives.push_back(schema);
    }
    if (headers.is_object()) s.headers.update(headers);
  }
  void add(const DocAnswer &a) {
    add(a.status, a.schema ? schema_of(a.schema) : json(nullptr), a.description, a.media_type,
        a.headers ? json::parse(a.headers) : json(nullptr));
  }

  json responses() const {
    json out = json::object();
    for (const auto &[status, s] : by_status_) {
      std::string description;
      for (const auto &d : s.descriptions)
        description += (description.empty() ? "" : "; ") + d;
      json response = {{"description", description}};
      for (const auto &[media_type, alternatives] : s.media)
        response["content"][media_type]["schema"] =
            alternatives.size() == 1 ? alternatives[0] : json{{"anyOf", alternatives}};
      if (!s.headers.empty()) response["headers"] = s.headers;
      out[std::to_string(status)] = response;
    }
    return out;
  }

private:
  struct Status {
    std::vector<std::string> descriptions;
    std::map<std::string, std::vector<json>> media;
    json headers = json::object();
  };
  std::map<int, Status> by_status_;
};

const json kRetryAfter = {{"Retry-After",
                           {{"description", "seconds to wait"},
                            {"required", true},
                            {"schema", {{"type", "integer"}, {"minimum", 1}}}}}};

// What the request pipeline (the connection loop and the Dispatcher) answers for a request to
// this path before or around its handler, in the shape `error` names.
void pipeline_answers(Answers &answers, const json &error, bool takes_body, int wrong_method,
                      const json &neutral) {
  answers.add(400, error,
              takes_body ? "a body that is not a JSON object (or form) of valid UTF-8, or a "
                           "request that could not be framed"
                         : "a request that could not be framed");
  answers.add(wrong_method, error, "another method than this path answers");
  answers.add(413, error, "a body larger than --max-body-bytes");
  // Refused before its route is known (the request line is not read whole): no API's shape.
  answers.add(414, neutral, "a request target longer than 8 KiB");
  answers.add(415, error,
              takes_body ? "a media type the route does not take, or a Content-Encoding"
                         : "a Content-Encoding: coded bodies are refused");
  answers.add(431, error, "a header field line too long");
}

json operation(const std::string &id, const std::string &summary, const std::string &tag) {
  return {{"operationId", id}, {"summary", summary}, {"tags", {tag}}};
}

// The request body's schema: its fields, required ones listed.
json body_schema(const RouteDoc &doc) {
  json properties = json::object(), required = json::array();
  for (const DocField &f : doc.fields) {
    json schema = schema_of(f.schema);
    schema["description"] = f.description;
    properties[f.name] = schema;
    if (f.required) required.push_back(f.name);
  }
  json schema = {{"type", "object"}, {"properties", properties}};
  if (!required.empty()) schema["required"] = required;
  return schema;
}

json request_body(const Route &r, const RouteDoc &doc) {
  const json schema = body_schema(doc);
  json content = {{"application/json", {{"schema", schema}}}};
  // Form fields are strings, as every field these routes read is.
  if (r.body == BodyKind::json_form || r.body == BodyKind::json_form_multi)
    content["application/x-www-form-urlencoded"] = {{"schema", schema}};
  if (r.body == BodyKind::json_form_multi) content["multipart/form-data"] = {{"schema", schema}};
  return {{"required", schema.contains("required")}, {"content", content}};
}

json api_route(const Route &r, const Config &config, const json &neutral) {
  std::string method = r.method;
  std::transform(method.begin(), method.end(), method.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string id = std::string(api_name(r.api)) + "_" + method;
  for (char c : std::string(r.path))
    id += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  json op = operation(id, r.summary, api_name(r.api));
  static const RouteDoc undescribed; // a row without its description still gets the rest
  const RouteDoc &doc = r.doc ? *r.doc : undescribed;
  const ApiDoc &api = *apis::api_row(r.api).doc;
  if (r.access != Access::open)
    op["security"] = json::array(
        {{{r.access == Access::access_token ? "accessToken" : "refreshToken", json::array()}}});
  if (!doc.query.empty()) {
    op["parameters"] = json::array();
    for (const DocParam &p : doc.query)
      op["parameters"].push_back({{"name", p.name},
                                  {"in", "query"},
                                  {"required", p.required},
                                  {"description", p.description},
                                  {"schema", schema_of(p.schema)}});
  }
  if (r.body != BodyKind::none) op["requestBody"] = request_body(r, doc);

  Answers answers;
  for (const DocAnswer &a : doc.answers)
    if (!a.when || a.when(config)) answers.add(a);
  const json error = schema_of(api.error);
  if (r.access != Access::open)
    answers.add(401, schema_of(api.token_error),
                std::string("no Bearer ") +
                    (r.access == Access::access_token ? "access" : "refresh") +
                    " token, or one that is malformed, expired, revoked or of the other type",
                "application/json",
                api.token_error_headers ? json::parse(api.token_error_headers) : json(nullptr));
  if (r.throttled)
    answers.add(429, error,
                "too many requests from this address (--rate-limit) or too many failed "
                "sign-ins (--max-failed-logins)",
                "application/json", kRetryAfter);
  if (r.hashes)
    answers.add(503, error, "every password-hashing slot is busy and the line for them is full",
                "application/json", kRetryAfter);
  pipeline_answers(answers, error, r.body != BodyKind::none, api.wrong_method, neutral);
  answers.add(500, error, "a database failure (the cause is logged, never sent)");
  op["responses"] = answers.responses();
  return op;
}

// The operational endpoints: outside the APIs' prefixes, errors in the neutral shape.
json operational(const char *id, const char *summary, int status, const json &schema,
                 const char *description, const char *media_type, const json &neutral) {
  json op = operation(id, summary, "operations");
  Answers answers;
  answers.add(status, schema, description, media_type);
  pipeline_answers(answers, neutral, false, 405, neutral);
  op["responses"] = answers.responses();
  return op;
}

// The admin console's API (auth/http/console.cpp): errors {"error": {"code", "message"}};
// before an admin exists every path answers the neutral 404 of a server without a console.
void console_paths(json &paths, json &schemas, const json &neutral) {
  schemas["ConsoleError"] = {
      {"type", "object"},
      {"required", {"error"}},
      {"additionalProperties", false},
      {"properties",
       {{"error",
         {{"type", "object"},
          {"required", {"code", "message"}},
          {"additionalProperties", false},
          {"properties", {{"code", {{"type", "string"}}}, {"message", {{"type", "string"}}}}}}}}}};
  const json error = schema_of("ConsoleError");
  const json text = {{"type", "string"}}, integer = {{"type", "integer"}},
             boolean = {{"type", "boolean"}};
  const json nullable_text = {{"type", {"string", "null"}}};
  auto object = [](json properties) {
    json required = json::array();
    for (auto it = properties.begin(); it != properties.end(); ++it)
      required.push_back(it.key());
    return json{{"type", "object"},
                {"required", required},
                {"additionalProperties", false},
                {"properties", properties}};
  };
  const json signed_in = object({{"admin", object({{"email", text}})}, {"csrf_token", text}});
  const json user_row = object({{"id", text},
                                {"username", text},
                                {"email", nullable_text},
                                {"email_verified", boolean},
                                {"active", boolean},
                                {"created_at", integer}});
  json user = user_row;
  for (const char *f : {"display_name", "profile_picture", "phone_number"})
    user["properties"][f] = text, user["required"].push_back(f);
  user["properties"]["updated_at"] = integer, user["required"].push_back("updated_at");
  const json session = object({{"id", text},
                               {"api", text},
                               {"created_at", integer},
                               {"expires_at", integer},
                               {"revoked", boolean}});
  const json events = {{"type", "array"}, {"items", {{"type", "object"}}}};
  const json user_page =
      object({{"users", {{"type", "array"}, {"items", user_row}}}, {"next", nullable_text}});
  const json user_view = object(
      {{"user", user}, {"sessions", {{"type", "array"}, {"items", session}}}, {"events", events}});
  const json audit_page = object({{"events", events}, {"next", nullable_text}});
  const json key =
      object({{"kid", text},
              {"alg", text},
              {"state", {{"type", "string"}, {"enum", {"active", "standby", "retired"}}}},
              {"created_at", integer},
              {"activated_at", {{"type", {"integer", "null"}}}}});
  const json keys = object({{"keys", {{"type", "array"}, {"items", key}}}});
  const json status = object({{"version", text},
                              {"uptime_seconds", integer},
                              {"users", integer},
                              {"active_sessions", integer},
                              {"database_bytes", integer}});
  const json id_param = {{"name", "id"},
                         {"in", "path"},
                         {"required", true},
                         {"description", "the user's id"},
                         {"schema", text}};

  struct Op {
    const char *path, *method, *id, *summary;
    int status;
    json schema; // null: no body
    const char *description;
    std::vector<const char *> body_fields; // required string fields of a JSON body
    bool signed_in = true;
  };
  const std::vector<Op> ops = {
      {"/_/api/session",
       "post",
       "console_sign_in",
       "sign in to the console",
       200,
       signed_in,
       "signed in: the session cookie (latch_console, HttpOnly, SameSite=Strict) is set",
       {"email", "password"},
       false},
      {"/_/api/session",
       "get",
       "console_session",
       "the admin signed in",
       200,
       signed_in,
       "the admin and the session's CSRF token",
       {},
       true},
      {"/_/api/session",
       "delete",
       "console_sign_out",
       "sign out (ends the session)",
       204,
       nullptr,
       "signed out",
       {},
       true},
      {"/_/api/users",
       "get",
       "console_users",
       "users, newest first, a page at a time",
       200,
       user_page,
       "a page of users; next is the cursor of the following page",
       {},
       true},
      {"/_/api/users/{id}",
       "get",
       "console_user",
       "one user, its sessions and recent events",
       200,
       user_view,
       "the user",
       {},
       true},
      {"/_/api/users/{id}",
       "delete",
       "console_delete_user",
       "delete the user",
       204,
       nullptr,
       "deleted, with its sessions",
       {"confirm"},
       true},
      {"/_/api/users/{id}/sessions/{sid}/revoke",
       "post",
       "console_revoke_session",
       "end one session of the user",
       204,
       nullptr,
       "ended",
       {},
       true},
      {"/_/api/users/{id}/sessions/revoke",
       "post",
       "console_revoke_sessions",
       "end every session of the user",
       204,
       nullptr,
       "ended",
       {},
       true},
      {"/_/api/users/{id}/verify-email",
       "post",
       "console_verify_email",
       "mark the user's email verified",
       204,
       nullptr,
       "marked",
       {},
       true},
      {"/_/api/users/{id}/reset-mail",
       "post",
       "console_reset_mail",
       "mail the user a password reset link",
       202,
       nullptr,
       "queued in the outbox",
       {},
       true},
      {"/_/api/users/{id}/password",
       "post",
       "console_set_password",
       "set a new password (ends the user's sessions)",
       204,
       nullptr,
       "set",
       {"password"},
       true},
      {"/_/api/audit",
       "get",
       "console_audit",
       "the audit log",
       200,
       audit_page,
       "a page of events",
       {},
       true},
      {"/_/api/keys",
       "get",
       "console_keys",
       "the signing keys and their states",
       200,
       keys,
       "the keys",
       {},
       true},
      {"/_/api/status",
       "get",
       "console_status",
       "version, uptime and counts",
       200,
       status,
       "the figures",
       {},
       true},
  };
  for (const Op &o : ops) {
    json op = operation(o.id, o.summary, "console");
    json parameters = json::array();
    if (std::string(o.path).find("{id}") != std::string::npos) parameters.push_back(id_param);
    if (std::string(o.path).find("{sid}") != std::string::npos)
      parameters.push_back({{"name", "sid"},
                            {"in", "path"},
                            {"required", true},
                            {"description", "the session's id"},
                            {"schema", text}});
    if (std::string(o.id) == "console_users")
      for (const auto &[name, what] : std::vector<std::pair<const char *, const char *>>{
               {"q", "a prefix of the username or email"},
               {"after", "the cursor (next) of the page before"},
               {"limit", "users a page, 1 to 200 (default 50)"}})
        parameters.push_back({{"name", name},
                              {"in", "query"},
                              {"required", false},
                              {"description", what},
                              {"schema", text}});
    if (std::string(o.id) == "console_audit")
      for (const char *name : {"user", "event", "since", "before", "limit"})
        parameters.push_back(
            {{"name", name}, {"in", "query"}, {"required", false}, {"schema", text}});
    if (!parameters.empty()) op["parameters"] = parameters;
    if (!o.body_fields.empty()) {
      json properties = json::object();
      for (const char *f : o.body_fields)
        properties[f] = text;
      op["requestBody"] = {
          {"required", true},
          {"content",
           {{"application/json", {{"schema", {{"type", "object"}, {"properties", properties}}}}}}}};
    }
    Answers answers;
    answers.add(o.status, o.schema, o.description, "application/json");
    if (o.signed_in) {
      answers.add(401, error, "no console session, or one past its idle time or revoked");
      answers.add(403, error,
                  "from another site (Origin, Sec-Fetch-Site), or a state change without the "
                  "session's X-CSRF-Token");
    } else {
      answers.add(401, error, "wrong email or password");
      answers.add(403, error, "from another site (Origin, Sec-Fetch-Site)");
      answers.add(429, error, "too many sign-ins from the address, or the admin locked",
                  "application/json", kRetryAfter);
    }
    if (!o.body_fields.empty() || std::string(o.id) == "console_users")
      answers.add(400, error, "a missing or wrong field or parameter");
    if (std::string(o.path).find("{id}") != std::string::npos)
      answers.add(404, error, "no such user (or session)");
    answers.add(404, neutral, "no admin exists yet: no console");
    pipeline_answers(answers, neutral, !o.body_fields.empty(), 405, neutral);
    answers.add(405, error, "another method than this path answers");
    answers.add(503, error, "the database cannot be reached now");
    op["responses"] = answers.responses();
    paths[o.path][o.method] = op;
  }
}

} // namespace

json openapi_document(const Config &config) {
  // The shape of answers outside the five APIs (operational endpoints, unreadable requests).
  json schemas = {{"Error",
                   {{"type", "object"},
                    {"required", {"error"}},
                    {"additionalProperties", false},
                    {"properties", {{"error", {{"type", "string"}}}}}}}};
  const json neutral = schema_of("Error");
  json paths = json::object(), tags = json::array();
  for (const apis::ApiRow &row : apis::api_rows()) {
    if (!config.apis.count(row.id)) continue;
    schemas.update(json::parse(row.doc->components));
    tags.push_back({{"name", row.name},
                    {"description", std::string(row.doc->framework) + " at " + row.prefix}});
  }
  for (const Route &r : route_table()) {
    if (!config.apis.count(r.api)) continue;
    std::string method = r.method;
    std::transform(method.begin(), method.end(), method.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    paths[r.path][method] = api_route(r, config, neutral);
  }

  const json text = {{"type", "string"}};
  auto status_is = [](const char *value) {
    return json{{"type", "object"},
                {"required", {"status"}},
                {"additionalProperties", false},
                {"properties", {{"status", {{"type", "string"}, {"const", value}}}}}};
  };
  paths["/healthz"]["get"] = operational("healthz", "the process is alive", 200, status_is("ok"),
                                         "alive", "application/json", neutral);
  json ready = operational("readyz", "the database answers", 200, status_is("ready"),
                           "the database answers queries", "application/json", neutral);
  json unready = status_is("database unavailable");
  unready["properties"]["reason"] = {
      {"type", "string"},
      {"description", "why, in a sentence (the write lock held elsewhere, a table missing, the "
                      "database file deleted or replaced)"}};
  ready["responses"]["503"] = {{"description", "the database does not answer, or writes cannot "
                                               "commit now"},
                               {"content", {{"application/json", {{"schema", unready}}}}}};
  paths["/readyz"]["get"] = ready;
  // RFC 7517 5: public members only; a "d", "p", "q" or "k" member never appears.
  const json jwk = {{"type", "object"},
                    {"required", {"kty", "kid", "alg", "use"}},
                    {"properties",
                     {{"kty", {{"type", "string"}, {"enum", {"OKP", "EC", "RSA"}}}},
                      {"kid", text},
                      {"alg", {{"type", "string"}, {"enum", {"EdDSA", "ES256", "RS256"}}}},
                      {"use", {{"type", "string"}, {"const", "sig"}}},
                      {"crv", text},
                      {"x", text},
                      {"y", text},
                      {"n", text},
                      {"e", text}}},
                    {"additionalProperties", false}};
  paths["/.well-known/jwks.json"]["get"] = operational(
      "jwks", "the public keys that verify Latch's tokens (RFC 7517)", 200,
      {{"type", "object"},
       {"required", {"keys"}},
       {"additionalProperties", false},
       {"properties", {{"keys", {{"type", "array"}, {"items", jwk}}}}}},
      "the asymmetric keys whose tokens may still be valid, and the standby key; empty with "
      "HS256 keys only (a symmetric key is never published)",
      "application/json", neutral);
  paths["/openapi.json"]["get"] = operational("openapi", "this document", 200,
                                              {{"type", "object"},
                                               {"required", {"openapi", "info", "paths"}},
                                               {"properties",
                                                {{"openapi", {{"type", "string"}}},
                                                 {"info", {{"type", "object"}}},
                                                 {"paths", {{"type", "object"}}}}},
                                               {"additionalProperties", true}},
                                              "OpenAPI 3.1", "application/json", neutral);
  // As the Dispatcher serves it: on the main listener unless --metrics-addr gives it its own.
  if (config.metrics && config.metrics_host.empty())
    paths["/metrics"]["get"] = operational("metrics", "Prometheus metrics", 200, text,
                                           "the Prometheus text format", "text/plain", neutral);
  if (apis::reset_links_mailed(config.apis)) {
    json page = operational("reset_password_page", "the password reset page", 200, text,
                            "a form that sets a new password", "text/html", neutral);
    page["parameters"] = {{{"name", "token"},
                           {"in", "query"},
                           {"required", false},
                           {"description", "the reset token of the mailed link (read by the "
                                           "page's script, never by the server)"},
                           {"schema", {{"type", "string"}}}}};
    paths["/reset-password"]["get"] = page;
    paths["/reset-password.js"]["get"] =
        operational("reset_password_script", "the reset page's script", 200, text, "JavaScript",
                    "text/javascript", neutral);
    paths["/reset-password.css"]["get"] =
        operational("reset_password_style", "the reset page's style sheet", 200, text, "CSS",
                    "text/css", neutral);
  }
  tags.push_back(
      {{"name", "operations"}, {"description", "health, this document, metrics, pages"}});
  if (config.console) {
    console_paths(paths, schemas, neutral);
    tags.push_back({{"name", "console"}, {"description", "the admin console's API at /_/api/"}});
  }

  const json bearer = {{"type", "http"}, {"scheme", "bearer"}, {"bearerFormat", "JWT"}};
  json access = bearer, refresh = bearer;
  access["description"] = "an access token from a sign-in of any of the APIs";
  refresh["description"] = "a refresh token from a sign-in of the route's API";
  return {{"openapi", "3.1.0"},
          {"info",
           {{"title", "Latch"},
            {"version", LATCH_VERSION},
            {"description",
             "Five auth APIs over one user store; each route answers errors in its own API's "
             "shape (components/schemas, one per API and kind)."}}},
          {"tags", tags},
          {"components",
           {{"schemas", schemas},
            {"securitySchemes", {{"accessToken", access}, {"refreshToken", refresh}}}}},
          {"paths", paths}};
}

} // namespace latch::http
