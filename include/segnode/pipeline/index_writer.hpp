#pragma once
// Group commit for the instance index. Every association thread hands its row to one writer
// thread and waits; the writer commits everything queued meanwhile in ONE transaction, then
// wakes each waiter with its own outcome. A single sender sees a batch of one; concurrent
// senders share the commit cost. The commit uses synchronous=NORMAL (no fsync of its own):
// the instance file is already durable, and start-up recovery re-indexes a file whose row a
// power loss took from the WAL's tail (recovery.hpp).
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/receive_index.hpp"

namespace segnode::pipeline {

class IndexWriter {
public:
    IndexWriter(ConnectionPool& pool, bool reopen_late);
    ~IndexWriter();
    IndexWriter(const IndexWriter&) = delete;
    IndexWriter& operator=(const IndexWriter&) = delete;

    /// Returns once the row is committed (durably). Throws store::DatabaseError when this
    /// row, or the batch's commit, failed; other rows of the batch are unaffected by a row's
    /// own failure (each runs under its own savepoint).
    store::RecordOutcome record(const store::NewInstance& row);

private:
    struct Pending {
        const store::NewInstance* row = nullptr;
        store::RecordOutcome outcome;
        std::exception_ptr error;
        bool done = false;
    };

    void run();
    void commit_batch(std::deque<Pending*>& batch);

    ConnectionPool& m_pool;
    bool m_reopen_late;
    std::mutex m_mutex;
    std::condition_variable m_work;  ///< writer waits for rows
    std::condition_variable m_done;  ///< senders wait for their commit
    std::deque<Pending*> m_queue;
    bool m_stop = false;
    std::thread m_thread;
};

} // namespace segnode::pipeline
