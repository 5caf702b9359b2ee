#include "segnode/store/receive_index.hpp"

namespace segnode::store {
namespace {

SeriesState parse_state(const std::string& s) {
    return parse_series_state(s).value_or(SeriesState::Receiving);
}

constexpr const char* k_series_columns =
    "id, series_uid, study_uid, patient_id, patient_name, study_date, accession_number, "
    "modality, series_number, description, body_part, frame_of_reference, calling_ae, "
    "called_ae, peer_address, state, instance_count, late_instances, first_received_at, "
    "last_received_at, completed_at";

SeriesRow read_series(const Statement& st) {
    SeriesRow r;
    r.id = st.column_int64(0);
    r.attrs.series_uid = st.column_text(1);
    r.attrs.study_uid = st.column_text(2);
    r.attrs.patient_id = st.column_text(3);
    r.attrs.patient_name = st.column_text(4);
    r.attrs.study_date = st.column_text(5);
    r.attrs.accession_number = st.column_text(6);
    r.attrs.modality = st.column_text(7);
    r.attrs.series_number = st.column_text(8);
    r.attrs.description = st.column_text(9);
    r.attrs.body_part = st.column_text(10);
    r.attrs.frame_of_reference = st.column_text(11);
    r.calling_ae = st.column_text(12);
    r.called_ae = st.column_text(13);
    r.peer_address = st.column_text(14);
    r.state = parse_state(st.column_text(15));
    r.instance_count = st.column_int64(16);
    r.late_instances = st.column_int64(17);
    r.first_received_at = st.column_int64(18);
    r.last_received_at = st.column_int64(19);
    r.completed_at = st.column_optional_int64(20);
    return r;
}

/// 0 means "not recorded" (e.g. the association row could not be written): store NULL.
std::optional<std::int64_t> association_or_null(std::int64_t id) {
    return id > 0 ? std::optional<std::int64_t>(id) : std::nullopt;
}

std::int64_t count(Database& db, const char* sql) {
    auto st = db.prepare(sql);
    st.step();
    return st.column_int64(0);
}

} // namespace

std::optional<SeriesState> parse_series_state(const std::string& text) {
    for (const SeriesState state :
         {SeriesState::Receiving, SeriesState::Complete, SeriesState::Routed}) {
        if (text == to_string(state)) {
            return state;
        }
    }
    return std::nullopt;
}

std::string to_string(SeriesState state) {
    switch (state) {
    case SeriesState::Receiving:
        return "receiving";
    case SeriesState::Complete:
        return "complete";
    case SeriesState::Routed:
        return "routed";
    }
    return "receiving";
}

std::int64_t ReceiveIndex::begin_association(const std::string& calling_ae,
                                             const std::string& called_ae,
                                             const std::string& peer_address, std::int64_t at,
                                             const std::string& outcome,
                                             const std::string& detail) {
    m_db.prepare("INSERT INTO associations(calling_ae, called_ae, peer_address, started_at, "
                 "outcome, detail) VALUES (?,?,?,?,?,?)")
        .bind(1, calling_ae)
        .bind(2, called_ae)
        .bind(3, peer_address)
        .bind(4, at)
        .bind(5, outcome)
        .bind(6, detail)
        .run();
    return m_db.last_insert_rowid();
}

void ReceiveIndex::end_association(std::int64_t id, std::int64_t at, std::int64_t stored,
                                   std::int64_t refused, const std::string& outcome,
                                   const std::string& detail) {
    m_db.prepare("UPDATE associations SET ended_at=?, instances_stored=?, instances_refused=?, "
                 "outcome=?, detail=CASE WHEN ?='' THEN detail ELSE ? END WHERE id=?")
        .bind(1, at)
        .bind(2, stored)
        .bind(3, refused)
        .bind(4, outcome)
        .bind(5, detail)
        .bind(6, detail)
        .bind(7, id)
        .run();
}

void ReceiveIndex::set_association_key(std::int64_t id, std::int64_t api_key_id) {
    m_db.prepare("UPDATE associations SET api_key_id=? WHERE id=?")
        .bind(1, api_key_id)
        .bind(2, id)
        .run();
}

int ReceiveIndex::close_stale_associations(std::int64_t at) {
    m_db.prepare("UPDATE associations SET ended_at=?, outcome='failed', detail='segnode stopped "
                 "before the association ended' WHERE ended_at IS NULL AND outcome='accepted'")
        .bind(1, at)
        .run();
    return m_db.changes();
}

std::optional<StoredInstance> ReceiveIndex::find_instance(const std::string& sop_instance_uid) {
    auto st = m_db.prepare(
        "SELECT i.id, i.sop_instance_uid, i.sop_class_uid, s.series_uid, i.path, i.size_bytes "
        "FROM instances i JOIN series s ON s.id = i.series_id WHERE i.sop_instance_uid = ?");
    st.bind(1, sop_instance_uid);
    if (!st.step()) {
        return std::nullopt;
    }
    return StoredInstance{st.column_int64(0), st.column_text(1), st.column_text(2),
                          st.column_text(3),  st.column_text(4), st.column_int64(5)};
}

std::optional<ReceiveIndex::AssociationPeers> ReceiveIndex::find_association(std::int64_t id) {
    auto st =
        m_db.prepare("SELECT calling_ae, called_ae, peer_address FROM associations WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) {
        return std::nullopt;
    }
    return AssociationPeers{st.column_text(0), st.column_text(1), st.column_text(2)};
}

std::unordered_set<std::string> ReceiveIndex::indexed_paths() {
    std::unordered_set<std::string> paths;
    auto st = m_db.prepare("SELECT path FROM instances");
    while (st.step()) {
        paths.insert(st.column_text(0));
    }
    return paths;
}

RecordOutcome ReceiveIndex::record_instance(const NewInstance& in, bool reopen_late) {
    Transaction tx(m_db);
    const RecordOutcome outcome = record_instance_in_transaction(in, reopen_late);
    tx.commit();
    return outcome;
}

RecordOutcome ReceiveIndex::record_instance_in_transaction(const NewInstance& in,
                                                           bool reopen_late) {
    RecordOutcome outcome;
    std::int64_t series_id = 0;
    {
        auto find = m_db.prepare(
            "SELECT id, state, purged_at IS NOT NULL FROM series WHERE series_uid = ?");
        find.bind(1, in.series.series_uid);
        if (find.step()) {
            series_id = find.column_int64(0);
            const SeriesState state = parse_state(find.column_text(1));
            outcome.late = state != SeriesState::Receiving;
            if (find.column_int64(2) != 0) {
                // Retention removed this series' data: it is received afresh, not late.
                m_db.prepare("UPDATE series SET state = 'receiving', purged_at = NULL, "
                             "completed_at = NULL, instance_count = 0, late_instances = 0, "
                             "first_received_at = ? WHERE id = ?")
                    .bind(1, in.received_at)
                    .bind(2, series_id)
                    .run();
                outcome.late = false;
            }
        }
    }
    if (series_id == 0) {
        const auto& a = in.series;
        m_db.prepare("INSERT INTO series(series_uid, study_uid, patient_id, patient_name, "
                     "study_date, accession_number, modality, series_number, description, "
                     "body_part, frame_of_reference, calling_ae, called_ae, peer_address, "
                     "state, instance_count, first_received_at, last_received_at, "
                     "last_association) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,'receiving',0,?,?,?)")
            .bind(1, a.series_uid)
            .bind(2, a.study_uid)
            .bind(3, a.patient_id)
            .bind(4, a.patient_name)
            .bind(5, a.study_date)
            .bind(6, a.accession_number)
            .bind(7, a.modality)
            .bind(8, a.series_number)
            .bind(9, a.description)
            .bind(10, a.body_part)
            .bind(11, a.frame_of_reference)
            .bind(12, in.calling_ae)
            .bind(13, in.called_ae)
            .bind(14, in.peer_address)
            .bind(15, in.received_at)
            .bind(16, in.received_at)
            .bind(17, association_or_null(in.association_id))
            .run();
        series_id = m_db.last_insert_rowid();
        outcome.series_created = true;
    }
    m_db.prepare("INSERT INTO instances(sop_instance_uid, sop_class_uid, series_id, "
                 "instance_number, transfer_syntax, path, size_bytes, received_at, "
                 "association_id) VALUES (?,?,?,?,?,?,?,?,?)")
        .bind(1, in.sop_instance_uid)
        .bind(2, in.sop_class_uid)
        .bind(3, series_id)
        .bind(4, in.instance_number)
        .bind(5, in.transfer_syntax)
        .bind(6, in.relpath)
        .bind(7, in.size_bytes)
        .bind(8, in.received_at)
        .bind(9, association_or_null(in.association_id))
        .run();
    const bool reopen = outcome.late && reopen_late;
    outcome.reopened = reopen;
    m_db.prepare("UPDATE series SET instance_count = instance_count + 1, "
                 "last_received_at = max(last_received_at, ?), last_association = ?, "
                 "late_instances = late_instances + ?, "
                 "state = CASE WHEN ? THEN 'receiving' ELSE state END, "
                 "completed_at = CASE WHEN ? THEN NULL ELSE completed_at END WHERE id = ?")
        .bind(1, in.received_at)
        .bind(2, association_or_null(in.association_id))
        .bind(3, static_cast<std::int64_t>(outcome.late ? 1 : 0))
        .bind(4, static_cast<std::int64_t>(reopen ? 1 : 0))
        .bind(5, static_cast<std::int64_t>(reopen ? 1 : 0))
        .bind(6, series_id)
        .run();
    return outcome;
}

void ReceiveIndex::replace_instance(const NewInstance& in) {
    m_db.prepare("UPDATE instances SET transfer_syntax=?, path=?, size_bytes=?, received_at=?, "
                 "association_id=? WHERE sop_instance_uid=?")
        .bind(1, in.transfer_syntax)
        .bind(2, in.relpath)
        .bind(3, in.size_bytes)
        .bind(4, in.received_at)
        .bind(5, association_or_null(in.association_id))
        .bind(6, in.sop_instance_uid)
        .run();
}

void ReceiveIndex::record_event(std::int64_t association_id, std::int64_t at,
                                const std::string& sop_uid, const std::string& kind,
                                int dimse_status, const std::string& detail) {
    auto st = m_db.prepare("INSERT INTO receive_events(association_id, at, sop_instance_uid, "
                           "kind, dimse_status, detail) VALUES (?,?,?,?,?,?)");
    if (association_id > 0) {
        st.bind(1, association_id);
    } else {
        st.bind_null(1);
    }
    st.bind(2, at).bind(3, sop_uid).bind(4, kind).bind(5, static_cast<std::int64_t>(dimse_status));
    st.bind(6, detail).run();
}

void ReceiveIndex::add_quarantine(std::int64_t at, const std::string& relpath,
                                  const std::string& reason, const std::string& calling_ae,
                                  const std::string& peer_address, const std::string& sop_uid) {
    m_db.prepare("INSERT INTO quarantine(at, path, reason, calling_ae, peer_address, "
                 "sop_instance_uid) VALUES (?,?,?,?,?,?)")
        .bind(1, at)
        .bind(2, relpath)
        .bind(3, reason)
        .bind(4, calling_ae)
        .bind(5, peer_address)
        .bind(6, sop_uid)
        .run();
}

std::vector<SeriesRow> ReceiveIndex::complete_receiving(const std::string& condition,
                                                        std::int64_t value, std::int64_t now) {
    std::vector<SeriesRow> done;
    Transaction tx(m_db);
    {
        auto st = m_db.prepare(std::string("SELECT ") + k_series_columns +
                               " FROM series WHERE state='receiving' AND " + condition);
        st.bind(1, value);
        while (st.step()) {
            done.push_back(read_series(st));
        }
    }
    auto upd = m_db.prepare("UPDATE series SET state='complete', completed_at=? WHERE id=?");
    for (auto& row : done) {
        upd.bind(1, now).bind(2, row.id).run();
        upd.reset();
        row.state = SeriesState::Complete;
        row.completed_at = now;
    }
    tx.commit();
    return done;
}

std::vector<SeriesRow> ReceiveIndex::complete_quiet_series(std::int64_t cutoff, std::int64_t now) {
    return complete_receiving("last_received_at <= ?", cutoff, now);
}

std::vector<SeriesRow> ReceiveIndex::complete_series_of_association(std::int64_t association_id,
                                                                    std::int64_t now) {
    return complete_receiving("last_association = ?", association_id, now);
}

bool ReceiveIndex::complete_series(std::int64_t series_id, std::int64_t now) {
    return !complete_receiving("id = ?", series_id, now).empty();
}

std::optional<SeriesRow> ReceiveIndex::find_series(const std::string& series_uid) {
    auto st = m_db.prepare(std::string("SELECT ") + k_series_columns +
                           " FROM series WHERE series_uid = ?");
    st.bind(1, series_uid);
    if (!st.step()) {
        return std::nullopt;
    }
    return read_series(st);
}

std::optional<SeriesRow> ReceiveIndex::find_series(std::int64_t id) {
    auto st = m_db.prepare(std::string("SELECT ") + k_series_columns + " FROM series WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) {
        return std::nullopt;
    }
    return read_series(st);
}

std::vector<SeriesRow> ReceiveIndex::list_series_page(std::optional<SeriesState> state,
                                                      std::optional<std::int64_t> before_id,
                                                      std::int64_t limit) {
    std::string sql = std::string("SELECT ") + k_series_columns + " FROM series WHERE 1";
    if (state) {
        sql += " AND state = ?1";
    }
    if (before_id) {
        sql += " AND id < ?2";
    }
    sql += " ORDER BY id DESC LIMIT ?3";
    auto st = m_db.prepare(sql);
    if (state) {
        st.bind(1, to_string(*state));
    }
    if (before_id) {
        st.bind(2, *before_id);
    }
    st.bind(3, limit);
    std::vector<SeriesRow> rows;
    while (st.step()) {
        rows.push_back(read_series(st));
    }
    return rows;
}

std::vector<std::string> ReceiveIndex::series_files(std::int64_t series_id) {
    auto st =
        m_db.prepare("SELECT path FROM instances WHERE series_id = ? ORDER BY sop_instance_uid");
    st.bind(1, series_id);
    std::vector<std::string> paths;
    while (st.step()) {
        paths.push_back(st.column_text(0));
    }
    return paths;
}

std::vector<SeriesRow> ReceiveIndex::series_to_route() {
    auto st = m_db.prepare(std::string("SELECT ") + k_series_columns +
                           " FROM series WHERE state = 'complete' ORDER BY completed_at, id");
    std::vector<SeriesRow> rows;
    while (st.step()) {
        rows.push_back(read_series(st));
    }
    return rows;
}

bool ReceiveIndex::mark_routed(std::int64_t series_id) {
    m_db.prepare("UPDATE series SET state = 'routed' WHERE id = ? AND state = 'complete'")
        .bind(1, series_id)
        .run();
    return m_db.changes() == 1;
}

std::vector<SeriesRow> ReceiveIndex::purgeable_series(std::int64_t cutoff) {
    auto st = m_db.prepare(
        std::string("SELECT ") + k_series_columns +
        " FROM series s WHERE state = 'routed' AND purged_at IS NULL AND last_received_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.series_id = s.id AND j.state IN "
        "('queued', 'running', 'sending')) ORDER BY id");
    st.bind(1, cutoff);
    std::vector<SeriesRow> rows;
    while (st.step()) {
        rows.push_back(read_series(st));
    }
    return rows;
}

std::optional<std::vector<ReceiveIndex::PurgedInstance>>
ReceiveIndex::mark_series_purged(const SeriesRow& seen, std::int64_t now) {
    Transaction tx(m_db);
    m_db.prepare("UPDATE series SET purged_at = ?, instance_count = 0 WHERE id = ? AND "
                 "state = 'routed' AND purged_at IS NULL AND instance_count = ? AND "
                 "late_instances = ? AND last_received_at = ? AND NOT EXISTS (SELECT 1 FROM "
                 "jobs j WHERE j.series_id = series.id AND j.state IN ('queued', 'running', "
                 "'sending'))")
        .bind(1, now)
        .bind(2, seen.id)
        .bind(3, seen.instance_count)
        .bind(4, seen.late_instances)
        .bind(5, seen.last_received_at)
        .run();
    if (m_db.changes() != 1) {
        return std::nullopt; // rolled back by the destructor (nothing changed anyway)
    }
    std::vector<PurgedInstance> snapshot;
    auto rows = m_db.prepare("SELECT sop_instance_uid, path FROM instances WHERE series_id = ? "
                             "ORDER BY sop_instance_uid");
    rows.bind(1, seen.id);
    while (rows.step()) {
        snapshot.push_back({rows.column_text(0), rows.column_text(1)});
    }
    m_db.prepare("DELETE FROM instances WHERE series_id = ?").bind(1, seen.id).run();
    tx.commit();
    return snapshot;
}

Counts ReceiveIndex::counts() {
    Counts c;
    c.instances = count(m_db, "SELECT count(*) FROM instances");
    c.series_receiving = count(m_db, "SELECT count(*) FROM series WHERE state='receiving'");
    c.series_complete = count(m_db, "SELECT count(*) FROM series WHERE state='complete'");
    c.series_routed = count(m_db, "SELECT count(*) FROM series WHERE state='routed'");
    c.associations = count(m_db, "SELECT count(*) FROM associations");
    c.quarantined = count(m_db, "SELECT count(*) FROM quarantine");
    c.refused = count(m_db, "SELECT count(*) FROM receive_events WHERE kind='refused'");
    c.api_keys = count(m_db, "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL");
    return c;
}

} // namespace segnode::store
