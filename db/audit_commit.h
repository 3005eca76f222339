// Audit events that arrive together, committed together.
#pragma once

#include "db/store.h"

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

namespace latch::db {

// A group commit over AuditLog::append_audit, as RotationGroupCommit is over rotations: an
// event waits in a queue; the first caller to find no batch running appends every queued event
// in one transaction, and each caller returns only after the commit that holds its event, so
// an event of an answered request is never lost to a kill. The queue holds at most one event
// per waiting caller: nothing piles up in memory when the database is slow. `after_commit`
// runs with each batch that committed (the server counts them for /metrics).
class AuditGroupCommit {
public:
  using AfterCommit = std::function<void(const std::vector<AuditEvent> &)>;
  explicit AuditGroupCommit(AuditLog &log, AfterCommit after_commit = {});
  // Throws StoreError (the batch that held it failed: none of it was written).
  void append(AuditEvent event);

private:
  struct Pending {
    AuditEvent event;
    std::exception_ptr error;
    bool done = false;
  };
  AuditLog &log_;
  AfterCommit after_commit_;
  std::mutex mutex_; // guards the three below
  std::condition_variable done_;
  std::vector<Pending *> queue_;
  bool running_ = false;
};

} // namespace latch::db
