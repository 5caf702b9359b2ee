// The job runner with a test algorithm that runs until it is stopped: the per-job timeout,
// operator cancellation of a running job, shutdown returning the job to the queue, and a
// guard (the volume limit) failing a job with its reason.
#include <gtest/gtest.h>

#include "job_work.hpp"
#include "pipeline_fixture.hpp"
#include "segnode/algorithms/registry.hpp"
#include "segnode/pipeline/job_runner.hpp"
#include "segnode/store/job_repo.hpp"

namespace segnode::test {
namespace {

/// Runs until its stop token fires (or 60 s pass), then reports "cancelled".
class UntilStopped : public algorithms::Algorithm {
public:
    UntilStopped()
        : Algorithm({"until-stopped", "1.0.0", "test: runs until stopped", {},
                     {{1, "Thing", {"123037004", "SCT", "Anatomical Structure"},
                       {"39607008", "SCT", "Lung"}, {1, 2, 3}}}}) {}

protected:
    Result<LabelMap> execute(const CtVolume& /*volume*/, const algorithms::Settings& /*s*/,
                             const algorithms::RunContext& context) const override {
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

algorithms::Registry test_registry() {
    algorithms::Registry registry = algorithms::make_builtin_registry();
    EXPECT_TRUE(registry.add(std::make_unique<UntilStopped>()).ok());
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
