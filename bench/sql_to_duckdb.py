#!/usr/bin/env python3
"""Benchmark: TPC-H lineitem (scale factor 1, 6,001,215 rows) copied from the
local PostgreSQL into DuckDB by flowline and by its peers, side by side.

    bench/sql_to_duckdb.sh            # builds flowline (release), sets up, runs

Peers come from PyPI into a virtualenv the script creates; lineitem is made
with tpchgen-cli and loaded into Postgres once (database `flowline_bench`).
Prints wall time and peak RSS of each, and flowline's ratio to each.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("FLOWLINE_CACHE", os.path.expanduser("~/.cache/flowline"))
VENV = os.path.join(CACHE, "bench-venv")
PY = os.path.join(VENV, "bin", "python")
SCALE = os.environ.get("BENCH_SCALE", "1")
DB = "flowline_bench" if SCALE == "1" else f"flowline_bench_sf{SCALE}"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
URL = f"{PG}/{DB}"
FLOWLINE = os.environ.get("FLOWLINE_BIN", os.path.join(ROOT, "target", "release", "flowline"))

LINEITEM_DDL = """
CREATE TABLE lineitem (
  l_orderkey bigint NOT NULL, l_partkey bigint NOT NULL, l_suppkey bigint NOT NULL,
  l_linenumber int NOT NULL, l_quantity numeric(15,2) NOT NULL, l_extendedprice numeric(15,2) NOT NULL,
  l_discount numeric(15,2) NOT NULL, l_tax numeric(15,2) NOT NULL, l_returnflag char(1) NOT NULL,
  l_linestatus char(1) NOT NULL, l_shipdate date NOT NULL, l_commitdate date NOT NULL,
  l_receiptdate date NOT NULL, l_shipinstruct varchar(25) NOT NULL, l_shipmode varchar(10) NOT NULL,
  l_comment varchar(44) NOT NULL, PRIMARY KEY (l_orderkey, l_linenumber));
