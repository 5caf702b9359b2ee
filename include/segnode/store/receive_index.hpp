#pragma once
// The index of received data: associations, series, instances, receive events and quarantine.
// One ReceiveIndex per thread (it owns prepared statements on one connection).
#include "segnode/store/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

namespace segnode::store {

struct SeriesAttributes {
    std::string series_uid;
    std::string study_uid;
    std::string patient_id;
    std::string patient_name;
    std::string study_date;
    std::string accession_number;
    std::string modality;
    std::string series_number;
    std::string description;
    std::string body_part;
    std::string frame_of_reference;
};

struct NewInstance {
    SeriesAttributes series;
    std::string sop_instance_uid;
    std::string sop_class_uid;
    std::string instance_number;
    std::string transfer_syntax;
    std::string relpath;
    std::int64_t size_bytes = 0;
    std::int64_t received_at = 0;
    std::int64_t association_id = 0;
    std::string calling_ae;
    std::string called_ae;
    std::string peer_address;
};

struct StoredInstance {
    std::int64_t id = 0;
    std::string sop_instance_uid;
    std::string sop_class_uid;
    std::string series_uid;
    std::string relpath;
    std::int64_t size_bytes = 0;
};

enum class SeriesState { Receiving, Complete, Routed };
std::string to_string(SeriesState state);
/// "receiving", "complete", "routed"; std::nullopt for anything else.
std::optional<SeriesState> parse_series_state(const std::string& text);

struct SeriesRow {
    std::int64_t id = 0;
    SeriesAttributes attrs;
    std::string calling_ae;
    std::string called_ae;
    std::string peer_address;
    SeriesState state = SeriesState::Receiving;
    std::int64_t instance_count = 0;
    std::int64_t late_instances = 0;
    std::int64_t first_received_at = 0;
    std::int64_t last_received_at = 0;
    std::optional<std::int64_t> completed_at;
};

/// What recording an instance did to its series.
struct RecordOutcome {
    bool series_created = false;
    bool late = false;     ///< the series was already complete/routed
    bool reopened = false; ///< ... and went back to `receiving` (late policy "reopen")
};

struct Counts {
    std::int64_t instances = 0;
    std::int64_t series_receiving = 0;
    std::int64_t series_complete = 0;
    std::int64_t series_routed = 0;
    std::int64_t associations = 0;
    std::int64_t quarantined = 0;
    std::int64_t refused = 0;
    std::int64_t api_keys = 0;
};

class ReceiveIndex {
public:
    explicit ReceiveIndex(Database& db) : m_db(db) {}

    std::int64_t begin_association(const std::string& calling_ae, const std::string& called_ae,
                                   const std::string& peer_address, std::int64_t at,
                                   const std::string& outcome, const std::string& detail = {});
    /// `detail` replaces the stored detail only when non-empty.
    void end_association(std::int64_t id, std::int64_t at, std::int64_t stored,
                         std::int64_t refused, const std::string& outcome,
                         const std::string& detail = {});
    /// Records the API key that sent an HTTP upload (STOW-RS) recorded as association `id`.
    void set_association_key(std::int64_t id, std::int64_t api_key_id);
    /// At start-up: associations left open by a crash are closed as "failed".
    int close_stale_associations(std::int64_t at);

    std::optional<StoredInstance> find_instance(const std::string& sop_instance_uid);
    /// calling AE, called AE and peer address of an association.
    struct AssociationPeers {
        std::string calling_ae;
        std::string called_ae;
        std::string peer_address;
    };
    std::optional<AssociationPeers> find_association(std::int64_t id);
    /// Relative paths of every indexed instance file.
    std::unordered_set<std::string> indexed_paths();

    /// Inserts the instance, creating or updating its series, in one transaction. With
    /// `reopen_late`, a late instance sends a complete/routed series back to `receiving`.
    RecordOutcome record_instance(const NewInstance& instance, bool reopen_late);
    /// The same inside the caller's transaction (for group commit).
    RecordOutcome record_instance_in_transaction(const NewInstance& instance, bool reopen_late);
    /// Points an existing instance row at new content (duplicate policy "replace").
    void replace_instance(const NewInstance& instance);

    void record_event(std::int64_t association_id, std::int64_t at, const std::string& sop_uid,
                      const std::string& kind, int dimse_status, const std::string& detail);
    void add_quarantine(std::int64_t at, const std::string& relpath, const std::string& reason,
                        const std::string& calling_ae, const std::string& peer_address,
                        const std::string& sop_uid);

    /// Marks `receiving` series whose last instance is older than `cutoff` as complete;
    /// returns them.
    std::vector<SeriesRow> complete_quiet_series(std::int64_t cutoff, std::int64_t now);
    /// Marks the `receiving` series that got instances on this association as complete.
    std::vector<SeriesRow> complete_series_of_association(std::int64_t association_id,
                                                          std::int64_t now);

    /// Marks one `receiving` series complete now (HTTP API); false if it was not receiving.
    bool complete_series(std::int64_t series_id, std::int64_t now);

    std::optional<SeriesRow> find_series(const std::string& series_uid);
    std::optional<SeriesRow> find_series(std::int64_t id);
    /// A page of series, newest first by id, below `before_id` when given (HTTP API paging).
    std::vector<SeriesRow> list_series_page(std::optional<SeriesState> state,
                                            std::optional<std::int64_t> before_id,
                                            std::int64_t limit);
    /// Relative paths of a series' instance files, in SOP Instance UID order.
    std::vector<std::string> series_files(std::int64_t series_id);
    /// Complete series waiting for routing, oldest first.
    std::vector<SeriesRow> series_to_route();
    /// complete -> routed; false if the series was no longer complete (e.g. reopened by a
    /// late instance, which will complete and be routed again).
    bool mark_routed(std::int64_t series_id);
    /// Routed series last received before `cutoff`, not purged, with no unfinished job.
    std::vector<SeriesRow> purgeable_series(std::int64_t cutoff);
    /// One instance row of a purged series, as it was when the series was marked purged.
    struct PurgedInstance {
        std::string sop_instance_uid;
        std::string relpath;
    };
    /// Marks the series purged and deletes its instance rows, in one transaction, but only if
    /// it is still as `seen` (by purgeable_series): routed, not purged, no unfinished job, and
    /// neither its instance count nor its last reception changed. Returns the deleted rows
    /// (the files for the caller to remove), or nothing when an instance arrived or a job was
    /// created in between (the series is then left alone). A later instance of the series
    /// starts it afresh (not a late instance), whether its files are gone yet or not.
    std::optional<std::vector<PurgedInstance>> mark_series_purged(const SeriesRow& seen,
                                                                  std::int64_t now);
    Counts counts();

private:
    /// Marks `receiving` series matching `condition` (SQL with one `?` bound to `value`) as
    /// complete at `now`, in one transaction; returns them.
    std::vector<SeriesRow> complete_receiving(const std::string& condition, std::int64_t value,
                                              std::int64_t now);

    Database& m_db;
};

} // namespace segnode::store
