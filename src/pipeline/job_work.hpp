#pragma once
// The work of one job, run on a worker thread of the JobRunner: processing (load the series,
// run the algorithm, write the outputs durably under jobs/<id>/) and send-back (C-STORE of the
// unsent outputs, retry bookkeeping). Every step appends to jobs/<id>/job.log.
#include <atomic>
#include <cstdint>
#include <stop_token>
#include <string>

#include "segnode/algorithms/registry.hpp"
#include "segnode/core/config.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/workdir.hpp"

namespace segnode::pipeline {

struct JobContext {
    const Config& config;
    const store::Workdir& workdir;
    ConnectionPool& pool;
    const algorithms::Registry& registry;
};

/// Why a running job was asked to stop.
enum class StopReason : int { None, Cancelled, Timeout, Shutdown };

/// A running job's time limit in seconds: jobs.timeout_s (loading, writing) plus the
/// algorithm's own timeout_s (0 for an unknown algorithm).
std::int64_t job_timeout_s(const JobContext& context, const std::string& algorithm);

/// running -> sending (then sends at once), or -> failed / cancelled / queued (shutdown).
void process_job(const JobContext& context, const store::JobRow& job, std::stop_token stop,
                 const std::atomic<StopReason>& reason);

/// One send attempt for a `sending` job: -> done, or a retry scheduled, or -> failed when the
/// attempts are used up.
void send_job(const JobContext& context, std::int64_t job_id);

/// Delay before retry number `attempt` (1-based): initial * 2^(attempt-1), capped.
std::int64_t retry_delay_ms(const SendConfig& send, std::int64_t attempt);

} // namespace segnode::pipeline
