#!/usr/bin/env bash
# The benchmark: costsplit import + allocate against a DuckDB query computing the same
# per-day per-service totals, on the same generated files, in one run. Not a test.
#
#   bench/run.sh                 # 1M and 10M rows as parquet, CSV and gzip CSV from both
#                                # generators, then 50M parquet for memory; rewrites the
#                                # table in BENCHMARKS.md
#   BENCH_ROWS="100000" BENCH_RUNS=1 BENCH_BIG_ROWS="" bench/run.sh    # a quick smoke run
#   BENCH_GENERATORS=gen_focus   # only the independent generator's files
#   BENCH_KEEP=1 ...             # add rows to the last invocation's table
#
# Two generators: costsplit's own (`costsplit generate`) and an independent one written by
# others (bench/gen_focus.py: pyarrow, dictionary-encoded parquet, its shared_weights.csv
# split as a usage pool). Needs: cargo, python3 (a venv with duckdb, numpy and pyarrow is
# made in bench/.venv), ~25 GB free disk.
set -euo pipefail
# shellcheck source=bench/setup.sh
. "$(dirname "$0")/setup.sh"
ROWS="${BENCH_ROWS:-1000000 10000000}"
FORMATS="${BENCH_FORMATS:-parquet csv csv.gz}"
BIG_ROWS="${BENCH_BIG_ROWS-50000000}"
RUNS="${BENCH_RUNS:-3}"
GENERATORS="${BENCH_GENERATORS:-costsplit gen_focus}"

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
maximum() { sort -n | tail -1; }

# The input: gzip CSV is the CSV, gzipped. Each generator writes its weight table beside.
input() { # generator rows format -> path
  local gen=$1 rows=$2 fmt=$3 file="$WORK/$1_$2.$3"
  if [ ! -f "$file" ]; then
    if [ "$fmt" = csv.gz ]; then
      gzip -c "$(input "$gen" "$rows" csv)" > "$file.tmp" && mv "$file.tmp" "$file"
    elif [ "$gen" = gen_focus ]; then
      # Writes both formats at once; its weight table's header is renamed to costsplit's.
      $PY bench/gen_focus.py --rows "$rows" --seed 42 --out "$WORK/gen_focus_$rows" \
        --format parquet,csv --weights-out "$WORK/gen_focus_weights_$rows.raw.csv" >&2
      sed '1s/.*/resource_id,service,weight/' "$WORK/gen_focus_weights_$rows.raw.csv" > "$WORK/weights_gen_focus_$rows.csv"
    else
      "$BIN" generate --rows "$rows" --seed 42 --out "$file" --weights "$WORK/weights_costsplit_$rows.csv" >&2
    fi
  fi
  # The weight table depends on the seed only (a file generated earlier may lack it).
  if [ "$gen" = costsplit ] && [ ! -f "$WORK/weights_costsplit_$rows.csv" ]; then
    "$BIN" generate --rows 1 --seed 42 --out "$WORK/tiny.csv" --weights "$WORK/weights_costsplit_$rows.csv" >&2
  fi
  echo "$file"
}

# The rules: bench/rules.toml for costsplit's generator (its 60 services), the same pool
# with gen_focus's own 60 services (read off its file) for the other.
rules_for() { # generator rows file -> rules dir
  local dir="$WORK/rules_$1_$2"
  mkdir -p "$dir"
  if [ "$1" = gen_focus ]; then
    $PY bench/gen_rules.py "$3" > "$dir/rules.toml"
  else
    cp bench/rules.toml "$dir/rules.toml"
  fi
  cp "$WORK/weights_$1_$2.csv" "$dir/weights.csv"
  echo "$dir"
}

# One costsplit run into a fresh SQLite store, as a user runs it: `import --allocate` (one
# process, the facts allocated in memory) -> "seconds peak_mb"; and the two commands
# `import` then `allocate --month` -> "import_s alloc_s" (the allocation of a stored month).
ours() { # file rules
  local db="$WORK/bench.db" t m ti mi ta ma
  rm -f "$db" "$db-wal" "$db-shm"
  read -r ti mi < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$2" import "$1")
  read -r ta ma < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$2" allocate --month 2025-03)
  rm -f "$db" "$db-wal" "$db-shm"
  read -r t m < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules "$2" import --allocate "$1")
  echo "$t ${m%.*} $ti $ta"
}

