#include "segnode/store/job_repo.hpp"

#include <algorithm>
#include <array>

namespace segnode::store {
namespace {

constexpr std::array<const char*, 6> k_state_names = {"queued", "running", "sending",
                                                      "done",   "failed",  "cancelled"};

constexpr const char* k_job_columns =
    "id, series_id, series_uid, rule, algorithm, algorithm_version, settings, outputs, "
    "destination, dest_ae, dest_host, dest_port, state, runs, send_attempts, not_before, "
    "cancel_requested, error, created_at, started_at, finished_at, updated_at, purged_at, "
    "owner_key_id, owner_key_name";

JobRow read_job(const Statement& st) {
    JobRow r;
    r.id = st.column_int64(0);
    r.spec.series_id = st.column_int64(1);
    r.spec.series_uid = st.column_text(2);
    r.spec.rule = st.column_text(3);
    r.spec.algorithm = st.column_text(4);
    r.spec.algorithm_version = st.column_text(5);
    r.spec.settings = st.column_text(6);
    r.spec.outputs = st.column_text(7);
    r.spec.destination = st.column_text(8);
    r.spec.dest_ae = st.column_text(9);
    r.spec.dest_host = st.column_text(10);
    r.spec.dest_port = st.column_int64(11);
    r.state = parse_job_state(st.column_text(12)).value_or(JobState::Failed);
    r.runs = st.column_int64(13);
    r.send_attempts = st.column_int64(14);
    r.not_before = st.column_int64(15);
    r.cancel_requested = st.column_int64(16) != 0;
    r.error = st.column_text(17);
    r.created_at = st.column_int64(18);
    r.started_at = st.column_optional_int64(19);
    r.finished_at = st.column_optional_int64(20);
    r.updated_at = st.column_int64(21);
    r.purged_at = st.column_optional_int64(22);
    r.spec.owner_key_id = st.column_optional_int64(23);
    r.spec.owner_key_name = st.column_text(24);
    return r;
}

constexpr const char* k_output_columns =
    "id, job_id, kind, path, sop_class_uid, sop_instance_uid, series_uid, items, size_bytes, "
    "sent_at, send_status, send_detail";

JobOutput read_output(const Statement& st) {
    JobOutput o;
    o.id = st.column_int64(0);
    o.job_id = st.column_int64(1);
    o.kind = st.column_text(2);
    o.relpath = st.column_text(3);
    o.sop_class_uid = st.column_text(4);
    o.sop_instance_uid = st.column_text(5);
    o.series_uid = st.column_text(6);
    o.items = st.column_int64(7);
    o.size_bytes = st.column_int64(8);
    o.sent_at = st.column_optional_int64(9);
    o.send_status = st.column_optional_int64(10);
    o.send_detail = st.column_text(11);
    return o;
}

bool is_finished(JobState state) {
    return state == JobState::Done || state == JobState::Failed || state == JobState::Cancelled;
}

} // namespace

std::string to_string(JobState state) {
    return k_state_names.at(static_cast<std::size_t>(state));
}

std::optional<JobState> parse_job_state(const std::string& text) {
    for (std::size_t i = 0; i < k_state_names.size(); ++i) {
        if (text == k_state_names.at(i)) {
            return static_cast<JobState>(i);
        }
    }
    return std::nullopt;
}

std::int64_t JobRepo::create(const NewJob& job, std::int64_t now, const std::string& why) {
    Transaction tx(m_db);
    const std::int64_t id = create_in_transaction(job, now, why);
    tx.commit();
    return id;
}

std::int64_t JobRepo::create_in_transaction(const NewJob& job, std::int64_t now,
                                            const std::string& why) {
    auto insert = m_db.prepare(
        "INSERT INTO jobs(series_id, series_uid, rule, algorithm, algorithm_version, settings, "
        "outputs, destination, dest_ae, dest_host, dest_port, state, created_at, updated_at, "
        "owner_key_id, owner_key_name) VALUES (?,?,?,?,?,?,?,?,?,?,?,'queued',?,?,?,?)");
    insert.bind(1, job.series_id)
        .bind(2, job.series_uid)
        .bind(3, job.rule)
        .bind(4, job.algorithm)
        .bind(5, job.algorithm_version)
        .bind(6, job.settings)
        .bind(7, job.outputs)
        .bind(8, job.destination)
        .bind(9, job.dest_ae)
        .bind(10, job.dest_host)
        .bind(11, job.dest_port)
        .bind(12, now)
        .bind(13, now)
        .bind(14, job.owner_key_id);
    if (job.owner_key_id) {
        insert.bind(15, job.owner_key_name);
    } else {
        insert.bind_null(15);
    }
    insert.run();
    const std::int64_t id = m_db.last_insert_rowid();
    add_event(id, now, "queued", why);
    return id;
}

std::optional<JobRow> JobRepo::find(std::int64_t id) {
    auto st = m_db.prepare(std::string("SELECT ") + k_job_columns + " FROM jobs WHERE id = ?");
    st.bind(1, id);
    if (!st.step()) {
        return std::nullopt;
    }
    return read_job(st);
}

std::vector<JobRow> JobRepo::list(std::optional<JobState> state, std::int64_t limit) {
    std::string sql = std::string("SELECT ") + k_job_columns + " FROM jobs";
    if (state) {
        sql += " WHERE state = ?";
    }
    sql += " ORDER BY id DESC LIMIT ?";
    auto st = m_db.prepare(sql);
    int index = 1;
    if (state) {
        st.bind(index++, to_string(*state));
    }
    st.bind(index, limit);
    std::vector<JobRow> rows;
    while (st.step()) {
        rows.push_back(read_job(st));
    }
    return rows;
}

std::vector<JobRow> JobRepo::list(const JobFilter& filter) {
    std::string sql = std::string("SELECT ") + k_job_columns + " FROM jobs WHERE 1";
    if (filter.state) {
        sql += " AND state = ?1";
    }
    if (!filter.algorithm.empty()) {
        sql += " AND algorithm = ?2";
    }
    if (filter.owner_key_id) {
        sql += " AND owner_key_id = ?3";
    }
    if (filter.before_id) {
        sql += " AND id < ?4";
    }
    sql += " ORDER BY id DESC LIMIT ?5";
    auto st = m_db.prepare(sql);
    if (filter.state) {
        st.bind(1, to_string(*filter.state));
    }
    if (!filter.algorithm.empty()) {
        st.bind(2, filter.algorithm);
    }
    if (filter.owner_key_id) {
        st.bind(3, *filter.owner_key_id);
    }
    if (filter.before_id) {
        st.bind(4, *filter.before_id);
    }
    st.bind(5, filter.limit);
    std::vector<JobRow> rows;
    while (st.step()) {
        rows.push_back(read_job(st));
    }
    return rows;
}

std::vector<JobRow> JobRepo::for_series(std::int64_t series_id) {
    auto st = m_db.prepare(std::string("SELECT ") + k_job_columns +
                           " FROM jobs WHERE series_id = ? ORDER BY id");
    st.bind(1, series_id);
    std::vector<JobRow> rows;
    while (st.step()) {
        rows.push_back(read_job(st));
    }
    return rows;
}

std::optional<JobRow> JobRepo::next_runnable(std::int64_t now,
                                             const std::vector<std::int64_t>& busy) {
    return next_runnable(now, busy, {});
}

std::optional<JobRow>
JobRepo::next_runnable(std::int64_t now, const std::vector<std::int64_t>& busy,
                       const std::vector<std::string>& algorithms_at_capacity) {
    auto st = m_db.prepare(std::string("SELECT ") + k_job_columns +
                           " FROM jobs WHERE state IN ('queued', 'sending') AND not_before <= ? "
                           "AND cancel_requested = 0 ORDER BY not_before, id");
    st.bind(1, now);
    while (st.step()) {
        JobRow row = read_job(st);
        if (std::find(busy.begin(), busy.end(), row.id) != busy.end()) {
            continue;
        }
        if (row.state == JobState::Queued &&
            std::find(algorithms_at_capacity.begin(), algorithms_at_capacity.end(),
                      row.spec.algorithm) != algorithms_at_capacity.end()) {
            continue;
        }
        return row;
    }
    return std::nullopt;
}

bool JobRepo::transition(std::int64_t id, JobState from, JobState to, std::int64_t now,
                         const std::string& event_detail, const std::optional<std::string>& error) {
    Transaction tx(m_db);
    std::string sql = "UPDATE jobs SET state = ?, updated_at = ?";
    if (to == JobState::Running) {
        sql += ", runs = runs + 1, started_at = ?3";
    }
    if (is_finished(to)) {
        sql += ", finished_at = ?3";
    }
    if (to == JobState::Queued) {
        sql += ", error = '', cancel_requested = 0, not_before = 0, finished_at = NULL";
    }
    if (to == JobState::Sending && from != JobState::Running) {
        sql += ", send_attempts = 0, not_before = 0, error = '', finished_at = NULL";
    }
    if (error) {
        sql += ", error = ?5";
    }
    sql += " WHERE id = ?4 AND state = ?6";
    auto st = m_db.prepare(sql);
    st.bind(1, to_string(to)).bind(2, now).bind(3, now).bind(4, id).bind(6, to_string(from));
    if (error) {
        st.bind(5, *error);
    }
    st.run();
    if (m_db.changes() != 1) {
        return false;
    }
    add_event(id, now, to_string(to), event_detail.empty() && error ? *error : event_detail);
    tx.commit();
    return true;
}

void JobRepo::record_send_attempt(std::int64_t id, std::int64_t now, std::int64_t not_before,
                                  const std::string& detail) {
    Transaction tx(m_db);
    m_db.prepare("UPDATE jobs SET send_attempts = send_attempts + 1, not_before = ?, error = ?, "
                 "updated_at = ? WHERE id = ?")
        .bind(1, not_before)
        .bind(2, detail)
        .bind(3, now)
        .bind(4, id)
        .run();
    add_event(id, now, "send_failed", detail);
    tx.commit();
}

void JobRepo::count_send_attempt(std::int64_t id) {
    m_db.prepare("UPDATE jobs SET send_attempts = send_attempts + 1 WHERE id = ?")
        .bind(1, id)
        .run();
}

std::string JobRepo::request_cancel(std::int64_t id, std::int64_t now, bool& ok) {
    ok = false;
    const auto job = find(id);
    if (!job) {
        return "no job " + std::to_string(id);
    }
    switch (job->state) {
    case JobState::Queued:
    case JobState::Sending:
        if (transition(id, job->state, JobState::Cancelled, now, "cancelled by operator",
                       std::string("cancelled by operator"))) {
            ok = true;
            return "job " + std::to_string(id) + " cancelled";
        }
        return "job " + std::to_string(id) + " changed state meanwhile; try again";
    case JobState::Running: {
        Transaction tx(m_db);
        m_db.prepare("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE id = ? AND "
                     "state = 'running'")
            .bind(1, now)
            .bind(2, id)
            .run();
        if (m_db.changes() != 1) {
            return "job " + std::to_string(id) + " changed state meanwhile; try again";
        }
        add_event(id, now, "cancel_requested", "by operator");
        tx.commit();
        ok = true;
        return "job " + std::to_string(id) +
               " is running; cancellation requested (the node stops it within seconds)";
    }
    default:
        return "job " + std::to_string(id) + " is " + to_string(job->state) +
               " and cannot be cancelled";
    }
}

std::string JobRepo::retry(std::int64_t id, std::int64_t now, bool& ok) {
    ok = false;
    const auto job = find(id);
    if (!job) {
        return "no job " + std::to_string(id);
    }
    if (job->state != JobState::Failed && job->state != JobState::Cancelled) {
        return "job " + std::to_string(id) + " is " + to_string(job->state) +
               "; only failed or cancelled jobs can be retried";
    }
    if (job->purged_at) {
        return "job " + std::to_string(id) +
               " was removed by retention; run the series again with `segnode series run`";
    }
    // Outputs all written (the failure was in sending): resend them; otherwise start over.
    std::size_t wanted = 1 + static_cast<std::size_t>(std::count(job->spec.outputs.begin(),
                                                                 job->spec.outputs.end(), ','));
    const bool written = outputs(id).size() == wanted;
    const JobState to = written ? JobState::Sending : JobState::Queued;
    if (!transition(id, job->state, to, now, "retried by operator")) {
        return "job " + std::to_string(id) + " changed state meanwhile; try again";
    }
    ok = true;
    return "job " + std::to_string(id) +
           (written ? " will send its results again" : " is queued again");
}

int JobRepo::requeue_interrupted(std::int64_t now) {
    std::vector<std::int64_t> ids;
    {
        auto st = m_db.prepare("SELECT id FROM jobs WHERE state = 'running'");
        while (st.step()) {
            ids.push_back(st.column_int64(0));
        }
    }
    int count = 0;
    for (const std::int64_t id : ids) {
        count += transition(id, JobState::Running, JobState::Queued, now,
                            "interrupted by a stop or crash; queued again")
                     ? 1
                     : 0;
    }
    return count;
}

std::vector<std::int64_t> JobRepo::cancel_requested_running() {
    auto st = m_db.prepare("SELECT id FROM jobs WHERE state = 'running' AND cancel_requested = 1");
    std::vector<std::int64_t> ids;
    while (st.step()) {
        ids.push_back(st.column_int64(0));
    }
    return ids;
}

void JobRepo::add_event(std::int64_t id, std::int64_t at, const std::string& event,
                        const std::string& detail) {
    m_db.prepare("INSERT INTO job_events(job_id, at, event, detail) VALUES (?,?,?,?)")
        .bind(1, id)
        .bind(2, at)
        .bind(3, event)
        .bind(4, detail)
        .run();
}

std::vector<JobEvent> JobRepo::events(std::int64_t id) {
    auto st = m_db.prepare("SELECT at, event, detail FROM job_events WHERE job_id = ? ORDER BY id");
    st.bind(1, id);
    std::vector<JobEvent> rows;
    while (st.step()) {
        rows.push_back({st.column_int64(0), st.column_text(1), st.column_text(2)});
    }
    return rows;
}

void JobRepo::put_output(const JobOutput& o) {
    m_db.prepare("INSERT INTO job_outputs(job_id, kind, path, sop_class_uid, sop_instance_uid, "
                 "series_uid, items, size_bytes) VALUES (?,?,?,?,?,?,?,?) "
                 "ON CONFLICT(job_id, kind) DO UPDATE SET path = excluded.path, "
                 "sop_class_uid = excluded.sop_class_uid, "
                 "sop_instance_uid = excluded.sop_instance_uid, series_uid = excluded.series_uid, "
                 "items = excluded.items, size_bytes = excluded.size_bytes, sent_at = NULL, "
                 "send_status = NULL, send_detail = ''")
        .bind(1, o.job_id)
        .bind(2, o.kind)
        .bind(3, o.relpath)
        .bind(4, o.sop_class_uid)
        .bind(5, o.sop_instance_uid)
        .bind(6, o.series_uid)
        .bind(7, o.items)
        .bind(8, o.size_bytes)
        .run();
}

std::vector<JobOutput> JobRepo::outputs(std::int64_t job_id) {
    auto st = m_db.prepare(std::string("SELECT ") + k_output_columns +
                           " FROM job_outputs WHERE job_id = ? ORDER BY id");
    st.bind(1, job_id);
    std::vector<JobOutput> rows;
    while (st.step()) {
        rows.push_back(read_output(st));
    }
    return rows;
}

void JobRepo::mark_output_sent(std::int64_t output_id, std::int64_t at, int status,
                               const std::string& detail) {
    m_db.prepare("UPDATE job_outputs SET sent_at = ?, send_status = ?, send_detail = ? "
                 "WHERE id = ?")
        .bind(1, at)
        .bind(2, std::int64_t{status})
        .bind(3, detail)
        .bind(4, output_id)
        .run();
}

void JobRepo::mark_output_failed(std::int64_t output_id, int status, const std::string& detail) {
    m_db.prepare("UPDATE job_outputs SET send_status = ?, send_detail = ? WHERE id = ?")
        .bind(1, std::int64_t{status})
        .bind(2, detail)
        .bind(3, output_id)
        .run();
}

std::vector<std::int64_t> JobRepo::finished_before(std::int64_t cutoff) {
    auto st = m_db.prepare("SELECT id FROM jobs WHERE state IN ('done', 'failed', 'cancelled') "
                           "AND finished_at < ? AND purged_at IS NULL ORDER BY id");
    st.bind(1, cutoff);
    std::vector<std::int64_t> ids;
    while (st.step()) {
        ids.push_back(st.column_int64(0));
    }
    return ids;
}

void JobRepo::mark_purged(std::int64_t id, std::int64_t at) {
    m_db.prepare("UPDATE jobs SET purged_at = ? WHERE id = ?").bind(1, at).bind(2, id).run();
}

std::vector<std::pair<std::string, std::int64_t>> JobRepo::count_by_state() {
    std::vector<std::pair<std::string, std::int64_t>> counts;
    for (const char* state : k_state_names) {
        auto st = m_db.prepare("SELECT count(*) FROM jobs WHERE state = ?");
        st.bind(1, state);
        st.step();
        if (const std::int64_t n = st.column_int64(0); n > 0) {
            counts.emplace_back(state, n);
        }
    }
    return counts;
}

std::optional<std::int64_t> JobRepo::oldest_queued_at() {
    auto st = m_db.prepare("SELECT min(created_at) FROM jobs WHERE state = 'queued'");
    if (!st.step()) {
        return std::nullopt;
    }
    return st.column_optional_int64(0);
}

} // namespace segnode::store
