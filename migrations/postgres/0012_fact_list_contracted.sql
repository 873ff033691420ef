-- FOCUS ListCost and ContractedCost of each fact (the FOCUS export carries them), as whole
-- units and nano-units like every amount. Facts stored before have the billed cost in both,
-- as FOCUS asks of a charge without a list or contracted price.
ALTER TABLE billing_facts ADD COLUMN list_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_facts ADD COLUMN list_nanos BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_facts ADD COLUMN contracted_units BIGINT NOT NULL DEFAULT 0;
ALTER TABLE billing_facts ADD COLUMN contracted_nanos BIGINT NOT NULL DEFAULT 0;
UPDATE billing_facts SET list_units = billed_units, list_nanos = billed_nanos,
    contracted_units = billed_units, contracted_nanos = billed_nanos;
