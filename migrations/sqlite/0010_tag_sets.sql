-- Each distinct tag set is stored once and facts refer to it (a month's facts share a few
-- thousand tag sets; the JSON text was most of every fact row). The empty set is '' .
CREATE TABLE tag_sets (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tags TEXT NOT NULL UNIQUE
);
INSERT INTO tag_sets (tags) SELECT DISTINCT tags FROM billing_facts;
ALTER TABLE billing_facts ADD COLUMN tag_set_id BIGINT NOT NULL DEFAULT 0;
UPDATE billing_facts SET tag_set_id = (SELECT t.id FROM tag_sets t WHERE t.tags = billing_facts.tags);
ALTER TABLE billing_facts DROP COLUMN tags;
