#include "segnode/pipeline/job_runner.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/executor_work_guard.hpp>

#include <map>
#include <spdlog/spdlog.h>
#include <thread>

#include "job_work.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/pipeline/retention.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

namespace segnode::pipeline {

namespace asio = boost::asio;

struct JobRunner::Impl {
    struct Active {
        bool processing = false; ///< true: running (process_job); false: sending
        std::int64_t started_ms = 0;
        std::stop_source stop;
        std::shared_ptr<std::atomic<StopReason>> reason =
            std::make_shared<std::atomic<StopReason>>(StopReason::None);
    };

    Impl(const Config& config, const store::Workdir& workdir, ConnectionPool& pool,
         const algorithms::Registry& registry)
        : context{config, workdir, pool, registry}, workers(config.jobs.workers),
          timer(io) {}

    JobContext context;
    asio::io_context io;
    asio::thread_pool workers;
    asio::steady_timer timer;
    std::thread dispatcher;
    std::mutex mutex; ///< guards `active` and `stopping`
    std::map<std::int64_t, Active> active;
    bool stopping = false;
    std::int64_t next_retention_ms = 0;

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
        auto job = make_job(context.config, context.registry, series, rule->name,
                            rule->algorithm, rule->settings, rule->outputs, rule->destination,
                            unresolved);
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
        next_retention_ms = now + static_cast<std::int64_t>(r.check_interval_s) * 1000;
        run_retention(context.workdir, context.pool,
                      now - static_cast<std::int64_t>(r.keep_hours) * 3600 * 1000, now);
    }

    /// Timeouts and operator cancellation of running jobs.
    void enforce_limits() {
        std::vector<std::int64_t> cancel;
        {
            auto db = context.pool.acquire();
            cancel = store::JobRepo(*db).cancel_requested_running();
        }
        const std::int64_t now = now_ms();
        const std::int64_t timeout_ms =
            static_cast<std::int64_t>(context.config.jobs.timeout_s) * 1000;
        const std::lock_guard lock(mutex);
        for (auto& [id, a] : active) {
            if (!a.processing || a.stop.stop_requested()) {
                continue;
            }
            if (std::find(cancel.begin(), cancel.end(), id) != cancel.end()) {
                a.reason->store(StopReason::Cancelled);
                a.stop.request_stop();
            } else if (now - a.started_ms > timeout_ms) {
                a.reason->store(StopReason::Timeout);
                a.stop.request_stop();
            }
        }
    }

    void dispatch() {
        for (;;) {
            std::vector<std::int64_t> busy;
            {
                const std::lock_guard lock(mutex);
                if (stopping || active.size() >= context.config.jobs.workers) {
                    return;
                }
                for (const auto& [id, a] : active) {
                    busy.push_back(id);
                }
            }
            auto db = context.pool.acquire();
            store::JobRepo repo(*db);
            const std::int64_t now = now_ms();
            auto job = repo.next_runnable(now, busy);
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
            a.started_ms = now;
            std::stop_token token = a.stop.get_token();
            std::shared_ptr<std::atomic<StopReason>> reason = a.reason;
            {
                const std::lock_guard lock(mutex);
                active.emplace(job->id, std::move(a));
            }
            asio::post(workers, [this, row = *job, processing, token, reason] {
                if (processing) {
                    process_job(context, row, token, *reason);
                } else {
                    send_job(context, row.id);
                }
                {
                    const std::lock_guard lock(mutex);
                    active.erase(row.id);
                }
                // A slot is free: look for more work now rather than at the next poll.
                asio::post(io, [this] { wake_now(); });
            });
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

JobRunner::~JobRunner() { stop(); }

void JobRunner::start() {
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
    asio::post(m_impl->io, [this] { m_impl->timer.cancel(); });
    // Workers finish their current step (a stopped algorithm returns quickly; a send in
    // progress completes or times out), then the dispatcher ends.
    m_impl->workers.join();
    m_impl->io.stop();
    m_impl->dispatcher.join();
}

} // namespace segnode::pipeline
