-- The provider service of direct and unallocated allocations, so alerts can say what drove a change.
ALTER TABLE allocations ADD COLUMN provider_service TEXT NOT NULL DEFAULT '';
