#include "segnode/pipeline/job_service.hpp"

#include "segnode/core/clock.hpp"
#include "segnode/pipeline/routing.hpp"
#include "segnode/store/receive_index.hpp"

namespace segnode::pipeline {
namespace {

JobOutcome problem(JobProblem kind, std::string message, std::int64_t job_id = 0) {
    JobOutcome out;
    out.problem = kind;
    out.message = std::move(message);
    out.job_id = job_id;
    return out;
}

} // namespace

JobOutcome JobService::submit(store::Database& db, const SubmitRequest& request) {
    const algorithms::Algorithm* algorithm = m_registry.find(request.algorithm);
    if (algorithm == nullptr) {
        auto known = m_registry.get(request.algorithm);
        return problem(JobProblem::UnknownAlgorithm,
                       known ? std::string("unknown algorithm") : known.error().message);
    }
    if (auto parsed = algorithm->parse_settings(request.settings); !parsed) {
        return problem(JobProblem::InvalidSettings, parsed.error().message);
    }
    if (request.outputs.empty()) {
        return problem(JobProblem::InvalidOutputs, "no outputs requested (seg, rtstruct)");
    }
    const bool keep = request.destination == "none";
    if (!keep && request.destination != "sender" &&
        m_config.find_peer(request.destination) == nullptr) {
        return problem(JobProblem::UnknownDestination,
                       "unknown peer '" + request.destination +
                           "' (a [[peers]] name, \"sender\" or \"none\")");
    }
    const auto series = store::ReceiveIndex(db).find_series(request.series_uid);
    if (!series) {
        return problem(JobProblem::SeriesNotFound, "no series " + request.series_uid);
    }
    if (series->instance_count == 0) {
        return problem(JobProblem::SeriesEmpty, "series " + request.series_uid +
                                                    " has no stored instances (removed by "
                                                    "retention?)");
    }
    std::string unresolved;
    auto job = make_job(m_config, m_registry, *series, "manual", request.algorithm,
                        request.settings, request.outputs, request.destination, unresolved);
    if (!job) {
        return problem(JobProblem::InvalidSettings, job.error().message);
    }
    if (!unresolved.empty()) {
        return problem(JobProblem::UnknownDestination, unresolved);
    }
    job->owner_key_id = request.owner_key_id;
    job->owner_key_name = request.owner_key_id ? request.owner_key_name : std::string();
    store::JobRepo repo(db);
    const std::int64_t id = repo.create(*job, now_ms(), request.why);
    JobOutcome out;
    out.job_id = id;
    out.job = repo.find(id);
    out.message =
        "job " + std::to_string(id) + " queued: " + request.algorithm + " on " +
        request.series_uid + " -> " +
        (keep ? std::string("none (results stay on the node)")
              : job->dest_ae + " at " + job->dest_host + ":" + std::to_string(job->dest_port));
    return out;
}

/// A state change of an existing job by one of JobRepo's guarded actions (which say why they
/// did not apply in their message).
template <typename Action>
JobOutcome act_on_job(store::Database& db, std::int64_t job_id, Action&& action) {
    store::JobRepo repo(db);
    if (!repo.find(job_id)) {
        return problem(JobProblem::JobNotFound, "no job " + std::to_string(job_id), job_id);
    }
    bool ok = false;
    std::string message = action(repo, ok);
    if (!ok) {
        return problem(JobProblem::Conflict, std::move(message), job_id);
    }
    JobOutcome out;
    out.job_id = job_id;
    out.message = std::move(message);
    return out;
}

JobOutcome cancel_job(store::Database& db, std::int64_t job_id) {
    return act_on_job(db, job_id, [job_id](store::JobRepo& repo, bool& ok) {
        return repo.request_cancel(job_id, now_ms(), ok);
    });
}

JobOutcome retry_job(store::Database& db, std::int64_t job_id) {
    return act_on_job(db, job_id, [job_id](store::JobRepo& repo, bool& ok) {
        return repo.retry(job_id, now_ms(), ok);
    });
}

JobOutcome JobService::cancel(store::Database& db, std::int64_t job_id) {
    return cancel_job(db, job_id);
}

JobOutcome JobService::retry(store::Database& db, std::int64_t job_id) {
    return retry_job(db, job_id);
}

} // namespace segnode::pipeline
