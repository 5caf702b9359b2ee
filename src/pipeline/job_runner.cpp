#include "segnode/pipeline/job_runner.hpp"

#include "job_work.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/pipeline/process.hpp"
#include "segnode/pipeline/retention.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <spdlog/spdlog.h>
#include <string>
#include <thread>

namespace segnode::pipeline {

namespace asio = boost::asio;

struct JobRunner::Impl {
    struct Active {
        bool processing = false; ///< true: running (process_job); false: sending
        std::string algorithm;
        std::int64_t started_ms = 0;
        std::int64_t timeout_ms = 0; ///< jobs.timeout_s + the algorithm's timeout_s
        std::stop_source stop;
        std::shared_ptr<std::atomic<StopReason>> reason =
            std::make_shared<std::atomic<StopReason>>(StopReason::None);
    };

    Impl(const Config& config, const store::Workdir& workdir, ConnectionPool& pool,
         const algorithms::Registry& registry)
        : context{config, workdir, pool, registry}, workers(config.jobs.workers), timer(io) {}

    JobContext context;
    asio::io_context io;
    asio::thread_pool workers;
    asio::steady_timer timer;
    std::thread dispatcher;
    std::mutex mutex; ///< guards `active` and `stopping`
    std::map<std::int64_t, Active> active;
    bool stopping = false;
    std::int64_t next_retention_ms = 0;
    /// Retention runs here, off the dispatcher (file removal can take long), one at a time.
    std::thread retention;
    std::atomic<bool> retention_busy{false};

    void schedule(std::chrono::milliseconds delay) {
        timer.expires_after(delay);
        timer.async_wait([this](const boost::system::error_code& ec) {
            if (ec) {
                return; // cancelled: a wake() or stop() replaced the wait
            }
            tick();
        });
    }

    void tick() {
        try {
            route_complete_series();
            enforce_limits();
            dispatch();
            retention_if_due();
        } catch (const std::exception& e) {
            spdlog::error("job dispatcher: {}", e.what());
        } catch (...) {
            spdlog::error("job dispatcher: unknown exception");
        }
        const std::lock_guard lock(mutex);
        if (!stopping) {
            schedule(std::chrono::milliseconds(context.config.jobs.poll_interval_ms));
        }
    }

    void route_complete_series() {
        auto db = context.pool.acquire();
        std::vector<store::SeriesRow> pending = store::ReceiveIndex(*db).series_to_route();
        for (const store::SeriesRow& series : pending) {
            route(*db, series);
        }
    }

    void route(store::Database& db, const store::SeriesRow& series) {
        const RuleConfig* rule = first_match(context.config, series);
        const std::int64_t now = now_ms();
        auto lock = context.pool.write_lock();
        store::Transaction tx(db);
        store::ReceiveIndex index(db);
        if (!index.mark_routed(series.id)) {
            return; // reopened by a late instance meanwhile: routed when it completes again
        }
        const std::string what = series.attrs.modality + " series " + series.attrs.series_uid +
                                 " ('" + series.attrs.description + "', " +
                                 std::to_string(series.instance_count) + " instances, from " +
                                 series.calling_ae + " to " + series.called_ae + ")";
        if (rule == nullptr) {
            tx.commit();
            spdlog::info("no routing rule matches {}; not processed", what);
            return;
        }
        std::string unresolved;
        auto job = make_job(context.config, context.registry, series, rule->name, rule->algorithm,
                            rule->settings, rule->outputs, rule->destination, unresolved);
        if (!job) {
            // validate_rules() ran at start-up, so this is unexpected; keep it visible.
            tx.commit();
            spdlog::error("rule {} cannot make a job for {}: {}", rule->name, what,
                          job.error().message);
            return;
        }
        store::JobRepo jobs(db);
        const std::int64_t id =
            jobs.create_in_transaction(*job, now, "rule " + rule->name + " matched");
        if (!unresolved.empty()) {
            jobs.transition(id, store::JobState::Queued, store::JobState::Failed, now, {},
                            unresolved);
        }
        tx.commit();
        if (unresolved.empty()) {
            spdlog::info("rule {} matched {}: job {} ({} -> {})", rule->name, what, id,
                         rule->algorithm, job->dest_ae);
        } else {
            spdlog::error("rule {} matched {}: job {} failed: {}", rule->name, what, id,
                          unresolved);
        }
    }

