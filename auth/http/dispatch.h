// Every request's way from the connection loop to a handler and back: routing (once), request
// ids, CORS, throttling, credentials, bodies, errors in each API's shape, metrics and the log.
#pragma once

#include "auth/config.h"
#include "auth/http/connection_loop.h"
#include "auth/http/console.h"
#include "auth/http/context.h"
#include "auth/http/operations.h"
#include "auth/service.h"

#include <httplib.h>

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace latch::http {

class Dispatcher {
public:
  Dispatcher(const Config &config, AuthService &service);

  // The one routing decision of a request, from its method and its decoded path: which of
  // the enabled routes and operational endpoints it is (the tag), whether it hashes a
  // password (heavy), or the 404/405 it gets instead.
  Verdict classify(std::string_view method, std::string_view path) const;

  // Makes loop hand every request here: handle() by tag, refused() for refusals, record() after
  // each answer.
  void attach(ConnectionLoop &loop);

  // A request classify() routed.
  void handle(const httplib::Request &req, httplib::Response &res);
  // A request the loop (or classify) refused: its status in the shape of the API whose path it
  // names.
  void refused(const httplib::Request &req, httplib::Response &res);
  // Answers one request for one API route: throttling, credentials, body parsing, the handler,
  // and every error. Public for the fuzz targets.
  void dispatch(const Route &route, const httplib::Request &req, httplib::Response &res);

  // After each answer: the metrics and one access-log line.
  void record(const httplib::Request &req, const httplib::Response &res);
  // The Prometheus page, with the attached loop's connection figures.
  std::string metrics_text() const;

private:
  // What a tag names.
  struct Target {
    enum Kind {
      route,
      healthz,
      readyz,
      jwks,
      openapi,
      metrics,
      reset_page,
      reset_script,
      reset_style,
      preflight,
      console // everything under /_/ (auth/http/console.h)
    } kind;
    const Route *api_route = nullptr; // route
    std::string path;                 // for the metrics label
    std::string methods;              // preflight: what the path answers
  };
  int add_target(const std::string &path, const std::string &method, Target target);
  void serve_operation(const Target &target, const httplib::Request &req, httplib::Response &res);
  void error_without_route(const httplib::Request &req, httplib::Response &res, int status);

  const Config &config_;
  AuthService &service_;
  const ConnectionLoop *loop_ = nullptr;
  std::vector<Target> targets_; // by tag
  struct PathHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  // path -> (method, tag), a handful each
  std::unordered_map<std::string, std::vector<std::pair<std::string, int>>, PathHash,
                     std::equal_to<>>
      by_path_;
  const std::string openapi_;        // GET /openapi.json
  std::unique_ptr<Console> console_; // with --console on
  int console_tag_ = -1;
  mutable Metrics metrics_;
  std::mutex log_mutex_;
};

} // namespace latch::http
