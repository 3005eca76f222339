// The connection pool: a few threads always ready, more started on demand up to a cap.
#include "auth/http/worker_pool.h"

#include <malloc.h>

#include <algorithm>

namespace latch::http {

WorkerPool::WorkerPool(std::size_t core, std::size_t max, std::chrono::milliseconds idle_timeout)
    : core_(std::max<std::size_t>(core, 1)), max_(std::max(max, std::max<std::size_t>(core, 1))),
      idle_timeout_(idle_timeout) {
  std::lock_guard lock(mutex_);
  for (std::size_t i = 0; i < core_; ++i)
    start_thread_locked();
}

WorkerPool::~WorkerPool() {
  shutdown();
}

std::vector<std::thread> WorkerPool::take_retired_locked() {
  std::vector<std::thread> retired;
  for (auto id : done_) {
    auto it = std::find_if(threads_.begin(), threads_.end(),
                           [&](const std::thread &t) { return t.get_id() == id; });
    if (it != threads_.end()) { // else shutdown() has it and joins it
      retired.push_back(std::move(*it));
      threads_.erase(it);
    }
  }
  done_.clear();
  return retired;
}

void WorkerPool::start_thread_locked() {
  for (auto &t : take_retired_locked())
    t.join(); // it has left work() already; this returns at once
  ++alive_;
  ++idle_;
  peak_ = std::max(peak_, alive_);
  threads_.emplace_back([this] { work(); });
}

void WorkerPool::enqueue(std::function<void()> job) {
  {
    std::lock_guard lock(mutex_);
    jobs_.push_back(std::move(job));
    if (idle_ < jobs_.size() && alive_ < max_ && !stopping_) start_thread_locked();
  }
  job_ready_.notify_one();
}

void WorkerPool::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    bool woke =
        job_ready_.wait_for(lock, idle_timeout_, [this] { return !jobs_.empty() || stopping_; });
    if (!woke && alive_ > core_) break; // idle too long and not one of the core
    if (jobs_.empty()) {
      if (stopping_) break;
      continue;
    }
    auto job = std::move(jobs_.front());
    jobs_.pop_front();
    --idle_;
    lock.unlock();
    job();
    job = nullptr; // release what the job captured before taking the lock
    lock.lock();
    ++idle_;
  }
  --idle_;
  --alive_;
  // A thread's stack is freed when it is joined: each retiring thread joins the ones that
  // retired before it, so after a burst the hundreds of threads it started do not keep
  // their stacks until the next thread starts. At most the last one waits.
  std::vector<std::thread> retired = take_retired_locked();
  done_.push_back(std::this_thread::get_id());
  const bool back_to_core = alive_ == core_ && !stopping_;
  lock.unlock();
  for (auto &t : retired)
    t.join();
  // The last thread of a burst to retire hands the memory the burst freed back to the system:
  // malloc keeps freed pages of its heaps otherwise, several MB after a few hundred
  // connections.
  if (back_to_core) malloc_trim(0);
}

void WorkerPool::shutdown() {
  std::vector<std::thread> threads;
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    threads.swap(threads_);
  }
  job_ready_.notify_all();
  for (auto &t : threads)
    if (t.joinable()) t.join();
}

WorkerPool::Stats WorkerPool::stats() const {
  std::lock_guard lock(mutex_);
  return {alive_, idle_, jobs_.size(), peak_};
}

} // namespace latch::http
