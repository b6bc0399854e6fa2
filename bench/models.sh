#!/usr/bin/env bash
# Builds flowline (release) and runs the models benchmark: a generated
# project of 200 SQL models on DuckDB, flowline against dbt-duckdb (parse,
# compile, run). BENCH_SKIP_BUILD=1 (or FLOWLINE_BIN) uses a binary as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${FLOWLINE_BIN:-}" && -z "${BENCH_SKIP_BUILD:-}" ]]; then
    source scripts/duckdb-env.sh
    # shellcheck disable=SC2086
    cargo build --release --quiet $FLOWLINE_CARGO_FEATURES --bin flowline
fi
exec python3 bench/models.py "$@"
