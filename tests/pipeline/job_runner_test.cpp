// The job runner with a test algorithm that runs until it is stopped: the per-job timeout
// (plus the algorithm's own), operator cancellation of a running job, shutdown returning the
// job to the queue (also a job claimed while stop() runs), max_parallel per algorithm, an
// exception escaping the work, and a guard (the volume limit) failing a job with its reason.
#include "job_work.hpp"
#include "pipeline_fixture.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/pipeline/job_runner.hpp"
#include "segnode/store/job_repo.hpp"

#include <atomic>
#include <fstream>
#include <gtest/gtest.h>
#include <iterator>
#include <thread>

namespace segnode::test {
namespace {

algorithms::AlgorithmInfo test_info(const std::string& name, unsigned max_parallel = 0,
                                    unsigned timeout_s = 0) {
    algorithms::AlgorithmInfo info{name,
                                   "1.0.0",
                                   "test: runs until stopped",
                                   {},
                                   {{1,
                                     "Thing",
                                     {"123037004", "SCT", "Anatomical Structure"},
                                     {"39607008", "SCT", "Lung"},
                                     {1, 2, 3}}}};
    info.max_parallel = max_parallel;
    info.timeout_s = timeout_s;
    return info;
}

/// Runs until its stop token fires (or 60 s pass), then reports "cancelled". Counts the runs
/// in progress and the most at once.
class UntilStopped : public algorithms::Algorithm {
public:
    explicit UntilStopped(algorithms::AlgorithmInfo info = test_info("until-stopped"))
        : Algorithm(std::move(info)) {}

    static inline std::atomic<int> s_limited_running{0};
    static inline std::atomic<int> s_limited_peak{0};

protected:
    Result<LabelMap> execute(const CtVolume& /*volume*/, const algorithms::Settings& /*s*/,
                             const algorithms::RunContext& context) const override {
        const bool limited = name() == "one-at-a-time";
        if (limited) {
            const int now = ++s_limited_running;
            int peak = s_limited_peak.load();
            while (now > peak && !s_limited_peak.compare_exchange_weak(peak, now)) {
            }
        }
        struct Leave {
            bool limited;
            ~Leave() {
                if (limited) {
                    --s_limited_running;
                }
            }
        } leave{limited};
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (!context.stop.stop_requested() && std::chrono::steady_clock::now() < end) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        if (auto st = algorithms::check_cancelled(context); !st) {
            return st.error();
        }
        return Error{"not stopped within 60 s"};
    }
};

/// Throws something that is not a std::exception.
class ThrowsOddly : public algorithms::Algorithm {
public:
    ThrowsOddly() : Algorithm(test_info("throws-oddly")) {}

protected:
    Result<LabelMap> execute(const CtVolume& /*volume*/, const algorithms::Settings& /*s*/,
                             const algorithms::RunContext& /*context*/) const override {
        throw 42; // NOLINT: the point of the test
    }
};

algorithms::Registry test_registry() {
    algorithms::Registry registry = algorithms::make_builtin_registry();
    EXPECT_TRUE(registry.add(std::make_unique<UntilStopped>()).ok());
    EXPECT_TRUE(registry.add(std::make_unique<UntilStopped>(test_info("one-at-a-time", 1))).ok());
    EXPECT_TRUE(registry.add(std::make_unique<UntilStopped>(test_info("own-timeout", 0, 1))).ok());
    EXPECT_TRUE(registry.add(std::make_unique<ThrowsOddly>()).ok());
    return registry;
}

class JobRunnerTest : public PipelineFixture {
protected:
    std::int64_t queue_job(std::int64_t series_id, const std::string& algorithm) {
        store::NewJob job;
        job.series_id = series_id;
        job.series_uid = m_generated.series_uid;
        job.rule = "test";
        job.algorithm = algorithm;
        job.outputs = "seg";
        job.destination = "nowhere";
        job.dest_ae = "NOWHERE";
        job.dest_host = "127.0.0.1";
        job.dest_port = 9; // discard: nothing listens; never reached in these tests
        auto db = m_pool.acquire();
        return store::JobRepo(*db).create(job, now_ms(), "test");
    }

    store::JobRow job(std::int64_t id) {
        auto db = m_pool.acquire();
        return *store::JobRepo(*db).find(id);
    }

    bool job_in(std::int64_t id, store::JobState state) { return job(id).state == state; }

