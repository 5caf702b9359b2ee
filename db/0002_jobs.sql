-- segnode schema, version 2: jobs (routing results), their outputs and timeline; purge marks
-- for retention. Times are Unix epoch milliseconds (UTC).

CREATE TABLE jobs (
    id                 INTEGER PRIMARY KEY,
    series_id          INTEGER NOT NULL REFERENCES series(id),
    series_uid         TEXT    NOT NULL,
    -- the rule that created the job, or 'manual' for `segnode series run`
    rule               TEXT    NOT NULL,
    algorithm          TEXT    NOT NULL,
    algorithm_version  TEXT    NOT NULL DEFAULT '',
    -- settings overrides as "key=value" lines, validated when the job was created
    settings           TEXT    NOT NULL DEFAULT '',
    -- comma-separated: seg, rtstruct
    outputs            TEXT    NOT NULL,
    -- destination as named at creation ('sender' or a peer name) and as resolved then
    destination        TEXT    NOT NULL,
    dest_ae            TEXT    NOT NULL DEFAULT '',
    dest_host          TEXT    NOT NULL DEFAULT '',
    dest_port          INTEGER NOT NULL DEFAULT 0,
    state              TEXT    NOT NULL DEFAULT 'queued'
                       CHECK (state IN ('queued', 'running', 'sending', 'done', 'failed',
                                        'cancelled')),
    -- processing runs started (a restart during `running` starts another one)
    runs               INTEGER NOT NULL DEFAULT 0,
    -- send attempts made
    send_attempts      INTEGER NOT NULL DEFAULT 0,
    -- earliest time the next step may start (send retry backoff)
    not_before         INTEGER NOT NULL DEFAULT 0,
    cancel_requested   INTEGER NOT NULL DEFAULT 0,
    error              TEXT    NOT NULL DEFAULT '',
    created_at         INTEGER NOT NULL,
    started_at         INTEGER,
    finished_at        INTEGER,
    updated_at         INTEGER NOT NULL,
    purged_at          INTEGER
);
CREATE INDEX jobs_state ON jobs(state, not_before);
CREATE INDEX jobs_series ON jobs(series_id);

-- One row per object a job produced. `sent_at` is set as soon as the destination answers
-- success or warning, so a restart never sends that object again.
CREATE TABLE job_outputs (
    id                 INTEGER PRIMARY KEY,
    job_id             INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    kind               TEXT    NOT NULL CHECK (kind IN ('seg', 'rtstruct')),
    path               TEXT    NOT NULL,   -- relative to the working directory
    sop_class_uid      TEXT    NOT NULL,
    sop_instance_uid   TEXT    NOT NULL,
    series_uid         TEXT    NOT NULL,
    items              INTEGER NOT NULL DEFAULT 0,
    size_bytes         INTEGER NOT NULL DEFAULT 0,
    sent_at            INTEGER,
    send_status        INTEGER,            -- DIMSE status of the last attempt
    send_detail        TEXT    NOT NULL DEFAULT '',
    UNIQUE (job_id, kind)
);

-- The timeline of each job: state changes, send attempts, errors.
CREATE TABLE job_events (
    id                 INTEGER PRIMARY KEY,
    job_id             INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at                 INTEGER NOT NULL,
    event              TEXT    NOT NULL,
    detail             TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX job_events_job ON job_events(job_id, at);

-- Retention: when the instance files of a series were removed.
ALTER TABLE series ADD COLUMN purged_at INTEGER;
