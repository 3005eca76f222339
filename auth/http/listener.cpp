// The listening socket and the connection loop behind it.
#include "auth/http/listener.h"

#include "auth/tls.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <stdexcept>
#include <thread>

namespace latch::http {

namespace {

// cpp-httplib's default socket options add SO_REUSEPORT, with which a second server binds the
// same address and the kernel shares connections between the two (each with its own
// database). Only SO_REUSEADDR: a restart may bind while old connections linger in TIME_WAIT.
// The socket's descriptor is kept, to deepen its backlog after bind.
httplib::SocketOptions exclusive_socket(int *fd) {
  return [fd](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    *fd = sock;
  };
}

// Binds server to host:port; the bound port (or 0) and, on failure, why.
int bind_exclusive(httplib::Server &server, const std::string &host, int port, std::string *error) {
  int fd = -1;
  server.set_socket_options(exclusive_socket(&fd));
  errno = 0;
  const int bound =
      port == 0 ? server.bind_to_any_port(host) : (server.bind_to_port(host, port) ? port : 0);
  if (bound <= 0) {
    const int why = errno;
    if (error)
      *error = why == EADDRINUSE ? "address in use"
               : why != 0        ? std::string(std::strerror(why))
                                 : "cannot bind";
    return 0;
  }
  // Debian's cpp-httplib listens with a backlog of 5, so a burst of new connections waits a
  // second per retry; listen() again on a listening socket only changes its backlog (Linux).
  if (fd >= 0) ::listen(fd, SOMAXCONN);
  return bound;
}

std::string address(const std::string &host, int port) {
  return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
         std::to_string(port);
}

} // namespace

Listener::Listener(const Config &config, Dispatcher &dispatcher)
    : config_(config), dispatcher_(dispatcher) {
  ConnectionLoop::Settings options;
  options.threads = config.threads;
  options.max_threads = std::max(config.threads, config.max_connections);
  options.max_connections = config.max_connections;
  options.max_per_address = config.max_connections_per_address;
  // Behind a proxy every client arrives from the proxy's address.
  options.unlimited = [&proxies = config.trusted_proxies](std::string_view ip) {
    return proxies.contains(ip);
  };
  options.classify = [&dispatcher](std::string_view method, std::string_view path) {
    return dispatcher.classify(method, path);
  };
  // The routes that hash a password take the heavy lane, one at a time per hashing slot, with
  // --hash-queue more parked: a flood of sign-ins cannot hold every worker, and the hasher's
  // own line is never needed.
  options.heavy_at_once = config.hash_concurrency;
  options.heavy_queue = config.hash_queue;
  if (!config.tls_cert.empty()) {
    std::string error;
    options.tls = load_tls_context(config.tls_cert, config.tls_key, &error);
    if (!options.tls) throw std::runtime_error(error);
  }
  loop_ = std::make_unique<ConnectionLoop>(options);
  if (options.tls) SSL_CTX_free(options.tls); // the loop holds its own reference
  loop_->set_payload_max_length(config.max_body_bytes);
  loop_->set_read_timeout(5, 0);
  loop_->set_write_timeout(5, 0);
  loop_->set_keep_alive_timeout(5);
  loop_->set_keep_alive_max_count(1000);
  loop_->set_tcp_nodelay(true); // without it each small response waits on a delayed ACK
  dispatcher_.attach(*loop_);
}

Listener::~Listener() = default;

bool Listener::bind(std::string *error) {
  if (!config_.metrics_host.empty()) {
    metrics_server_ = std::make_unique<httplib::Server>();
    metrics_server_->Get("/metrics", [this](const httplib::Request &, httplib::Response &res) {
      res.set_content(dispatcher_.metrics_text(), "text/plain; version=0.0.4");
    });
    metrics_server_->new_task_queue = [] { return new httplib::ThreadPool(2); };
    std::string why;
    metrics_port_ =
        bind_exclusive(*metrics_server_, config_.metrics_host, config_.metrics_port, &why);
    if (metrics_port_ == 0) {
      if (error)
        *error = "cannot listen on --metrics-addr " +
                 address(config_.metrics_host, config_.metrics_port) + ": " + why;
      return false;
    }
  }
  std::string why;
  port_ = bind_exclusive(*loop_, config_.host, config_.port, &why);
  if (port_ == 0) {
    if (error) *error = "cannot listen on " + address(config_.host, config_.port) + ": " + why;
    return false;
  }
  return true;
}

bool Listener::run() {
  std::thread metrics_thread;
  if (metrics_server_)
    metrics_thread = std::thread([this] { metrics_server_->listen_after_bind(); });
  bool ok = loop_->listen_after_bind();
  loop_->drain();
  if (metrics_server_) {
    metrics_server_->stop();
    metrics_thread.join();
  }
  *stopped_ = true;
  return ok;
}

bool Listener::reload_tls(std::string *error) {
  if (config_.tls_cert.empty()) return true;
  SSL_CTX *tls = load_tls_context(config_.tls_cert, config_.tls_key, error);
  if (!tls) return false;
  loop_->set_tls(tls);
  SSL_CTX_free(tls); // the loop holds its own reference
  return true;
}

void Listener::stop() {
  // Stop accepting now; requests in flight get shutdown_timeout to finish, then we go anyway.
  loop_->stop();
  int limit = config_.shutdown_timeout;
  std::thread([stopped = stopped_, limit] {
    for (int waited = 0; waited < limit * 10; ++waited) {
      if (*stopped) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::cerr << "latch: requests still running " << limit << " s after the stop signal; exiting\n";
    std::_Exit(1);
  }).detach();
}

} // namespace latch::http
