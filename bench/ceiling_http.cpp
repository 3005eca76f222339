// HTTP ceiling for the benchmarks: a bare cpp-httplib route answering a fixed JSON body, set up as Latch's server is.
//
// Usage: ceiling_http HOST PORT [THREADS]
// GET /ceiling answers {"ok":true}. Like Latch it keeps one thread per open connection (a
// pool of THREADS, default 256, more than the benchmark's connections), disables Nagle and
// keeps connections alive the same way, so the gap to Latch is what Latch does per request.
#include <httplib.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s HOST PORT [THREADS]\n", argv[0]);
    return 2;
  }
  const std::string host = argv[1];
  const int port = std::atoi(argv[2]);
  const std::size_t threads = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 256;

  httplib::Server server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.set_keep_alive_timeout(5);
  server.set_keep_alive_max_count(1000);
  server.set_tcp_nodelay(true);
  server.set_default_headers({{"Cache-Control", "no-store"}});
  server.Get("/ceiling", [](const httplib::Request &, httplib::Response &res) {
    res.set_content("{\"ok\":true}", "application/json");
  });

  std::printf("ceiling_http: listening on http://%s:%d with %zu threads\n", host.c_str(), port,
              threads);
  std::fflush(stdout);
  return server.listen(host, port) ? 0 : 1;
}
