// Retention removes the files of finished work older than the cutoff, keeps the rows for
// history, leaves unfinished and recent work alone, and a purged series received again
// starts afresh.
#include <gtest/gtest.h>

#include <fstream>

#include "pipeline_fixture.hpp"
#include "segnode/pipeline/retention.hpp"
#include "segnode/store/job_repo.hpp"

namespace segnode::test {
namespace {

class RetentionTest : public PipelineFixture {
protected:
    /// A job for `series_id` in `state`, with an output file under jobs/<id>/.
    std::int64_t job_with_output(std::int64_t series_id, store::JobState state) {
        auto db = m_pool.acquire();
        store::JobRepo repo(*db);
        store::NewJob spec;
        spec.series_id = series_id;
        spec.series_uid = m_generated.series_uid;
        spec.rule = "r";
        spec.algorithm = "body";
        spec.outputs = "seg";
        spec.destination = "d";
        const auto id = repo.create(spec, now_ms(), "test");
        const auto dir = m_workdir.jobs_dir() / std::to_string(id);
        std::filesystem::create_directories(dir);
        std::ofstream(dir / "seg.dcm") << std::string(1000, 'x');
        std::ofstream(dir / "job.log") << "log\n";
        if (state != store::JobState::Queued) {
            EXPECT_TRUE(repo.transition(id, store::JobState::Queued, store::JobState::Running,
                                        now_ms()));
            if (state != store::JobState::Running) {
                EXPECT_TRUE(repo.transition(id, store::JobState::Running, state, now_ms()));
            }
        }
        return id;
    }
};

TEST_F(RetentionTest, RemovesOldFinishedWorkOnly) {
    const auto old_series = store_series();
    const auto old_files = m_generated.files;
    const auto done_job = job_with_output(old_series, store::JobState::Done);
    const auto failed_job = job_with_output(old_series, store::JobState::Failed);
    const auto busy_series = store_series();
    const auto busy_files = m_generated.files;
    const auto running_job = job_with_output(busy_series, store::JobState::Running);

    // Cutoff in the past: nothing is old enough.
    auto report = pipeline::run_retention(m_workdir, m_pool, now_ms() - 3600 * 1000, now_ms());
    EXPECT_EQ(report.jobs + report.series + report.files, 0);

    report = pipeline::run_retention(m_workdir, m_pool, now_ms() + 1000, now_ms());
    EXPECT_EQ(report.jobs, 2);   // done and failed; the running one stays
    EXPECT_EQ(report.series, 1); // the busy series has an unfinished job
    EXPECT_EQ(report.files, 4 + static_cast<std::int64_t>(old_files.size()));
    EXPECT_FALSE(std::filesystem::exists(m_workdir.jobs_dir() / std::to_string(done_job)));
    EXPECT_FALSE(std::filesystem::exists(m_workdir.jobs_dir() / std::to_string(failed_job)));
    EXPECT_TRUE(std::filesystem::exists(m_workdir.jobs_dir() / std::to_string(running_job) /
                                        "seg.dcm"));
    for (const auto& f : old_files) {
        EXPECT_FALSE(std::filesystem::exists(f)) << f;
    }
    for (const auto& f : busy_files) {
        EXPECT_TRUE(std::filesystem::exists(f)) << f;
    }

    auto db = m_pool.acquire();
    store::JobRepo jobs(*db);
    EXPECT_TRUE(jobs.find(done_job)->purged_at.has_value());
    EXPECT_FALSE(jobs.find(running_job)->purged_at.has_value());
    EXPECT_EQ(jobs.events(done_job).size(), 3U) << "history stays";
    bool ok = true;
    EXPECT_NE(jobs.retry(failed_job, now_ms(), ok).find("removed by retention"), std::string::npos);
    EXPECT_FALSE(ok);

    store::ReceiveIndex index(*db);
    EXPECT_TRUE(index.series_files(old_series).empty());
    EXPECT_EQ(index.series_files(busy_series).size(), busy_files.size());
    EXPECT_EQ(index.find_series(old_series)->instance_count, 0);

    // A second pass finds nothing more.
    report = pipeline::run_retention(m_workdir, m_pool, now_ms() + 1000, now_ms());
    EXPECT_EQ(report.jobs + report.series, 0);
}

TEST_F(RetentionTest, APurgedSeriesReceivedAgainStartsAfresh) {
    const auto id = store_series();
    pipeline::run_retention(m_workdir, m_pool, now_ms() + 1000, now_ms());
    auto db = m_pool.acquire();
    store::ReceiveIndex index(*db);
    store::NewInstance in;
    in.series.series_uid = m_generated.series_uid;
    in.series.study_uid = m_generated.study_uid;
    in.sop_instance_uid = m_generated.sop_instance_uids[0];
    in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
    in.transfer_syntax = "1.2.840.10008.1.2.1";
    in.relpath = "instances/again.dcm";
    in.received_at = now_ms();
    in.calling_ae = "MODALITY";
    in.called_ae = "SEGNODE";
    in.peer_address = "127.0.0.1";
    const auto outcome = index.record_instance(in, true);
    EXPECT_FALSE(outcome.late) << "not a late instance of the old, purged series";
    const auto series = index.find_series(id);
    EXPECT_EQ(series->state, store::SeriesState::Receiving);
    EXPECT_EQ(series->instance_count, 1);
    EXPECT_EQ(series->late_instances, 0);
}

} // namespace
} // namespace segnode::test
