#pragma once
// The job service: submit, cancel and retry jobs with typed results. Both the admin CLI
// (`segnode series run`, `job cancel`, `job retry`) and the HTTP API use it, so a job made by
// either is checked the same way. It works on the caller's database connection; the node's
// job runner picks new and changed jobs up at its next poll (or at once after `wake`).
#include "segnode/algorithms/registry.hpp"
#include "segnode/core/config.hpp"
#include "segnode/store/database.hpp"
#include "segnode/store/job_repo.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace segnode::pipeline {

/// The files of a job's `labelmap` output, in jobs/<id>/ and as download names.
inline constexpr const char* k_labels_file = "labels.nii.gz";
inline constexpr const char* k_segments_file = "segments.json";

/// Why a job request was not carried out. The HTTP API maps each to a status code.
enum class JobProblem {
    None,
    SeriesNotFound,     ///< no such series
    SeriesEmpty,        ///< its instances were removed by retention
    JobNotFound,        ///< no such job
    UnknownAlgorithm,   ///< not in the registry
    InvalidSettings,    ///< a setting is unknown or out of range (message starts with the key)
    InvalidOutputs,     ///< no or unknown output kinds
    UnknownDestination, ///< not a peer, "sender" or "none", or "sender" cannot be resolved
    Conflict,           ///< the job's state does not allow the operation
};

struct JobOutcome {
    JobProblem problem = JobProblem::None;
    std::string message;              ///< what happened, or why not
    std::int64_t job_id = 0;          ///< the job created or acted on
    std::optional<store::JobRow> job; ///< submit: the job as created

    [[nodiscard]] bool ok() const { return problem == JobProblem::None; }
};

struct SubmitRequest {
    std::string series_uid;
    std::string algorithm;
    std::vector<std::pair<std::string, std::string>> settings; ///< overrides, as text
    std::vector<OutputKind> outputs;
    /// A peer name, "sender" (the [[peers]] entry of the series' calling AE) or "none": the
    /// results stay on the node for download and the job ends `done` without sending.
    std::string destination = "sender";
    std::string why = "segnode series run"; ///< the "queued" event's detail
    std::optional<std::int64_t> owner_key_id;
    std::string owner_key_name;
};

/// Cancels a queued or sending job at once; flags a running one for its worker to stop.
JobOutcome cancel_job(store::Database& db, std::int64_t job_id);
/// Queues a failed or cancelled job again (or lets it resend outputs already written).
JobOutcome retry_job(store::Database& db, std::int64_t job_id);

class JobService {
public:
    JobService(const Config& config, const algorithms::Registry& registry)
        : m_config(config), m_registry(registry) {}

    /// Validates and queues a job. Throws store::DatabaseError on database failures.
    JobOutcome submit(store::Database& db, const SubmitRequest& request);
    static JobOutcome cancel(store::Database& db, std::int64_t job_id);
    static JobOutcome retry(store::Database& db, std::int64_t job_id);

private:
    const Config& m_config;
    const algorithms::Registry& m_registry;
};

} // namespace segnode::pipeline
