"""Compares costsplit's stored per-day per-service totals with the DuckDB reference.
usage: compare.py STORE.db REFERENCE.csv  -> prints the largest difference; exits 1 over half a cent
"""
import csv
import sqlite3
import sys
from decimal import Decimal

db, ref = sys.argv[1], sys.argv[2]
ours = {}
conn = sqlite3.connect(db)
facts = conn.execute("select count(*) from billing_facts").fetchone()[0]
services = set()
# Amounts are (whole units, nano-units) pairs (migration 0007).
for day, service, units, nanos in conn.execute(
        "select day, service, sum(amount_units), sum(amount_nanos) from allocations group by day, service"):
    ours[(day, service)] = Decimal(units) + Decimal(nanos) / Decimal(10**9)
    services.add(service)
theirs = {(r["day"], r["service"]): Decimal(r["amount"]) for r in csv.DictReader(open(ref))}
keys = set(ours) | set(theirs)
worst = max((abs(ours.get(k, 0) - theirs.get(k, 0)), k) for k in keys)
# The month's per-service totals too (what a statement shows).
def month(totals):
    out = {}
    for (_, service), amount in totals.items():
        out[service] = out.get(service, 0) + amount
    return out
ours_m, theirs_m = month(ours), month(theirs)
worst_m = max(abs(ours_m.get(k, 0) - theirs_m.get(k, 0)) for k in set(ours_m) | set(theirs_m))
print(f"{facts:,} facts; {len(keys)} day/service totals, largest difference {worst[0]:.9f} at {worst[1]}; "
      f"{len(set(ours_m) | set(theirs_m))} service totals, largest difference {worst_m:.9f}")
sys.exit(0 if worst[0] < Decimal("0.005") and worst_m < Decimal("0.005") else 1)
