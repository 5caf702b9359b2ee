#include "segnode/pipeline/disk_guard.hpp"

#include "segnode/core/clock.hpp"

#include <spdlog/spdlog.h>
#include <sys/statvfs.h>

namespace segnode::pipeline {

DiskGuard::DiskGuard(std::filesystem::path dir, std::uint64_t min_free_bytes)
    : m_dir(std::move(dir)), m_min_free(min_free_bytes) {}

std::optional<std::uint64_t> DiskGuard::free_bytes() const {
    struct statvfs fs {};
    if (statvfs(m_dir.c_str(), &fs) != 0) {
        return std::nullopt;
    }
    return static_cast<std::uint64_t>(fs.f_bavail) * fs.f_frsize;
}

std::optional<std::string> DiskGuard::check() {
    if (m_min_free == 0) {
        return std::nullopt;
    }
    const std::int64_t now = now_ms();
    std::uint64_t free = m_last_free.load();
    if (now - m_checked_ms.load() >= 1000) {
        const auto measured = free_bytes();
        if (!measured) {
            return std::nullopt; // cannot tell: do not refuse data for it
        }
        free = *measured;
        const bool was_low = m_last_free.load() < m_min_free && m_checked_ms.load() != 0;
        m_last_free = free;
        m_checked_ms = now;
        const bool low = free < m_min_free;
        if (low && !was_low) {
            spdlog::error("free space in {} is {} MiB, below retention.min_free_mb = {}: "
                          "refusing new instances",
                          m_dir.string(), free >> 20U, m_min_free >> 20U);
        } else if (!low && was_low) {
            spdlog::info("free space in {} is {} MiB again: accepting instances", m_dir.string(),
                         free >> 20U);
        }
    }
    if (free >= m_min_free) {
        return std::nullopt;
    }
    // The Error Comment is LO (64 characters): keep it short; the log line has the rest.
    return "low disk space: " + std::to_string(free >> 20U) + " MiB free, minimum " +
           std::to_string(m_min_free >> 20U) + " MiB";
}

} // namespace segnode::pipeline