"""


def sh(cmd, **kw):
    print("+", cmd if isinstance(cmd, str) else " ".join(cmd), flush=True)
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


def psql(sql, db=DB):
    return subprocess.run(["psql", f"{PG}/{db}", "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def setup_venv(packages=("tpchgen-cli", "dlt[duckdb,sql-database]", "connectorx", "pandas",
                          "sqlalchemy", "psycopg2-binary", "duckdb", "pyarrow"), venv=VENV):
    """Installs `packages` into the virtualenv `venv`; its interpreter."""
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        sh([sys.executable, "-m", "venv", venv])
    sh([python, "-m", "pip", "install", "-q", *packages])
    return python


def setup_data(scale=SCALE, db=DB):
    """lineitem at `scale` in database `db`, made once (the CSV is removed
    once loaded: at SF10 it is 7 GB)."""
    exists = psql(f"SELECT count(*) FROM pg_database WHERE datname = '{db}'", db="postgres")
    if exists == "1" and psql("SELECT to_regclass('lineitem') IS NOT NULL", db=db) == "t":
        return
    if exists != "1":
        psql(f"CREATE DATABASE {db}", db="postgres")
    out = os.path.join(CACHE, f"tpch-sf{scale}")
    os.makedirs(out, exist_ok=True)
    sh([os.path.join(VENV, "bin", "tpchgen-cli"), "csv", "-s", str(scale), "--tables", "lineitem",
        "--output-dir", out])
    csv = os.path.join(out, "lineitem.csv")
    psql(LINEITEM_DDL, db=db)
    sh(["psql", f"{PG}/{db}", "-v", "ON_ERROR_STOP=1", "-c",
        f"\\copy lineitem FROM '{csv}' WITH (FORMAT csv, HEADER true)"])
    psql("VACUUM ANALYZE lineitem", db=db)
    os.remove(csv)


def measure(name, cmd, env=None, cwd=None):
    """Runs cmd, returns (seconds, peak RSS in MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{name} failed:\n{err[-3000:]}")
    return seconds, usage.ru_maxrss / 1024


def python_peer(code, python=PY):
    return [python, "-c", textwrap.dedent(code)]


def main():
    setup_venv()
    setup_data()
    rows = int(psql("SELECT count(*) FROM lineitem"))
    work = tempfile.mkdtemp(prefix="flowline-bench-")
    results = []

    # flowline
    proj = os.path.join(work, "flowline")
    os.makedirs(os.path.join(proj, "pipelines"))
    with open(os.path.join(proj, "flowline.toml"), "w") as f:
        # flowline's defaults: no tuning.
        f.write(f'[project]\nname = "bench"\n[connections.pg]\nurl = "{URL}"\n')
    with open(os.path.join(proj, "pipelines", "lineitem.toml"), "w") as f:
        f.write('[source]\nkind = "postgres"\nconnection = "pg"\ntable = "public.lineitem"\n'
                'incremental = { cursor = "l_orderkey" }\n'
                '[destination]\ntable = "lineitem"\nwrite = "append"\n')
    results.append(("flowline",) + measure("flowline", [FLOWLINE, "--project", proj, "run"]))
    results_incremental = measure("flowline re-run", [FLOWLINE, "--project", proj, "run"])
    loaded = subprocess.run([FLOWLINE, "--project", proj, "sql", "--format", "csv", "select count(*) from lineitem"],
                            capture_output=True, text=True, check=True).stdout.split()[-1]
    assert int(loaded) == rows, f"flowline loaded {loaded} of {rows} rows"

    for backend in ("pyarrow", "connectorx"):
        d = os.path.join(work, f"dlt-{backend}")
        os.makedirs(d)
        code = f"""
            import dlt
            from dlt.sources.sql_database import sql_table
            table = sql_table(credentials="{URL.replace('postgresql://', 'postgresql+psycopg2://')}", table="lineitem", backend="{backend}", chunk_size=100000)
            pipeline = dlt.pipeline(pipeline_name="bench", destination=dlt.destinations.duckdb("{d}/dlt.duckdb"),
                                    dataset_name="bench", pipelines_dir="{d}/pipelines")
            pipeline.run(table)
        """
        results.append((f"dlt sql_table backend={backend}",) + measure("dlt", python_peer(code), cwd=d))

    cx_db = os.path.join(work, "cx.duckdb")
    results.append(("connectorx read_sql + DuckDB CTAS",) + measure("connectorx", python_peer(f"""
        import connectorx as cx, duckdb
        tbl = cx.read_sql("{URL}", "select * from lineitem", return_type="arrow")
        con = duckdb.connect("{cx_db}")
        con.execute("create table lineitem as select * from tbl")
    """)))

    pd_db = os.path.join(work, "pandas.duckdb")
    results.append(("pandas read_sql chunks -> DuckDB",) + measure("pandas", python_peer(f"""
        import pandas as pd, duckdb, sqlalchemy
        engine = sqlalchemy.create_engine("{URL.replace('postgresql://', 'postgresql+psycopg2://')}")
        con = duckdb.connect("{pd_db}")
        first = True
        with engine.connect().execution_options(stream_results=True) as conn:
            for chunk in pd.read_sql("select * from lineitem", conn, chunksize=100000):
                if first:
                    con.execute("create table lineitem as select * from chunk")
                    first = False
                else:
                    con.execute("insert into lineitem select * from chunk")
    """)))

    csv = os.path.join(work, "lineitem.csv")
    floor_db = os.path.join(work, "floor.duckdb")
    t1, m1 = measure("psql copy", ["psql", URL, "-c", f"\\copy (select * from lineitem) to '{csv}' csv header"])
    t2, m2 = measure("duckdb csv", python_peer(f"""
        import duckdb
        duckdb.connect("{floor_db}").execute("create table lineitem as select * from read_csv('{csv}')")
    """))
    results.append(("floor: psql \\copy to CSV + DuckDB read_csv", t1 + t2, max(m1, m2)))

    flowline_s = results[0][1]
    print(f"\nTPC-H lineitem SF{SCALE}: {rows:,} rows, PostgreSQL -> DuckDB\n")
    print(f"{'tool':46} {'wall s':>8} {'peak RSS MB':>12} {'flowline speedup':>17}")
    for name, seconds, rss in results:
        print(f"{name:46} {seconds:8.2f} {rss:12.0f} {seconds / flowline_s:16.2f}x")
    print(f"\nflowline incremental re-run, nothing new: {results_incremental[0]:.2f} s, "
          f"{results_incremental[1]:.0f} MB")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
