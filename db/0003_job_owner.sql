-- segnode schema, version 3: the API key that created a job. A key with the submit role sees
-- and acts only on its own jobs; jobs created by routing rules or the local CLI have no owner.
ALTER TABLE jobs ADD COLUMN owner_key_id INTEGER REFERENCES api_keys(id);
ALTER TABLE jobs ADD COLUMN owner_key_name TEXT;
CREATE INDEX jobs_owner ON jobs(owner_key_id, id);
