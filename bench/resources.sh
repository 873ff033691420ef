#!/usr/bin/env bash
# Cost as distinct resources grow (issue 33): months of 10M line items with 5,000, 100,000 and
# 1,000,000 distinct resources (the independent generator, bench/gen_focus.py --resources),
# each through `import --allocate` into a fresh SQLite store, then `allocate --month` of the
# stored month: wall time, peak RSS, facts, bytes of memory per fact and bytes of store per
# fact. A run the memory limit stops says so in the table. Not a test.
#
#   bench/resources.sh                                   # the three sizes, 10M rows each
#   BENCH_RESOURCES="5000" BENCH_ROWS=1000000 bench/resources.sh   # a quick smoke run
set -euo pipefail
# shellcheck source=bench/setup.sh
. "$(dirname "$0")/setup.sh"
ROWS="${BENCH_ROWS:-10000000}"
RESOURCES="${BENCH_RESOURCES:-5000 100000 1000000}"

echo "| distinct resources | rows | facts | import --allocate s | its peak MB | bytes of memory per fact | store MB | bytes of store per fact | allocate --month s | its peak MB | bytes of memory per fact |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
for resources in $RESOURCES; do
  file="$WORK/resources_${resources}_$ROWS"
  if [ ! -f "$file.parquet" ]; then
    $PY bench/gen_focus.py --rows "$ROWS" --seed 42 --resources "$resources" --out "$file" \
      --format parquet --weights-out "$file.weights.raw.csv" >&2
  fi
  rules="$WORK/rules_resources_$resources"
  mkdir -p "$rules"
  $PY bench/gen_rules.py "$file.parquet" > "$rules/rules.toml"
  sed '1s/.*/resource_id,service,weight/' "$file.weights.raw.csv" > "$rules/weights.csv"
  db="$WORK/resources.db"
  rm -f "$db" "$db-wal" "$db-shm"
  log="$WORK/resources_$resources.log"
  if read -r t m < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$rules" \
    import --allocate "$file.parquet" 2> "$log"); [ -n "${t:-}" ] && ! grep -q '^error' "$log"; then
    facts=$(sqlite3 "$db" 'select count(*) from billing_facts' 2>/dev/null \
      || $PY -c "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select count(*) from billing_facts').fetchone()[0])" "$db")
    store=$(du -b "$db" | cut -f1)
    read -r ta ma < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$rules" allocate --month 2025-03 2>> "$log")
    $PY - "$resources" "$ROWS" "$facts" "$t" "$m" "$store" "$ta" "$ma" <<'EOF'
import sys
r, rows, facts, t, m, store, ta, ma = sys.argv[1:]
facts = int(facts)
per = lambda mb: f"{float(mb) * 1048576 / facts:,.0f}"
print(f"| {int(r):,} | {int(rows):,} | {facts:,} | {float(t):.1f} | {float(m):,.0f} | {per(m)} | "
      f"{int(store) / 1048576:,.0f} | {int(store) / facts:,.0f} | {float(ta):.1f} | {float(ma):,.0f} | {per(ma)} |")
EOF
  else
    echo "| $(printf "%'d" "$resources") | $(printf "%'d" "$ROWS") | - | stopped after ${t:-?} s at ${m:-?} MB: $(grep -m1 '^error' "$log" | cut -c1-160) | | | | | | | |"
  fi
  rm -f "$db" "$db-wal" "$db-shm"
done
