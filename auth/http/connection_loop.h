// The connection loop under cpp-httplib: epoll, TLS, strict framing, lanes, per-address limits.
#pragma once

#include "auth/http/framing.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <vector>

struct ssl_ctx_st;

namespace latch::http {

// What the application decides about a request from its method and path, once per request,
// as soon as its head is read: the one place a request is routed.
struct Verdict {
  int tag = -1;       // handed to the handler unchanged (ConnectionLoop::tag_of)
  bool heavy = false; // runs in the heavy lane (below)
  int refuse = 0;     // a status to answer (through the refusal handler) instead of running it
};

// cpp-httplib 0.11 gives each connection a thread that blocks on it for as long as it stays
// open, frames requests leniently (Content-Length read with strtoull, chunked bodies without a
// size limit, header lines without the colon rule), and decodes the path for routing after
// anything else has looked at the raw one. This server keeps cpp-httplib for what it does with
// a request once it is whole (parsing the normalised head, multipart bodies, routing to the
// handlers, writing the response) and replaces the rest, through the extension points
// cpp-httplib gives subclasses (process_and_close_socket, process_request):
//
// - Connections wait in one epoll set, holding no thread. Each request is framed here, strictly
//   (framing.h: RFC 9112, with Node's llhttp as the reference), while its bytes arrive: a head
//   past `max_head`, a Content-Length past the body limit (payload_max_length) or a chunked
//   body whose decoded size passes it is refused at once and the connection closed. A whole
//   request is handed to cpp-httplib normalised: its head with every field line as received
//   but the framing ones, one Content-Length, and the decoded body, from memory; the answer
//   goes out in one write. Pipelined requests are answered in order.
// - With `tls`, every connection speaks TLS through OpenSSL over the same non-blocking sockets,
//   with the same framing, limits and lanes.
// - `classify` routes each request once, from its method and its path decoded exactly as
//   cpp-httplib decodes it. Its tag reaches the handler (tag_of), its `heavy` picks the lane,
//   and its `refuse` (or a refusal of the loop's own: framing, a full heavy line) is answered
//   through the refusal handler with refusal_status(req) set, so the application renders
//   every answer in its own shape.
// - At most `max_per_address` connections are open from one client address (IPv6: one /64),
//   counted at accept before any byte is read; more are closed at once. Addresses for which
//   `unlimited` says so (the proxies in front) are not capped. Past `max_connections` open at
//   once, the connection idle longest is closed to make room; with none idle, new connections
//   wait in the listen backlog.
// - Workers take one ready connection at a time; a busy worker goes from one to the next
//   without sleeping. `threads` of them always run. Handlers may block (a hash, a commit):
//   when every worker is inside a request, none has finished one for 10 ms, and one of them is
//   waiting in the kernel or has been on its request for 20 ms, another starts, up to
//   `max_threads`. One beyond `threads` exits once it finishes a request while another is free,
//   or after 10 s idle.
// - A connection with nothing to do is closed after the keep-alive time-out. Half a request is
//   answered 400 and closed after the read time-out since its last bytes, or four read
//   time-outs after its first.
// - Requests of the heavy lane (those that hash a password) run at most `heavy_at_once` at a
//   time (one per hashing slot). Up to `heavy_queue` more wait whole, holding no worker, and run
//   in arrival order as running ones finish; past that they run at once marked line_full(),
//   for the application to refuse any wait (503) while still answering what needs no hash (a
//   locked account's 429). So a flood of sign-ins never holds the workers that token checks
//   need, and hashing runs back to back.
//
// Written against cpp-httplib 0.11.4 (Debian 12): see the static_assert in the .cpp for what to
// re-verify on an upgrade.
class ConnectionLoop : public httplib::Server {
public:
  struct Settings {
    std::size_t threads = 2;
    std::size_t max_threads = 1024;
    std::size_t max_connections = 1024;
    std::size_t max_per_address = 0;                    // 0: no cap
    std::function<bool(std::string_view ip)> unlimited; // exempt from max_per_address
    std::size_t max_head = 64 * 1024;                   // request line and field lines
    std::function<Verdict(std::string_view method, std::string_view path)> classify;
    std::size_t heavy_at_once = 1;
    std::size_t heavy_queue = 0;
    ssl_ctx_st *tls = nullptr; // SSL_CTX: every connection speaks TLS (the loop holds a reference)
  };
  explicit ConnectionLoop(Settings settings);
  ~ConnectionLoop() override;
  ConnectionLoop(const ConnectionLoop &) = delete;
  ConnectionLoop &operator=(const ConnectionLoop &) = delete;

  // Serves new connections with this TLS context from now on (a renewed certificate, on
  // SIGHUP); connections open keep theirs. Only on a loop made with `tls`.
  void set_tls(ssl_ctx_st *tls);