    Config m_config = [] {
        Config c;
        c.jobs.poll_interval_ms = 20;
        c.retention.keep_hours = 0;
        return c;
    }();
    algorithms::Registry m_registry = test_registry();
};

TEST_F(JobRunnerTest, TimeoutFailsARunningJob) {
    m_config.jobs.timeout_s = 1;
    const auto id = queue_job(store_series(), "until-stopped");
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    runner.start();
    ASSERT_TRUE(eventually([&] { return job_in(id, store::JobState::Failed); }))
        << to_string(job(id).state);
    const auto row = job(id);
    EXPECT_EQ(row.error, "timed out after 1 s");
    EXPECT_EQ(row.runs, 1);
    ASSERT_TRUE(row.started_at && row.finished_at);
    EXPECT_GE(*row.finished_at - *row.started_at, 1000);
    EXPECT_LT(*row.finished_at - *row.started_at, 5000);
    runner.stop();
}

TEST_F(JobRunnerTest, OperatorCancelStopsARunningJob) {
    const auto id = queue_job(store_series(), "until-stopped");
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    runner.start();
    ASSERT_TRUE(eventually([&] { return job_in(id, store::JobState::Running); }));
    {
        auto db = m_pool.acquire(); // what `segnode job cancel` does, on its own connection
        bool ok = false;
        const std::string message = store::JobRepo(*db).request_cancel(id, now_ms(), ok);
        EXPECT_TRUE(ok) << message;
        EXPECT_NE(message.find("cancellation requested"), std::string::npos);
    }
    ASSERT_TRUE(eventually([&] { return job_in(id, store::JobState::Cancelled); }));
    EXPECT_EQ(job(id).error, "cancelled by operator");
    runner.stop();
}

TEST_F(JobRunnerTest, ShutdownReturnsARunningJobToTheQueueAndARestartRunsItAgain) {
    const auto id = queue_job(store_series(), "until-stopped");
    {
        pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
        runner.start();
        ASSERT_TRUE(eventually([&] { return job_in(id, store::JobState::Running); }));
        runner.stop();
    }
    EXPECT_EQ(job(id).state, store::JobState::Queued);
    EXPECT_EQ(job(id).runs, 1);
    pipeline::JobRunner again(m_config, m_workdir, m_pool, m_registry);
    again.start();
    ASSERT_TRUE(eventually([&] { return job(id).runs == 2; }));
    EXPECT_EQ(job(id).state, store::JobState::Running);
    again.stop();
}

TEST_F(JobRunnerTest, VolumeGuardFailsTheJobWithItsReason) {
    m_config.jobs.max_volume_mb = 1;
    const auto id = queue_job(store_series(256, 256, 12), "body"); // 1.5 MiB of int16
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    runner.start();
    ASSERT_TRUE(eventually([&] { return job_in(id, store::JobState::Failed); }));
    EXPECT_NE(job(id).error.find("256 x 256 x 12 = 786432 voxels exceeds the limit of 524288"),
              std::string::npos)
        << job(id).error;
    EXPECT_TRUE(std::filesystem::exists(m_workdir.jobs_dir() / std::to_string(id) / "job.log"));
    runner.stop();
}

TEST_F(JobRunnerTest, AlgorithmTimeoutIsAddedToTheJobTimeout) {
    m_config.jobs.timeout_s = 1;
    const auto id = queue_job(store_series(), "own-timeout"); // timeout_s = 1
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    runner.start();
    ASSERT_TRUE(eventually([&] { return job_in(id, store::JobState::Failed); }))
        << to_string(job(id).state);
    const auto row = job(id);
    EXPECT_EQ(row.error, "timed out after 2 s");
    ASSERT_TRUE(row.started_at && row.finished_at);
    EXPECT_GE(*row.finished_at - *row.started_at, 2000);
    EXPECT_LT(*row.finished_at - *row.started_at, 6000);
    runner.stop();
}

TEST_F(JobRunnerTest, MaxParallelHoldsBackOnlyThatAlgorithm) {
    m_config.jobs.workers = 2;
    UntilStopped::s_limited_running = 0;
    UntilStopped::s_limited_peak = 0;
    const auto series = store_series();
    const auto first = queue_job(series, "one-at-a-time");
    const auto second = queue_job(series, "one-at-a-time");
    const auto other = queue_job(series, "until-stopped");
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    runner.start();
    // The second job of the limited algorithm waits; the other algorithm runs beside the first.
    ASSERT_TRUE(eventually([&] {
        return job_in(first, store::JobState::Running) && job_in(other, store::JobState::Running);
    }));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(job(second).state, store::JobState::Queued);
    EXPECT_EQ(UntilStopped::s_limited_peak.load(), 1);
    // Cancelling the first frees the algorithm's slot, not only a worker.
    {
        auto db = m_pool.acquire();
        bool ok = false;
        store::JobRepo(*db).request_cancel(first, now_ms(), ok);
        ASSERT_TRUE(ok);
    }
    ASSERT_TRUE(eventually([&] { return job_in(second, store::JobState::Running); }));
    EXPECT_EQ(job(first).state, store::JobState::Cancelled);
    EXPECT_EQ(job(other).state, store::JobState::Running);
    EXPECT_EQ(UntilStopped::s_limited_peak.load(), 1);
    runner.stop();
}

TEST_F(JobRunnerTest, AJobClaimedWhileStoppingIsPutBack) {
    const auto series = store_series();
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    runner.start();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    std::thread stopper;
    std::int64_t id = 0;
    {
        // Holding the write lock keeps the dispatcher inside its claim of the new job while
        // stop() begins.
        auto lock = m_pool.write_lock();
        id = queue_job(series, "until-stopped");
        runner.wake();
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        stopper = std::thread([&] { runner.stop(); });
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const auto t = std::chrono::steady_clock::now();
    stopper.join();
    EXPECT_LT(std::chrono::steady_clock::now() - t, std::chrono::seconds(10));
    EXPECT_EQ(job(id).state, store::JobState::Queued);
}

TEST_F(JobRunnerTest, AnExceptionInAWorkerFailsTheJobAndTheRunnerGoesOn) {
    const auto series = store_series();
    const auto odd = queue_job(series, "throws-oddly");
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    runner.start();
    ASSERT_TRUE(eventually([&] { return job_in(odd, store::JobState::Failed); }))
        << to_string(job(odd).state);
    EXPECT_EQ(job(odd).error, "internal error: unknown exception");
    const auto next = queue_job(series, "until-stopped");
    runner.wake();
    ASSERT_TRUE(eventually([&] { return job_in(next, store::JobState::Running); }));
    runner.stop();
    EXPECT_EQ(job(next).state, store::JobState::Queued);
}

TEST_F(JobRunnerTest, RetentionDoesNotHoldUpTheDispatcher) {
    m_config.retention.keep_hours = 1;
    const auto series = store_series();
    const std::int64_t now = now_ms();
    // Finished two hours ago: the retention run at the first tick purges it.
    const auto old = queue_job(series, "body");
    // A send whose retry is due half a second after the start: dispatched at a later tick.
    const auto sending = queue_job(series, "body");
    {
        auto db = m_pool.acquire();
        store::JobRepo repo(*db);
        ASSERT_TRUE(repo.transition(old, store::JobState::Queued, store::JobState::Cancelled,
                                    now - 2 * 3600 * 1000));
        ASSERT_TRUE(
            repo.transition(sending, store::JobState::Queued, store::JobState::Running, now));
        store::JobOutput out;
        out.job_id = sending;
        out.kind = "seg";
        out.relpath = "jobs/" + std::to_string(sending) + "/seg.dcm"; // never written
        out.sop_class_uid = "1.2.840.10008.5.1.4.1.1.66.4";
        out.sop_instance_uid = "1.2.3.4";
        out.series_uid = "1.2.3";
        repo.put_output(out);
        ASSERT_TRUE(
            repo.transition(sending, store::JobState::Running, store::JobState::Sending, now));
        repo.record_send_attempt(sending, now, now + 500, "test: retry later");
    }
    const auto log_file = m_workdir.jobs_dir() / std::to_string(sending) / "job.log";
    auto log_has_attempt = [&] {
        std::ifstream in(log_file);
        const std::string text((std::istreambuf_iterator<char>(in)), {});
        return text.find("send attempt 2") != std::string::npos;
    };
    pipeline::JobRunner runner(m_config, m_workdir, m_pool, m_registry);
    {
        // Retention waits for the write lock (to mark the job purged); the dispatcher must
        // still dispatch the send when it is due.
        auto lock = m_pool.write_lock();
        runner.start();
        EXPECT_TRUE(eventually(log_has_attempt, std::chrono::seconds(5)));
    }
    ASSERT_TRUE(eventually([&] { return job(old).purged_at.has_value(); }));
    runner.stop();
}

TEST_F(JobRunnerTest, NextRunnableSkipsQueuedJobsOfAlgorithmsAtCapacityOnly) {
    const auto series = store_series();
    const auto queued_full = queue_job(series, "one-at-a-time");
    const auto sending_full = queue_job(series, "one-at-a-time");
    const auto queued_other = queue_job(series, "body");
    auto db = m_pool.acquire();
    store::JobRepo repo(*db);
    const std::int64_t now = now_ms();
    ASSERT_TRUE(
        repo.transition(sending_full, store::JobState::Queued, store::JobState::Running, now));
    ASSERT_TRUE(
        repo.transition(sending_full, store::JobState::Running, store::JobState::Sending, now));
    EXPECT_EQ(repo.next_runnable(now, {})->id, queued_full);
    // A send runs no algorithm: never held back by max_parallel.
    EXPECT_EQ(repo.next_runnable(now, {}, {"one-at-a-time"})->id, sending_full);
    EXPECT_EQ(repo.next_runnable(now, {sending_full}, {"one-at-a-time"})->id, queued_other);
    EXPECT_FALSE(repo.next_runnable(now, {sending_full, queued_other}, {"one-at-a-time"}));
}

TEST(SendRetry, DelayDoublesUpToTheCap) {
    SendConfig send;
    send.initial_delay_s = 2;
    send.max_delay_s = 10;
    EXPECT_EQ(pipeline::retry_delay_ms(send, 1), 2000);
    EXPECT_EQ(pipeline::retry_delay_ms(send, 2), 4000);
    EXPECT_EQ(pipeline::retry_delay_ms(send, 3), 8000);
    EXPECT_EQ(pipeline::retry_delay_ms(send, 4), 10000);
    EXPECT_EQ(pipeline::retry_delay_ms(send, 60), 10000);
    send.initial_delay_s = 0;
    EXPECT_EQ(pipeline::retry_delay_ms(send, 5), 0);
}

} // namespace
} // namespace segnode::test
