#include "segnode/pipeline/completion.hpp"

#include "segnode/core/clock.hpp"

#include <algorithm>
#include <chrono>
#include <spdlog/spdlog.h>

namespace segnode::pipeline {

CompletionMonitor::CompletionMonitor(const SeriesConfig& config, ConnectionPool& pool)
    : m_config(config), m_pool(pool) {}

CompletionMonitor::~CompletionMonitor() {
    stop();
}

void CompletionMonitor::start() {
    check_now();
    // Check often enough that completion is late by at most a quarter of the quiet period
    // (and at most a second).
    const auto interval = std::chrono::milliseconds(std::clamp<std::int64_t>(
        static_cast<std::int64_t>(m_config.quiet_period_s) * 250, 100, 1000));
    m_thread = std::thread([this, interval] {
        std::unique_lock lock(m_mutex);
        while (!m_stop) {
            m_cv.wait_for(lock, interval, [this] { return m_stop; });
            if (m_stop) {
                break;
            }
            lock.unlock();
            check_now();
            lock.lock();
        }
    });
}

void CompletionMonitor::stop() {
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_cv.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

std::vector<store::SeriesRow> CompletionMonitor::check_now() {
    try {
        auto db = m_pool.acquire();
        auto writing = m_pool.write_lock();
        const std::int64_t now = now_ms();
        auto rows = store::ReceiveIndex(*db).complete_quiet_series(
            now - static_cast<std::int64_t>(m_config.quiet_period_s) * 1000, now);
        writing.unlock();
        announce(rows);
        return rows;
    } catch (const store::DatabaseError& e) {
        spdlog::error("series completion check failed: {}", e.what());
        return {};
    }
}

void CompletionMonitor::association_released(std::int64_t association_id) {
    if (!m_config.complete_on_association_release) {
        return;
    }
    try {
        auto db = m_pool.acquire();
        auto writing = m_pool.write_lock();
        auto rows =
            store::ReceiveIndex(*db).complete_series_of_association(association_id, now_ms());
        writing.unlock();
        announce(rows);
    } catch (const store::DatabaseError& e) {
        spdlog::error("series completion on release of association {} failed: {}", association_id,
                      e.what());
    }
}

void CompletionMonitor::announce(const std::vector<store::SeriesRow>& rows) {
    for (const auto& row : rows) {
        spdlog::info("series {} complete: {} instance(s), {} {}, from {} ({})",
                     row.attrs.series_uid, row.instance_count, row.attrs.modality,
                     row.attrs.description, row.calling_ae, row.peer_address);
        if (m_listener) {
            m_listener(row);
        }
    }
}

} // namespace segnode::pipeline