results="$WORK/results.tsv"
# BENCH_KEEP=1 adds to the previous invocation's rows (to measure some inputs with other
# settings) instead of starting the table afresh.
[ "${BENCH_KEEP:-}" = 1 ] || : > "$results"
measure() { # generator rows format runs
  local gen=$1 rows=$2 fmt=$3 runs=$4 file rules weights imp=() alc=() tot=() mem=() ref_t=() ref_m=() scan=()
  file=$(input "$gen" "$rows" "$fmt")
  rules=$(rules_for "$gen" "$rows" "$file")
  weights="$WORK/weights_${gen}_$rows.csv"
  for _ in $(seq "$runs"); do
    read -r t m ti ta < <(ours "$file" "$rules")
    imp+=("$ti"); alc+=("$ta"); tot+=("$t"); mem+=("$m")
    read -r tr mr < <($PY bench/measure.py $PY bench/reference.py "$file" "$weights" "$WORK/reference.csv")
    ref_t+=("$tr"); ref_m+=("${mr%.*}")
    scan+=("$($PY bench/reference.py --scan "$file")")
  done
  local check ot om rt rm_ st
  check=$($PY bench/compare.py "$WORK/bench.db" "$WORK/reference.csv")
  ot=$(printf '%s\n' "${tot[@]}" | median); om=$(printf '%s\n' "${mem[@]}" | maximum)
  rt=$(printf '%s\n' "${ref_t[@]}" | median); rm_=$(printf '%s\n' "${ref_m[@]}" | maximum)
  st=$(printf '%s\n' "${scan[@]}" | median)
  printf '%s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\t%.2f\t%s\n' "$gen" "$rows" "$fmt" \
    "$(printf '%s\n' "${imp[@]}" | median)" "$(printf '%s\n' "${alc[@]}" | median)" "$ot" "$om" \
    "$rt" "$rm_" "$($PY -c "print($ot / $rt)")" "$st" "$($PY -c "print($ot / max($st, 0.001))")" "$check" | tee -a "$results"
}

for gen in $GENERATORS; do
  for rows in $ROWS; do
    for fmt in $FORMATS; do
      measure "$gen" "$rows" "$fmt" "$RUNS"
    done
  done
done
# Memory must not grow with the file: the largest month once, parquet only.
for rows in $BIG_ROWS; do
  measure costsplit "$rows" parquet 1
done

# Start-up: the bundled 1,000-row FOCUS sample, imported and allocated with the demo rules.
db="$WORK/small.db"; rm -f "$db" "$db-wal" "$db-shm"
read -r small_t small_m < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules rules import tests/data/focus-1.0-sample.csv)
read -r small_a small_am < <($PY bench/measure.py "$BIN" --store "sqlite://$db" --rules rules allocate --month 2024-09)

table="$WORK/BENCHMARKS.table.md"
{
  echo "<!-- bench:table (written by bench/run.sh) -->"
  echo "Measured by \`bench/run.sh\` on $(nproc) cores, $(date -u +%Y-%m-%d), release build, median of $RUNS runs"
  echo "(the memory row of ${BIG_ROWS:-no} rows: 1 run). \`import\` and \`allocate\` are the two commands run one after the other; \`import --allocate\` is the one command (its wall time and peak RSS, the largest of the runs), whose allocations the agreement column checks against DuckDB's."
  echo
  echo "| generator | rows | format | import s | allocate s | costsplit import --allocate s | its peak MB | DuckDB s | DuckDB peak MB | costsplit / DuckDB | DuckDB scan s | costsplit / scan | agreement |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
  while IFS=$'\t' read -r gen rows fmt ti ta ot om rt rm_ ratio st sratio check; do
    echo "| $gen | $(echo "$rows" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta') | $fmt | $ti | $ta | $ot | $om | $rt | $rm_ | $ratio | $st | $sratio | $check |"
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
