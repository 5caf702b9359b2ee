#pragma once
// Group commit for the instance index, leader/follower style: an association thread whose row
// arrives while no commit is running commits it itself, together with every row queued by then,
// in ONE transaction; threads whose rows arrive during that commit wait, and one of them leads
// the next batch. A single sender commits its own row with no thread hand-off; concurrent
// senders share the commit cost. The commit uses synchronous=NORMAL (no fsync of its own):
// the instance file is already durable, and start-up recovery re-indexes a file whose row a
// power loss took from the WAL's tail (recovery.hpp).
#include "segnode/pipeline/receiver.hpp"
#include "segnode/store/receive_index.hpp"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>

namespace segnode::pipeline {

class IndexWriter {
public:
    IndexWriter(ConnectionPool& pool, bool reopen_late);

    /// Returns once the row is committed. Throws store::DatabaseError when this row, or the
    /// batch's commit, failed; other rows of the batch are unaffected by a row's own failure
    /// (each runs under its own savepoint).
    store::RecordOutcome record(const store::NewInstance& row);

private:
    struct Pending {
        const store::NewInstance* row = nullptr;
        store::RecordOutcome outcome;
        std::exception_ptr error;
        bool done = false;
    };

    void commit_batch(std::deque<Pending*>& batch);

    ConnectionPool& m_pool;
    bool m_reopen_late;
    std::mutex m_mutex;
    std::condition_variable m_done; ///< followers wait for a leader's commit
    std::deque<Pending*> m_queue;
    bool m_committing = false; ///< a leader is committing a batch
};

} // namespace segnode::pipeline
