#include "segnode/pipeline/receiver.hpp"

#include "segnode/core/clock.hpp"
#include "segnode/core/uid.hpp"
#include "segnode/pipeline/index_writer.hpp"
#include "segnode/store/receive_index.hpp"

#include <fstream>
#include <spdlog/spdlog.h>

namespace segnode::pipeline {
namespace fs = std::filesystem;
using dicom::StoreStatus;
namespace status = dicom::status;

ConnectionPool::Lease ConnectionPool::acquire() {
    {
        std::lock_guard lock(m_mutex);
        if (!m_idle.empty()) {
            auto db = std::move(m_idle.back());
            m_idle.pop_back();
            return {*this, std::move(db)};
        }
    }
    auto opened = store::Database::open(m_path, store::Database::Mode::ReadWrite);
    if (!opened) {
        throw store::DatabaseError(opened.error().message, 14 /* SQLITE_CANTOPEN */);
    }
    return {*this, std::make_unique<store::Database>(std::move(opened).value())};
}

void ConnectionPool::release(std::unique_ptr<store::Database> db) {
    if (!db) {
        return;
    }
    std::lock_guard lock(m_mutex);
    m_idle.push_back(std::move(db));
}

store::NewInstance instance_row(const dicom::ReceivedInstance& in, const std::string& relpath,
                                std::int64_t received_at) {
    store::NewInstance row;
    row.series = {in.series_uid,   in.study_uid,         in.patient_id,
                  in.patient_name, in.study_date,        in.accession_number,
                  in.modality,     in.series_number,     in.series_description,
                  in.body_part,    in.frame_of_reference};
    row.sop_instance_uid = in.sop_instance_uid;
    row.sop_class_uid = in.sop_class_uid;
    row.instance_number = in.instance_number;
    row.transfer_syntax = in.transfer_syntax;
    row.relpath = relpath;
    row.size_bytes = static_cast<std::int64_t>(in.file_size);
    row.received_at = received_at;
    return row;
}

Result<fs::path> move_to_quarantine(const store::Workdir& workdir, const fs::path& file,
                                    const std::string& name, const QuarantineNote& note,
                                    bool durable) {
    const fs::path dest = workdir.quarantine_dir() / name;
    if (auto st = store::durable_rename(file, dest, durable); !st) {
        return st.error();
    }
    std::ofstream out(workdir.quarantine_dir() / (dest.stem().string() + ".reason.txt"));
    const std::pair<const char*, const std::string*> fields[] = {
        {"reason", &note.reason},
        {"sop_instance_uid", &note.sop_instance_uid},
        {"calling_ae", &note.calling_ae},
        {"peer_address", &note.peer_address},
        {"original_path", &note.original_path}};
    for (const auto& [key, value] : fields) {
        if (!value->empty()) {
            out << key << ": " << *value << "\n";
        }
    }
    out << note.time_key << ": " << format_utc_ms(now_ms()) << "\n";
    return fs::path("quarantine") / name;
}

Receiver::Receiver(const Config& config, const store::Workdir& workdir, ConnectionPool& pool,
                   IndexWriter& index)
    : m_config(config), m_workdir(workdir), m_pool(pool), m_index_writer(index),
      m_disk_guard(workdir.root(),
                   static_cast<std::uint64_t>(config.retention.min_free_mb) * 1024 * 1024) {}

dicom::StoreStatus Receiver::admission() {
    if (auto reason = m_disk_guard.check()) {
        return {dicom::status::out_of_resources, *reason};
    }
    return {};
}

std::int64_t Receiver::association_accepted(const dicom::AssociationInfo& info) {
    try {
        auto db = m_pool.acquire();
        store::ReceiveIndex index(*db);
        const auto writing = m_pool.write_lock();
        const auto id = index.begin_association(info.calling_ae, info.called_ae, info.peer_address,
                                                now_ms(), "accepted");
        spdlog::info("association {} accepted: {} -> {} from {}", id, info.calling_ae,
                     info.called_ae, info.peer_address);
        return id;
    } catch (const store::DatabaseError& e) {
        spdlog::error("association from {} ({}): cannot record it: {}", info.peer_address,
                      info.calling_ae, e.what());
        return 0;
    }
}

void Receiver::association_rejected(const dicom::AssociationInfo& info, const std::string& reason) {
    try {
        auto db = m_pool.acquire();
        store::ReceiveIndex index(*db);
        const auto writing = m_pool.write_lock();
        const auto at = now_ms();
        const auto id = index.begin_association(info.calling_ae, info.called_ae, info.peer_address,
                                                at, "rejected", reason);
        index.end_association(id, at, 0, 0, "rejected");
    } catch (const store::DatabaseError& e) {
        spdlog::error("cannot record rejected association from {}: {}", info.peer_address,
                      e.what());
    }
}

void Receiver::association_ended(const dicom::AssociationInfo& info, std::int64_t stored,
                                 std::int64_t refused, const std::string& outcome,
                                 const std::string& detail) {
    spdlog::info("association {} ended ({}{}): {} stored, {} refused", info.id, outcome,
                 detail.empty() ? "" : ": " + detail, stored, refused);
    if (info.id == 0) {
        return;
    }
    try {
        auto db = m_pool.acquire();
        const auto writing = m_pool.write_lock();
        store::ReceiveIndex(*db).end_association(info.id, now_ms(), stored, refused, outcome,
                                                 detail);
    } catch (const store::DatabaseError& e) {
        spdlog::error("association {}: cannot record its end: {}", info.id, e.what());
    }
    if (outcome == "released" && m_on_release) {
        m_on_release(info.id);
    }
}

fs::path Receiver::new_temp_file() {
    return m_workdir.new_temp_path(".dcm");
}

StoreStatus Receiver::store(const dicom::AssociationInfo& assoc,
                            const dicom::ReceivedInstance& in) {
    // Validate every UID that becomes part of a path before touching the store.
    const std::pair<const char*, const std::string*> uids[] = {
        {"Study Instance UID", &in.study_uid},
        {"Series Instance UID", &in.series_uid},
        {"SOP Instance UID", &in.sop_instance_uid}};
    for (const auto& [what, uid] : uids) {
        if (auto problem = uid_problem(*uid)) {
            const std::string reason =
                std::string(what) + " '" + *uid + "' is invalid: " + *problem;
            refused(assoc, in.sop_instance_uid, status::cannot_understand, reason, in.temp_file);
            return {status::cannot_understand, reason};
        }
    }
    std::lock_guard lock(m_pool.instance_lock(in.sop_instance_uid));
    try {
        return store_locked(assoc, in);
    } catch (const store::DatabaseError& e) {
        spdlog::error("C-STORE {} from {}: database error: {}", in.sop_instance_uid,
                      assoc.calling_ae, e.what());
        std::error_code ec;
        fs::remove(in.temp_file, ec);
        return {status::out_of_resources, "segnode could not index the instance; retry later"};
    } catch (const std::exception& e) {
        // Nothing may escape to the association's thread: the sender gets a failure with the
        // reason, the association and the node carry on.
        spdlog::error("C-STORE {} from {}: internal error: {}", in.sop_instance_uid,
                      assoc.calling_ae, e.what());
        std::error_code ec;
        fs::remove(in.temp_file, ec);
        return {status::processing_failure, std::string("internal error: ") + e.what()};
    }
}

StoreStatus Receiver::store_locked(const dicom::AssociationInfo& assoc,
                                   const dicom::ReceivedInstance& in) {
    auto rel = m_workdir.instance_relpath(in.study_uid, in.series_uid, in.sop_instance_uid);
    if (!rel) {
        // Unreachable after the checks in store(), kept as a guard for path safety.
        refused(assoc, in.sop_instance_uid, status::cannot_understand, rel.error().message,
                in.temp_file);
        return {status::cannot_understand, rel.error().message};
    }
    auto db = m_pool.acquire();
    store::ReceiveIndex index(*db);
    const std::int64_t at = now_ms();

    store::NewInstance row = instance_row(in, rel->string(), at);
    row.association_id = assoc.id;
    row.calling_ae = assoc.calling_ae;
    row.called_ae = assoc.called_ae;
    row.peer_address = assoc.peer_address;

    if (auto existing = index.find_instance(in.sop_instance_uid)) {
        const fs::path existing_abs = m_workdir.root() / existing->relpath;
        std::string err;
        const auto offset = dicom::file_dataset_offset(existing_abs, err);
        bool same = false;
        if (err.empty()) {
            auto cmp = store::same_tail(existing_abs, offset, in.temp_file, in.dataset_offset);
            same = cmp.ok() && cmp.value();
        }
        if (same) {
            std::error_code ec;
            fs::remove(in.temp_file, ec);
            const auto writing = m_pool.write_lock();
            index.record_event(assoc.id, at, in.sop_instance_uid, "duplicate", status::success,
                               "identical copy of a stored instance; not stored twice");
            spdlog::info("C-STORE {} from {}: duplicate of the stored copy, ignored",
                         in.sop_instance_uid, assoc.calling_ae);
            return {};
        }
        if (m_config.storage.duplicate_policy == DuplicatePolicy::Replace) {
            if (auto failed = move_into_store(assoc, in, *rel)) {
                return *failed;
            }
            const auto writing = m_pool.write_lock();
            store::Transaction tx(*db);
            index.replace_instance(row);
            index.record_event(assoc.id, at, in.sop_instance_uid, "replaced", status::success,
                               "different content for a stored SOP Instance UID; replaced "
                               "(storage.duplicate_policy = replace)");
            tx.commit();
            spdlog::warn("C-STORE {} from {}: different content for a stored instance, replaced",
                         in.sop_instance_uid, assoc.calling_ae);
            return {};
        }
        // keep_first: the stored copy stays; the new one is kept in quarantine for review.
        const std::string reason = "duplicate SOP Instance UID with different content; the "
                                   "first copy is kept (storage.duplicate_policy = keep_first)";
        quarantine(assoc, in.sop_instance_uid, in.temp_file, reason);
        const auto writing = m_pool.write_lock();
        index.record_event(assoc.id, at, in.sop_instance_uid, "duplicate_conflict", status::success,
                           reason);
        spdlog::warn("C-STORE {} from {}: {}", in.sop_instance_uid, assoc.calling_ae, reason);
        return {};
    }

    if (auto failed = move_into_store(assoc, in, *rel)) {
        return *failed;
    }
    const auto outcome = m_index_writer.record(row);
    if (outcome.series_created) {
        spdlog::info("series {} ({} {}, patient {}) receiving from {}", in.series_uid, in.modality,
                     in.series_description, in.patient_id, assoc.calling_ae);
    }
    if (outcome.late) {
        const std::string detail =
            outcome.reopened ? "instance arrived after the series was complete; series reopened "
                               "(series.late_instance_policy = reopen)"
                             : "instance arrived after the series was complete; recorded "
                               "(series.late_instance_policy = record)";
        const auto writing = m_pool.write_lock();
        index.record_event(assoc.id, at, in.sop_instance_uid, "late", status::success, detail);
        spdlog::warn("series {}: {}", in.series_uid, detail);
    }
    spdlog::debug("stored {} ({} bytes)", row.relpath, row.size_bytes);
    return {};
}

std::optional<StoreStatus> Receiver::move_into_store(const dicom::AssociationInfo& assoc,
                                                     const dicom::ReceivedInstance& in,
                                                     const fs::path& relpath) {
    // Where the file came from, on the file itself (made durable by the fsync below): start-up
    // recovery needs it if a power loss takes the index row (see recovery.hpp).
    if (assoc.id > 0 && !store::tag_association(in.temp_file, assoc.id) &&
        !m_xattr_warned.exchange(true)) {
        spdlog::info("the filesystem of {} keeps no user extended attributes; recovery after a "
                     "power loss would attribute unindexed files to their calling AE only",
                     m_workdir.root().string());
    }
    auto st =
        store::durable_rename(in.temp_file, m_workdir.root() / relpath, m_config.storage.fsync);
    if (st) {
        return std::nullopt;
    }
    spdlog::error("C-STORE {}: {}", in.sop_instance_uid, st.error().message);
    std::error_code ec;
    fs::remove(in.temp_file, ec);
    return StoreStatus{status::out_of_resources,
                       "cannot write the instance: " + st.error().message};
}

void Receiver::refused(const dicom::AssociationInfo& assoc, const std::string& sop_instance_uid,
                       std::uint16_t dimse_status, const std::string& reason,
                       const fs::path& temp_file) {
    spdlog::warn("C-STORE {} from {} ({}) refused with status 0x{:04X}: {}",
                 sop_instance_uid.empty() ? "?" : sop_instance_uid, assoc.calling_ae,
                 assoc.peer_address, dimse_status, reason);
    if (!temp_file.empty()) {
        quarantine(assoc, sop_instance_uid, temp_file, reason);
    }
    try {
        auto db = m_pool.acquire();
        const auto writing = m_pool.write_lock();
        store::ReceiveIndex(*db).record_event(assoc.id, now_ms(), sop_instance_uid, "refused",
                                              dimse_status, reason);
    } catch (const store::DatabaseError& e) {
        spdlog::error("cannot record refused C-STORE: {}", e.what());
    }
}

void Receiver::quarantine(const dicom::AssociationInfo& assoc, const std::string& sop_uid,
                          const fs::path& file, const std::string& reason) {
    // The name never uses the (possibly malformed) UID: the unique temp-file stem.
    auto moved = move_to_quarantine(m_workdir, file, file.stem().string() + ".dcm",
                                    {reason, sop_uid, assoc.calling_ae, assoc.peer_address, {}},
                                    m_config.storage.fsync);
    if (!moved) {
        spdlog::error("cannot quarantine {}: {}", file.string(), moved.error().message);
        std::error_code ec;
        fs::remove(file, ec);
        return;
    }
    try {
        auto db = m_pool.acquire();
        const auto writing = m_pool.write_lock();
        store::ReceiveIndex(*db).add_quarantine(now_ms(), moved->string(), reason, assoc.calling_ae,
                                                assoc.peer_address, sop_uid);
    } catch (const store::DatabaseError& e) {
        spdlog::error("cannot index quarantined file {}: {}", moved->string(), e.what());
    }
}

} // namespace segnode::pipeline
