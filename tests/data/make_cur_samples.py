"""Writes the CUR 2.0 test fixtures (cur2-sample.parquet, cur-legacy-sample.parquet).

Run with any Python that has pyarrow: python3 tests/data/make_cur_samples.py
The files are committed; this script documents exactly what is in them. One line per line
item type that changes the amortized cost, with amounts chosen so every rule shows:

  line type                 unblended  amortized (effective)
  Usage (web)                   10.00      10.00
  DiscountedUsage (api, RI)      0.00       6.25   reservation_effective_cost
  RIFee (api)                    4.00       1.50   unused upfront 1.00 + unused recurring 0.50
  Fee with a reservation ARN   100.00       0.00   the upfront payment, amortized instead
  SavingsPlanCoveredUsage (web)  8.00       5.00   savings_plan_effective_cost
  SavingsPlanNegation (web)     -8.00       0.00
  SavingsPlanRecurringFee       24.00       2.00   commitment 24.00 - used 22.00
  Tax (untagged)                 1.234567891 1.234567891
  Credit (web)                  -2.00      -2.00
"""
import datetime as dt
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

HERE = pathlib.Path(__file__).parent
DAY = dt.datetime(2026, 10, 5, 0, 0, tzinfo=dt.timezone.utc)
PERIOD = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
RI = "arn:aws:ec2:us-east-1:111122223333:reserved-instances/abc"
SP = "arn:aws:savingsplans::111122223333:savingsplan/def"

# type, product code, resource, unblended, tags, extra columns
LINES = [
    ("Usage", "AmazonEC2", "i-web", 10.0, {"user_service": "web", "user_team": "shop"}, {}),
    ("DiscountedUsage", "AmazonRDS", "db-api", 0.0, {"user_service": "api"},
     {"reservation_effective_cost": 6.25, "reservation_reservation_a_r_n": RI}),
    ("RIFee", "AmazonRDS", "", 4.0, {"user_service": "api"},
     {"reservation_unused_amortized_upfront_fee_for_billing_period": 1.0,
      "reservation_unused_recurring_fee": 0.5, "reservation_reservation_a_r_n": RI}),
    ("Fee", "AmazonRDS", "", 100.0, {}, {"reservation_reservation_a_r_n": RI}),
    ("SavingsPlanCoveredUsage", "AmazonEC2", "i-web2", 8.0, {"user_service": "web"},
     {"savings_plan_savings_plan_effective_cost": 5.0, "savings_plan_savings_plan_a_r_n": SP}),
    ("SavingsPlanNegation", "AmazonEC2", "i-web2", -8.0, {"user_service": "web"},
     {"savings_plan_savings_plan_a_r_n": SP}),
    ("SavingsPlanRecurringFee", "ComputeSavingsPlans", "", 24.0, {},
     {"savings_plan_total_commitment_to_date": 24.0, "savings_plan_used_commitment": 22.0,
      "savings_plan_savings_plan_a_r_n": SP}),
    ("Tax", "AmazonEC2", "", 1.234567891, {}, {}),
    ("Credit", "AmazonEC2", "i-web", -2.0, {"user_service": "web"}, {}),
]

EXTRA = [
    "reservation_effective_cost",
    "reservation_unused_amortized_upfront_fee_for_billing_period",
    "reservation_unused_recurring_fee",
    "savings_plan_savings_plan_effective_cost",
    "savings_plan_total_commitment_to_date",
    "savings_plan_used_commitment",
]


def common():
    n = len(LINES)
    columns = {
        "bill_payer_account_id": pa.array(["111122223333"] * n),
        "bill_billing_period_start_date": pa.array([PERIOD] * n, pa.timestamp("ms", tz="UTC")),
        "line_item_usage_account_id": pa.array(["444455556666"] * n),
        "line_item_line_item_type": pa.array([l[0] for l in LINES]),
        "line_item_usage_start_date": pa.array([DAY] * n, pa.timestamp("ms", tz="UTC")),
        "line_item_product_code": pa.array([l[1] for l in LINES]),
        "line_item_resource_id": pa.array([l[2] for l in LINES]),
        "line_item_unblended_cost": pa.array([l[3] for l in LINES], pa.float64()),
        "line_item_currency_code": pa.array(["USD"] * n),
    }
    for name in EXTRA:
        columns[name] = pa.array([l[5].get(name) for l in LINES], pa.float64())
    for name in ["reservation_reservation_a_r_n", "savings_plan_savings_plan_a_r_n"]:
        columns[name] = pa.array([l[5].get(name, "") for l in LINES])
    return columns


def main():
    columns = common()
    columns["resource_tags"] = pa.array(
        [list(l[4].items()) for l in LINES], pa.map_(pa.string(), pa.string())
    )
    pq.write_table(pa.table(columns), HERE / "cur2-sample.parquet")

    legacy = common()
    keys = sorted({k for l in LINES for k in l[4]})
    for key in keys:
        legacy["resource_tags_" + key] = pa.array([l[4].get(key) for l in LINES])
    pq.write_table(pa.table(legacy), HERE / "cur-legacy-sample.parquet")


if __name__ == "__main__":
    main()
