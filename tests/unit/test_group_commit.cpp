// Unit tests for db/group_commit: batches, each caller's own result, and a failed batch's
// exception as it was thrown.
#include "db/group_commit.h"

#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

using namespace latch::db;

TEST_CASE("a group commit gives each caller its own result, and callers that wait share a "
          "batch") {
  std::atomic<int> batches = 0;
  std::atomic<bool> first_in = false, release = false;
  GroupCommit<int, int> group([&](const std::vector<int> &items) {
    ++batches;
    first_in = true;
    while (!release) // the first batch stays open while the others queue behind it
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    std::vector<int> out;
    for (int i : items)
      out.push_back(i * 10);
    return out;
  });
  std::vector<int> results(9, -1);
  std::vector<std::thread> callers;
  callers.emplace_back([&] { results[0] = group.submit(0); });
  while (!first_in)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (int i = 1; i < 9; ++i)
    callers.emplace_back([&, i] { results[i] = group.submit(i); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the eight queue
  release = true;
  for (auto &t : callers)
    t.join();
  for (int i = 0; i < 9; ++i)
    CHECK(results[i] == i * 10);
  CHECK(batches.load() < 9); // the eight that queued went in fewer batches than one each
}

TEST_CASE("a failed batch throws in each of its callers the exception it failed with") {
  GroupCommit<int, int> down([](const std::vector<int> &) -> std::vector<int> {
    throw StoreUnavailable("the database cannot be reached");
  });
  CHECK_THROWS_AS(down.submit(1), StoreUnavailable); // a 503, not a generic StoreError
  GroupCommit<int, int> broken(
      [](const std::vector<int> &) -> std::vector<int> { throw StoreError("disk I/O error"); });
  try {
    broken.submit(1);
    FAIL("no exception");
  } catch (const StoreUnavailable &) {
    FAIL("a StoreError became StoreUnavailable");
  } catch (const StoreError &e) {
    CHECK(std::string(e.what()) == "disk I/O error");
  }
  // Fewer results than items is a failed batch too, not a caller left with nothing.
  GroupCommit<int, int> short_one([](const std::vector<int> &) { return std::vector<int>{}; });
  CHECK_THROWS(short_one.submit(1));
}
