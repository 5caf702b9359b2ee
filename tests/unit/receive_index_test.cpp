#include "segnode/store/migrations.hpp"
#include "segnode/store/receive_index.hpp"
#include "test_util.hpp"

#include <gtest/gtest.h>

using namespace segnode;
using namespace segnode::store;

namespace {

class ReceiveIndexTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto db = Database::open(m_dir.path() / "t.db", Database::Mode::ReadWriteCreate);
        ASSERT_TRUE(db.ok());
        m_db.emplace(std::move(db).value());
        ASSERT_TRUE(migrate(*m_db).ok());
        m_index.emplace(*m_db);
        m_assoc = m_index->begin_association("SCU", "SEGNODE", "127.0.0.1", 1000, "accepted");
    }

    NewInstance instance(const std::string& series, const std::string& sop, std::int64_t at) {
        NewInstance in;
        in.series.series_uid = series;
        in.series.study_uid = "1.2.3";
        in.series.patient_id = "P1";
        in.series.modality = "CT";
        in.sop_instance_uid = sop;
        in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
        in.transfer_syntax = "1.2.840.10008.1.2.1";
        in.relpath = "instances/1.2.3/" + series + "/" + sop + ".dcm";
        in.size_bytes = 100;
        in.received_at = at;
        in.association_id = m_assoc;
        in.calling_ae = "SCU";
        in.called_ae = "SEGNODE";
        in.peer_address = "127.0.0.1";
        return in;
    }

    test::TempDir m_dir;
    std::optional<Database> m_db;
    std::optional<ReceiveIndex> m_index;
    std::int64_t m_assoc = 0;
};

} // namespace

TEST_F(ReceiveIndexTest, FirstInstanceCreatesSeriesAndCountsUp) {
    auto first = m_index->record_instance(instance("1.2.3.4", "1.2.3.4.1", 2000), true);
    EXPECT_TRUE(first.series_created);
    EXPECT_FALSE(first.late);
    auto second = m_index->record_instance(instance("1.2.3.4", "1.2.3.4.2", 3000), true);
    EXPECT_FALSE(second.series_created);
    auto row = m_index->find_series("1.2.3.4");
    ASSERT_TRUE(row);
    EXPECT_EQ(row->instance_count, 2);
    EXPECT_EQ(row->first_received_at, 2000);
    EXPECT_EQ(row->last_received_at, 3000);
    EXPECT_EQ(row->state, SeriesState::Receiving);
    EXPECT_EQ(row->attrs.patient_id, "P1");
    EXPECT_EQ(row->calling_ae, "SCU");
    auto found = m_index->find_instance("1.2.3.4.2");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->series_uid, "1.2.3.4");
    EXPECT_FALSE(m_index->find_instance("9.9"));
}

TEST_F(ReceiveIndexTest, DuplicateSopUidViolatesUniqueness) {
    (void)m_index->record_instance(instance("1.2.3.4", "1.2.3.4.1", 2000), true);
    EXPECT_THROW((void)m_index->record_instance(instance("1.2.3.4", "1.2.3.4.1", 2100), true),
                 DatabaseError);
    EXPECT_EQ(m_index->find_series("1.2.3.4")->instance_count, 1) << "failed insert rolled back";
}

TEST_F(ReceiveIndexTest, QuietSeriesCompleteOthersWait) {
    (void)m_index->record_instance(instance("1.2.3.4", "1.2.3.4.1", 2000), true);
    (void)m_index->record_instance(instance("1.2.3.5", "1.2.3.5.1", 9000), true);
    const auto done = m_index->complete_quiet_series(5000, 10000);
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(done[0].attrs.series_uid, "1.2.3.4");
    EXPECT_EQ(m_index->find_series("1.2.3.4")->state, SeriesState::Complete);
    EXPECT_EQ(m_index->find_series("1.2.3.4")->completed_at, 10000);
    EXPECT_EQ(m_index->find_series("1.2.3.5")->state, SeriesState::Receiving);
    EXPECT_TRUE(m_index->complete_quiet_series(5000, 10001).empty()) << "completed only once";
}

TEST_F(ReceiveIndexTest, LateInstanceReopensOrIsRecorded) {
    (void)m_index->record_instance(instance("1.2.3.4", "1.2.3.4.1", 2000), true);
    (void)m_index->complete_quiet_series(5000, 6000);
    auto reopened = m_index->record_instance(instance("1.2.3.4", "1.2.3.4.2", 7000), true);
    EXPECT_TRUE(reopened.late);
    EXPECT_TRUE(reopened.reopened);
    auto row = m_index->find_series("1.2.3.4");
    EXPECT_EQ(row->state, SeriesState::Receiving);
    EXPECT_FALSE(row->completed_at.has_value());
    EXPECT_EQ(row->late_instances, 1);

    (void)m_index->complete_quiet_series(8000, 9000);
    auto recorded = m_index->record_instance(instance("1.2.3.4", "1.2.3.4.3", 9500), false);
    EXPECT_TRUE(recorded.late);
    EXPECT_FALSE(recorded.reopened);
    row = m_index->find_series("1.2.3.4");
    EXPECT_EQ(row->state, SeriesState::Complete);
    EXPECT_EQ(row->late_instances, 2);
    EXPECT_EQ(row->instance_count, 3);
}

TEST_F(ReceiveIndexTest, CompleteOnRelease) {
    (void)m_index->record_instance(instance("1.2.3.4", "1.2.3.4.1", 2000), true);
    const auto other = m_index->begin_association("B", "SEGNODE", "127.0.0.1", 1, "accepted");
    EXPECT_TRUE(m_index->complete_series_of_association(other, 3000).empty());
    const auto done = m_index->complete_series_of_association(m_assoc, 3000);
    ASSERT_EQ(done.size(), 1U);
    EXPECT_EQ(m_index->find_series("1.2.3.4")->state, SeriesState::Complete);
}

TEST_F(ReceiveIndexTest, CountsAndEvents) {
    (void)m_index->record_instance(instance("1.2.3.4", "1.2.3.4.1", 2000), true);
    m_index->record_event(m_assoc, 2100, "1.2.3.4.1", "duplicate", 0, "same");
    m_index->record_event(m_assoc, 2200, "1.2.x", "refused", 0xC000, "bad uid");
    m_index->add_quarantine(2200, "quarantine/x.dcm", "bad uid", "SCU", "127.0.0.1", "1.2.x");
    m_index->end_association(m_assoc, 3000, 1, 1, "released");
    const auto c = m_index->counts();
    EXPECT_EQ(c.instances, 1);
    EXPECT_EQ(c.series_receiving, 1);
    EXPECT_EQ(c.associations, 1);
    EXPECT_EQ(c.refused, 1);
    EXPECT_EQ(c.quarantined, 1);
    EXPECT_THROW(m_index->record_event(m_assoc, 1, "x", "not-a-kind", 0, ""), DatabaseError);
}
