// HTTP ceilings for the benchmarks: a cpp-httplib route answering a fixed JSON body.
//
// Usage: ceiling_http HOST PORT [bare|loop]
// GET /ceiling answers {"ok":true}, with Latch's server settings: TCP_NODELAY, the same
// time-outs and keep-alive, the listen backlog raised to SOMAXCONN.
//   bare (the default): cpp-httplib's own connection loop, one thread per open connection from
//     a pool of 256 (more than the benchmark's connections). The HTTP library's limit.
//   loop: Latch's connection loop (auth/http/connection_loop.h) under the same route, one worker
//     per core. Latch's HTTP layer's limit: Latch ÷ this is what its own work costs.
#include "auth/http/connection_loop.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

int main(int argc, char **argv) {
  const bool loop = argc > 3 && std::strcmp(argv[3], "loop") == 0;
  if (argc < 3 || (argc > 3 && !loop && std::strcmp(argv[3], "bare") != 0)) {
    std::fprintf(stderr, "usage: %s HOST PORT [bare|loop]\n", argv[0]);
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::atoi(argv[2]);
  const std::size_t cores = std::max(2u, std::thread::hardware_concurrency());

  std::unique_ptr<httplib::Server> server;
  if (loop) {
    latch::http::ConnectionLoop::Settings options;
    options.threads = cores;
    server = std::make_unique<latch::http::ConnectionLoop>(options);
  } else {
    server = std::make_unique<httplib::Server>();
    server->new_task_queue = [] { return new httplib::ThreadPool(256); };
  }
  server->set_read_timeout(5, 0);
  server->set_write_timeout(5, 0);
  server->set_keep_alive_timeout(5);
  server->set_keep_alive_max_count(1000);
  server->set_tcp_nodelay(true);
  int listen_fd = -1;
  server->set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  server->set_default_headers({{"Cache-Control", "no-store"}});
  server->Get("/ceiling", [](const httplib::Request &, httplib::Response &res) {
    res.set_content("{\"ok\":true}", "application/json");
  });

  if (!server->bind_to_port(host, port)) {
    std::fprintf(stderr, "ceiling_http: cannot listen on %s:%d\n", host.c_str(), port);
    return 1;
  }
  ::listen(listen_fd, SOMAXCONN); // Debian's cpp-httplib listens with a backlog of 5
  std::printf("ceiling_http: listening on http://%s:%d (%s)\n", host.c_str(), port,
              loop ? "Latch's connection loop" : "cpp-httplib's connection loop");
  std::fflush(stdout);
  return server->listen_after_bind() ? 0 : 1;
}
