#pragma once
// The job runner: routes complete series into jobs and runs jobs on a worker pool.
//
// One dispatcher thread (a Boost.Asio io_context with a timer) does all bookkeeping: it
// routes complete series (routing.hpp; the job is created and the series marked routed in
// one transaction), claims runnable jobs (queued -> running by a guarded UPDATE, or sending
// with its retry delay elapsed) up to jobs.workers at a time and up to each algorithm's
// max_parallel runs, and enforces per-job timeouts (jobs.timeout_s + the algorithm's
// timeout_s) and operator cancellation through each job's stop token. The work itself (load
// the series, run the algorithm, write SEG/RTSTRUCT, send them back) runs on a
// boost::asio::thread_pool; no exception escapes it. Retention runs on a thread of its own.
//
// Restart safety: jobs found `running` at start-up go back to `queued` (their outputs are
// rewritten); `sending` jobs resume and send only the outputs without `sent_at`, which is
// recorded as soon as the destination acknowledges each object.
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/config.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/workdir.hpp"

#include <memory>

namespace segnode::pipeline {

class JobRunner {
public:
    JobRunner(const Config& config, const store::Workdir& workdir, ConnectionPool& pool,
              const algorithms::Registry& registry);
    ~JobRunner();
    JobRunner(const JobRunner&) = delete;
    JobRunner& operator=(const JobRunner&) = delete;

    /// Requeues interrupted jobs, then starts the dispatcher and the workers.
    void start();
    /// Routes and dispatches now rather than at the next poll (a series just completed).
    void wake();
    /// Stops claiming work; running jobs are asked to stop (they return to `queued`) and
    /// sends in progress finish; waits for the dispatcher (a job it was claiming goes back to
    /// `queued`), a retention run in progress, then the workers.
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

} // namespace segnode::pipeline
