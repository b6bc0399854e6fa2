# shellcheck shell=bash
# Sourced by the other scripts: makes the build link DuckDB fast.
#
# DuckDB compiled from source takes tens of minutes on a small machine. The
# same version ships prebuilt (with parquet, json and icu) in an npm package;
# fetch it once into a cache, point libduckdb-sys at it with DUCKDB_LIB_DIR
# (build.rs embeds an rpath). When that is impossible (no npm, no registry),
# fall back to compiling it: FLOWLINE_CARGO_FEATURES="--features bundled".

DUCKDB_NPM_PACKAGE="@duckdb/node-bindings-linux-x64@1.5.6-r.1"
FLOWLINE_CACHE="${FLOWLINE_CACHE:-$HOME/.cache/flowline}"
FLOWLINE_CARGO_FEATURES="${FLOWLINE_CARGO_FEATURES:-}"

if [ -z "${DUCKDB_LIB_DIR:-}" ] || [ ! -f "${DUCKDB_LIB_DIR}/libduckdb.so" ]; then
    lib_dir="$FLOWLINE_CACHE/duckdb-1.5.6"
    if [ ! -f "$lib_dir/libduckdb.so" ] && [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ] \
        && command -v npm >/dev/null 2>&1; then
        tmp=$(mktemp -d)
        if (cd "$tmp" && npm pack --silent "$DUCKDB_NPM_PACKAGE" >/dev/null 2>&1 && tar xzf ./*.tgz); then
            mkdir -p "$lib_dir"
            cp "$tmp/package/libduckdb.so" "$lib_dir/libduckdb.so"
        fi
        rm -rf "$tmp"
    fi
    if [ -f "$lib_dir/libduckdb.so" ]; then
        export DUCKDB_LIB_DIR="$lib_dir"
    else
        echo "duckdb-env: prebuilt libduckdb.so unavailable; compiling DuckDB from source (slow)" >&2
        unset DUCKDB_LIB_DIR
        FLOWLINE_CARGO_FEATURES="--features bundled"
    fi
fi
if [ -n "${DUCKDB_LIB_DIR:-}" ]; then
    export LD_LIBRARY_PATH="$DUCKDB_LIB_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export FLOWLINE_CARGO_FEATURES
