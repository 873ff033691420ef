-- The daemon's record of every job it ran: when, how it ended and why (a failed job is
-- retried on its next tick). 'tick' is the scheduled time the run answered, so a daemon
-- started after days down can tell which daily ticks it missed.
CREATE TABLE job_runs (
    id BIGSERIAL PRIMARY KEY,
    job TEXT NOT NULL,
    tick TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX job_runs_job ON job_runs (job, id);
