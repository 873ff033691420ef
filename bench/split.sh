#!/usr/bin/env bash
# Split cost allocation data at scale: a CUR 2.0 month of EKS pods (`costsplit generate
# --split-cost`: three clusters, pods redeployed daily) through `import --allocate`, beside
# the standard FOCUS month of the same number of line items (`costsplit generate`, the month
# BENCHMARKS.md's memory goal is measured on) in the same run. Not a test.
#
#   bench/split.sh                         # 10M line items, parquet and CSV
#   BENCH_ROWS=1000000 BENCH_FORMATS=parquet bench/split.sh
#
# Prints one line per (generator, format): wall seconds and peak RSS of `import --allocate`
# into a fresh SQLite store, the facts stored, the line items, and the peak against the
# FOCUS month's.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${BENCH_ROWS:-10000000}"
FORMATS="${BENCH_FORMATS:-parquet csv}"
WORK="${BENCH_DIR:-$PWD/target/bench-split}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
mkdir -p "$WORK"
cargo build --release --locked --bin costsplit
BIN="$CARGO_TARGET_DIR/release/costsplit"
PY=python3

# Rules: the benchmark's 60 services; the split month's three clusters (namespaces are the
# services' names; kube-system stays unallocated under its cluster); the FOCUS month's shared
# resources by its weight table.
mkdir -p "$WORK/rules-split" "$WORK/rules-focus"
sed '/^\[\[pool\]\]/,$d' bench/rules.toml > "$WORK/rules-split/services.toml"
cat > "$WORK/rules-split/clusters.toml" <<'TOML'
[[cluster]]
name = "eks-prod"
cluster = "prod"
idle = "requests"

[[cluster]]
name = "eks-batch"
cluster = "batch"
by = "label:app"
map = { "*-jobs" = "checkout-api" }
idle = "equal"

[[cluster]]
name = "eks-staging"
cluster = "staging"
by = "workload"
idle = "unallocated"
TOML
cp bench/rules.toml "$WORK/rules-focus/rules.toml"

input() { # generator format -> path
  local file="$WORK/$1_$ROWS.$2"
  if [ ! -f "$file" ]; then
    if [ "$1" = split ]; then
      "$BIN" generate --split-cost --rows "$ROWS" --seed 42 --out "$file" >&2
    else
      "$BIN" generate --rows "$ROWS" --seed 42 --out "$file" --weights "$WORK/rules-focus/weights.csv" >&2
    fi
  fi
  [ -f "$WORK/rules-focus/weights.csv" ] || "$BIN" generate --rows 1 --seed 42 --out "$WORK/tiny.csv" --weights "$WORK/rules-focus/weights.csv" >&2
  echo "$file"
}

declare -A peak
for fmt in $FORMATS; do
  for gen in focus split; do
    file=$(input "$gen" "$fmt")
    db="$WORK/bench.db"
    rm -f "$db" "$db-wal" "$db-shm"
    read -r t m < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$WORK/rules-$gen" import --allocate "$file")
    facts=$($PY -c "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); print(c.execute('select count(*) from billing_facts').fetchone()[0], c.execute('select sum(line_count) from billing_facts').fetchone()[0])" "$db")
    peak[$gen]=$m
    ratio=$($PY -c "print(f'{$m / ${peak[focus]}:.2f}')")
    printf '%s\t%s\t%s\t%ss\t%s MB\tfacts, line items: %s\tpeak / FOCUS month: %s\n' "$gen" "$ROWS" "$fmt" "$t" "$m" "$facts" "$ratio"
  done
done
