-- Billing facts (daily grain), allocations and the runs that produced them.
-- Money is integer nano-units (1e-9 of the currency); days are 'YYYY-MM-DD' text.
CREATE TABLE imports (
    id BIGSERIAL PRIMARY KEY,
    created_at TEXT NOT NULL,
    source TEXT NOT NULL,
    files TEXT NOT NULL,
    periods TEXT NOT NULL,
    line_items BIGINT NOT NULL,
    facts BIGINT NOT NULL,
    effective_nanos BIGINT NOT NULL,
    billed_nanos BIGINT NOT NULL
);

CREATE TABLE billing_facts (
    day TEXT NOT NULL,
    billing_period TEXT NOT NULL,
    billing_account TEXT NOT NULL,
    sub_account TEXT NOT NULL,
    provider TEXT NOT NULL,
    provider_service TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    charge_category TEXT NOT NULL,
    tags TEXT NOT NULL,
    currency TEXT NOT NULL,
    effective_nanos BIGINT NOT NULL,
    billed_nanos BIGINT NOT NULL,
    line_count BIGINT NOT NULL,
    estimated BIGINT NOT NULL DEFAULT 0,
    import_id BIGINT NOT NULL REFERENCES imports(id)
);
CREATE INDEX billing_facts_day ON billing_facts (day);
CREATE INDEX billing_facts_period ON billing_facts (billing_period, billing_account);

CREATE TABLE allocation_runs (
    id BIGSERIAL PRIMARY KEY,
    created_at TEXT NOT NULL,
    from_day TEXT NOT NULL,
    to_day TEXT NOT NULL,
    rules_hash TEXT NOT NULL,
    cost_basis TEXT NOT NULL,
    facts BIGINT NOT NULL,
    billed_nanos BIGINT NOT NULL,
    allocated_nanos BIGINT NOT NULL
);

CREATE TABLE allocations (
    day TEXT NOT NULL,
    service TEXT NOT NULL,
    team TEXT NOT NULL,
    cost_center TEXT NOT NULL,
    pool TEXT NOT NULL,
    method TEXT NOT NULL,
    fallback_used BIGINT NOT NULL,
    ratio_ppb BIGINT NOT NULL,
    amount_nanos BIGINT NOT NULL,
    currency TEXT NOT NULL,
    cost_basis TEXT NOT NULL,
    rules_hash TEXT NOT NULL,
    run_id BIGINT NOT NULL REFERENCES allocation_runs(id)
);
CREATE INDEX allocations_day_service ON allocations (day, service);
