#!/usr/bin/env bash
# Builds flowline (release) and runs the REST API -> DuckDB benchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/duckdb-env.sh
# shellcheck disable=SC2086
cargo build --release --quiet $FLOWLINE_CARGO_FEATURES
exec python3 bench/http_api.py "$@"
