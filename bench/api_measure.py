"""Times every API route and page of a running `costsplit serve` (bench/api.sh): REQUESTS
sequential GETs each after a first one (timed apart: it may fill a cache), and prints p50/p95 in ms and the p95 as a multiple of
/healthz's (the listener's floor, measured in the same run).

usage: api_measure.py BASE_URL REQUESTS
"""
import json
import sys
import time
import urllib.error
import urllib.request
from datetime import date, timedelta

base, requests = sys.argv[1], int(sys.argv[2])
for _ in range(100):
    try:
        urllib.request.urlopen(f"{base}/healthz").read()
        break
    except OSError:
        time.sleep(0.2)


def get(path):
    try:
        with urllib.request.urlopen(f"{base}{path}") as r:
            return r.read()
    except urllib.error.HTTPError as e:
        sys.exit(f"{path}: {e.code} {e.read().decode()}")


last = json.loads(get("/api/v1/cost-insights/last-complete-billing-date"))
month = last[:7]
team = json.loads(get("/api/v1/cost-insights/groups"))[0]["id"]
service = json.loads(get(f"/api/v1/cost-insights/groups/{team}/projects"))[0]["id"]
product = json.loads(get("/api/v1/cost-insights/products"))[0]["kind"]
end = f"{month}-01"
# Windows ending on the last stored day (OpenCost's relative windows count from today).
day = date.fromisoformat(last)
week = f"{day - timedelta(days=6)}T00:00:00Z,{day + timedelta(days=1)}T00:00:00Z"
thirty = f"{day - timedelta(days=29)}T00:00:00Z,{day + timedelta(days=1)}T00:00:00Z"
routes = [
    ("/healthz", "/healthz"),
    ("page: all teams", f"/?month={month}"),
    ("page: a team", f"/teams/{team}?month={month}"),
    ("page: a service", f"/services/{service}?month={month}"),
    ("/api/v1/costs (a month, one service)", f"/api/v1/costs?from={month}-01&to={last}&service={service}"),
    ("/allocation/compute (7 days, by service)", f"/allocation/compute?window={week}&aggregate=service&step=1d"),
    ("/allocation/compute (30 days, by team)", f"/allocation/compute?window={thirty}&aggregate=team"),
    ("last complete billing date", "/api/v1/cost-insights/last-complete-billing-date"),
    ("groups", "/api/v1/cost-insights/groups"),
    ("group projects", f"/api/v1/cost-insights/groups/{team}/projects"),
    ("group daily cost (R2/P30D)", f"/api/v1/cost-insights/groups/{team}/daily-cost?intervals=R2/P30D/{end}"),
    ("project daily cost (R2/P30D)", f"/api/v1/cost-insights/projects/{service}/daily-cost?intervals=R2/P30D/{end}"),
    ("entity daily cost (R2/P90D)", f"/api/v1/cost-insights/entities/component/default/{service}/daily-cost?intervals=R2/P90D/{end}"),
    ("products", "/api/v1/cost-insights/products"),
    ("product insights (R2/P3M)", f"/api/v1/cost-insights/product-insights?product={product}&group={team}&intervals=R2/P3M/{end}"),
    ("alerts", f"/api/v1/cost-insights/groups/{team}/alerts"),
]
rows = []
for name, path in routes:
    t = time.perf_counter()
    get(path)
    first = (time.perf_counter() - t) * 1000
    times = []
    for _ in range(requests):
        t = time.perf_counter()
        get(path)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p50 = times[len(times) // 2]
    p95 = times[min(len(times) - 1, int(round(0.95 * (len(times) - 1))))]
    rows.append((name, first, p50, p95))
floor = rows[0][3]
print("| route | first request ms | p50 ms | p95 ms | p95 / healthz p95 |")
print("|---|---:|---:|---:|---:|")
for name, first, p50, p95 in rows:
    print(f"| {name} | {first:.1f} | {p50:.1f} | {p95:.1f} | {p95 / floor:.0f}x |")
