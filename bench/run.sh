#!/usr/bin/env bash
# The benchmark: costsplit import + allocate against a DuckDB query computing the same
# per-day per-service totals, on the same generated files, in one run. Not a test.
#
#   bench/run.sh                 # 1M and 10M rows, parquet and CSV; writes BENCHMARKS.md
#   BENCH_ROWS="100000" BENCH_RUNS=1 bench/run.sh    # a quick smoke run
#
# Needs: cargo, python3 (a venv with duckdb is made in bench/.venv), ~10 GB free disk for 10M CSV.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROWS="${BENCH_ROWS:-1000000 10000000}"
RUNS="${BENCH_RUNS:-3}"
WORK="${BENCH_DIR:-$ROOT/target/bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
mkdir -p "$WORK"

[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/python -c "import duckdb" 2>/dev/null || bench/.venv/bin/pip install -q duckdb
PY=bench/.venv/bin/python
cargo build --release --locked --bin costsplit
BIN="$CARGO_TARGET_DIR/release/costsplit"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
results="$WORK/results.tsv"
: > "$results"
for rows in $ROWS; do
  for fmt in parquet csv; do
    file="$WORK/focus_${rows}.${fmt}"
    [ -f "$file" ] || "$BIN" generate --rows "$rows" --seed 42 --out "$file" --weights "$WORK/weights_${rows}.csv"
    [ -f "$WORK/weights_${rows}.csv" ] || "$BIN" generate --rows 1 --seed 42 --out "$WORK/tiny.csv" --weights "$WORK/weights_${rows}.csv"
    rules="$WORK/rules_${rows}"
    mkdir -p "$rules"
    cp bench/rules.toml "$rules/rules.toml"
    cp "$WORK/weights_${rows}.csv" "$rules/weights.csv"
    ours_t=(); ours_m=(); ref_t=(); ref_m=()
    for run in $(seq "$RUNS"); do
      db="$WORK/bench.db"
      rm -f "$db" "$db-wal" "$db-shm"
      read -r ti mi < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$rules" import "$file")
      read -r ta ma < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$rules" allocate --month 2025-03)
      ours_t+=("$($PY -c "print($ti + $ta)")"); ours_m+=("$(( ${mi%.*} > ${ma%.*} ? ${mi%.*} : ${ma%.*} ))")
      read -r tr mr < <($PY bench/measure.py $PY bench/reference.py "$file" "$WORK/weights_${rows}.csv" "$WORK/reference.csv")
      ref_t+=("$tr"); ref_m+=("${mr%.*}")
    done
    check=$($PY bench/compare.py "$WORK/bench.db" "$WORK/reference.csv")
    ot=$(printf '%s\n' "${ours_t[@]}" | median); om=$(printf '%s\n' "${ours_m[@]}" | sort -n | tail -1)
    rt=$(printf '%s\n' "${ref_t[@]}" | median); rm_=$(printf '%s\n' "${ref_m[@]}" | sort -n | tail -1)
    ratio=$($PY -c "print($ot / $rt)")
    printf '%s\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\n' "$rows" "$fmt" "$ot" "$om" "$rt" "$rm_" "$ratio" "$check" | tee -a "$results"
  done
done

{
  echo "# Benchmarks"
  echo
  echo "Measured by \`bench/run.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d). costsplit = \`import\` + \`allocate\`"
  echo "into a fresh SQLite store (release build); DuckDB = the same per-day per-service totals with the"
  echo "shared resources split by the same weight table (\`bench/reference.py\`, process wall time"
  echo "including Python start-up). Median of $RUNS runs; peak RSS is the largest of the runs."
  echo
  echo "| rows | format | costsplit s | costsplit peak MB | DuckDB s | DuckDB peak MB | costsplit / DuckDB | agreement |"
  echo "|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r rows fmt ot om rt rm_ ratio check; do
    echo "| $rows | $fmt | $ot | $om | $rt | $rm_ | $ratio | $check |"
  done < "$results"
} > "$WORK/BENCHMARKS.table.md"
echo "table written to $WORK/BENCHMARKS.table.md"
