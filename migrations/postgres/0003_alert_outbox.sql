-- The alert outbox: detection inserts rows (one per fingerprint, ever), delivery updates them.
-- payload is costsplit's own alert JSON; only the Slack notifier turns it into Slack's JSON.
CREATE TABLE alerts (
    id BIGSERIAL PRIMARY KEY,
    fingerprint TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    team TEXT NOT NULL,
    period TEXT NOT NULL,
    channel TEXT NOT NULL,
    summary TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    next_attempt_at TEXT NOT NULL DEFAULT '',
    sent_at TEXT NOT NULL DEFAULT '',
    resolved_at TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alerts_state ON alerts (state, id);
