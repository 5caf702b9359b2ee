#include "segnode/pipeline/service.hpp"

#include "segnode/core/clock.hpp"
#include "segnode/core/systemd_notify.hpp"
#include "segnode/core/version.hpp"
#include "segnode/dicom/environment.hpp"
#include "segnode/dicom/store_scp.hpp"
#include "segnode/pipeline/algorithm_catalog.hpp"
#include "segnode/pipeline/completion.hpp"
#include "segnode/pipeline/index_writer.hpp"
#include "segnode/pipeline/job_runner.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/pipeline/recovery.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/store/migrations.hpp"
#include "segnode/store/receive_index.hpp"
#include "segnode/store/workdir.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <pthread.h>
#include <spdlog/spdlog.h>
#include <thread>

namespace segnode::pipeline {

int run_service(const Config& config, ServiceExtension* extension) {
    const std::int64_t started_at = now_ms();
    // Signals are taken by one thread with sigwait(); block them before any thread starts.
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    spdlog::info("segnode {} starting (config: {})", version_string(), config.source);
    if (auto st = dicom::init_dicom_environment(); !st) {
        spdlog::critical("{}", st.error().message);
        return 1;
    }
    const store::Workdir workdir(config.node.workdir);
    if (auto st = workdir.ensure(); !st) {
        spdlog::critical("{}", st.error().message);
        return 1;
    }
    auto lock = workdir.lock();
    if (!lock) {
        spdlog::critical("{}", lock.error().message);
        return 1;
    }
    const bool unclean = std::filesystem::exists(workdir.running_marker());
    if (const auto removed = workdir.clean_tmp(); removed > 0) {
        spdlog::info("removed {} unacknowledged partial file(s) from {}", removed,
                     workdir.tmp_dir().string());
    }
    {
        auto db = store::Database::open(workdir.db_path(), store::Database::Mode::ReadWriteCreate);
        if (!db) {
            spdlog::critical("{}", db.error().message);
            return 1;
        }
        auto applied = store::migrate(*db);
        if (!applied) {
            spdlog::critical("{}", applied.error().message);
            return 1;
        }
        if (*applied > 0) {
            spdlog::info("database {}: applied {} migration(s), schema version {}",
                         workdir.db_path().string(), *applied, store::schema_version(*db));
        }
        try {
            if (const int stale = store::ReceiveIndex(*db).close_stale_associations(now_ms());
                stale > 0) {
                spdlog::warn("{} association(s) were open when segnode last stopped; recorded "
                             "as failed (their unacknowledged instances were not kept)",
                             stale);
            }
            if (unclean) {
                spdlog::warn("the previous run did not stop cleanly; checking {} for instance "
                             "files the index lost",
                             workdir.instances_dir().string());
                const auto r = recover_unindexed(config, workdir, *db);
                spdlog::info("recovery: {} instance file(s) checked, {} re-indexed in {} "
                             "series, {} quarantined",
                             r.files_seen, r.recovered, r.series, r.quarantined);
            }
        } catch (const store::DatabaseError& e) {
            spdlog::critical("{}: {}", workdir.db_path().string(), e.what());
            return 1;
        }
    }
    if (auto st = workdir.create_running_marker(); !st) {
        spdlog::critical("{}", st.error().message);
        return 1;
    }
    // Removed once every component (and so every database connection) is gone after a clean
    // stop; still there at the next start after a crash, kill -9 or power loss.
    struct CleanStop {
        const store::Workdir& workdir;
        bool clean = false;
        ~CleanStop() {
            if (clean) {
                workdir.remove_running_marker();
            }
        }
    } clean_stop{workdir};

    auto made = make_registry(config);
    if (!made) {
        spdlog::critical("{}", made.error().message);
        return 1;
    }
    const algorithms::Registry registry = std::move(*made);
    if (auto st = validate_rules(config, registry); !st) {
        spdlog::critical("{}", st.error().message);
        return 1;
    }

    ConnectionPool pool(workdir.db_path());
    IndexWriter index_writer(pool,
                             config.series.late_instance_policy == LateInstancePolicy::Reopen);
    Receiver receiver(config, workdir, pool, index_writer);
    CompletionMonitor completion(config.series, pool);
    JobRunner jobs(config, workdir, pool, registry);
    completion.set_listener([&jobs](const store::SeriesRow&) { jobs.wake(); });
    receiver.set_release_listener(
        [&completion](std::int64_t assoc_id) { completion.association_released(assoc_id); });

    dicom::StoreScpServer server(dicom::scp_options_from(config), receiver);
    if (auto st = server.open(); !st) {
        spdlog::critical("{}", st.error().message);
        return 1;
    }
    completion.start();
    jobs.start();
    std::atomic<bool> scp_listening{true};
    const ServiceContext context{config,
                                 workdir,
                                 pool,
                                 registry,
                                 started_at,
                                 [&jobs] { jobs.wake(); },
                                 [&scp_listening] { return scp_listening.load(); },
                                 [&server] { return server.active_associations(); },
                                 &receiver};
    if (extension != nullptr) {
        if (auto st = extension->start(context); !st) {
            spdlog::critical("{}", st.error().message);
            completion.stop();
            jobs.stop();
            return 1;
        }
    }

    std::thread signal_thread([&server, signals] {
        int sig = 0;
        sigwait(&signals, &sig);
        spdlog::info("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        server.request_stop();
    });

    std::string titles;
    for (const std::string& ae : config.called_ae_titles()) {
        titles += (titles.empty() ? "" : ", ") + ae;
    }
    spdlog::info("listening as {} on {}:{} (working directory {}, quiet period {} s)", titles,
                 config.dicom.bind_address, config.dicom.port, workdir.root().string(),
                 config.series.quiet_period_s);
    systemd_notify("READY=1\nSTATUS=accepting associations");
    server.run();
    scp_listening = false;
    systemd_notify("STOPPING=1");
    signal_thread.join();
    if (extension != nullptr) {
        extension->stop();
    }

    const auto grace = std::chrono::seconds(config.node.shutdown_grace_s);
    if (server.active_associations() > 0) {
        spdlog::info("waiting up to {} s for {} association(s) in progress", grace.count(),
                     server.active_associations());
    }
    if (!server.wait_for_associations(grace)) {
        // Unfinished associations have had no success response for what they are sending,
        // so nothing acknowledged is lost: they are ended (A-ABORT) and their threads joined.
        spdlog::warn("{} association(s) still open after {} s; closing them",
                     server.active_associations(), grace.count());
    }
    (void)server.drain_associations(std::chrono::milliseconds(0));
    completion.stop();
    jobs.stop();
    spdlog::info("segnode stopped");
    clean_stop.clean = true;
    return 0;
}

} // namespace segnode::pipeline
