// Refresh rotations that arrive together, committed together.
#pragma once

#include "db/store.h"

#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace latch::db {

// A group commit over Sessions::rotate_refresh: a rotation waits in a queue; the first caller
// to find no batch running commits every queued rotation in one transaction, runs
// `after_commit` with the batch and what came of it (the server's SessionCache takes it in),
// and each caller returns only after the commit that holds its rotation, so every answered
// refresh is durable and visible. A batch that failed is passed with no outcomes.
class RotationGroupCommit {
public:
  using AfterCommit = std::function<void(const std::vector<Rotation> &, const RotatedBatch &)>;
  RotationGroupCommit(Sessions &sessions, AfterCommit after_commit = {});
  // Throws StoreError (the batch that held it failed: none of it happened).
  RotateOutcome rotate(const Rotation &rotation);

private:
  struct Pending {
    Rotation rotation;
    RotateOutcome result;
    std::optional<std::string> error;
    bool done = false;
  };
  Sessions &sessions_;
  AfterCommit after_commit_;
  std::mutex mutex_; // guards the three below
  std::condition_variable done_;
  std::vector<Pending *> queue_;
  bool running_ = false;
};

} // namespace latch::db
