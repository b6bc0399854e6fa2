#!/usr/bin/env python3
"""Benchmark: the same pandas function applied to the same batches of a
5M-row Parquet file, loaded into DuckDB three ways, side by side.

    bench/python_step.sh              # builds flowline (release), sets up, runs

flowline+python  `flowline run`: the file source in batches of 65,536 rows,
                 a `[[transform]] python` step running FUNCTION (one worker,
                 Arrow IPC over a pipe), the embedded DuckDB.
pandas           a plain script: pyarrow reads the file in batches of the
                 same size, `to_pandas()`, FUNCTION, INSERT into DuckDB.
flowline alone   `flowline run` without the step: what the step adds to.

pandas, pyarrow and DuckDB come from PyPI into the virtualenv of
bench/sql_to_duckdb.py, and flowline's step runs that interpreter
(`[project] python`). The file is made once with DuckDB under
~/.cache/flowline/bench-files. Prints wall time and peak RSS of each, and
flowline+python's time over plain pandas'; goal: at most 1.3x.

Environment: BENCH_PY_ROWS (default 5000000), FLOWLINE_BIN.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sql_to_duckdb import CACHE, FLOWLINE, PY, measure, python_peer, setup_venv, sh  # noqa: E402

ROWS = int(os.environ.get("BENCH_PY_ROWS", "5000000"))
BATCH = 65536
FILES = os.path.join(CACHE, "bench-files")
GOAL_RATIO = 1.3

ROWS_SQL = f"""
SELECT i AS id, i % 100000 AS customer_id, (i * 37) % 100000 AS amount_cents,
       ['paid', 'paid', 'paid', 'refunded', 'pending'][(i % 5) + 1] AS status,
       TIMESTAMP '2024-01-01' + to_seconds(i) AS created_at,
       'order ' || i || ' from the web shop' AS note
FROM range({ROWS}) t(i)
"""

# What both sides run on every batch.
FUNCTION = '''
def transform(df):
    df = df[df["status"] != "refunded"].copy()
    df["amount"] = df["amount_cents"] / 100
    df["amount_with_tax"] = (df["amount"] * 1.2).round(2)
    df["big"] = df["amount_cents"] > 50000
    df["note"] = df["note"].str.upper()
    return df.drop(columns=["amount_cents"])
'''


def make_file():
    """The Parquet file of ROWS rows, made once."""
    os.makedirs(FILES, exist_ok=True)
    path = os.path.join(FILES, f"orders-{ROWS}.parquet")
    if not os.path.exists(path):
        copy = f"COPY ({ROWS_SQL}) TO '{path}.tmp' (FORMAT parquet)"
        sh(python_peer(f"import duckdb\nduckdb.sql({copy!r})\n"))
        os.replace(path + ".tmp", path)
    return path


def flowline_load(path, work, step):
    name = "flowline-python" if step else "flowline-alone"
    project = os.path.join(work, name)
    os.makedirs(os.path.join(project, "pipelines"))
    with open(os.path.join(project, "flowline.toml"), "w") as f:
        f.write(f'[project]\nname = "bench"\npython = "{PY}"\n')
    with open(os.path.join(project, "clean.py"), "w") as f:
        f.write(FUNCTION)
    transform = '[[transform]]\npython = "clean.py"\n\n' if step else ""
    with open(os.path.join(project, "pipelines", "orders.toml"), "w") as f:
        f.write(f'[source]\nkind = "file"\npath = "{path}"\nbatch_size = {BATCH}\n\n'
                f'{transform}[destination]\ntable = "raw.orders"\n')
    result = measure(name, [FLOWLINE, "--project", project, "run"])
    rows = subprocess.run([FLOWLINE, "--project", project, "sql", "--format", "csv",
                           "select count(*) from raw.orders"],
                          capture_output=True, text=True, check=True).stdout.split()[-1]
    return result, int(rows)


def pandas_load(path, work):
    db = os.path.join(work, "pandas.duckdb")
    code = textwrap.dedent(FUNCTION) + textwrap.dedent(f"""
        import duckdb
        import pyarrow.parquet as pq
        con = duckdb.connect('{db}')
        con.execute("CREATE SCHEMA raw")
        created = False
        for batch in pq.ParquetFile('{path}').iter_batches(batch_size={BATCH}):
            df = transform(batch.to_pandas())
            if not created:
                con.execute("CREATE TABLE raw.orders AS SELECT * FROM df")
                created = True
            else:
                con.execute("INSERT INTO raw.orders SELECT * FROM df")
        con.close()
    """)
    result = measure("pandas", [PY, "-c", code])
    rows = subprocess.run(python_peer(f"""
        import duckdb
        print(duckdb.connect('{db}').sql("select count(*) from raw.orders").fetchall()[0][0])
    """), capture_output=True, text=True, check=True).stdout.strip()
    return result, int(rows)


def main():
    if not os.path.exists(FLOWLINE):
        raise SystemExit(f"no flowline binary at {FLOWLINE}: run bench/python_step.sh")
    setup_venv(("duckdb", "pandas", "pyarrow"))
    path = make_file()
    work = tempfile.mkdtemp(prefix="flowline-bench-python-")
    try:
        (ours, ours_rows) = flowline_load(path, work, step=True)
        (plain, plain_rows) = pandas_load(path, work)
        (alone, _) = flowline_load(path, work, step=False)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert ours_rows == plain_rows, f"flowline loaded {ours_rows} rows, pandas {plain_rows}"
    print()
    print(f"{ROWS:,} rows in batches of {BATCH:,}; {ours_rows:,} rows loaded by each")
    print(f"{'run':<18} {'s':>7} {'RSS MB':>7}")
    for name, (seconds, rss) in (("flowline+python", ours), ("pandas", plain),
                                 ("flowline alone", alone)):
        print(f"{name:<18} {seconds:>7.1f} {rss:>7.0f}")
    print(f"\nflowline+python / pandas: {ours[0] / plain[0]:.2f}x (goal: at most {GOAL_RATIO}x)")
    print(f"the step's own cost: {ours[0] - alone[0]:.1f} s over flowline alone")


if __name__ == "__main__":
    main()
