#pragma once
// A working directory with a migrated database and one stored phantom series, as the
// receiver would have left it, for the pipeline tests.
#include "phantom.hpp"
#include "segnode/core/clock.hpp"
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/migrations.hpp"
#include "segnode/store/receive_index.hpp"
#include "segnode/store/workdir.hpp"
#include "test_util.hpp"

#include <chrono>
#include <functional>
#include <thread>

namespace segnode::test {

class PipelineFixture : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_TRUE(m_workdir.ensure().ok());
        auto db =
            store::Database::open(m_workdir.db_path(), store::Database::Mode::ReadWriteCreate);
        ASSERT_TRUE(db.ok()) << db.error().message;
        ASSERT_TRUE(store::migrate(*db).ok());
    }

    /// Writes a phantom series under instances/ and indexes it (state `routed`, as after
    /// routing). Returns the series row id.
    std::int64_t store_series(int rows = 32, int cols = 32, int slices = 6) {
        phantom::PhantomSpec spec;
        spec.rows = rows;
        spec.cols = cols;
        spec.slices = slices;
        const auto dir = m_workdir.instances_dir() / ("s" + std::to_string(++m_series));
        m_generated = phantom::write_ct_series(spec, dir);
        auto db = m_pool.acquire();
        store::ReceiveIndex index(*db);
        for (std::size_t k = 0; k < m_generated.files.size(); ++k) {
            store::NewInstance in;
            in.series.series_uid = m_generated.series_uid;
            in.series.study_uid = m_generated.study_uid;
            in.series.modality = "CT";
            in.sop_instance_uid = m_generated.sop_instance_uids[k];
            in.sop_class_uid = "1.2.840.10008.5.1.4.1.1.2";
            in.transfer_syntax = "1.2.840.10008.1.2.1";
            in.relpath = std::filesystem::relative(m_generated.files[k], m_workdir.root());
            in.size_bytes = 1;
            in.received_at = now_ms();
            in.calling_ae = "MODALITY";
            in.called_ae = "SEGNODE";
            in.peer_address = "127.0.0.1";
            index.record_instance(in, true);
        }
        db->exec("UPDATE series SET state = 'routed', completed_at = last_received_at");
        return index.find_series(m_generated.series_uid)->id;
    }

    /// Polls `predicate` every 20 ms until it holds or `timeout` passes.
    static bool eventually(const std::function<bool()>& predicate,
                           std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            if (predicate()) {
                return true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return predicate();
    }

    TempDir m_dir;
    store::Workdir m_workdir{m_dir.path() / "work"};
    pipeline::ConnectionPool m_pool{m_dir.path() / "work" / "segnode.db"};
    phantom::GeneratedSeries m_generated;
    int m_series = 0;
};

} // namespace segnode::test
