#!/usr/bin/env bash
# Builds flowline (release) and runs the Python step benchmark: one pandas
# function over 5M rows in batches, by flowline's python step and by a
# plain pandas script, both loading DuckDB.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/duckdb-env.sh
# shellcheck disable=SC2086
cargo build --release --quiet $FLOWLINE_CARGO_FEATURES --bin flowline
exec python3 bench/python_step.py "$@"
