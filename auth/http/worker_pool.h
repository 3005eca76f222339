// The connection pool: a few threads always ready, more started on demand up to a cap.
#pragma once

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace latch::http {

// cpp-httplib serves each connection on one pool thread for as long as it stays open, so a
// fixed pool lets a few hundred idle keep-alive or half-sent connections starve everyone
// else. This pool keeps `core` threads and starts another whenever a connection arrives and
// none is free, up to `max`; a thread idle for `idle_timeout` beyond the core exits, and when
// the last of them has, the memory freed since goes back to the system. Past `max`,
// connections wait in order for a free thread.
class WorkerPool : public httplib::TaskQueue {
public:
  WorkerPool(std::size_t core, std::size_t max,
             std::chrono::milliseconds idle_timeout = std::chrono::seconds(10));
  ~WorkerPool() override;
  WorkerPool(const WorkerPool &) = delete;
  WorkerPool &operator=(const WorkerPool &) = delete;

  void enqueue(std::function<void()> job) override;
  // Runs every queued job, then joins every thread.
  void shutdown() override;

  struct Stats {
    std::size_t threads = 0; // alive now
    std::size_t idle = 0;    // alive and waiting for a job
    std::size_t queued = 0;  // jobs no thread has taken yet
    std::size_t peak_threads = 0;
  };
  Stats stats() const;

private:
  void start_thread_locked();
  // Moves the threads that left work() out of threads_, to be joined.
  std::vector<std::thread> take_retired_locked();
  void work();

  const std::size_t core_, max_;
  const std::chrono::milliseconds idle_timeout_;
  mutable std::mutex mutex_;
  std::condition_variable job_ready_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;  // every thread started and not yet joined
  std::vector<std::thread::id> done_; // threads that exited on their own, to join
  std::size_t alive_ = 0, idle_ = 0, peak_ = 0;
  bool stopping_ = false;
};

} // namespace latch::http
