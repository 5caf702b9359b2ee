#pragma once
// Jobs: what routing (or `segnode series run`) asked for, their state machine, outputs and
// timeline. Every state change is one guarded UPDATE ("... WHERE state = <expected>"), so two
// processes (the node and an admin CLI) can never move a job twice, and `done` is reached at
// most once. One JobRepo per thread (it borrows one connection).
//
//   queued -> running -> sending -> done
//      \         \          \-> failed (send attempts exhausted)   (failed -> queued|sending
//       \         \-> failed (load/algorithm/writer error, timeout)    by `job retry`)
//        \-> cancelled (from queued, running or sending; `job cancel`)
#include "segnode/store/database.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace segnode::store {

enum class JobState { Queued, Running, Sending, Done, Failed, Cancelled };
std::string to_string(JobState state);
std::optional<JobState> parse_job_state(const std::string& text);

struct NewJob {
    std::int64_t series_id = 0;
    std::string series_uid;
    std::string rule;
    std::string algorithm;
    std::string algorithm_version;
    std::string settings; ///< "key=value" lines
    std::string outputs;  ///< "seg", "rtstruct" or "seg,rtstruct"
    std::string destination;
    std::string dest_ae;
    std::string dest_host;
    std::int64_t dest_port = 0;
    /// The API key that created the job (HTTP API); none for rules and the local CLI.
    std::optional<std::int64_t> owner_key_id;
    std::string owner_key_name;
};

struct JobRow {
    std::int64_t id = 0;
    NewJob spec;
    JobState state = JobState::Queued;
    std::int64_t runs = 0;
    std::int64_t send_attempts = 0;
    std::int64_t not_before = 0;
    bool cancel_requested = false;
    std::string error;
    std::int64_t created_at = 0;
    std::optional<std::int64_t> started_at;
    std::optional<std::int64_t> finished_at;
    std::int64_t updated_at = 0;
    std::optional<std::int64_t> purged_at;
};

struct JobOutput {
    std::int64_t id = 0;
    std::int64_t job_id = 0;
    std::string kind; ///< seg | rtstruct
    std::string relpath;
    std::string sop_class_uid;
    std::string sop_instance_uid;
    std::string series_uid;
    std::int64_t items = 0;
    std::int64_t size_bytes = 0;
    std::optional<std::int64_t> sent_at;
    std::optional<std::int64_t> send_status;
    std::string send_detail;
};

/// A page of jobs, newest first: those matching every given filter with an id below
/// `before_id` (the cursor of the previous page).
struct JobFilter {
    std::optional<JobState> state;
    std::string algorithm; ///< empty: any
    std::optional<std::int64_t> owner_key_id;
    std::optional<std::int64_t> before_id;
    std::int64_t limit = 50;
};

struct JobEvent {
    std::int64_t at = 0;
    std::string event;
    std::string detail;
};

class JobRepo {
public:
    explicit JobRepo(Database& db) : m_db(db) {}

    /// Inserts a queued job and its "queued" event; returns its id.
    std::int64_t create(const NewJob& job, std::int64_t now, const std::string& why);
    /// The same inside the caller's transaction (routing creates the job and marks the
    /// series routed atomically).
    std::int64_t create_in_transaction(const NewJob& job, std::int64_t now, const std::string& why);
    std::optional<JobRow> find(std::int64_t id);
    /// Newest first; `state` empty: all states.
    std::vector<JobRow> list(std::optional<JobState> state, std::int64_t limit);
    std::vector<JobRow> list(const JobFilter& filter);
    std::vector<JobRow> for_series(std::int64_t series_id);

    /// The oldest job that may run now: queued, or sending with its backoff elapsed, not
    /// cancel-requested, and not in `busy`.
    std::optional<JobRow> next_runnable(std::int64_t now, const std::vector<std::int64_t>& busy);
    /// The same, also skipping queued jobs whose algorithm is in `algorithms_at_capacity`
    /// (its max_parallel runs are in progress); they stay queued without holding back the
    /// jobs behind them. Sending jobs are never skipped for it (a send runs no algorithm).
    std::optional<JobRow> next_runnable(std::int64_t now, const std::vector<std::int64_t>& busy,
                                        const std::vector<std::string>& algorithms_at_capacity);

    /// Guarded transition: true if the job was in `from` and is now in `to`. Entering running
    /// counts a run and sets started_at; entering done/failed/cancelled sets finished_at.
    /// `error` replaces the job's error text when given (cleared when entering queued).
    bool transition(std::int64_t id, JobState from, JobState to, std::int64_t now,
                    const std::string& event_detail = {},
                    const std::optional<std::string>& error = std::nullopt);

    /// A failed send attempt: counts it, records the reason and when to try again.
    void record_send_attempt(std::int64_t id, std::int64_t now, std::int64_t not_before,
                             const std::string& detail);

    /// A successful send attempt (counted like the failed ones).
    void count_send_attempt(std::int64_t id);
    /// `job cancel`: queued and sending jobs are cancelled at once; a running job is flagged
    /// and its worker stops it. Returns the resulting description, or an error text.
    std::string request_cancel(std::int64_t id, std::int64_t now, bool& ok);
    /// `job retry`: failed or cancelled jobs go back to queued (or to sending when all their
    /// outputs are already written). Returns a description, or an error text.
    std::string retry(std::int64_t id, std::int64_t now, bool& ok);
    /// At start-up: jobs left running by a stop or crash go back to queued.
    int requeue_interrupted(std::int64_t now);
    /// Running jobs flagged for cancellation (the node polls this).
    std::vector<std::int64_t> cancel_requested_running();

    void add_event(std::int64_t id, std::int64_t at, const std::string& event,
                   const std::string& detail);
    std::vector<JobEvent> events(std::int64_t id);

    /// Replaces any previous output of the same kind (a re-run after a crash).
    void put_output(const JobOutput& output);
    std::vector<JobOutput> outputs(std::int64_t job_id);
    void mark_output_sent(std::int64_t output_id, std::int64_t at, int status,
                          const std::string& detail);
    void mark_output_failed(std::int64_t output_id, int status, const std::string& detail);

    /// Finished (done/failed/cancelled) jobs finished before `cutoff` and not yet purged.
    std::vector<std::int64_t> finished_before(std::int64_t cutoff);
    void mark_purged(std::int64_t id, std::int64_t at);
    /// (state, number of jobs) for the states that have jobs, in state order.
    std::vector<std::pair<std::string, std::int64_t>> count_by_state();
    /// created_at of the oldest queued job, if any.
    std::optional<std::int64_t> oldest_queued_at();

private:
    Database& m_db;
};

} // namespace segnode::store
