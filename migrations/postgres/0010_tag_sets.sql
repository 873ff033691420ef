-- Each distinct tag set is stored once and facts refer to it (a month's facts share a few
-- thousand tag sets; the JSON text was most of every fact row). The empty set is ''.
-- Unique by the SHA-256 of the text (lower-case hex, as costsplit computes it): a B-tree
-- entry cannot hold an arbitrarily long text, and tags are anyone's to write.
CREATE TABLE tag_sets (
    id BIGSERIAL PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    tags TEXT NOT NULL
);
INSERT INTO tag_sets (digest, tags)
    SELECT encode(sha256(convert_to(tags, 'UTF8')), 'hex'), tags
    FROM (SELECT DISTINCT tags FROM billing_facts) AS distinct_tags;
ALTER TABLE billing_facts ADD COLUMN tag_set_id BIGINT NOT NULL DEFAULT 0;
UPDATE billing_facts f SET tag_set_id = t.id FROM tag_sets t WHERE t.tags = f.tags;
ALTER TABLE billing_facts DROP COLUMN tags;
