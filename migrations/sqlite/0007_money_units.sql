-- Amounts past 9.2e9 currency units (a month in IDR, KRW or VND) did not fit one BIGINT of
-- nano-units. Every amount is now two BIGINT columns, as google.type.Money: whole units
-- (`*_units`) and the nano-units past them (`*_nanos`, |n| < 1e9, the sign of the amount),
-- amount = units + nanos / 1e9. SQL sums of each column stay exact.
ALTER TABLE imports ADD COLUMN effective_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE imports ADD COLUMN billed_units BIGINT NOT NULL DEFAULT 0;
UPDATE imports SET
    effective_units = effective_nanos / 1000000000, effective_nanos = effective_nanos % 1000000000,
    billed_units = billed_nanos / 1000000000, billed_nanos = billed_nanos % 1000000000;

ALTER TABLE billing_facts ADD COLUMN effective_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_facts ADD COLUMN billed_units BIGINT NOT NULL DEFAULT 0;
UPDATE billing_facts SET
    effective_units = effective_nanos / 1000000000, effective_nanos = effective_nanos % 1000000000,
    billed_units = billed_nanos / 1000000000, billed_nanos = billed_nanos % 1000000000;

ALTER TABLE allocation_runs ADD COLUMN billed_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE allocation_runs ADD COLUMN allocated_units BIGINT NOT NULL DEFAULT 0;
UPDATE allocation_runs SET
    billed_units = billed_nanos / 1000000000, billed_nanos = billed_nanos % 1000000000,
    allocated_units = allocated_nanos / 1000000000, allocated_nanos = allocated_nanos % 1000000000;

ALTER TABLE allocations ADD COLUMN amount_units BIGINT NOT NULL DEFAULT 0;
UPDATE allocations SET
    amount_units = amount_nanos / 1000000000, amount_nanos = amount_nanos % 1000000000;