    void retention_if_due() {
        const RetentionConfig& r = context.config.retention;
        const std::int64_t now = now_ms();
        if (r.keep_hours == 0 || now < next_retention_ms) {
            return;
        }
        if (retention_busy.load()) {
            return; // the previous run is still removing files: checked again next tick
        }
        if (retention.joinable()) {
            retention.join(); // finished: retention_busy is false
        }
        next_retention_ms = now + static_cast<std::int64_t>(r.check_interval_s) * 1000;
        const std::int64_t cutoff = now - static_cast<std::int64_t>(r.keep_hours) * 3600 * 1000;
        retention_busy.store(true);
        try {
            retention = std::thread([this, cutoff, now] {
                try {
                    run_retention(context.workdir, context.pool, cutoff, now);
                } catch (const std::exception& e) {
                    spdlog::error("retention: {}", e.what());
                } catch (...) {
                    spdlog::error("retention: unknown exception");
                }
                retention_busy.store(false);
            });
        } catch (const std::system_error& e) {
            retention_busy.store(false);
            spdlog::error("retention: cannot start its thread: {}", e.what());
        }
    }

    /// Timeouts and operator cancellation of running jobs.
    void enforce_limits() {
        std::vector<std::int64_t> cancel;
        {
            auto db = context.pool.acquire();
            cancel = store::JobRepo(*db).cancel_requested_running();
        }
        const std::int64_t now = now_ms();
        const std::lock_guard lock(mutex);
        for (auto& [id, a] : active) {
            if (!a.processing || a.stop.stop_requested()) {
                continue;
            }
            if (std::find(cancel.begin(), cancel.end(), id) != cancel.end()) {
                a.reason->store(StopReason::Cancelled);
                a.stop.request_stop();
            } else if (now - a.started_ms > a.timeout_ms) {
                a.reason->store(StopReason::Timeout);
                a.stop.request_stop();
            }
        }
    }

    /// Names of the algorithms whose max_parallel runs are all in progress. Under `mutex`.
    std::vector<std::string> algorithms_at_capacity() const {
        std::map<std::string, unsigned> running;
        for (const auto& [id, a] : active) {
            if (a.processing) {
                running[a.algorithm] += 1;
            }
        }
        std::vector<std::string> full;
        for (const auto& [name, n] : running) {
            const algorithms::Algorithm* algo = context.registry.find(name);
            if (algo != nullptr && algo->info().max_parallel > 0 &&
                n >= algo->info().max_parallel) {
                full.push_back(name);
            }
        }
        return full;
    }

    void dispatch() {
        for (;;) {
            std::vector<std::int64_t> busy;
            std::vector<std::string> full;
            {
                const std::lock_guard lock(mutex);
                if (stopping || active.size() >= context.config.jobs.workers) {
                    return;
                }
                for (const auto& [id, a] : active) {
                    busy.push_back(id);
                }
                full = algorithms_at_capacity();
            }
            auto db = context.pool.acquire();
            store::JobRepo repo(*db);
            const std::int64_t now = now_ms();
            auto job = repo.next_runnable(now, busy, full);
            if (!job) {
                return;
            }
            const bool processing = job->state == store::JobState::Queued;
            if (processing) {
                auto lock = context.pool.write_lock();
                if (!repo.transition(job->id, store::JobState::Queued, store::JobState::Running,
                                     now, "run " + std::to_string(job->runs + 1))) {
                    continue; // cancelled meanwhile (by the CLI)
                }
                job->runs += 1;
            }
            Active a;
            a.processing = processing;
            a.algorithm = job->spec.algorithm;
            a.started_ms = now;
            a.timeout_ms = job_timeout_s(context, job->spec.algorithm) * 1000;
            std::stop_token token = a.stop.get_token();
            std::shared_ptr<std::atomic<StopReason>> reason = a.reason;
            bool put_back = false;
            {
                // stop() may have begun since the check above; it only stops the jobs it
                // finds in `active`, so a job claimed meanwhile must not start.
                const std::lock_guard lock(mutex);
                if (stopping) {
                    put_back = true;
                } else {
                    active.emplace(job->id, std::move(a));
                }
            }
            if (put_back) {
                if (processing) {
                    auto lock = context.pool.write_lock();
                    repo.transition(job->id, store::JobState::Running, store::JobState::Queued,
                                    now_ms(), "not started: shutting down");
                }
                return;
            }
            asio::post(workers, [this, row = *job, processing, token, reason] {
                run_work(row, processing, token, *reason);
            });
        }
    }

