// Retention removes the files of finished work older than the cutoff, keeps the rows for
// history, leaves unfinished and recent work alone, and a purged series received again
// starts afresh.
#include "pipeline_fixture.hpp"
#include "segnode/pipeline/retention.hpp"
#include "segnode/store/job_repo.hpp"

#include <fstream>
#include <gtest/gtest.h>

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
            EXPECT_TRUE(
                repo.transition(id, store::JobState::Queued, store::JobState::Running, now_ms()));
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
    EXPECT_TRUE(
        std::filesystem::exists(m_workdir.jobs_dir() / std::to_string(running_job) / "seg.dcm"));
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

/// Late instances acknowledged while a retention pass is under way. The hooks run inside the
/// pass, at the point named, on the retention thread: a deterministic interleaving.
class RetentionRaceTest : public RetentionTest {
protected:
    /// What the receiver does for an instance of the stored series: the file at its place,
    /// then the index row (a new SOP Instance UID unless `sop_uid` is given).
    /// A UID already indexed is a duplicate to the receiver: nothing is written.
    std::filesystem::path receive_late(const std::string& sop_uid, const std::string& content) {
        if (auto db = m_pool.acquire(); store::ReceiveIndex(*db).find_instance(sop_uid)) {
            return {};
        }
        auto rel =
            m_workdir.instance_relpath(m_generated.study_uid, m_generated.series_uid, sop_uid);
        EXPECT_TRUE(rel.ok());
        const auto file = m_workdir.root() / *rel;
        std::filesystem::create_directories(file.parent_path());
        std::ofstream(file) << content;
        auto db = m_pool.acquire();
        store::NewInstance in;
        in.series.series_uid = m_generated.series_uid;
        in.series.study_uid = m_generated.study_uid;
        in.sop_instance_uid = sop_uid;
        in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
        in.transfer_syntax = "1.2.840.10008.1.2.1";
        in.relpath = rel->string();
        in.size_bytes = static_cast<std::int64_t>(content.size());
        in.received_at = now_ms();
        in.calling_ae = "LATE";
        in.called_ae = "SEGNODE";
        in.peer_address = "127.0.0.1";
        store::ReceiveIndex(*db).record_instance(in, false);
        return file;
    }

    void expect_indexed(const std::string& sop_uid, const std::filesystem::path& file,
                        const std::string& content) {
        auto db = m_pool.acquire();
        const auto row = store::ReceiveIndex(*db).find_instance(sop_uid);
        ASSERT_TRUE(row.has_value())
            << "the acknowledged instance " << sop_uid << " lost its index row";
        EXPECT_EQ(m_workdir.root() / row->relpath, file);
        ASSERT_TRUE(std::filesystem::exists(file)) << "the acknowledged file was removed";
        std::ifstream in(file);
        EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), content);
    }
};

TEST_F(RetentionRaceTest, AnInstanceAcknowledgedAfterSelectionSurvives) {
    store_series();
    const std::string late_uid = m_generated.series_uid + ".999";
    std::filesystem::path late_file;
    pipeline::RetentionHooks hooks;
    hooks.after_select = [&](std::int64_t) { late_file = receive_late(late_uid, "late"); };
    const auto report =
        pipeline::run_retention(m_workdir, m_pool, now_ms() + 1000, now_ms(), hooks);
    EXPECT_EQ(report.series, 0) << "the series changed after selection: not purged this pass";
    expect_indexed(late_uid, late_file, "late");
    for (const auto& f : m_generated.files) {
        EXPECT_TRUE(std::filesystem::exists(f)) << f;
    }
}

TEST_F(RetentionRaceTest, InstancesAcknowledgedAfterThePurgeMarkSurvive) {
    const auto id = store_series();
    const auto old_files = m_generated.files;
    const std::string late_uid = m_generated.series_uid + ".999";
    // The same SOP Instance UID as a stored one, sent again: it lands at the same path.
    const std::string resent_uid = m_generated.sop_instance_uids[0];
    std::filesystem::path late_file;
    std::filesystem::path resent_file;
    pipeline::RetentionHooks hooks;
    hooks.after_mark = [&](std::int64_t) {
        late_file = receive_late(late_uid, "late");
        resent_file = receive_late(resent_uid, "again");
    };
    // The first file of the series is moved to where the receiver puts that instance, so that
    // the resend really overwrites a file of the purged snapshot.
    {
        auto rel =
            m_workdir.instance_relpath(m_generated.study_uid, m_generated.series_uid, resent_uid);
        const auto dest = m_workdir.root() / *rel;
        std::filesystem::create_directories(dest.parent_path());
        std::filesystem::rename(old_files[0], dest);
        auto db = m_pool.acquire();
        db->prepare("UPDATE instances SET path = ? WHERE sop_instance_uid = ?")
            .bind(1, rel->string())
            .bind(2, resent_uid)
            .run();
    }
    const auto report =
        pipeline::run_retention(m_workdir, m_pool, now_ms() + 1000, now_ms(), hooks);
    EXPECT_EQ(report.series, 1);
    expect_indexed(late_uid, late_file, "late");
    expect_indexed(resent_uid, resent_file, "again");
    for (std::size_t k = 1; k < old_files.size(); ++k) {
        EXPECT_FALSE(std::filesystem::exists(old_files[k])) << old_files[k];
    }
    auto db = m_pool.acquire();
    store::ReceiveIndex index(*db);
    EXPECT_EQ(index.series_files(id).size(), 2U);
    const auto series = index.find_series(id);
    EXPECT_EQ(series->state, store::SeriesState::Receiving) << "received afresh";
    EXPECT_EQ(series->instance_count, 2);
}

} // namespace
} // namespace segnode::test
