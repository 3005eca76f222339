// Group commit of refresh rotations.
#include "db/group_commit.h"

#include <exception>

namespace latch::db {

RotationGroupCommit::RotationGroupCommit(Sessions &sessions, AfterCommit after_commit)
    : sessions_(sessions), after_commit_(std::move(after_commit)) {}

RotateOutcome RotationGroupCommit::rotate(const Rotation &rotation) {
  Pending mine{rotation, {}, std::nullopt, false};
  std::unique_lock queue(mutex_);
  queue_.push_back(&mine);
  while (!mine.done) {
    if (running_) {
      done_.wait(queue);
      continue;
    }
    // No batch is running: this caller commits what is queued, its own rotation included.
    // Those that queue meanwhile form the next batch.
    running_ = true;
    std::vector<Pending *> batch;
    batch.swap(queue_);
    queue.unlock();
    std::vector<Rotation> rotations;
    rotations.reserve(batch.size());
    for (Pending *p : batch)
      rotations.push_back(p->rotation);
    RotatedBatch done;
    try {
      done = sessions_.rotate_refresh(rotations);
      for (std::size_t i = 0; i < batch.size(); ++i)
        batch[i]->result = done.outcomes.at(i);
    } catch (const std::exception &e) {
      done = {};
      for (Pending *p : batch)
        p->error = e.what();
    }
    // Committed, whatever follows: a failure to show it at once is made up by the follower.
    try {
      if (after_commit_) after_commit_(rotations, done);
    } catch (const std::exception &) {
    }
    queue.lock();
    for (Pending *p : batch)
      p->done = true;
    running_ = false;
    done_.notify_all();
  }
  if (mine.error) throw StoreError(*mine.error);
  return mine.result;
}

} // namespace latch::db
