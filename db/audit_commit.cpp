// Group commit of audit events.
#include "db/audit_commit.h"

#include <exception>

namespace latch::db {

AuditGroupCommit::AuditGroupCommit(AuditLog &log, AfterCommit after_commit)
    : log_(log), after_commit_(std::move(after_commit)) {}

void AuditGroupCommit::append(AuditEvent event) {
  Pending mine{std::move(event), nullptr, false};
  std::unique_lock queue(mutex_);
  queue_.push_back(&mine);
  while (!mine.done) {
    if (running_) {
      done_.wait(queue);
      continue;
    }
    // No batch is running: this caller commits what is queued, its own event included. Those
    // that queue meanwhile form the next batch.
    running_ = true;
    std::vector<Pending *> batch;
    batch.swap(queue_);
    queue.unlock();
    std::vector<AuditEvent> events;
    events.reserve(batch.size());
    for (Pending *p : batch)
      events.push_back(p->event);
    bool committed = false;
    try {
      log_.append_audit(events);
      committed = true;
    } catch (const std::exception &) {
      // Each caller rethrows it as it was: StoreUnavailable stays a 503.
      for (Pending *p : batch)
        p->error = std::current_exception();
    }
    try {
      if (committed && after_commit_) after_commit_(events);
    } catch (const std::exception &) {
    }
    queue.lock();
    for (Pending *p : batch)
      p->done = true;
    running_ = false;
    done_.notify_all();
  }
  if (mine.error) std::rethrow_exception(mine.error);
}

} // namespace latch::db
