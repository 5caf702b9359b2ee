#pragma once
// The receiver's policy: what happens to a C-STORE the SCP has read into a temporary file.
// Durability order per instance: temp file (tagged with the association id) -> fsync ->
// rename into instances/<study>/<series>/<sop>.dcm -> fsync directory -> index row committed
// (SQLite WAL, synchronous=NORMAL: survives a crash of segnode; after a power loss start-up
// recovery rebuilds a lost row from the durable file) -> only then the success status is
// returned to the SCP.
#include "segnode/core/config.hpp"
#include "segnode/dicom/receive_handler.hpp"
#include "segnode/pipeline/disk_guard.hpp"
#include "segnode/store/database.hpp"
#include "segnode/store/receive_index.hpp"
#include "segnode/store/workdir.hpp"

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

namespace segnode::pipeline {

/// A small pool of SQLite connections, one per concurrent user (SQLite connections are not
/// shared between threads here).
class ConnectionPool {
public:
    explicit ConnectionPool(std::filesystem::path db_path) : m_path(std::move(db_path)) {}

    class Lease {
    public:
        Lease(ConnectionPool& pool, std::unique_ptr<store::Database> db)
            : m_pool(pool), m_db(std::move(db)) {}
        ~Lease() { m_pool.release(std::move(m_db)); }
        Lease(const Lease&) = delete;
        Lease& operator=(const Lease&) = delete;
        store::Database& operator*() { return *m_db; }
        store::Database* operator->() { return m_db.get(); }

    private:
        ConnectionPool& m_pool;
        std::unique_ptr<store::Database> m_db;
    };

    /// Throws store::DatabaseError if a new connection cannot be opened.
    Lease acquire();

    /// Serialises this process's write transactions. SQLite allows one writer at a time and
    /// makes the others sleep in its busy handler (up to 100 ms a time); taking this lock
    /// around each short write transaction queues them instead. Hold it only around database
    /// writes, never around file I/O (fsyncs of different associations must overlap).
    /// Recursive: a write path may call another one.
    [[nodiscard]] std::unique_lock<std::recursive_mutex> write_lock() {
        return std::unique_lock(m_write_mutex);
    }

    /// Serialises the file and index row of one SOP Instance UID between the receiver (held
    /// from the duplicate check through rename and commit) and retention (held while it
    /// checks that a file of a purged series was not received again, and removes it).
    /// Striped: unrelated UIDs may share a mutex.
    [[nodiscard]] std::mutex& instance_lock(const std::string& sop_instance_uid) {
        return m_instance_locks[std::hash<std::string>{}(sop_instance_uid) %
                                m_instance_locks.size()];
    }

private:
    void release(std::unique_ptr<store::Database> db);
    std::array<std::mutex, 64> m_instance_locks;
    std::filesystem::path m_path;
    std::mutex m_mutex;
    std::vector<std::unique_ptr<store::Database>> m_idle;
    std::recursive_mutex m_write_mutex;
};

class IndexWriter;

/// The index row for a received instance file at `relpath` (association and AE titles are
/// the caller's to fill in). Used by the receiver and by start-up recovery.
store::NewInstance instance_row(const dicom::ReceivedInstance& in, const std::string& relpath,
                                std::int64_t received_at);

/// What goes into quarantine/<name>.reason.txt beside a quarantined file (empty fields are
/// left out).
struct QuarantineNote {
    std::string reason;
    std::string sop_instance_uid;
    std::string calling_ae;
    std::string peer_address;
    std::string original_path;            ///< where the file was found, if not in tmp/
    std::string time_key = "received_at"; ///< label of the time line (now, UTC)
};

/// Durably moves `file` to quarantine/<name> and writes the note beside it; returns the path
/// relative to the working directory for the quarantine row, or the error (the file is then
/// left where it was).
Result<std::filesystem::path> move_to_quarantine(const store::Workdir& workdir,
                                                 const std::filesystem::path& file,
                                                 const std::string& name,
                                                 const QuarantineNote& note, bool durable);

class Receiver : public dicom::ReceiveHandler {
public:
    /// `index` records new instances (group commit); see index_writer.hpp.
    Receiver(const Config& config, const store::Workdir& workdir, ConnectionPool& pool,
             IndexWriter& index);

    /// Called with the association id when an association is released normally.
    void set_release_listener(std::function<void(std::int64_t)> listener) {
        m_on_release = std::move(listener);
    }

    std::int64_t association_accepted(const dicom::AssociationInfo& info) override;
    void association_rejected(const dicom::AssociationInfo& info,
                              const std::string& reason) override;
    void association_ended(const dicom::AssociationInfo& info, std::int64_t stored,
                           std::int64_t refused, const std::string& outcome,
                           const std::string& detail) override;
    std::filesystem::path new_temp_file() override;
    dicom::StoreStatus store(const dicom::AssociationInfo& assoc,
                             const dicom::ReceivedInstance& instance) override;
    void refused(const dicom::AssociationInfo& assoc, const std::string& sop_instance_uid,
                 std::uint16_t dimse_status, const std::string& reason,
                 const std::filesystem::path& temp_file) override;
    /// The disk guard: "out of resources" while free space is below retention.min_free_mb.
    dicom::StoreStatus admission() override;

private:
    dicom::StoreStatus store_locked(const dicom::AssociationInfo& assoc,
                                    const dicom::ReceivedInstance& instance);
    /// Durably moves the received file to `relpath`; on failure removes it and returns the
    /// "out of resources" status to answer with.
    std::optional<dicom::StoreStatus> move_into_store(const dicom::AssociationInfo& assoc,
                                                      const dicom::ReceivedInstance& in,
                                                      const std::filesystem::path& relpath);
    /// Moves a refused file to quarantine/ with a .reason.txt beside it and indexes it.
    void quarantine(const dicom::AssociationInfo& assoc, const std::string& sop_uid,
                    const std::filesystem::path& file, const std::string& reason);

    const Config& m_config;
    const store::Workdir& m_workdir;
    ConnectionPool& m_pool;
    IndexWriter& m_index_writer;
    std::atomic<bool> m_xattr_warned{false};
    DiskGuard m_disk_guard;
    std::function<void(std::int64_t)> m_on_release;
};

} // namespace segnode::pipeline
