// Group commit of refresh rotations and of audit events.
#include "db/group_commit.h"

namespace latch::db {

RotationGroupCommit::RotationGroupCommit(Sessions &sessions, AfterCommit after_commit)
    : group_([&sessions, after = std::move(after_commit)](const std::vector<Rotation> &batch) {
        RotatedBatch done;
        std::exception_ptr failed;
        try {
          done = sessions.rotate_refresh(batch);
        } catch (const std::exception &) {
          done = {};
          failed = std::current_exception();
        }
        // Committed or not, whatever follows: a failure to show it at once is made up by the
        // follower.
        try {
          if (after) after(batch, done);
        } catch (const std::exception &) {
        }
        if (failed) std::rethrow_exception(failed);
        return done.outcomes;
      }) {}

AuditGroupCommit::AuditGroupCommit(AuditLog &log, AfterCommit after_commit)
    : group_([&log, after = std::move(after_commit)](const std::vector<AuditEvent> &batch) {
        log.append_audit(batch);
        try {
          if (after) after(batch);
        } catch (const std::exception &) {
        }
        return std::vector<std::monostate>(batch.size());
      }) {}

} // namespace latch::db
