#!/usr/bin/env bash
# The daemon's footprint: idle RSS of `costsplit run`, and the CPU of one daily cycle's own
# work (allocate the restatement window, detect and enqueue alerts) for a month of
# 100 services, outside any wait on AWS or Slack. Release build; not a test.
#
#   bench/daemon.sh          # prints the figures; BENCHMARKS.md keeps the last run's
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
cargo build --release --locked --bin costsplit
BIN="$CARGO_TARGET_DIR/release/costsplit"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r rules "$WORK/rules"
cd "$WORK"

# Idle: a fresh store, nothing configured but the rules; after the start-up catch-up.
printf 'store_url = "sqlite://idle.db"\n[daemon]\nlisten = "127.0.0.1:0"\n' > costsplit.toml
"$BIN" run 2> idle.log &
PID=$!
sleep 15
T0=$(awk '{print $14+$15}' /proc/$PID/stat)
sleep 30
T1=$(awk '{print $14+$15}' /proc/$PID/stat)
RSS=$(awk '/VmRSS/ {print $2}' /proc/$PID/status)
HWM=$(awk '/VmHWM/ {print $2}' /proc/$PID/status)
kill -TERM $PID; wait $PID || true
TICK=$(getconf CLK_TCK)
echo "idle daemon: RSS $((RSS / 1024)) MB (peak $((HWM / 1024)) MB), CPU over 30 s idle: $(( (T1 - T0) * 1000 / TICK )) ms"

# A daily cycle's work for 100 services. The daemon re-allocates its restatement window: on
# an ordinary day (2025-03-20) the three days before; in a month's first week (2025-04-03)
# the previous month whole, until its bill is final. Then detect and enqueue alerts.
"$BIN" generate --rows 200000 --seed 42 --services 100 --out month.csv.gz 2>/dev/null
"$BIN" --store sqlite://cycle.db import month.csv.gz > /dev/null
"$BIN" --store sqlite://cycle.db --rules rules allocate --month 2025-03 > /dev/null
cpu() { /usr/bin/time -f "%U %S %M" "$@" 2>&1 >/dev/null | tail -1 | awk '{printf "%.2f s CPU, %d MB peak", $1+$2, $3/1024}'; }
echo "allocate an ordinary day's window (3 days) of 100 services: $(cpu "$BIN" --store sqlite://cycle.db --rules rules allocate --from 2025-03-17 --to 2025-03-19)"
echo "allocate a first-week window (the previous month) of 100 services: $(cpu "$BIN" --store sqlite://cycle.db --rules rules allocate --month 2025-03)"
echo "alerts check (detect + enqueue): $(cpu "$BIN" --store sqlite://cycle.db --rules rules alerts check --date 2025-03-31)"

# Alert evaluation at scale: 1,000 services x 400 days of allocations (issue 12's goal: <= 1 s).
"$BIN" --store sqlite://alerts.db migrate > /dev/null
LAST=$(python3 "$ROOT/bench/alerts.py" alerts.db 1000 400)
echo "alerts check over 1,000 services x 400 days (detect + enqueue): $(cpu "$BIN" --store sqlite://alerts.db --rules rules alerts check --date "$LAST")"
echo "alerts check again (already enqueued, detect only): $(cpu "$BIN" --store sqlite://alerts.db --rules rules alerts check --date "$LAST")"
