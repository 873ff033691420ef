-- An anomaly marked from Slack as "expected" or "planned": keyed by the alert fingerprint's
-- anomaly (kind|service|anomaly start), so the same anomaly is not alerted again while it
-- lasts. One mark per anomaly; a later click replaces it.
CREATE TABLE alert_marks (
    anomaly TEXT PRIMARY KEY,
    mark TEXT NOT NULL,
    marked_by TEXT NOT NULL,
    marked_at TEXT NOT NULL,
    alert_id BIGINT NOT NULL
);
