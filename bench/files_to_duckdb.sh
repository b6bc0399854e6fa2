#!/usr/bin/env bash
# Builds flowline (the dev profile the tests and the quickstart use) and runs
# the file benchmark: 1 GB CSV and NDJSON into DuckDB, flowline against
# DuckDB's own readers. With FLOWLINE_BIN set, it builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/duckdb-env.sh
if [[ -z "${FLOWLINE_BIN:-}" ]]; then
    # shellcheck disable=SC2086
    cargo build --quiet $FLOWLINE_CARGO_FEATURES --bin flowline
    export FLOWLINE_BIN="${CARGO_TARGET_DIR:-target}/debug/flowline"
fi
exec python3 bench/files_to_duckdb.py "$@"
