-- One row per account per billing sync (Cost Explorer): the window asked for, how it ended,
-- and the API calls it made (each one is billed by AWS). Failed and capped runs are kept too,
-- since their calls were paid for.
CREATE TABLE sync_runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at TEXT NOT NULL,
    source TEXT NOT NULL,
    account TEXT NOT NULL,
    from_day TEXT NOT NULL,
    to_day TEXT NOT NULL,
    status TEXT NOT NULL,
    calls BIGINT NOT NULL,
    cost_nanos BIGINT NOT NULL,
    facts BIGINT NOT NULL,
    estimated_days BIGINT NOT NULL,
    message TEXT NOT NULL,
    import_id BIGINT REFERENCES imports(id)
);
CREATE INDEX sync_runs_account ON sync_runs (account, id);
