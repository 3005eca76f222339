// The connection pool grows on demand up to its cap, shrinks back, and runs every job.
#include "auth/http/worker_pool.h"

#include <doctest/doctest.h>

#include <atomic>
#include <future>

using latch::http::WorkerPool;
using namespace std::chrono_literals;

namespace {

// Jobs that block until released, like connections held open by their clients.
struct Gate {
  std::promise<void> open;
  std::shared_future<void> opened = open.get_future().share();
  std::function<void()> job(std::atomic<int> &started) {
    auto f = opened;
    return [f, &started] {
      ++started;
      f.wait();
    };
  }
};

template <typename Pred> bool eventually(Pred pred) {
  for (int i = 0; i < 500; ++i) {
    if (pred()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return pred();
}

} // namespace

TEST_CASE("a busy pool starts a thread for each waiting job up to its cap") {
  WorkerPool pool(2, 8);
  CHECK(pool.stats().threads == 2);
  Gate gate;
  std::atomic<int> started = 0;
  for (int i = 0; i < 6; ++i)
    pool.enqueue(gate.job(started));
  // Six held connections run at once: none waits for another to finish.
  CHECK(eventually([&] { return started == 6; }));
  CHECK(pool.stats().threads == 6);
  gate.open.set_value();
  pool.shutdown();
}

TEST_CASE("past its cap the pool queues jobs and runs them when a thread frees up") {
  WorkerPool pool(1, 3);
  Gate gate;
  std::atomic<int> started = 0;
  for (int i = 0; i < 5; ++i)
    pool.enqueue(gate.job(started));
  CHECK(eventually([&] { return started == 3; }));
  auto s = pool.stats();
  CHECK(s.threads == 3);
  CHECK(s.queued == 2);
  CHECK(started == 3); // the other two are still waiting
  gate.open.set_value();
  CHECK(eventually([&] { return started == 5; }));
  CHECK(pool.stats().peak_threads == 3);
  pool.shutdown();
}

TEST_CASE("threads beyond the core retire after being idle and the pool grows again") {
  WorkerPool pool(1, 4, 50ms);
  {
    Gate gate;
    std::atomic<int> started = 0;
    for (int i = 0; i < 4; ++i)
      pool.enqueue(gate.job(started));
    REQUIRE(eventually([&] { return started == 4; }));
    gate.open.set_value();
  }
  CHECK(eventually([&] { return pool.stats().threads == 1; }));
  Gate gate;
  std::atomic<int> started = 0;
  for (int i = 0; i < 4; ++i)
    pool.enqueue(gate.job(started));
  CHECK(eventually([&] { return started == 4; }));
  gate.open.set_value();
  pool.shutdown();
}

TEST_CASE("shutdown runs the jobs already queued, then joins") {
  std::atomic<int> done = 0;
  {
    WorkerPool pool(1, 1);
    for (int i = 0; i < 50; ++i)
      pool.enqueue([&] { ++done; });
    pool.shutdown();
    CHECK(done == 50);
  }
  CHECK(done == 50);
}
