#!/usr/bin/env bash
# The engine benchmark (issue 28): a generated 10M-line CUR 2.0 month summed into daily facts
# by costsplit's own import, and by a Spark standalone cluster (a master and two one-core
# workers on 127.0.0.1: the same 2 cores, honestly) followed by `import --facts`; wall time
# and peak RSS of each step, and a check that both stored the same facts and totals. Writes
# the table into BENCHMARKS.md ("Engines"). Not a test.
#
#   bench/engine.sh               # 10M lines, parquet
#   ENGINE_ROWS=1000000 bench/engine.sh
#
# Needs: cargo, Java 17, and pyspark (installed here into the test venv if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS="${ENGINE_ROWS:-10000000}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
VENV="${COSTSPLIT_TEST_VENV:-$HOME/.cache/costsplit-venv}"
WORK="${BENCH_DIR:-$PWD/target/bench-engine}"
mkdir -p "$WORK"
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -c "import pyspark" 2>/dev/null || "$VENV/bin/pip" install --quiet pyspark==4.0.1
SPARK_HOME="$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')"
export SPARK_HOME SPARK_LOCAL_IP=127.0.0.1 SPARK_LOG_DIR="$WORK/spark-logs"
cargo build --release --locked --bin costsplit
BIN="$CARGO_TARGET_DIR/release/costsplit"

# measure LABEL CMD... : wall seconds and peak RSS (MB) of CMD, stdout kept in $WORK/LABEL.out
measure() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/$label.time" "$@" > "$WORK/$label.out" 2> "$WORK/$label.err" \
    || { cat "$WORK/$label.err" >&2; exit 1; }
  read -r secs kb < "$WORK/$label.time"
  echo "$secs $((kb / 1024))"
}

INPUT="$WORK/cur2_$ROWS.parquet"
[ -f "$INPUT" ] || "$BIN" generate --cur2 --rows "$ROWS" --out "$INPUT"
size_mb=$(( $(stat -c %s "$INPUT") / 1048576 ))

rm -f "$WORK/local.db" "$WORK/engine.db"
read -r local_s local_mb <<< "$(measure local env COSTSPLIT_STORE_URL="sqlite://$WORK/local.db" "$BIN" import "$INPUT")"

# The cluster: a master and two workers of one core and 3 GB each.
port=$(( 17000 + RANDOM % 1000 )); ui=$(( port + 1000 ))
pids=()
"$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.master.Master --host 127.0.0.1 --port "$port" --webui-port "$ui" > "$WORK/master.log" 2>&1 & pids+=($!)
for n in 1 2; do
  "$SPARK_HOME/bin/spark-class" org.apache.spark.deploy.worker.Worker --host 127.0.0.1 --cores 1 --memory 3G \
    --webui-port $(( ui + n )) --work-dir "$WORK/worker-$n" "spark://127.0.0.1:$port" > "$WORK/worker-$n.log" 2>&1 & pids+=($!)
done
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -s "http://127.0.0.1:$ui/json/" | grep -q '"aliveworkers" *: *2' && break
  sleep 0.5
done
read -r spark_s spark_mb <<< "$(measure spark "$BIN" engine run --spark-master "spark://127.0.0.1:$port" \
  --spark-conf spark.executor.memory=2g --spark-conf spark.sql.shuffle.partitions=4 \
  --output "$WORK/facts" "$INPUT")"
read -r facts_s facts_mb <<< "$(measure facts env COSTSPLIT_STORE_URL="sqlite://$WORK/engine.db" "$BIN" import --facts "$WORK/facts")"

# Both stored the same facts and totals (the tests check every fact; this checks the run).
local_line=$(grep '^imported' "$WORK/local.out" | sed 's/; replaced.*effective/ effective/')
facts_line=$(grep '^imported' "$WORK/facts.out" | sed 's/; replaced.*effective/ effective/')
[ "$local_line" = "$facts_line" ] || { echo "the engine's facts differ: $local_line / $facts_line" >&2; exit 1; }
facts_n=$(echo "$local_line" | sed -E 's/.* as ([0-9]+) daily facts.*/\1/')
facts_kb=$(( $(stat -c %s "$WORK"/facts/*.parquet | head -1) / 1024 ))

table="Engine benchmark: \`bench/engine.sh\` ($ROWS CUR 2.0 line items, \`costsplit generate --cur2\`, parquet $size_mb MB; $facts_n daily facts; both runs stored the same facts and totals). Wall seconds and peak RSS on this 2-core machine.

| step | wall | peak RSS |
|---|---|---|
| costsplit import (line items to facts, stored) | ${local_s} s | ${local_mb} MB |
| Spark standalone (master + 2 one-core workers, 2 GB executors): \`engine run\` | ${spark_s} s | ${spark_mb} MB (the spark-sql driver; the workers' executors apart) |
| then \`costsplit import --facts\` (a $facts_kb KB facts file) | ${facts_s} s | ${facts_mb} MB |"
printf '%s\n' "$table"
python3 bench/write_section.py engines bench/engine.sh "Engines" "$table"
