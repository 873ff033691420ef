#!/usr/bin/env bash
# The labelled cost-anomaly benchmark: seeded service series with planted anomalies of known
# kinds, costsplit's two detectors and two baselines scored on the same series, and on a set
# of quiet services drifting 5% a week; writes the tables into BENCHMARKS.md between its
# `bench:alert-quality` markers. Not a test.
#
#   bench/alert_benchmark.sh               # 600 series, seed 42
#   bench/alert_benchmark.sh 1000 7        # series, seed
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
# Quality, not speed: the debug build does.
table="$(cargo run --quiet --locked --example alert_benchmark -- "$@")"
printf '%s\n' "$table"
python3 bench/write_section.py alert-quality bench/alert_benchmark.sh "Alert quality" "$table"
