#include "segnode/pipeline/index_writer.hpp"

#include <spdlog/spdlog.h>

namespace segnode::pipeline {

IndexWriter::IndexWriter(ConnectionPool& pool, bool reopen_late)
    : m_pool(pool), m_reopen_late(reopen_late) {}

store::RecordOutcome IndexWriter::record(const store::NewInstance& row) {
    Pending pending;
    pending.row = &row;
    std::unique_lock lock(m_mutex);
    m_queue.push_back(&pending);
    while (!pending.done) {
        if (m_committing) {
            m_done.wait(lock);
            continue;
        }
        // Leader: commit everything queued so far (this row included, unless an earlier
        // leader took it), on this thread; rows arriving meanwhile form the next batch.
        m_committing = true;
        std::deque<Pending*> batch;
        batch.swap(m_queue);
        lock.unlock();
        commit_batch(batch);
        lock.lock();
        for (Pending* p : batch) {
            p->done = true;
        }
        m_committing = false;
        m_done.notify_all();
    }
    if (pending.error) {
        std::rethrow_exception(pending.error);
    }
    return pending.outcome;
}

namespace {

/// Instance rows are committed with synchronous=NORMAL: the commit reaches the WAL (so it
/// survives a crash of segnode) but is not fsynced on its own; the next synchronous=FULL
/// commit of any connection, or a checkpoint, makes it durable. The instance file was fsynced
/// before, so after a power loss a row lost from the WAL's tail is rebuilt from the file by
/// start-up recovery (recovery.hpp). Every other write of the node stays synchronous=FULL.
class RelaxedSync {
public:
    explicit RelaxedSync(store::Database& db) : m_db(db) {
        m_db.prepare("PRAGMA synchronous=NORMAL").run(); // cached: no parse per batch
    }
    ~RelaxedSync() {
        try {
            m_db.prepare("PRAGMA synchronous=FULL").run();
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
    } catch (...) {
        // The batch as a whole did not commit: every row in it failed.
        const auto error = std::current_exception();
        for (Pending* p : batch) {
            p->error = error;
        }
    }
}

} // namespace segnode::pipeline
