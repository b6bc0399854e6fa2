#!/usr/bin/env bash
# Builds flowline (release) and runs the file benchmark: 1 GB CSV and NDJSON
# into DuckDB, flowline against DuckDB's own readers.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${FLOWLINE_BIN:-}" ]]; then
    source scripts/duckdb-env.sh
    # shellcheck disable=SC2086
    cargo build --release --quiet $FLOWLINE_CARGO_FEATURES --bin flowline
fi
exec python3 bench/files_to_duckdb.py "$@"
