// Plain-HTTP connections served from epoll, with cpp-httplib parsing, routing and answering.
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
#include <vector>

namespace latch::http {

// cpp-httplib 0.11 gives each connection a thread that blocks on it for as long as it stays
// open, wakes every 11 ms while it is idle, and makes about eleven system calls a request.
// This server keeps cpp-httplib for everything it does with a request (parsing, routing,
// handlers, error handler, writing the response) and replaces only that connection loop,
// through the extension point cpp-httplib gives subclasses (process_and_close_socket and
// process_request):
//
// - Connections wait in one epoll set, holding no thread. A request is read into memory until
//   it is whole (framing.h), then one worker runs it through process_request from memory and
//   sends the response in one write. Idle keep-alive and trickling clients cost a buffer, not
//   a thread; pipelined requests are answered in order.
// - Workers take one ready connection at a time; a busy worker goes from one to the next
//   without sleeping. `threads` of them always run. Handlers may block (a hash, a commit, a
//   slow client's body): when every worker is inside a request, none has finished one for
//   10 ms, and one of them is waiting (asleep in the kernel) or has been on its request for
//   20 ms, another starts, up to `max_threads`. Workers only waiting for a core, or in line
//   for a password-hashing slot for under 100 ms (auth/wait_hint.h), start no more: that
//   would not help. One beyond `threads` exits once it finishes a request while another
//   worker is free, or after 10 s idle.
// - A connection with nothing to do is closed after the keep-alive time-out, one with half a
//   request after the read time-out since its last bytes; both are cpp-httplib's settings.
// - Past `max_connections` open at once, new connections wait in the listen backlog.
// - Requests that hash a password (`heavy`, by method and path) run at most `heavy_at_once`
//   at a time (one per hashing slot). Up to `heavy_queue` more are parked with their bytes,
//   holding no worker, and run in arrival order as running ones finish; past that they run at
//   once but are refused a place in the hasher's line (503, auth/wait_hint.h). So a flood of
//   sign-ins never holds the workers that token checks need, and hashing runs back to back.
class EventServer : public httplib::Server {
public:
  struct Options {
    std::size_t threads = 2;
    std::size_t max_threads = 1024;
    std::size_t max_connections = 1024;
    std::function<bool(std::string_view method, std::string_view path)> heavy; // none: no lane
    std::size_t heavy_at_once = 1;
    std::size_t heavy_queue = 0;
  };
  explicit EventServer(Options options);
  ~EventServer() override;
  EventServer(const EventServer &) = delete;
  EventServer &operator=(const EventServer &) = delete;

  // After listen_after_bind() has returned: closes idle connections, lets each busy worker
  // finish the request it is on, and joins every thread.
  void drain();

  struct Stats {
    std::size_t connections = 0; // open now
    std::size_t threads = 0;     // workers alive now
    std::size_t peak_threads = 0;
    std::size_t heavy_running = 0, heavy_parked = 0;
  };
  Stats stats() const;

private:
  struct Connection;
  class RequestStream;
  struct Worker;

  bool process_and_close_socket(socket_t sock) override;
  void work(Worker &self);
  // Ends a worker beyond `threads` (true: it must return now); load_over: it idled, so the
  // memory a burst left is given back when the last spare goes.
  bool retire_if_spare(Worker &self, bool load_over);
  bool some_worker_stuck_locked(std::chrono::steady_clock::time_point now) const;
  Connection *claim(std::uint64_t token, std::uint32_t events);
  // Reads what has come and answers every whole request; false once it has closed c or
  // parked it (a heavy request with no room to run).
  bool serve(Connection &c);
  enum class Lane { light, heavy, parked, overflow };
  Lane admit(Connection &c, std::string_view request);
  void park(Connection &c);
  void finish_heavy();
  Connection *take_parked();
  void serve_parked();
  // Gives c back to the epoll set; true if bytes came meanwhile and c must be served again.
  bool release(Connection &c);
  void close_locked(Connection &c);
  void close(Connection &c);
  bool send_all(int fd, std::string &out) const;
  void monitor();
  void start_worker_locked();
  void join_retired_locked();
  std::chrono::steady_clock::duration keep_alive_timeout() const;
  std::chrono::steady_clock::duration read_timeout() const;
  int write_timeout_ms() const;

  const Options options_;
  int epoll_fd_ = -1;
  int wake_fd_ = -1; // readable once draining: wakes every worker in epoll_wait
  int kick_fd_ = -1; // written when parked requests have room: wakes one worker

  // The open connections by descriptor, and what the acceptor waits on when they are many.
  mutable std::mutex connections_mutex_;
  std::vector<std::unique_ptr<Connection>> connections_;
  std::size_t open_ = 0;
  std::uint32_t next_id_ = 0;
  std::condition_variable room_;
  std::size_t heavy_running_ = 0;
  std::deque<Connection *> parked_; // whole heavy requests waiting for room, in arrival order
  std::atomic<bool> parked_waiting_ = false; // !parked_.empty(), read without the lock

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
