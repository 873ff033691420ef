#!/usr/bin/env bash
# The benchmark: costsplit import + allocate against a DuckDB query computing the same
# per-day per-service totals, on the same generated files, in one run. Not a test.
#
#   bench/run.sh                 # 1M and 10M rows as parquet, CSV and gzip CSV, then 50M
#                                # parquet for memory; rewrites the table in BENCHMARKS.md
#   BENCH_ROWS="100000" BENCH_RUNS=1 BENCH_BIG_ROWS="" bench/run.sh    # a quick smoke run
#
# Needs: cargo, python3 (a venv with duckdb is made in bench/.venv), ~15 GB free disk.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
ROWS="${BENCH_ROWS:-1000000 10000000}"
FORMATS="${BENCH_FORMATS:-parquet csv csv.gz}"
BIG_ROWS="${BENCH_BIG_ROWS-50000000}"
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
maximum() { sort -n | tail -1; }

# The input: the project's own generator; gzip CSV is the CSV, gzipped.
input() { # rows format -> path
  local rows=$1 fmt=$2 file="$WORK/focus_$1.$2"
  if [ ! -f "$file" ]; then
    if [ "$fmt" = csv.gz ]; then
      gzip -c "$(input "$rows" csv)" > "$file.tmp" && mv "$file.tmp" "$file"
    else
      "$BIN" generate --rows "$rows" --seed 42 --out "$file" --weights "$WORK/weights_$rows.csv" >&2
    fi
  fi
  [ -f "$WORK/weights_$rows.csv" ] || "$BIN" generate --rows 1 --seed 42 --out "$WORK/tiny.csv" --weights "$WORK/weights_$rows.csv" >&2
  echo "$file"
}

# One costsplit run: import + allocate into a fresh SQLite store -> "import_s alloc_s peak_mb"
ours() { # file rules
  local db="$WORK/bench.db" ti mi ta ma
  rm -f "$db" "$db-wal" "$db-shm"
  read -r ti mi < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$2" import "$1")
  read -r ta ma < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$2" allocate --month 2025-03)
  echo "$ti $ta $(( ${mi%.*} > ${ma%.*} ? ${mi%.*} : ${ma%.*} ))"
}

results="$WORK/results.tsv"
: > "$results"
measure() { # rows format runs
  local rows=$1 fmt=$2 runs=$3 file rules imp=() alc=() tot=() mem=() ref_t=() ref_m=() scan=()
  file=$(input "$rows" "$fmt")
  rules="$WORK/rules_$rows"
  mkdir -p "$rules"
  cp bench/rules.toml "$rules/rules.toml"
  cp "$WORK/weights_$rows.csv" "$rules/weights.csv"
  for _ in $(seq "$runs"); do
    read -r ti ta m < <(ours "$file" "$rules")
    imp+=("$ti"); alc+=("$ta"); tot+=("$($PY -c "print($ti + $ta)")"); mem+=("$m")
    read -r tr mr < <($PY bench/measure.py $PY bench/reference.py "$file" "$WORK/weights_$rows.csv" "$WORK/reference.csv")
    ref_t+=("$tr"); ref_m+=("${mr%.*}")
    scan+=("$($PY bench/reference.py --scan "$file")")
  done
  local check ot om rt rm_ st
  check=$($PY bench/compare.py "$WORK/bench.db" "$WORK/reference.csv")
  ot=$(printf '%s\n' "${tot[@]}" | median); om=$(printf '%s\n' "${mem[@]}" | maximum)
  rt=$(printf '%s\n' "${ref_t[@]}" | median); rm_=$(printf '%s\n' "${ref_m[@]}" | maximum)
  st=$(printf '%s\n' "${scan[@]}" | median)
  printf '%s\t%s\t%s\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\n' "$rows" "$fmt" \
    "$(printf '%s\n' "${imp[@]}" | median)" "$(printf '%s\n' "${alc[@]}" | median)" "$ot" "$om" \
    "$rt" "$rm_" "$($PY -c "print($ot / $rt)")" "$st" "$($PY -c "print($ot / max($st, 0.001))")" "$check" | tee -a "$results"
}

for rows in $ROWS; do
  for fmt in $FORMATS; do
    measure "$rows" "$fmt" "$RUNS"
  done
done
# Memory must not grow with the file: the largest month once, parquet only.
for rows in $BIG_ROWS; do
  measure "$rows" parquet 1
done

# Start-up: the bundled 1,000-row FOCUS sample, imported and allocated with the demo rules.
db="$WORK/small.db"; rm -f "$db" "$db-wal" "$db-shm"
read -r small_t small_m < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules rules import tests/data/focus-1.0-sample.csv)
read -r small_a small_am < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules rules allocate --month 2024-09)

table="$WORK/BENCHMARKS.table.md"
{
  echo "<!-- bench:table (written by bench/run.sh) -->"
  echo "Measured by \`bench/run.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d), release build, median of $RUNS runs"
  echo "(the memory row of ${BIG_ROWS:-no} rows: 1 run); peak RSS is the largest of the runs, of import or allocate."
  echo
  echo "| rows | format | import s | allocate s | costsplit s | costsplit peak MB | DuckDB s | DuckDB peak MB | costsplit / DuckDB | DuckDB scan s | costsplit / scan | agreement |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r rows fmt ti ta ot om rt rm_ ratio st sratio check; do
    echo "| $(echo "$rows" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') | $fmt | $ti | $ta | $ot | $om | $rt | $rm_ | $ratio | $st | $sratio | $check |"
  done < "$results"
  echo
  echo "Start-up: the bundled 1,000-row FOCUS sample imports in ${small_t} s (${small_m%.*} MB peak) and allocates in ${small_a} s."
  echo "<!-- /bench:table -->"
} > "$table"
if grep -q '<!-- bench:table' BENCHMARKS.md; then
  $PY - "$table" <<'PYEOF'
import re, sys
table = open(sys.argv[1]).read().strip()
text = open("BENCHMARKS.md").read()
text = re.sub(r"<!-- bench:table.*?<!-- /bench:table -->", lambda _: table, text, flags=re.S)
open("BENCHMARKS.md", "w").write(text)
PYEOF
  echo "table written to BENCHMARKS.md"
else
  echo "table written to $table (BENCHMARKS.md has no bench:table markers)"
fi