  // Answers the requests the loop or `classify` refuses; without one, a bare status. The loop
  // takes cpp-httplib's pre-routing handler for this: do not set another.
  void set_refusal_handler(Handler handler);
  // The status a refused request is to be answered with; 0 for one that was not refused.
  static int refusal_status(const httplib::Request &req);
  // classify()'s tag for this request; -1 without classify.
  static int tag_of(const httplib::Request &req);
  // Whether this heavy request came when the line was full: it runs at once, but must not wait
  // for a hashing slot (refused busy unless one is free), so it holds no worker for long.
  static bool line_full(const httplib::Request &req);
  // The name of each field line the loop left out because it was longer than cpp-httplib
  // reads (only a credential is left out; any other such line is refused 431).
  static bool field_dropped(const httplib::Request &req, std::string_view name);

  // After listen_after_bind() has returned: closes idle connections, lets each busy worker
  // finish the request it is on, and joins every thread.
  void drain();

  struct Stats {
    std::size_t connections = 0; // open now
    std::size_t threads = 0;     // workers alive now
    std::size_t peak_threads = 0;
    std::size_t heavy_running = 0, heavy_parked = 0;
    std::uint64_t refused_per_address = 0;      // connections closed at accept, ever
    std::uint64_t evicted_idle = 0;             // idle connections closed to make room, ever
    std::uint64_t descriptor_limit_reached = 0; // times the process ran out of descriptors
  };
  Stats stats() const;

private:
  struct Connection;
  struct Partial;
  struct Ready;
  class RequestStream;
  struct Worker;

  bool process_and_close_socket(socket_t sock) override;
  void work(Worker &self);
  bool retire_if_spare(Worker &self, bool load_over);
  bool some_worker_stuck_locked(std::chrono::steady_clock::time_point now) const;
  Connection *claim(std::uint64_t token, std::uint32_t events);
  // Reads what has come and answers every whole request; false once it has closed c or parked
  // it (a heavy request with no room to run).
  bool serve(Connection &c);
  bool handshake(Connection &c);
  bool linger(Connection &c);
  // Reads what the socket holds onto `in`; false once the peer has finished (or failed).
  bool receive(Connection &c, std::string &in, bool hangup);
  enum class Step { answered, wait, close, park };
  Step frame_next(Connection &c, std::string &in, std::size_t &pos, bool peer_done,
                  std::string &out);
  Step finish(Connection &c, Ready &ready, bool peer_done, std::string &out);
  bool answer(Connection &c, Ready &ready, bool last, std::string &out, bool line_full = false);
  void refuse(Connection &c, int status, const RequestHead *head, std::string &out);
  void refuse_body(Connection &c, int status, std::string &out);
  enum class Lane { light, heavy, parked, overflow };
  Lane admit(Connection &c, const Ready &ready);
  void park(Connection &c);
  void finish_heavy();
  Connection *take_parked();
  void serve_parked();
  bool release(Connection &c);
  void close_locked(Connection &c);
  void close(Connection &c);
  bool evict_idle_locked();
  bool send_all(Connection &c, std::string &out) const;
  void monitor();
  void watch_descriptor_limit(std::chrono::steady_clock::time_point now);
  void start_worker_locked();
  void join_retired_locked();
  std::chrono::steady_clock::duration keep_alive_timeout() const;
  std::chrono::steady_clock::duration read_timeout() const;
  int write_timeout_ms() const;

  const Settings options_;
  std::mutex tls_mutex_;
  ssl_ctx_st *tls_ = nullptr; // the context new connections get (options_.tls at first)
  Handler refusal_handler_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1; // readable once draining: wakes every worker in epoll_wait
  int kick_fd_ = -1; // written when parked requests have room: wakes one worker

  // The open connections by descriptor, the count by client address, and what the acceptor
  // waits on when they are many.
  mutable std::mutex connections_mutex_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::unordered_map<std::string, std::size_t> per_address_;
  std::size_t open_ = 0;
  std::uint32_t next_id_ = 0;
  std::condition_variable room_;
  std::size_t heavy_running_ = 0;
  std::deque<Connection *> parked_; // whole heavy requests waiting for room, in arrival order
  std::atomic<bool> parked_waiting_ = false; // !parked_.empty(), read without the lock
  std::uint64_t refused_per_address_ = 0, evicted_idle_ = 0;
  std::atomic<std::uint64_t> descriptor_limit_reached_ = 0;       // the monitor's
  bool at_descriptor_limit_ = false;                              // the monitor's
  std::chrono::steady_clock::time_point descriptor_limit_said_{}; // the monitor's

  // Workers.
  mutable std::mutex threads_mutex_;
  std::vector<std::unique_ptr<Worker>> workers_; // alive, or exited and not yet joined
  std::size_t alive_ = 0, peak_ = 0;
  std::atomic<std::size_t> idle_ = 0;         // in epoll_wait
  std::atomic<std::uint64_t> progress_ = 0;   // connections served, ever
  std::atomic<bool> monitor_resting_ = false; // sleeping long: tell it when idle_ hits 0
  std::atomic<bool> draining_ = false;

  std::mutex monitor_mutex_;
  std::condition_variable monitor_wake_;
  std::thread monitor_;
  bool drained_ = false;
};

} // namespace latch::http
