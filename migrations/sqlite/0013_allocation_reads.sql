-- The read-only API and the web page read one team's or one service's days, and each shared
-- pool's days: indexes for those reads (the spine's (day, service) serves whole days).
CREATE INDEX allocations_team_day ON allocations (team, day);
CREATE INDEX allocations_service_day ON allocations (service, day);
CREATE INDEX allocations_pool_day ON allocations (pool, day);
