"""Reference implementation for the benchmark: DuckDB computes per-day per-service cost
with the shared resources split by the weight table, the same rules costsplit applies
(bench/rules: service tag `service`, lower-cased and trimmed; shared resources tagged
shared=true split by per-resource weights; everything else untagged -> unallocated).

usage: reference.py INPUT WEIGHTS OUT.csv   (prints wall seconds of the query)
       reference.py --scan INPUT            (prints wall seconds of a bare scan of the
                                             needed columns: the floor any reader pays)
"""
import sys
import time

import duckdb


def reader(src):
    if src.endswith(".parquet"):
        return f"read_parquet('{src}')"
    return f"read_csv('{src}', header=true, all_varchar=false)"


if sys.argv[1] == "--scan":
    src = sys.argv[2]
    # FOCUS 1.0 names the provider ServiceProviderName, 1.2 ProviderName.
    columns = duckdb.sql(f"select * from {reader(src)} limit 0").columns
    provider = "ServiceProviderName" if "ServiceProviderName" in columns else "ProviderName"
    query = f"""select count(*), min(ChargePeriodStart)::varchar, max(BillingPeriodStart)::varchar, sum(EffectiveCost),
        sum(BilledCost), max(ResourceId), max(Tags), max(ServiceName), max(ChargeCategory),
        max(BillingAccountId), max(SubAccountId), max({provider}), max(BillingCurrency)
        from {reader(src)}"""
    start = time.perf_counter()
    duckdb.sql(query).fetchall()
    print(f"{time.perf_counter() - start:.3f}")
    sys.exit(0)

src, weights, out = sys.argv[1], sys.argv[2], sys.argv[3]
query = f"""
with li as (
  select cast(ChargePeriodStart as date) as day,
         cast(EffectiveCost as decimal(38, 10)) as cost,
         ResourceId as r,
         nullif(lower(trim(json_extract_string(Tags, '$.service'))), '') as svc,
         json_extract_string(Tags, '$.shared') = 'true' as shared
  from {reader(src)}
),
w as (select resource_id as r, service, weight, sum(weight) over (partition by resource_id) as tw
      from read_csv('{weights}', header=true)),
direct as (select day, coalesce(svc, 'unallocated') as service, sum(cost) as amount
           from li where not coalesce(shared, false) group by all),
pooled as (select li.day, w.service, sum(li.cost * w.weight / w.tw) as amount
           from li join w on li.r = w.r where coalesce(li.shared, false) group by all)
select day, service, sum(amount) as amount from (select * from direct union all select * from pooled)
group by all order by day, service
"""
start = time.perf_counter()
rows = duckdb.sql(query).fetchall()
elapsed = time.perf_counter() - start
with open(out, "w") as f:
    f.write("day,service,amount\n")
    for day, service, amount in rows:
        f.write(f"{day},{service},{amount}\n")
print(f"{elapsed:.3f}")
