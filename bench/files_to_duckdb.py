#!/usr/bin/env python3
"""Benchmark: a 1 GB CSV file and a 1 GB NDJSON file loaded into DuckDB by
flowline and by DuckDB's own readers (read_csv, read_json), side by side.

    bench/files_to_duckdb.sh          # builds flowline (dev profile), sets up, runs

DuckDB's readers run twice: the DuckDB release flowline embeds (the
`duckdb` pin in Cargo.toml, in a virtualenv of its own), which measures
what flowline adds to the engine it loads with, and DuckDB's latest release
(the virtualenv of bench/sql_to_duckdb.py), which shows what a newer engine
gains. The files (lineitem-like rows: integers, decimals, dates, text) are
made once with DuckDB under ~/.cache/flowline/bench-files. flowline loads them with
its defaults: exact values, dead letters and incremental fingerprints kept.
Prints wall time and peak RSS of each, and flowline's ratio to each DuckDB;
the goal is set against the embedded release.
Each file is loaded twice by flowline: as it is by default (DuckDB reads
the file, each value converted by flowline's rules: CSV with DuckDB's
reader, NDJSON with flowline's JSON reader on DuckDB's threads) and with
`read_in_warehouse = false` ("own read": flowline's reader).

Environment: BENCH_FILE_MB (default 1024), FLOWLINE_BIN (a built flowline:
the script then builds nothing), FLOWLINE_BASELINE_BIN (another build of
flowline, an earlier commit say, measured in the same run for comparison).
"""

import os
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sql_to_duckdb import CACHE, FLOWLINE, PY, ROOT, measure, python_peer, setup_venv, sh  # noqa: E402

SIZE_MB = int(os.environ.get("BENCH_FILE_MB", "1024"))
FILES = os.path.join(CACHE, "bench-files")
GOAL_RATIO = 1.1
GOAL_RSS_MB = 256

ROWS_SQL = """
SELECT i AS id, i % 200000 AS part_id, (i * 7) % 10000 AS supplier_id,
       round((i % 5000) / 100.0 + 0.01, 2)::DECIMAL(12,2) AS quantity,
       round((i * 13 % 1000000) / 100.0, 2)::DECIMAL(12,2) AS price,
       DATE '1992-01-01' + (i % 2500)::INTEGER AS ship_date,
       ['AIR', 'RAIL', 'SHIP', 'TRUCK', 'MAIL'][(i % 5) + 1] AS ship_mode,
       'comment number ' || i || ' about the order' AS comment
FROM range({rows}) t(i)
"""


def make_files():
    """The CSV and NDJSON files of about SIZE_MB each, made once."""
    os.makedirs(FILES, exist_ok=True)
    paths = {}
    for fmt, per_row in (("csv", 88), ("ndjson", 177)):
        path = os.path.join(FILES, f"rows-{SIZE_MB}mb.{fmt}")
        if not os.path.exists(path):
            rows = SIZE_MB * 1024 * 1024 // per_row
            options = "(HEADER, DELIMITER ',')" if fmt == "csv" else "(FORMAT json)"
            copy = f"COPY ({ROWS_SQL.format(rows=rows)}) TO '{path}.tmp' {options}"
            sh(python_peer(f"import duckdb\nduckdb.sql({copy!r})\n"))
            os.replace(path + ".tmp", path)
        paths[fmt] = path
    return paths


BASELINE = os.environ.get("FLOWLINE_BASELINE_BIN")


def warm_page_cache(path):
    """Reads the file once, untimed, so that the first reader measured does
    not pay for the disk alone."""
    with open(path, "rb") as f:
        while f.read(1 << 24):
            pass


def embedded_duckdb():
    """The DuckDB release flowline embeds: the crate's version 1.MMmmpp.x
    (pinned in Cargo.toml) is DuckDB MM.mm.pp."""
    with open(os.path.join(ROOT, "Cargo.toml")) as f:
        pin = re.search(r'^duckdb = \{ version = "=1\.(\d+)(\d\d)(\d\d)\.', f.read(), re.M)
    if not pin:
        raise SystemExit("Cargo.toml pins no duckdb release")
    return ".".join(str(int(part)) for part in pin.groups())


