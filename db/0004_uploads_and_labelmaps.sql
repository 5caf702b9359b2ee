-- segnode schema, version 4: STOW-RS uploads and label map outputs.
-- An HTTP upload (POST /api/v1/studies) is recorded as an association with calling AE
-- 'STOW-RS'; api_key_id names the key that sent it (NULL for DICOM associations).
ALTER TABLE associations ADD COLUMN api_key_id INTEGER REFERENCES api_keys(id);

-- job_outputs.kind gains 'labelmap' (jobs/<id>/labels.nii.gz, with segments.json beside it).
-- SQLite cannot change a CHECK constraint, so the table is rebuilt with the same columns.
CREATE TABLE job_outputs_v4 (
    id                 INTEGER PRIMARY KEY,
    job_id             INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    kind               TEXT    NOT NULL CHECK (kind IN ('seg', 'rtstruct', 'labelmap')),
    path               TEXT    NOT NULL,   -- relative to the working directory
    sop_class_uid      TEXT    NOT NULL,   -- '' for a label map
    sop_instance_uid   TEXT    NOT NULL,   -- '' for a label map
    series_uid         TEXT    NOT NULL,   -- '' for a label map
    items              INTEGER NOT NULL DEFAULT 0,
    size_bytes         INTEGER NOT NULL DEFAULT 0,
    sent_at            INTEGER,            -- never set for a label map (it is not sent)
    send_status        INTEGER,            -- DIMSE status of the last attempt
    send_detail        TEXT    NOT NULL DEFAULT '',
    UNIQUE (job_id, kind)
);
INSERT INTO job_outputs_v4 SELECT * FROM job_outputs;
DROP TABLE job_outputs;
ALTER TABLE job_outputs_v4 RENAME TO job_outputs;
