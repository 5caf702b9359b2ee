#include "segnode/pipeline/index_writer.hpp"

#include <spdlog/spdlog.h>

namespace segnode::pipeline {

IndexWriter::IndexWriter(ConnectionPool& pool, bool reopen_late)
    : m_pool(pool), m_reopen_late(reopen_late), m_thread([this] { run(); }) {}

IndexWriter::~IndexWriter() {
    {
        std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_work.notify_all();
    m_thread.join();
}

store::RecordOutcome IndexWriter::record(const store::NewInstance& row) {
    Pending pending;
    pending.row = &row;
    std::unique_lock lock(m_mutex);
    if (m_stop) {
        throw store::DatabaseError("the index writer has stopped", 1);
    }
    m_queue.push_back(&pending);
    m_work.notify_one();
    m_done.wait(lock, [&] { return pending.done; });
    if (pending.error) {
        std::rethrow_exception(pending.error);
    }
    return pending.outcome;
}

void IndexWriter::run() {
    std::unique_lock lock(m_mutex);
    while (true) {
        m_work.wait(lock, [this] { return m_stop || !m_queue.empty(); });
        if (m_queue.empty()) {
            return; // stopping, nothing left
        }
        std::deque<Pending*> batch;
        batch.swap(m_queue);
        lock.unlock();
        commit_batch(batch);
        lock.lock();
        for (Pending* p : batch) {
            p->done = true;
        }
        m_done.notify_all();
    }
}

namespace {

/// Instance rows are committed with synchronous=NORMAL: the commit reaches the WAL (so it
/// survives a crash of segnode) but is not fsynced on its own; the next synchronous=FULL
/// commit of any connection, or a checkpoint, makes it durable. The instance file was fsynced
/// before, so after a power loss a row lost from the WAL's tail is rebuilt from the file by
/// start-up recovery (recovery.hpp). Every other write of the node stays synchronous=FULL.
class RelaxedSync {
public:
    explicit RelaxedSync(store::Database& db) : m_db(db) { m_db.exec("PRAGMA synchronous=NORMAL"); }
    ~RelaxedSync() {
        try {
            m_db.exec("PRAGMA synchronous=FULL");
        } catch (const store::DatabaseError& e) {
            spdlog::error("index: cannot restore synchronous=FULL: {}", e.what());
        }
    }
    RelaxedSync(const RelaxedSync&) = delete;
    RelaxedSync& operator=(const RelaxedSync&) = delete;

private:
    store::Database& m_db;
};

} // namespace

void IndexWriter::commit_batch(std::deque<Pending*>& batch) {
    try {
        auto db = m_pool.acquire();
        store::ReceiveIndex index(*db);
        const auto writing = m_pool.write_lock();
        const RelaxedSync relaxed(*db);
        store::Transaction tx(*db);
        for (Pending* p : batch) {
            db->exec("SAVEPOINT instance");
            try {
                p->outcome = index.record_instance_in_transaction(*p->row, m_reopen_late);
                db->exec("RELEASE instance");
            } catch (const store::DatabaseError&) {
                p->error = std::current_exception();
                db->exec("ROLLBACK TO instance");
                db->exec("RELEASE instance");
            }
        }
        tx.commit();
        if (batch.size() > 1) {
            spdlog::trace("index: {} rows in one commit", batch.size());
        }
    } catch (const store::DatabaseError&) {
        // The batch as a whole did not commit: every row in it failed.
        const auto error = std::current_exception();
        for (Pending* p : batch) {
            p->error = error;
        }
    }
}

} // namespace segnode::pipeline
