#include "segnode/pipeline/index_writer.hpp"
#include "segnode/store/migrations.hpp"
#include "test_util.hpp"

#include <atomic>
#include <gtest/gtest.h>
#include <thread>
#include <vector>

using namespace segnode;

namespace {

store::NewInstance make_row(const std::string& series, const std::string& sop) {
    store::NewInstance in;
    in.series.series_uid = series;
    in.series.study_uid = "1.2.3";
    in.sop_instance_uid = sop;
    in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
    in.transfer_syntax = "1.2.840.10008.1.2.1";
    in.relpath = "instances/x/" + sop + ".dcm";
    in.received_at = 1;
    in.calling_ae = "SCU";
    in.called_ae = "SEGNODE";
    in.peer_address = "127.0.0.1";
    return in;
}

class IndexWriterTest : public ::testing::Test {
protected:
    void SetUp() override {
        auto db =
            store::Database::open(m_dir.path() / "w.db", store::Database::Mode::ReadWriteCreate);
        ASSERT_TRUE(db.ok());
        ASSERT_TRUE(store::migrate(*db).ok());
    }
    std::int64_t count(const std::string& sql) {
        auto db = m_pool.acquire();
        auto st = db->prepare(sql);
        EXPECT_TRUE(st.step());
        return st.column_int64(0);
    }
    test::TempDir m_dir;
    pipeline::ConnectionPool m_pool{m_dir.path() / "w.db"};
};

} // namespace

TEST_F(IndexWriterTest, ConcurrentSendersAllCommitted) {
    pipeline::IndexWriter writer(m_pool, true);
    std::atomic<int> created{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            const std::string series = "1.2.3." + std::to_string(t + 1);
            for (int i = 0; i < 25; ++i) {
                auto outcome =
                    writer.record(make_row(series, series + "." + std::to_string(i + 1)));
                if (outcome.series_created) {
                    ++created;
                }
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    EXPECT_EQ(count("SELECT count(*) FROM instances"), 200);
    EXPECT_EQ(count("SELECT count(*) FROM series"), 8);
    EXPECT_EQ(count("SELECT sum(instance_count) FROM series"), 200);
    EXPECT_EQ(created.load(), 8) << "each series created exactly once";
}

TEST_F(IndexWriterTest, AFailingRowDoesNotSpoilItsBatch) {
    pipeline::IndexWriter writer(m_pool, true);
    (void)writer.record(make_row("1.2.3.9", "1.2.3.9.1"));
    // The same SOP Instance UID again violates uniqueness: that caller gets the error...
    EXPECT_THROW((void)writer.record(make_row("1.2.3.9", "1.2.3.9.1")), store::DatabaseError);
    // ...and the index is unchanged and keeps working.
    (void)writer.record(make_row("1.2.3.9", "1.2.3.9.2"));
    EXPECT_EQ(count("SELECT count(*) FROM instances"), 2);
    EXPECT_EQ(count("SELECT instance_count FROM series WHERE series_uid='1.2.3.9'"), 2);
}

TEST_F(IndexWriterTest, InstanceCommitsAreRelaxedOnlyForTheirOwnTransaction) {
    pipeline::IndexWriter writer(m_pool, true);
    (void)writer.record(make_row("1.2.3.7", "1.2.3.7.1"));
    // The writer's connection goes back to the pool with synchronous=FULL (2) restored, so
    // every other write of the node stays fully durable.
    auto db = m_pool.acquire();
    auto st = db->prepare("PRAGMA synchronous");
    ASSERT_TRUE(st.step());
    EXPECT_EQ(st.column_int64(0), 2);
    EXPECT_EQ(count("SELECT count(*) FROM instances"), 1);
}
