-- Which facts an allocation run allocated: the largest import id among the facts of its
-- range when it read them. A day whose facts carry a larger import id changed after its
-- last allocation (a re-imported or restated month), and the daemon allocates it again.
ALTER TABLE allocation_runs ADD COLUMN facts_import_id BIGINT NOT NULL DEFAULT 0;
-- Runs made before this column existed are taken as current; their months are still
-- checked against the facts' totals.
UPDATE allocation_runs SET facts_import_id = (SELECT COALESCE(MAX(id), 0) FROM imports);
-- The day index carries the import id too, so "the newest import of each day" is read from
-- the index alone (the daemon asks it after every sync), at no extra cost per write.
DROP INDEX billing_facts_day;
CREATE INDEX billing_facts_day ON billing_facts (day, import_id);
