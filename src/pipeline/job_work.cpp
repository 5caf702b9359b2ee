#include "job_work.hpp"

#include "segnode/algorithms/label_io.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/dicom/derived_inspect.hpp"
#include "segnode/dicom/rtstruct_writer.hpp"
#include "segnode/dicom/seg_writer.hpp"
#include "segnode/dicom/series_loader.hpp"
#include "segnode/dicom/store_scu.hpp"
#include "segnode/imageio/image_io.hpp"
#include "segnode/pipeline/external_algorithm.hpp"
#include "segnode/pipeline/job_service.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/store/receive_index.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <fstream>
#include <mutex>
#include <spdlog/spdlog.h>

namespace segnode::pipeline {
namespace {

/// jobs/<id>/job.log: one timestamped line per step, also logged through spdlog.
class JobLog {
public:
    JobLog(const store::Workdir& workdir, std::int64_t id) : m_id(id) {
        const auto dir = workdir.jobs_dir() / std::to_string(id);
        std::error_code ec;
        std::filesystem::create_directories(dir, ec);
        m_out.open(dir / "job.log", std::ios::app);
    }
    void line(spdlog::level::level_enum level, const std::string& text) {
        spdlog::log(level, "job {}: {}", m_id, text);
        const std::lock_guard lock(m_mutex);
        if (m_out) {
            m_out << format_utc_ms(now_ms()) << ' ' << text << '\n';
            m_out.flush();
        }
    }
    void info(const std::string& text) { line(spdlog::level::info, text); }
    void warn(const std::string& text) { line(spdlog::level::warn, text); }

private:
    std::int64_t m_id;
    std::mutex m_mutex;
    std::ofstream m_out;
};

/// Runs a write against the database under the process's write lock.
template <typename F> auto write_db(ConnectionPool& pool, F&& f) {
    auto db = pool.acquire();
    auto lock = pool.write_lock();
    return f(*db);
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::string seconds_text(double s) {
    return fmt::format("{:.2f} s", s);
}

/// What a stopped job turns into.
void finish_stopped(const JobContext& ctx, const store::JobRow& job, StopReason reason,
                    JobLog& log) {
    const std::int64_t now = now_ms();
    write_db(ctx.pool, [&](store::Database& db) {
        store::JobRepo repo(db);
        switch (reason) {
        case StopReason::Shutdown:
            log.info("interrupted by shutdown; queued again");
            repo.transition(job.id, store::JobState::Running, store::JobState::Queued, now,
                            "interrupted by shutdown");
            break;
        case StopReason::Timeout: {
            const std::string error =
                "timed out after " + std::to_string(job_timeout_s(ctx, job.spec.algorithm)) + " s";
            log.warn(error);
            repo.transition(job.id, store::JobState::Running, store::JobState::Failed, now, {},
                            error);
            break;
        }
        default:
            log.info("cancelled by operator");
            repo.transition(job.id, store::JobState::Running, store::JobState::Cancelled, now, {},
                            std::string("cancelled by operator"));
            break;
        }
    });
}

void fail(const JobContext& ctx, const store::JobRow& job, const std::string& error, JobLog& log) {
    log.warn("failed: " + error);
    write_db(ctx.pool, [&](store::Database& db) {
        store::JobRepo(db).transition(job.id, store::JobState::Running, store::JobState::Failed,
                                      now_ms(), {}, error);
    });
}

/// Renames a finished object from tmp/ durably to jobs/<id>/<file_name> and describes it.
Result<store::JobOutput> place_output(const JobContext& ctx, const store::JobRow& job,
                                      const std::filesystem::path& tmp, const std::string& kind,
                                      const std::string& file_name, const std::string& sop_class,
                                      const std::string& sop_instance, const std::string& series) {
    const auto relpath = std::filesystem::path("jobs") / std::to_string(job.id) / file_name;
    if (auto st =
            store::durable_rename(tmp, ctx.workdir.root() / relpath, ctx.config.storage.fsync);
        !st) {
        return st.error();
    }
    store::JobOutput out;
    out.job_id = job.id;
    out.kind = kind;
    out.relpath = relpath.string();
    out.sop_class_uid = sop_class;
    out.sop_instance_uid = sop_instance;
    out.series_uid = series;
    std::error_code ec;
    out.size_bytes =
        static_cast<std::int64_t>(std::filesystem::file_size(ctx.workdir.root() / relpath, ec));
    return out;
}

/// The label map output: jobs/<id>/labels.nii.gz and segments.json beside it (segment
/// numbers, names, codes, colours, voxel counts and volumes), both written to tmp/ first and
/// renamed durably; the manifest goes first so a recorded label map always has it.
Result<store::JobOutput> write_labelmap(const JobContext& ctx, const store::JobRow& job,
                                        const dicom::LoadedSeries& source, const LabelMap& labels,
                                        const algorithms::Algorithm& algo,
                                        const algorithms::Settings& settings) {
    const std::string stem = "job-" + std::to_string(job.id) + "-";
    const auto tmp_labels = ctx.workdir.tmp_dir() / (stem + k_labels_file);
    const auto tmp_manifest = ctx.workdir.tmp_dir() / (stem + k_segments_file);
    auto cleanup = [&] {
        std::error_code ec;
        std::filesystem::remove(tmp_labels, ec);
        std::filesystem::remove(tmp_manifest, ec);
    };
    if (auto st = imageio::write_labels(labels, tmp_labels, algo.name() + " label map"); !st) {
        cleanup();
        return st.error();
    }
    algorithms::SegmentsManifest manifest;
    manifest.algorithm_name = algo.name();
    manifest.algorithm_version = algo.info().version;
    manifest.settings = settings;
    manifest.label_file = k_labels_file;
    manifest.format = "nifti";
    manifest.geometry = labels.geometry;
    manifest.source = {{"job", std::to_string(job.id)},
                       {"study_uid", source.study_uid},
                       {"series_uid", source.series_uid},
                       {"frame_of_reference_uid", source.frame_of_reference_uid},
                       {"modality", source.modality}};
    manifest.segments = algorithms::segment_stats(labels, algo.info().segments);
    if (auto st = algorithms::write_segments_json(manifest, tmp_manifest); !st) {
        cleanup();
        return st.error();
    }
    const auto dir = ctx.workdir.jobs_dir() / std::to_string(job.id);
    if (auto st =
            store::durable_rename(tmp_manifest, dir / k_segments_file, ctx.config.storage.fsync);
        !st) {
        cleanup();
        return st.error();
    }
    auto placed = place_output(ctx, job, tmp_labels, "labelmap", k_labels_file, {}, {}, {});
    if (!placed) {
        cleanup();
        return placed;
    }
    placed->items = static_cast<std::int64_t>(manifest.segments.size());
    return placed;
}

/// Writes one output to tmp/ and renames it durably to jobs/<id>/<kind>.dcm.
Result<store::JobOutput> write_output(const JobContext& ctx, const store::JobRow& job,
                                      OutputKind kind, const dicom::LoadedSeries& source,
                                      const LabelMap& labels, const algorithms::Algorithm& algo,
                                      [[maybe_unused]] const std::stop_token& stop) {
    dicom::DerivedObjectOptions options;
    options.uid_root = ctx.config.output.uid_root;
    options.series_number =
        static_cast<int>(ctx.config.output.series_number) + (kind == OutputKind::Rtstruct ? 1 : 0);
    options.algorithm_name = algo.name();
    options.algorithm_version = algo.info().version;
    options.manufacturer = ctx.config.output.manufacturer;
    options.stop = stop;
    const std::string name(to_string(kind));
    const auto tmp =
        ctx.workdir.tmp_dir() / ("job-" + std::to_string(job.id) + "-" + name + ".dcm");
    auto written = kind == OutputKind::Seg
                       ? dicom::write_seg(source, labels, algo.info().segments, options, tmp)
                       : dicom::write_rtstruct(source, labels, algo.info().segments, options, tmp);
    if (!written) {
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        return written.error();
    }
    auto placed = place_output(ctx, job, tmp, name, name + ".dcm", written->sop_class_uid,
                               written->sop_instance_uid, written->series_instance_uid);
    if (!placed) {
        return placed;
    }
    store::JobOutput& out = *placed;
    out.items = static_cast<std::int64_t>(written->items);
    for (const std::string& note : written->notes) {
        spdlog::info("job {}: {}: {}", job.id, name, note);
    }
    return out;
}

/// Moves a SEG/RTSTRUCT an external program wrote into jobs/<id>/ as an output to send as is.
Result<store::JobOutput> adopt_output(const JobContext& ctx, const store::JobRow& job,
                                      const std::filesystem::path& file, std::size_t index) {
    auto info = dicom::inspect_derived_object(file);
    if (!info) {
        return info.error();
    }
    const bool seg = info->sop_class_uid == "1.2.840.10008.5.1.4.1.1.66.4";
    const std::string kind = seg ? "seg" : "rtstruct";
    const auto tmp = ctx.workdir.tmp_dir() /
                     ("job-" + std::to_string(job.id) + "-adopt-" + std::to_string(index));
    std::error_code ec;
    std::filesystem::copy_file(file, tmp, std::filesystem::copy_options::overwrite_existing, ec);
    if (ec) {
        return Error{"cannot copy " + file.string() + ": " + ec.message()};
    }
    return place_output(ctx, job, tmp, kind, kind + "-" + std::to_string(index + 1) + ".dcm",
                        info->sop_class_uid, info->sop_instance_uid, info->series_instance_uid);
}

bool has_declared_segment(const LabelMap& labels, const std::vector<SegmentInfo>& segments) {
    std::array<bool, 256> declared{};
    for (const SegmentInfo& s : segments) {
        declared[s.label] = true;
    }
    return std::any_of(labels.voxels.begin(), labels.voxels.end(),
                       [&declared](std::uint8_t v) { return v != 0 && declared[v]; });
}

} // namespace

std::int64_t job_timeout_s(const JobContext& ctx, const std::string& algorithm) {
    std::int64_t limit = ctx.config.jobs.timeout_s;
    if (const algorithms::Algorithm* algo = ctx.registry.find(algorithm)) {
        limit += algo->info().timeout_s;
    }
    return limit;
}

std::int64_t retry_delay_ms(const SendConfig& send, std::int64_t attempt) {
    const std::int64_t cap = static_cast<std::int64_t>(send.max_delay_s) * 1000;
    std::int64_t delay = static_cast<std::int64_t>(send.initial_delay_s) * 1000;
    for (std::int64_t i = 1; i < attempt && delay < cap; ++i) {
        delay *= 2;
    }
    return std::min(delay, cap);
}

void process_job(const JobContext& ctx, const store::JobRow& job, std::stop_token stop,
                 const std::atomic<StopReason>& reason) {
    JobLog log(ctx.workdir, job.id);
    const auto started = std::chrono::steady_clock::now();
    log.info("run " + std::to_string(job.runs) + ": " + job.spec.algorithm + " on series " +
             job.spec.series_uid + " (rule " + job.spec.rule + ", outputs " + job.spec.outputs +
             ")");
    auto stopped = [&] {
        if (stop.stop_requested()) {
            finish_stopped(ctx, job, reason.load(), log);
            return true;
        }
        return false;
    };
    try {
        const algorithms::Algorithm* algo = ctx.registry.find(job.spec.algorithm);
        if (algo == nullptr) {
            fail(ctx, job, "unknown algorithm '" + job.spec.algorithm + "'", log);
            return;
        }
        auto settings = algo->parse_settings(parse_settings_text(job.spec.settings));
        if (!settings) {
            fail(ctx, job, settings.error().message, log);
            return;
        }
        auto outputs = parse_outputs(job.spec.outputs);
        if (!outputs) {
            fail(ctx, job, outputs.error().message, log);
            return;
        }
        std::vector<std::filesystem::path> files;
        {
            auto db = ctx.pool.acquire();
            for (const std::string& rel :
                 store::ReceiveIndex(*db).series_files(job.spec.series_id)) {
                files.push_back(ctx.workdir.root() / rel);
            }
        }
        if (files.empty()) {
            fail(ctx, job, "series " + job.spec.series_uid + " has no stored instances", log);
            return;
        }

        dicom::LoadOptions load_options;
        load_options.threads = ctx.config.jobs.algorithm_threads;
        load_options.max_voxels =
            static_cast<std::size_t>(ctx.config.jobs.max_volume_mb) * 1024 * 1024 / 2;
        load_options.stop = stop;
        auto t = std::chrono::steady_clock::now();
        auto loaded = dicom::load_series(files, load_options);
        if (!loaded) {
            fail(ctx, job, loaded.error().message, log);
            return;
        }
        const auto& dims = loaded->volume.geometry.dims;
        log.info(fmt::format("loaded {} x {} x {} in {}", dims[0], dims[1], dims[2],
                             seconds_text(seconds_since(t))));
        for (const std::string& line : loaded->how_taken) {
            log.info("taken: " + line);
        }
        for (const std::string& w : loaded->warnings) {
            log.warn(w);
        }
        if (stopped()) {
            return;
        }

        algorithms::RunContext run;
        run.threads = ctx.config.jobs.algorithm_threads;
        run.stop = stop;
        run.log = [&log](std::string_view line) { log.info(std::string(line)); };
        t = std::chrono::steady_clock::now();
        std::vector<store::JobOutput> written;
        std::optional<LabelMap> labels;
        const auto* external = dynamic_cast<const ExternalAlgorithm*>(algo);
        const auto work_dir = ctx.workdir.jobs_dir() / std::to_string(job.id) / "work";
        if (external != nullptr) {
            ExternalTask task;
            task.job_id = job.id;
            {
                auto db = ctx.pool.acquire();
                if (auto series = store::ReceiveIndex(*db).find_series(job.spec.series_id)) {
                    task.calling_ae = series->calling_ae;
                    task.series_description = series->attrs.description;
                }
            }
            auto outcome = external->run_external(*loaded, task, *settings, work_dir, run);
            if (stopped()) {
                remove_work_dir(work_dir);
                return;
            }
            if (!outcome) {
                // The work dir stays for diagnosis (retention removes it with the job).
                fail(ctx, job, outcome.error().message, log);
                return;
            }
            for (const std::string& note : outcome->notes) {
                log.info(note);
            }
            for (std::size_t i = 0; i < outcome->dicom_objects.size(); ++i) {
                auto out = adopt_output(ctx, job, outcome->dicom_objects[i], i);
                if (!out) {
                    fail(ctx, job, out.error().message, log);
                    return;
                }
                log.info(fmt::format("took {} ({} bytes) as written by {}", out->relpath,
                                     out->size_bytes, algo->name()));
                written.push_back(std::move(*out));
            }
            labels = std::move(outcome->labels);
            if (!external->config().keep_work_dir) {
                remove_work_dir(work_dir);
            }
        } else {
            auto result = algo->run(loaded->volume, *settings, run);
            if (stopped()) {
                return;
            }
            if (!result) {
                fail(ctx, job, result.error().message, log);
                return;
            }
            labels = std::move(*result);
        }
        log.info(algo->name() + " " + algo->info().version + " took " +
                 seconds_text(seconds_since(t)));

        if (labels && !has_declared_segment(*labels, algo->info().segments)) {
            // A plain outcome, not an error: nothing was found, so nothing is written or sent.
            const std::string detail =
                "empty result: " + algo->name() + " found none of its segments; nothing to send";
            log.info(detail);
            write_db(ctx.pool, [&](store::Database& db) {
                store::JobRepo(db).transition(job.id, store::JobState::Running,
                                              store::JobState::Done, now_ms(), detail);
            });
            return;
        }
        for (const OutputKind kind : labels ? *outputs : std::vector<OutputKind>{}) {
            t = std::chrono::steady_clock::now();
            auto out = kind == OutputKind::Labelmap
                           ? write_labelmap(ctx, job, *loaded, *labels, *algo, *settings)
                           : write_output(ctx, job, kind, *loaded, *labels, *algo, stop);
            if (!out) {
                fail(ctx, job, std::string(to_string(kind)) + ": " + out.error().message, log);
                return;
            }
            const char* items = kind == OutputKind::Seg        ? "frames"
                                : kind == OutputKind::Rtstruct ? "contours"
                                                               : "segments";
            log.info(fmt::format("wrote {} ({} {}, {} bytes) in {}", out->relpath, out->items,
                                 items, out->size_bytes, seconds_text(seconds_since(t))));
            written.push_back(std::move(*out));
            if (stopped()) {
                return;
            }
        }
        const bool moved = write_db(ctx.pool, [&](store::Database& db) {
            store::Transaction tx(db);
            store::JobRepo repo(db);
            for (const store::JobOutput& out : written) {
                repo.put_output(out);
            }
            const bool ok = repo.transition(
                job.id, store::JobState::Running, store::JobState::Sending, now_ms(),
                fmt::format("processed in {}", seconds_text(seconds_since(started))));
            if (ok) {
                tx.commit();
            }
            return ok;
        });
        if (!moved) {
            log.warn("the job left 'running' meanwhile (cancelled?); outputs not recorded");
            return;
        }
    } catch (const std::exception& e) {
        fail(ctx, job, std::string("internal error: ") + e.what(), log);
        return;
    }
    send_job(ctx, job.id);
}

void send_job(const JobContext& ctx, std::int64_t job_id) {
    JobLog log(ctx.workdir, job_id);
    try {
        std::optional<store::JobRow> job;
        std::vector<store::JobOutput> outputs;
        {
            auto db = ctx.pool.acquire();
            store::JobRepo repo(*db);
            job = repo.find(job_id);
            if (!job || job->state != store::JobState::Sending) {
                return;
            }
            outputs = repo.outputs(job_id);
        }
        std::vector<store::JobOutput> pending;
        std::vector<std::filesystem::path> files;
        for (const store::JobOutput& out : outputs) {
            if (!out.sent_at && out.kind != "labelmap") { // a label map stays on the node
                pending.push_back(out);
                files.push_back(ctx.workdir.root() / out.relpath);
            }
        }
        const std::int64_t attempt = job->send_attempts + 1;
        std::string failure;
        if (job->spec.destination == "none") {
            // Results stay on the node for download (HTTP API); nothing to send.
            write_db(ctx.pool, [&](store::Database& db) {
                if (store::JobRepo(db).transition(job_id, store::JobState::Sending,
                                                  store::JobState::Done, now_ms(),
                                                  "destination none: results kept on the node")) {
                    log.info("done (destination none: results kept on the node)");
                }
            });
            return;
        }
        if (job->spec.dest_ae.empty()) {
            failure = "no destination: " + job->error;
        } else if (!pending.empty()) {
            const dicom::PeerAddress peer{job->spec.dest_ae, job->spec.dest_host,
                                          static_cast<std::uint16_t>(job->spec.dest_port)};
            const dicom::ScuOptions options = dicom::scu_options_from(ctx.config);
            log.info(fmt::format("send attempt {}: {} object(s) to {}", attempt, pending.size(),
                                 dicom::describe_peer(peer)));
            const auto t = std::chrono::steady_clock::now();
            // Each outcome is recorded the moment it is known: an object the destination
            // acknowledged gets its sent_at before the next one is sent, so a crash later in
            // the association does not send it again.
            auto record = [&](std::size_t i, const dicom::StoreOutcome& o) {
                if (i >= pending.size()) {
                    return;
                }
                const int status = o.status ? *o.status : -1;
                write_db(ctx.pool, [&](store::Database& db) {
                    store::JobRepo repo(db);
                    if (o.verdict != dicom::StoreVerdict::Failure) {
                        repo.mark_output_sent(pending[i].id, now_ms(), status, o.detail);
                    } else {
                        repo.mark_output_failed(pending[i].id, status, o.detail);
                    }
                });
                if (o.verdict != dicom::StoreVerdict::Failure) {
                    log.info(fmt::format("{} {} stored at {} (status 0x{:04X}{}{})",
                                         pending[i].kind, o.sop_instance_uid, peer.ae_title, status,
                                         o.detail.empty() ? "" : ": ", o.detail));
                } else {
                    failure +=
                        (failure.empty() ? "" : "; ") + pending[i].kind + ": " +
                        (o.status ? fmt::format("status 0x{:04X} ", *o.status) : std::string()) +
                        o.detail;
                }
            };
            auto sent = dicom::send_files(peer, options, files, record);
            if (!sent) {
                failure = sent.error().message;
            } else {
                log.info("send took " + seconds_text(seconds_since(t)));
            }
        }
        write_db(ctx.pool, [&](store::Database& db) {
            store::JobRepo repo(db);
            const std::int64_t now = now_ms();
            if (failure.empty()) {
                if (!pending.empty()) {
                    repo.count_send_attempt(job_id);
                }
                if (repo.transition(job_id, store::JobState::Sending, store::JobState::Done, now,
                                    "all outputs delivered")) {
                    log.info("done");
                }
                return;
            }
            if (attempt >= static_cast<std::int64_t>(ctx.config.send.attempts)) {
                const std::string error =
                    fmt::format("send failed after {} attempt(s): {}", attempt, failure);
                repo.record_send_attempt(job_id, now, now, failure);
                repo.transition(job_id, store::JobState::Sending, store::JobState::Failed, now, {},
                                error);
                log.warn(error);
                return;
            }
            const std::int64_t delay = retry_delay_ms(ctx.config.send, attempt);
            repo.record_send_attempt(job_id, now, now + delay, failure);
            log.warn(fmt::format("send attempt {} failed: {}; retrying in {} s", attempt, failure,
                                 static_cast<double>(delay) / 1000.0));
        });
    } catch (const std::exception& e) {
        log.warn(std::string("send: internal error: ") + e.what());
    }
}

} // namespace segnode::pipeline
