// Where Latch listens: the connection loop set up from the Config (TLS, limits, lanes), its
// socket, the separate metrics listener, and stopping with a deadline.
#pragma once

#include "auth/config.h"
#include "auth/http/connection_loop.h"
#include "auth/http/dispatch.h"

#include <httplib.h>

#include <atomic>
#include <memory>
#include <string>

namespace latch::http {

class Listener {
public:
  // Throws std::runtime_error when --tls-cert/--tls-key cannot be used.
  Listener(const Config &config, Dispatcher &dispatcher);
  ~Listener();
  Listener(const Listener &) = delete;
  Listener &operator=(const Listener &) = delete;

  // Binds config.host:config.port (port 0: any free port) and, with --metrics-addr, the
  // metrics listener. False, with *error naming the address and the reason ("address in use"),
  // if either cannot be had: another Latch on the same address is an error, not a second
  // server sharing its traffic.
  bool bind(std::string *error);
  int port() const { return port_; }
  int metrics_port() const { return metrics_port_; }
  // Serves until stop(); false if the listener failed.
  bool run();
  // Stops accepting; in-flight requests get config.shutdown_timeout seconds before the process
  // exits anyway.
  void stop();
  // Loads --tls-cert and --tls-key again (a renewed certificate) for new connections; false,
  // with *error, leaves the ones in use.
  bool reload_tls(std::string *error);

private:
  const Config &config_;
  Dispatcher &dispatcher_;
  std::unique_ptr<ConnectionLoop> loop_;
  std::unique_ptr<httplib::Server> metrics_server_; // with --metrics-addr
  // Shared with the stop watchdog, which may outlive this object by one look.
  std::shared_ptr<std::atomic<bool>> stopped_ = std::make_shared<std::atomic<bool>>(false);
  int port_ = 0, metrics_port_ = 0;
};

} // namespace latch::http
