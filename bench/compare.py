"""Compares costsplit's stored per-day per-service totals with the DuckDB reference.
usage: compare.py STORE.db REFERENCE.csv  -> prints the largest difference; exits 1 over half a cent
"""
import csv
import sqlite3
import sys
from decimal import Decimal

db, ref = sys.argv[1], sys.argv[2]
ours = {}
for day, service, nanos in sqlite3.connect(db).execute(
        "select day, service, sum(amount_nanos) from allocations group by day, service"):
    ours[(day, service)] = Decimal(nanos) / Decimal(10**9)
theirs = {(r["day"], r["service"]): Decimal(r["amount"]) for r in csv.DictReader(open(ref))}
keys = set(ours) | set(theirs)
worst = max((abs(ours.get(k, 0) - theirs.get(k, 0)), k) for k in keys)
print(f"{len(keys)} day/service totals, largest difference {worst[0]:.9f} at {worst[1]}")
sys.exit(0 if worst[0] < Decimal("0.005") else 1)