    /// The posted work of one job. Nothing escapes it: an exception (also one from recording
    /// a failure in the database) is logged and, for a processing run, recorded as the job's
    /// failure where possible; the job always leaves `active` and the dispatcher is woken.
    void run_work(const store::JobRow& row, bool processing, std::stop_token token,
                  const std::atomic<StopReason>& reason) noexcept {
        struct Done {
            Done(Impl& impl, std::int64_t id) : m_impl(impl), m_id(id) {}
            Done(const Done&) = delete;
            Done& operator=(const Done&) = delete;
            ~Done() { m_impl.work_done(m_id); }
            Impl& m_impl;
            std::int64_t m_id;
        } done(*this, row.id);
        try {
            if (processing) {
                process_job(context, row, std::move(token), reason);
            } else {
                send_job(context, row.id);
            }
        } catch (const std::exception& e) {
            work_failed(row, processing, e.what());
        } catch (...) {
            work_failed(row, processing, "unknown exception");
        }
    }

    void work_failed(const store::JobRow& row, bool processing, const char* what) noexcept {
        try {
            spdlog::error("job {}: internal error: {}", row.id, what);
            auto db = context.pool.acquire();
            auto lock = context.pool.write_lock();
            store::JobRepo repo(*db);
            const std::int64_t now = now_ms();
            if (processing) {
                repo.transition(row.id, store::JobState::Running, store::JobState::Failed, now, {},
                                std::string("internal error: ") + what);
            } else {
                // Counted as a failed attempt with its delay, so it neither spins nor retries
                // for ever.
                const auto current = repo.find(row.id);
                if (current && current->state == store::JobState::Sending) {
                    repo.record_send_attempt(
                        row.id, now,
                        now + retry_delay_ms(context.config.send, current->send_attempts + 1),
                        std::string("internal error: ") + what);
                }
            }
        } catch (const std::exception& e) {
            spdlog::error("job {}: cannot record the internal error: {}", row.id, e.what());
        } catch (...) {
            spdlog::error("job {}: cannot record the internal error", row.id);
        }
    }

    void work_done(std::int64_t id) noexcept {
        try {
            {
                const std::lock_guard lock(mutex);
                active.erase(id);
            }
            // A slot is free: look for more work now rather than at the next poll.
            asio::post(io, [this] { wake_now(); });
        } catch (const std::exception& e) {
            spdlog::error("job {}: cannot release its worker slot: {}", id, e.what());
        } catch (...) {
            spdlog::error("job {}: cannot release its worker slot", id);
        }
    }

    void wake_now() {
        const std::lock_guard lock(mutex);
        if (!stopping) {
            schedule(std::chrono::milliseconds(0));
        }
    }
};

JobRunner::JobRunner(const Config& config, const store::Workdir& workdir, ConnectionPool& pool,
                     const algorithms::Registry& registry)
    : m_impl(std::make_unique<Impl>(config, workdir, pool, registry)) {}

JobRunner::~JobRunner() {
    stop();
}

void JobRunner::start() {
    // Before any job runs again: what a killed node's programs left running goes first.
    if (const std::size_t n = kill_orphaned_processes(m_impl->context.workdir.root() / "jobs");
        n > 0) {
        spdlog::warn("killed {} process(es) left running by external algorithms of the previous "
                     "run of segnode",
                     n);
    }
    {
        auto db = m_impl->context.pool.acquire();
        auto lock = m_impl->context.pool.write_lock();
        if (const int n = store::JobRepo(*db).requeue_interrupted(now_ms()); n > 0) {
            spdlog::warn("{} job(s) were running when segnode last stopped; queued again", n);
        }
    }
    spdlog::info("job runner: {} worker(s), timeout {} s, {} routing rule(s)",
                 m_impl->context.config.jobs.workers, m_impl->context.config.jobs.timeout_s,
                 m_impl->context.config.rules.size());
    m_impl->schedule(std::chrono::milliseconds(0));
    m_impl->dispatcher = std::thread([this] {
        auto guard = asio::make_work_guard(m_impl->io);
        m_impl->io.run();
    });
}

void JobRunner::wake() {
    asio::post(m_impl->io, [this] { m_impl->wake_now(); });
}

void JobRunner::stop() {
    if (!m_impl->dispatcher.joinable()) {
        return;
    }
    {
        const std::lock_guard lock(m_impl->mutex);
        m_impl->stopping = true;
        for (auto& [id, a] : m_impl->active) {
            if (a.processing) {
                a.reason->store(StopReason::Shutdown);
                a.stop.request_stop();
            }
        }
    }
    // First no more dispatching: the dispatcher finishes the handler it is in (a job it claims
    // from now on sees `stopping` and goes back to queued) and ends. Wake-ups posted by the
    // workers from now on are dropped with the io_context.
    m_impl->io.stop();
    m_impl->dispatcher.join();
    if (m_impl->retention.joinable()) {
        m_impl->retention.join();
    }
    // Workers finish their current step (a stopped algorithm returns quickly; a send in
    // progress completes or times out).
    m_impl->workers.join();
}

} // namespace segnode::pipeline
