-- A [[unit]]'s daily measure pushed to POST /api/v1/units/NAME: one value per unit and day
-- (an exact non-negative decimal as text); a later push of the same day replaces it.
CREATE TABLE unit_values (
    unit TEXT NOT NULL,
    day TEXT NOT NULL,
    value TEXT NOT NULL,
    pushed_at TEXT NOT NULL,
    PRIMARY KEY (unit, day)
);
