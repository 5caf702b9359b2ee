#include "segnode/pipeline/retention.hpp"

#include <spdlog/spdlog.h>

#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

namespace segnode::pipeline {
namespace {

/// Removes a file, counting it; a file already gone is fine.
void remove_counted(const std::filesystem::path& file, RetentionReport& report) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(file, ec);
    if (std::filesystem::remove(file, ec)) {
        report.files += 1;
        report.bytes += ec ? 0 : size;
    } else if (ec) {
        spdlog::warn("retention: cannot remove {}: {}", file.string(), ec.message());
    }
}

} // namespace

RetentionReport run_retention(const store::Workdir& workdir, ConnectionPool& pool,
                              std::int64_t cutoff_ms, std::int64_t now_ms) {
    RetentionReport report;
    auto db = pool.acquire();
    store::JobRepo jobs(*db);
    for (const std::int64_t id : jobs.finished_before(cutoff_ms)) {
        const auto dir = workdir.jobs_dir() / std::to_string(id);
        std::error_code ec;
        if (std::filesystem::is_directory(dir, ec)) {
            for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
                remove_counted(entry.path(), report);
            }
            std::filesystem::remove(dir, ec);
        }
        auto lock = pool.write_lock();
        jobs.mark_purged(id, now_ms);
        report.jobs += 1;
    }
    store::ReceiveIndex index(*db);
    for (const store::SeriesRow& series : index.purgeable_series(cutoff_ms)) {
        std::filesystem::path series_dir;
        for (const std::string& rel : index.series_files(series.id)) {
            const auto file = workdir.root() / rel;
            series_dir = file.parent_path();
            remove_counted(file, report);
        }
        std::error_code ec;
        if (!series_dir.empty()) {
            std::filesystem::remove(series_dir, ec); // only if empty
            std::filesystem::remove(series_dir.parent_path(), ec);
        }
        auto lock = pool.write_lock();
        index.mark_series_purged(series.id, now_ms);
        report.series += 1;
    }
    if (report.jobs > 0 || report.series > 0) {
        spdlog::info("retention: removed {} job output dir(s) and {} series ({} files, {} MiB)",
                     report.jobs, report.series, report.files, report.bytes >> 20U);
    }
    return report;
}

} // namespace segnode::pipeline
