#!/usr/bin/env bash
# The read-only API and the web page over a year of 1,000 services in PostgreSQL: p50 and p95
# of every route, beside /healthz (the listener's own floor) measured in the same run.
# A benchmark, not a test: it prints a table for BENCHMARKS.md and asserts nothing.
#
#   bench/api.sh                      # 12 months x 1,000 services (about 10 minutes)
#   BENCH_API_MONTHS=2 BENCH_API_ROWS=200000 bench/api.sh       # a quick smoke run
#
# Needs: cargo, python3, the local PostgreSQL (a database costsplit_bench_api is replaced).
set -euo pipefail
cd "$(dirname "$0")/.."
SERVICES="${BENCH_API_SERVICES:-1000}"
MONTHS="${BENCH_API_MONTHS:-12}"
ROWS="${BENCH_API_ROWS:-1500000}"
REQUESTS="${BENCH_API_REQUESTS:-60}"
WORK="${BENCH_DIR:-$PWD/target/bench-api}"
PG="${BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
if [ -z "${BENCH_BIN:-}" ]; then
  cargo build --release --locked --bin costsplit
fi
BIN="${BENCH_BIN:-$CARGO_TARGET_DIR/release/costsplit}"
mkdir -p "$WORK/rules"

export COSTSPLIT_STORE_URL="$PG/costsplit_bench_api"
export COSTSPLIT_RULES_DIR="$WORK/rules"
unset COSTSPLIT_API_TOKEN COSTSPLIT_API_TOKEN_FILE COSTSPLIT_CONFIG

# BENCH_API_FILLED=1 measures the store a previous run filled.
if [ -z "${BENCH_API_FILLED:-}" ]; then
  psql "$PG/postgres" -q -c "DROP DATABASE IF EXISTS costsplit_bench_api" -c "CREATE DATABASE costsplit_bench_api"
  # The rules: the generator's services in 50 teams, its shared resources split by usage.
  python3 bench/api_rules.py "$SERVICES" bench/rules.toml > "$WORK/rules/rules.toml"
  start=$(date +%s)
  for i in $(seq 0 $((MONTHS - 1))); do
    month=$(date -u -d "2025-12-01 -$i month" +%Y-%m)
    file="$WORK/month-$month.csv"
    [ -f "$file" ] || "$BIN" generate --rows "$ROWS" --services "$SERVICES" --month "$month" \
      --out "$file" --weights "$WORK/rules/weights.csv" 2>/dev/null
    "$BIN" import --allocate "$file" >/dev/null
  done
  echo "filled $MONTHS months of $SERVICES services in $(( $(date +%s) - start )) s" >&2
fi
psql "$PG/costsplit_bench_api" -Atc "SELECT count(*) || ' allocation rows, ' || count(DISTINCT service) || ' services' FROM allocations" >&2

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
COSTSPLIT_LISTEN="127.0.0.1:$port" "$BIN" serve >/dev/null 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
# serve computes the newest two months ahead at its start: measure once that is done (and
# once with BENCH_API_SETTLE=0 for the first requests racing it).
sleep "${BENCH_API_SETTLE:-30}"
python3 bench/api_measure.py "http://127.0.0.1:$port" "$REQUESTS"