def duckdb_version(python):
    return sh([python, "-c", "import duckdb; print(duckdb.__version__)"],
              capture_output=True, text=True).stdout.strip()


def flowline_load(path, fmt, work, binary=FLOWLINE, label="flowline", options=""):
    project = os.path.join(work, f"{label}-{fmt}")
    os.makedirs(os.path.join(project, "pipelines"))
    with open(os.path.join(project, "flowline.toml"), "w") as f:
        f.write('[project]\nname = "bench"\n')
    with open(os.path.join(project, "pipelines", "rows.toml"), "w") as f:
        f.write(f'[source]\nkind = "file"\npath = "{path}"\n{options}\n[destination]\ntable = "raw.rows"\n')
    return measure(f"{label} ({fmt})", [binary, "--project", project, "run"])


def duckdb_load(path, fmt, work, python, version):
    reader = "read_csv" if fmt == "csv" else "read_json"
    db = os.path.join(work, f"duckdb-{version}-{fmt}.duckdb")
    return measure(f"duckdb {version} {reader}", python_peer(f"""
        import duckdb
        con = duckdb.connect('{db}')
        con.sql("CREATE TABLE rows AS SELECT * FROM {reader}('{path}')")
        con.close()
    """, python))


def main():
    if not os.path.exists(FLOWLINE):
        raise SystemExit(f"no flowline binary at {FLOWLINE}: run bench/files_to_duckdb.sh")
    setup_venv(("duckdb",))
    embedded = embedded_duckdb()
    # The embedded release in a virtualenv of its own.
    venv = os.path.join(CACHE, f"bench-venv-duckdb-{embedded}")
    peers = [(setup_venv((f"duckdb=={embedded}",), venv), embedded)]
    latest = duckdb_version(PY)
    if latest != embedded:
        peers.append((PY, latest))
    paths = make_files()
    results = []
    for fmt, path in paths.items():
        size = os.path.getsize(path) / 1024 / 1024
        warm_page_cache(path)
        work = tempfile.mkdtemp(prefix="flowline-bench-files-")
        try:
            ours = flowline_load(path, fmt, work)
            theirs = [duckdb_load(path, fmt, work, python, version) for python, version in peers]
            # The same file read by flowline itself (the default is to let
            # DuckDB read it, converting each value by flowline's rules).
            own = flowline_load(path, fmt, work, label="flowline-reader",
                                options="read_in_warehouse = false\n")
            base = flowline_load(path, fmt, work, BASELINE, "baseline") if BASELINE else None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        results.append((fmt, size, ours, theirs, own, base))
    print()
    head = f"{'file':<8} {'MB':>6} {'flowline s':>11} {'RSS MB':>7}"
    for _, version in peers:
        head += f" | {'DuckDB ' + version + ' s':>16} {'RSS MB':>7} {'ratio':>6}"
    print(head)
    for fmt, size, (fs, fm), theirs, own, base in results:
        print(row(f"{fmt:<8} {size:>6.0f}", fs, fm, theirs, with_peers=True))
        for label, other in (("own read", own), ("baseline", base)):
            if other:
                print(row(f"{label:<8} {'':>6}", *other, theirs, with_peers=False))
    print(f"\ngoal: at most {GOAL_RATIO}x the time of DuckDB {embedded}'s own reader "
          f"(the release flowline embeds), at most {GOAL_RSS_MB} MB peak RSS")


def row(label, seconds, rss, theirs, with_peers):
    """One line of the table: a flowline run and its ratio to each peer."""
    line = f"{label} {seconds:>11.1f} {rss:>7.0f}"
    for ds, dm in theirs:
        shown = f"{ds:>16.1f} {dm:>7.0f}" if with_peers else f"{'':>16} {'':>7}"
        line += f" | {shown} {seconds / ds:>5.2f}x"
    return line


if __name__ == "__main__":
    main()
