#include "segnode/pipeline/recovery.hpp"

#include "segnode/core/clock.hpp"
#include "segnode/core/uid.hpp"
#include "segnode/dicom/receive_handler.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/receive_index.hpp"

#include <map>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

namespace segnode::pipeline {
namespace fs = std::filesystem;

namespace {

std::int64_t mtime_ms(const fs::path& file) {
    struct stat st {};
    if (::stat(file.c_str(), &st) != 0) {
        return now_ms();
    }
    return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1000000;
}

/// Moves a file recovery cannot index to quarantine/, with the reason beside it.
bool quarantine_unindexable(const store::Workdir& workdir, store::ReceiveIndex& index,
                            const fs::path& file, const std::string& rel,
                            const std::string& reason) {
    QuarantineNote note;
    note.reason = reason;
    note.original_path = rel;
    note.time_key = "quarantined_at";
    // A fresh unique name: the file's own name may clash with an earlier quarantined copy.
    const std::string name = "recovered-" + workdir.new_temp_path(".dcm").filename().string();
    auto moved = move_to_quarantine(workdir, file, name, note, true);
    if (!moved) {
        spdlog::error("recovery: {}: {} (left in place)", rel, moved.error().message);
        return false;
    }
    index.add_quarantine(now_ms(), moved->string(), reason, "", "", "");
    spdlog::error("recovery: {}: {}; moved to {}", rel, reason, moved->string());
    return true;
}

} // namespace

RecoveryReport recover_unindexed(const Config& config, const store::Workdir& workdir,
                                 store::Database& db) {
    RecoveryReport report;
    store::ReceiveIndex index(db);
    const auto indexed = index.indexed_paths();
    const bool reopen_late = config.series.late_instance_policy == LateInstancePolicy::Reopen;
    std::map<std::string, std::int64_t> per_series;

    std::error_code ec;
    fs::recursive_directory_iterator it(workdir.instances_dir(), ec);
    if (ec) {
        spdlog::error("recovery: cannot list {}: {}", workdir.instances_dir().string(),
                      ec.message());
        return report;
    }
    std::vector<std::pair<fs::path, std::string>> unindexed; ///< file, path relative to root
    for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
        if (ec) {
            spdlog::error("recovery: while listing {}: {}", workdir.instances_dir().string(),
                          ec.message());
            break;
        }
        if (!it->is_regular_file(ec) || it->path().extension() != ".dcm") {
            continue;
        }
        ++report.files_seen;
        const std::string rel = it->path().lexically_relative(workdir.root()).generic_string();
        if (!indexed.contains(rel)) {
            unindexed.emplace_back(it->path(), rel);
        }
    }

    for (const auto& [file, rel] : unindexed) {
        auto parsed = dicom::read_received_file(file);
        std::string problem;
        if (!parsed) {
            problem = parsed.error().message;
        } else if (auto expected = workdir.instance_relpath(parsed->study_uid, parsed->series_uid,
                                                            parsed->sop_instance_uid);
                   !expected) {
            problem = expected.error().message;
        } else if (expected->generic_string() != rel) {
            problem = "its UIDs give the path " + expected->generic_string();
        } else if (auto existing = index.find_instance(parsed->sop_instance_uid)) {
            problem = "SOP Instance UID already indexed at " + existing->relpath;
        }
        if (!problem.empty()) {
            if (quarantine_unindexable(workdir, index, file, rel,
                                       "start-up recovery cannot index this file: " + problem)) {
                ++report.quarantined;
            }
            continue;
        }

        store::NewInstance row = instance_row(*parsed, rel, mtime_ms(file));
        row.calling_ae = parsed->source_ae;
        row.called_ae = config.node.ae_title;
        if (const auto tag = store::association_tag(file)) {
            if (const auto peers = index.find_association(*tag)) {
                row.association_id = *tag;
                row.calling_ae = peers->calling_ae;
                row.called_ae = peers->called_ae;
                row.peer_address = peers->peer_address;
            }
        }
        const auto outcome = index.record_instance(row, reopen_late);
        ++report.recovered;
        ++per_series[parsed->series_uid];
        if (outcome.late) {
            spdlog::warn("recovery: {} belongs to series {}, which was already complete ({})",
                         parsed->sop_instance_uid, parsed->series_uid,
                         outcome.reopened ? "reopened" : "recorded");
        }
    }
    report.series = static_cast<std::int64_t>(per_series.size());
    for (const auto& [series_uid, count] : per_series) {
        spdlog::warn("recovery: indexed {} instance file(s) of series {} that the index did "
                     "not have (the previous run did not stop cleanly)",
                     count, series_uid);
    }
    return report;
}

} // namespace segnode::pipeline
