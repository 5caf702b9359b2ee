#pragma once
// Retention: the inputs and outputs of finished work are removed once they are older than
// retention.keep_hours (0 keeps everything).
// - A job that is done, failed or cancelled and finished before the cutoff: its directory
//   jobs/<id>/ (outputs and job.log) is removed and the job row marked purged (the row and
//   its timeline stay for `segnode job show`).
// - A routed series last received before the cutoff with no unfinished job: its instance
//   files and instance rows are removed and the series marked purged; the series row stays.
//   If the series is sent again later, it is received afresh. The series is marked purged
//   and its rows deleted in one guarded transaction first, then only that snapshot's files are
//   removed: an instance acknowledged during the pass is never lost (docs/pipeline.md).
// Quarantine is left alone: it is for an operator to review.
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/workdir.hpp"

#include <cstdint>
#include <functional>

namespace segnode::pipeline {

struct RetentionReport {
    std::int64_t jobs = 0;
    std::int64_t series = 0;
    std::int64_t files = 0;
    std::uint64_t bytes = 0;
};

/// Test seams: called with a series' row id at the named point of a retention pass.
struct RetentionHooks {
    std::function<void(std::int64_t)> after_select; ///< series chosen, nothing changed yet
    std::function<void(std::int64_t)> after_mark;   ///< series marked purged, files still there
};

/// One retention pass for work finished before `cutoff_ms`.
RetentionReport run_retention(const store::Workdir& workdir, ConnectionPool& pool,
                              std::int64_t cutoff_ms, std::int64_t now_ms,
                              const RetentionHooks& hooks = {});

} // namespace segnode::pipeline
