-- What a sync saw of its source, so the next sync can tell whether it changed: for an S3
-- export, a hash of the period's manifest and data objects (their ETags); empty for Cost
-- Explorer windows, which are always fetched again.
ALTER TABLE sync_runs ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
CREATE INDEX sync_runs_source_period ON sync_runs (source, account, from_day, id);
