# Sourced by the bench scripts that compare with DuckDB or use the generators: goes to the
# project's root, makes the bench venv (DuckDB, numpy, pyarrow) and the release binary.
# Sets ROOT, WORK (BENCH_DIR, default target/bench), PY and BIN.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
WORK="${BENCH_DIR:-$ROOT/target/bench}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/costsplit-target}"
mkdir -p "$WORK"

[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/python -c "import duckdb, numpy, pyarrow" 2>/dev/null || bench/.venv/bin/pip install -q duckdb numpy pyarrow
PY=bench/.venv/bin/python
cargo build --release --locked --bin costsplit
BIN="$CARGO_TARGET_DIR/release/costsplit"
