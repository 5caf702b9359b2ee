-- segnode schema, version 1: received instances, series, associations, receive events,
-- quarantine and API keys. Times are Unix epoch milliseconds (UTC).

CREATE TABLE associations (
    id                 INTEGER PRIMARY KEY,
    calling_ae         TEXT    NOT NULL,
    called_ae          TEXT    NOT NULL,
    peer_address       TEXT    NOT NULL,
    started_at         INTEGER NOT NULL,
    ended_at           INTEGER,
    instances_stored   INTEGER NOT NULL DEFAULT 0,
    instances_refused  INTEGER NOT NULL DEFAULT 0,
    -- 'accepted' while open; 'failed' also for associations a crash left open
    outcome            TEXT    NOT NULL
                       CHECK (outcome IN ('accepted', 'rejected', 'released', 'aborted',
                                          'failed')),
    detail             TEXT
);

CREATE TABLE series (
    id                 INTEGER PRIMARY KEY,
    series_uid         TEXT    NOT NULL UNIQUE,
    study_uid          TEXT    NOT NULL,
    patient_id         TEXT    NOT NULL DEFAULT '',
    patient_name       TEXT    NOT NULL DEFAULT '',
    study_date         TEXT    NOT NULL DEFAULT '',
    accession_number   TEXT    NOT NULL DEFAULT '',
    modality           TEXT    NOT NULL DEFAULT '',
    series_number      TEXT    NOT NULL DEFAULT '',
    description        TEXT    NOT NULL DEFAULT '',
    body_part          TEXT    NOT NULL DEFAULT '',
    frame_of_reference TEXT    NOT NULL DEFAULT '',
    calling_ae         TEXT    NOT NULL,
    called_ae          TEXT    NOT NULL,
    peer_address       TEXT    NOT NULL,
    state              TEXT    NOT NULL DEFAULT 'receiving'
                       CHECK (state IN ('receiving', 'complete', 'routed')),
    instance_count     INTEGER NOT NULL DEFAULT 0,
    late_instances     INTEGER NOT NULL DEFAULT 0,
    first_received_at  INTEGER NOT NULL,
    last_received_at   INTEGER NOT NULL,
    completed_at       INTEGER,
    last_association   INTEGER REFERENCES associations(id)
);
CREATE INDEX series_state_last ON series(state, last_received_at);
CREATE INDEX series_study ON series(study_uid);

CREATE TABLE instances (
    id                 INTEGER PRIMARY KEY,
    sop_instance_uid   TEXT    NOT NULL UNIQUE,
    sop_class_uid      TEXT    NOT NULL,
    series_id          INTEGER NOT NULL REFERENCES series(id) ON DELETE CASCADE,
    instance_number    TEXT    NOT NULL DEFAULT '',
    transfer_syntax    TEXT    NOT NULL,
    path               TEXT    NOT NULL,   -- relative to the working directory
    size_bytes         INTEGER NOT NULL,
    received_at        INTEGER NOT NULL,
    association_id     INTEGER REFERENCES associations(id)
);
CREATE INDEX instances_series ON instances(series_id);
CREATE INDEX instances_association ON instances(association_id);

-- Everything about a C-STORE other than a plain first-time success: duplicates, replacements,
-- late arrivals and refusals, each with the DIMSE status sent back.
CREATE TABLE receive_events (
    id                 INTEGER PRIMARY KEY,
    association_id     INTEGER REFERENCES associations(id),
    at                 INTEGER NOT NULL,
    sop_instance_uid   TEXT    NOT NULL DEFAULT '',
    kind               TEXT    NOT NULL
                       CHECK (kind IN ('duplicate', 'duplicate_conflict', 'replaced', 'late',
                                       'refused')),
    dimse_status       INTEGER NOT NULL,
    detail             TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX receive_events_at ON receive_events(at);

CREATE TABLE quarantine (
    id                 INTEGER PRIMARY KEY,
    at                 INTEGER NOT NULL,
    path               TEXT    NOT NULL,   -- relative to the working directory
    reason             TEXT    NOT NULL,
    calling_ae         TEXT    NOT NULL DEFAULT '',
    peer_address       TEXT    NOT NULL DEFAULT '',
    sop_instance_uid   TEXT    NOT NULL DEFAULT ''
);

CREATE TABLE api_keys (
    id                 INTEGER PRIMARY KEY,
    name               TEXT    NOT NULL UNIQUE,
    role               TEXT    NOT NULL CHECK (role IN ('admin', 'submit', 'read')),
    prefix             TEXT    NOT NULL UNIQUE,  -- public identifier shown by `key list`
    secret_sha256      TEXT    NOT NULL,         -- hex SHA-256 of the whole key
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER,
    revoked_at         INTEGER
);
