#pragma once
// Series completion: a series becomes `complete` when no instance has arrived for the quiet
// period (series.quiet_period_s), and optionally when the association that sent it is
// released. State lives in SQLite, so a restart picks up where it left off.
#include "segnode/core/config.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/receive_index.hpp"

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace segnode::pipeline {

class CompletionMonitor {
public:
    using Listener = std::function<void(const store::SeriesRow&)>;

    CompletionMonitor(const SeriesConfig& config, ConnectionPool& pool);
    ~CompletionMonitor();
    CompletionMonitor(const CompletionMonitor&) = delete;
    CompletionMonitor& operator=(const CompletionMonitor&) = delete;

    /// Called (on the monitor's thread or the releasing association's thread) for each series
    /// that became complete. Set before start().
    void set_listener(Listener listener) { m_listener = std::move(listener); }

    /// Runs one pass now (also used at start-up), then checks periodically on a thread.
    void start();
    void stop();
    /// One pass: completes every series quiet since `now - quiet period`; returns them.
    std::vector<store::SeriesRow> check_now();
    /// For series.complete_on_association_release.
    void association_released(std::int64_t association_id);

private:
    void announce(const std::vector<store::SeriesRow>& rows);

    SeriesConfig m_config;
    ConnectionPool& m_pool;
    Listener m_listener;
    std::thread m_thread;
    std::mutex m_mutex;
    std::condition_variable m_cv;
    bool m_stop = false;
};

} // namespace segnode::pipeline
