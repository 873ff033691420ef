-- Live usage measurements: one run per (day, source) collection, and the samples it took.
-- A failed run keeps its record (status 'failed', with the reason) and leaves that day's
-- earlier samples as they were. value is an exact decimal (bytes, keys, a metric's value).
CREATE TABLE usage_runs (
    id BIGSERIAL PRIMARY KEY,
    created_at TEXT NOT NULL,
    day TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    samples BIGINT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX usage_runs_source_day ON usage_runs (source, day, id);

-- member: what was measured (schema, schema.table, key prefix, topic, label value);
-- service: whom the rules' map gave it to ('' when the map names no service for it).
CREATE TABLE usage_samples (
    day TEXT NOT NULL,
    source TEXT NOT NULL,
    member TEXT NOT NULL,
    service TEXT NOT NULL,
    value TEXT NOT NULL,
    unit TEXT NOT NULL,
    run_id BIGINT NOT NULL REFERENCES usage_runs(id)
);
CREATE INDEX usage_samples_source_day ON usage_samples (source, day);

-- Where a usage share came from (source, sample day, value) or why the pool fell back.
ALTER TABLE allocations ADD COLUMN basis TEXT NOT NULL DEFAULT '';
