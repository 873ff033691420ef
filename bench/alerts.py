"""Writes a store for the alert benchmark: SERVICES services x DAYS days of allocations
(seeded; a slow drift, weekly pattern and noise per service, a few planted spikes) straight
into a migrated SQLite store, as `allocate` would have left them.

usage: alerts.py STORE.db SERVICES DAYS   (prints the last day)
"""
import datetime
import random
import sqlite3
import sys

db, services, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(42)
conn = sqlite3.connect(db)
first = datetime.date(2024, 3, 1)
last = first + datetime.timedelta(days=days - 1)
run = conn.execute(
    "INSERT INTO allocation_runs (created_at, from_day, to_day, rules_hash, cost_basis, facts,"
    " billed_units, billed_nanos, allocated_units, allocated_nanos)"
    " VALUES ('2025-01-01T00:00:00Z', ?, ?, 'bench', 'effective', 0, 0, 0, 0, 0)",
    (first.isoformat(), last.isoformat()),
).lastrowid
rows = []
for s in range(services):
    base = rng.lognormvariate(3.0, 1.2)  # dollars a day
    drift = rng.uniform(-0.001, 0.002)
    spike = rng.randrange(days) if s % 50 == 0 else -1
    for d in range(days):
        day = first + datetime.timedelta(days=d)
        amount = base * (1 + drift) ** d * (1.1 if day.weekday() < 5 else 0.8) * rng.uniform(0.9, 1.1)
        if d == spike:
            amount *= 4
        nanos = int(amount * 1e9)
        rows.append((day.isoformat(), f"svc-{s:04d}", f"team-{s % 25:02d}", "", "", "direct", 0,
                     1_000_000_000, nanos // 1_000_000_000, nanos % 1_000_000_000, "USD",
                     "effective", "bench", run, "AmazonEC2", ""))
conn.executemany(
    "INSERT INTO allocations (day, service, team, cost_center, pool, method, fallback_used,"
    " ratio_ppb, amount_units, amount_nanos, currency, cost_basis, rules_hash, run_id,"
    " provider_service, basis) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    rows,
)
conn.commit()
print(last.isoformat())
