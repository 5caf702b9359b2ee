#include "segnode/pipeline/retention.hpp"

#include "segnode/store/job_repo.hpp"
#include "segnode/store/receive_index.hpp"

#include <set>
#include <spdlog/spdlog.h>

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
                              std::int64_t cutoff_ms, std::int64_t now_ms,
                              const RetentionHooks& hooks) {
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
    // A series: first marked purged with its instance rows deleted, in one guarded
    // transaction; then only the files of that snapshot are removed. An instance acknowledged
    // before the mark changed the series (the guard fails, the series stays); one acknowledged
    // after it is a fresh reception with its own row, and its file is left alone even where it
    // replaced a snapshot file of the same SOP Instance UID (checked under the instance lock
    // that the receiver holds from rename to commit).
    store::ReceiveIndex index(*db);
    for (const store::SeriesRow& series : index.purgeable_series(cutoff_ms)) {
        if (hooks.after_select) {
            hooks.after_select(series.id);
        }
        std::optional<std::vector<store::ReceiveIndex::PurgedInstance>> snapshot;
        {
            auto lock = pool.write_lock();
            snapshot = index.mark_series_purged(series, now_ms);
        }
        if (!snapshot) {
            spdlog::info("retention: series {} received or got a job meanwhile; kept",
                         series.attrs.series_uid);
            continue;
        }
        if (hooks.after_mark) {
            hooks.after_mark(series.id);
        }
        std::set<std::filesystem::path> dirs;
        for (const auto& purged : *snapshot) {
            const auto file = workdir.root() / purged.relpath;
            dirs.insert(file.parent_path());
            const std::lock_guard instance(pool.instance_lock(purged.sop_instance_uid));
            const auto now_stored = index.find_instance(purged.sop_instance_uid);
            if (now_stored && now_stored->relpath == purged.relpath) {
                continue; // received again meanwhile: the file is the new copy
            }
            remove_counted(file, report);
        }
        for (const auto& dir : dirs) {
            std::error_code ec;
            std::filesystem::remove(dir, ec); // only if empty
            std::filesystem::remove(dir.parent_path(), ec);
        }
        report.series += 1;
    }
    if (report.jobs > 0 || report.series > 0) {
        spdlog::info("retention: removed {} job output dir(s) and {} series ({} files, {} MiB)",
                     report.jobs, report.series, report.files, report.bytes >> 20U);
    }
    return report;
}

} // namespace segnode::pipeline
