#!/usr/bin/env bash
# Builds flowline and the stream helper (release) and runs the growth benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/duckdb-env.sh
# shellcheck disable=SC2086
cargo build --release --quiet $FLOWLINE_CARGO_FEATURES --bin flowline --example stream_bench
exec python3 bench/growth.py "$@"
