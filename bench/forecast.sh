#!/usr/bin/env bash
# The month-end forecast's backtest: costsplit's forecaster beside the naive run rate on the
# generator's seasonal months (through a SQLite store, as budgets read them) and on the real
# Cost Explorer answer in tests/data/thirdparty; writes the table into BENCHMARKS.md between
# its `bench:forecast` markers. Not a test.
#
#   bench/forecast.sh                  # 200,000 rows a month, 8 months, seed 42
#   bench/forecast.sh 100000 6 7       # rows a month, months, seed
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
# Accuracy, not speed: the debug build (no 30-minute release build) does.
table="$(cargo run --quiet --locked --example forecast_backtest -- "$@")"
printf '%s\n' "$table"
python3 bench/write_section.py forecast bench/forecast.sh "Forecast backtest" "$table"
