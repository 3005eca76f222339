// Writes that arrive together, committed together: refresh rotations and audit events.
#pragma once

#include "db/store.h"

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <utility>
#include <variant>
#include <vector>

namespace latch::db {

// A group commit: an item waits in a queue; the first caller to find no batch running commits
// every queued item in one transaction (`commit`), and each caller returns only after the
// commit that holds its item, so what an answered request wrote is durable and visible. The
// queue holds at most one item per waiting caller: nothing piles up in memory when the
// database is slow. A batch that failed throws, in each of its callers, the exception it failed
// with (a StoreUnavailable stays a 503).
template <class Item, class Result> class GroupCommit {
public:
  // Commits a batch in one transaction and returns one result per item, in order; throws when
  // none of it happened.
  using Commit = std::function<std::vector<Result>(const std::vector<Item> &)>;
  explicit GroupCommit(Commit commit) : commit_(std::move(commit)) {}

  Result submit(Item item) {
    Pending mine{std::move(item), {}, nullptr, false};
    std::unique_lock queue(mutex_);
    queue_.push_back(&mine);
    while (!mine.done) {
      if (running_) {
        done_.wait(queue);
        continue;
      }
      // No batch is running: this caller commits what is queued, its own item included.
      // Those that queue meanwhile form the next batch.
      running_ = true;
      std::vector<Pending *> batch;
      batch.swap(queue_);
      queue.unlock();
      std::vector<Item> items;
      items.reserve(batch.size());
      for (Pending *p : batch)
        items.push_back(p->item);
      try {
        std::vector<Result> results = commit_(items);
        for (std::size_t i = 0; i < batch.size(); ++i)
          batch[i]->result = std::move(results.at(i));
      } catch (const std::exception &) {
        for (Pending *p : batch)
          p->error = std::current_exception();
      }
      queue.lock();
      for (Pending *p : batch)
        p->done = true;
      running_ = false;
      done_.notify_all();
    }
    if (mine.error) std::rethrow_exception(mine.error);
    return std::move(mine.result);
  }

private:
  struct Pending {
    Item item;
    Result result;
    std::exception_ptr error;
    bool done = false;
  };
  Commit commit_;
  std::mutex mutex_; // guards the three below
  std::condition_variable done_;
  std::vector<Pending *> queue_;
  bool running_ = false;
};

// The group commit over Sessions::rotate_refresh. `after_commit` runs with each batch and what
// came of it (the server's SessionCache takes it in); a batch that failed is passed with no
// outcomes.
class RotationGroupCommit {
public:
  using AfterCommit = std::function<void(const std::vector<Rotation> &, const RotatedBatch &)>;
  explicit RotationGroupCommit(Sessions &sessions, AfterCommit after_commit = {});
  // Throws StoreError (the batch that held it failed: none of it happened).
  RotateOutcome rotate(const Rotation &rotation) { return group_.submit(rotation); }

private:
  GroupCommit<Rotation, RotateOutcome> group_;
};

// The group commit over AuditLog::append_audit, so an event of an answered request is never
// lost to a kill. `after_commit` runs with each batch that committed (the server counts them
// for /metrics).
class AuditGroupCommit {
public:
  using AfterCommit = std::function<void(const std::vector<AuditEvent> &)>;
  explicit AuditGroupCommit(AuditLog &log, AfterCommit after_commit = {});
  // Throws StoreError (the batch that held it failed: none of it was written).
  void append(AuditEvent event) { group_.submit(std::move(event)); }

private:
  GroupCommit<AuditEvent, std::monostate> group_;
};

} // namespace latch::db
