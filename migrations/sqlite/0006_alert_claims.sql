-- A deliverer claims a pending alert before sending it, until this time (RFC 3339), so that
-- overlapping deliverers never send the same alert; a deliverer killed mid-send leaves its
-- claim to expire. Empty: not claimed.
ALTER TABLE alerts ADD COLUMN claimed_until TEXT NOT NULL DEFAULT '';
