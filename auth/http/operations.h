// What operators need around the five APIs: request ids, the access log, CORS, metrics and
// the OpenAPI description generated from the route table.
#pragma once

#include "auth/config.h"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

namespace latch::http {

// The client's X-Request-Id if it is a sane token (1-128 of [A-Za-z0-9._:-]), else a new one.
std::string request_id_for(const httplib::Request &req);

// One access-log line (no trailing newline): method, route, status, duration, client, request
// id. The query string is never logged: reset and confirmation links carry tokens in it.
struct AccessRecord {
  const std::string &method;
  const std::string &path;
  int status;
  double seconds;
  const std::string &client;
  const std::string &request_id;
};
std::string access_log_line(Config::LogFormat format, const AccessRecord &r);

// CORS for browser frontends: sets the Access-Control-* headers on a response when the
// request's Origin is allowed, and Vary: Origin on every response when origins are listed.
// Each header is replaced, never repeated, so calling these again is harmless. `methods` is
// what the path answers (for preflights).
void apply_cors(const Config &config, const httplib::Request &req, httplib::Response &res);
void answer_preflight(const Config &config, const httplib::Request &req, httplib::Response &res,
                      const std::string &methods);

// Request counters and latency histograms by route and status, in the Prometheus text format.
class Metrics {
public:
  static constexpr std::array<double, 12> kBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                      0.05,   0.1,   0.25,   0.5,   1,    2.5};
  void observe(const std::string &route, const std::string &method, int status, double seconds);
  void database_error() { ++database_errors_; }

  // Values that live elsewhere, read when /metrics is asked for.
  struct Gauges {
    std::uint64_t sign_ins_succeeded = 0, sign_ins_failed = 0, sign_ins_throttled = 0;
    unsigned hashes_running = 0, hashes_waiting = 0;
    std::int64_t active_sessions = -1;                     // -1: not known
    std::int64_t connections_open = -1, http_workers = -1; // -1: not known
    std::int64_t connections_refused = -1;                 // closed at accept: the per-address cap
    // The outbox: mail waiting now (-1: not known yet), and mail sent, failed for good and
    // dropped unsent (its link died while queued) by this process since it started.
    std::int64_t mail_queued = -1;
    std::uint64_t mail_sent = 0, mail_failed = 0, mail_dropped = 0;
    std::int64_t descriptor_limit_reached = -1;        // times out of file descriptors
    std::int64_t cache_loads = -1, cache_changes = -1; // the session cache's (-1: none)
    // Audit events this process wrote since it started, by event (AuthService::audit_counts).
    std::vector<std::pair<std::string, std::uint64_t>> audit_events;
  };
  std::string render(const Gauges &g) const;

private:
  struct Latency {
    std::array<std::uint64_t, kBuckets.size()> buckets{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mutex_;
  std::map<std::tuple<std::string, std::string, int>, std::uint64_t> requests_;
  std::map<std::string, Latency> latency_;
  std::atomic<std::uint64_t> database_errors_{0};
};

// OpenAPI 3.1 for the routes of the enabled APIs plus the operational endpoints.
nlohmann::json openapi_document(const Config &config);

} // namespace latch::http
