-- A sync that ran a query where the export lives (Athena, issue 28) keeps the query's id and
-- the bytes it scanned (Athena charges per byte scanned; the price is in cost_nanos). Empty
-- and 0 for Cost Explorer windows and exports read by costsplit itself.
ALTER TABLE sync_runs ADD COLUMN query_id TEXT NOT NULL DEFAULT '';
ALTER TABLE sync_runs ADD COLUMN bytes_scanned INTEGER NOT NULL DEFAULT 0;
