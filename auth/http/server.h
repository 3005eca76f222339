// cpp-httplib adapter: registers the route table, applies limits, sends every error.
#pragma once

#include "auth/config.h"
#include "auth/http/context.h"
#include "auth/service.h"

#include <httplib.h>

#include <memory>

namespace latch::http {

class Server {
public:
  Server(const Config &config, AuthService &service);

  // Binds config.host:config.port (port 0: any free port). False if it cannot.
  bool bind();
  int port() const { return port_; }
  // Serves until stop(); returns false if the listener failed.
  bool run();
  void stop() { server_.stop(); }

  // Answers one request for one route, as the listener does after matching it: throttling,
  // credentials, body parsing, the handler, and every error. Public for the fuzz targets.
  void dispatch(const Route &route, const httplib::Request &req, httplib::Response &res);

private:
  void register_routes();
  std::string client_address(const httplib::Request &req) const;

  const Config &config_;
  AuthService &service_;
  httplib::Server server_;
  int port_ = 0;
  int listen_fd_ = -1;
};

} // namespace latch::http
