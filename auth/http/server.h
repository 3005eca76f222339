// cpp-httplib adapter: registers the route table, applies limits, sends every error.
#pragma once

#include "auth/config.h"
#include "auth/http/context.h"
#include "auth/http/operations.h"
#include "auth/service.h"

#include <httplib.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>

namespace latch::http {

class EventServer;

class Server {
public:
  Server(const Config &config, AuthService &service);

  // Binds config.host:config.port (port 0: any free port). False if it cannot.
  bool bind();
  int port() const { return port_; }
  // Serves until stop(); returns false if the listener failed.
  bool run();
  // Stops accepting; in-flight requests get config.shutdown_timeout seconds before the
  // process exits anyway.
  void stop();

  // Answers one request for one route, as the listener does after matching it: throttling,
  // credentials, body parsing, the handler, and every error. Public for the fuzz targets.
  void dispatch(const Route &route, const httplib::Request &req, httplib::Response &res);

private:
  void register_routes();
  void register_operations(httplib::Server &listener);
  std::string render_metrics();
  std::string client_address(const httplib::Request &req) const;

  const Config &config_;
  AuthService &service_;
  std::unique_ptr<httplib::Server> server_; // an SSLServer with --tls-cert
  EventServer *events_;                     // server_ without TLS, else null
  std::unique_ptr<httplib::Server> metrics_server_; // with --metrics-addr
  std::set<std::string> known_paths_;               // metrics label routes by these, not raw paths
  Metrics metrics_;
  std::mutex log_mutex_;
  std::atomic<bool> stopped_ = false;
  int port_ = 0;
  int listen_fd_ = -1;
  static inline const std::string kOtherRoute = "other";
};

} // namespace latch::http
