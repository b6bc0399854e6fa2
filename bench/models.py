#!/usr/bin/env python3
"""Benchmark: SQL models on DuckDB, flowline against dbt-duckdb, on one
generated project of 200 models:

- 40 staging views over one source table (`raw.events`, 200,000 rows);
- 40 chains of 3 models each (alternately tables and views), each reading
  the one before, the first reading a staging view;
- 40 marts (tables), each a fan-in of the ends of 3 chains.

Both tools get the same project folder (a dbt project: `dbt_project.yml`,
`models/`); flowline runs it unchanged on its embedded DuckDB warehouse
(`.flowline/warehouse.duckdb` in that folder), dbt-duckdb on its own DuckDB
file named by a `profiles.yml` beside it. Both build with 4 threads.

Measured, best of BENCH_REPEAT (default 3), wall time of the whole command:

- parse: flowline `models ls` against `dbt parse --no-partial-parse` (read
  and render every model, build the graph);
- compile: `models compile` against `dbt compile --no-partial-parse`;
- run: `models run` against `dbt run --no-partial-parse` (every model
  built; the later repeats replace what the first built).

    bench/models.sh            # builds flowline (release), sets up, runs

dbt-duckdb (with dbt-core 1.10) comes from PyPI into a virtualenv under
~/.cache/flowline.
Environment: FLOWLINE_BIN, BENCH_REPEAT, BENCH_ROWS.
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
VENV = os.path.join(CACHE, "models-venv")
FLOWLINE = os.environ.get("FLOWLINE_BIN", os.path.join(ROOT, "target", "release", "flowline"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
ROWS = int(os.environ.get("BENCH_ROWS", "200000"))
THREADS = "4"

STAGING, CHAINS, CHAIN_LENGTH, MARTS, FAN_IN = 40, 40, 3, 40, 3
GOALS = {"run": 10.0, "parse": 50.0}


def sh(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


def setup_dbt():
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        sh([sys.executable, "-m", "venv", VENV])
    probe = subprocess.run([python, "-c", "import dbt.adapters.duckdb"], capture_output=True)
    if probe.returncode != 0:
        # dbt-core 1.11 and later fetch a parser from GitHub while they
        # install; 1.10 installs from PyPI alone.
        sh([python, "-m", "pip", "install", "-q", "dbt-core>=1.9,<1.11", "dbt-duckdb>=1.9,<1.11"])
    return os.path.join(VENV, "bin", "dbt"), python


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def generate(folder):
    """The project: 200 models, their source, and dbt's profile."""
    write(os.path.join(folder, "dbt_project.yml"), textwrap.dedent("""\
        name: bench
        version: '1.0'
        profile: bench
        model-paths: ["models"]
        models:
          bench:
            +materialized: view
            marts:
              +materialized: table
        """))
    write(os.path.join(folder, "profiles.yml"), textwrap.dedent(f"""\
        bench:
          target: dev
          outputs:
            dev:
              type: duckdb
              path: {os.path.join(folder, 'dbt.duckdb')}
              threads: {THREADS}
        """))
    write(os.path.join(folder, "models", "sources.yml"), textwrap.dedent("""\
        version: 2
        sources:
          - name: raw
            tables:
              - name: events
        """))
    models = 0
    for i in range(STAGING):
        write(os.path.join(folder, "models", "staging", f"stg_{i}.sql"),
              f"select id, kind, amount * {i + 1} as amount, ts\n"
              f"from {{{{ source('raw', 'events') }}}}\nwhere id % {STAGING} = {i}\n")
        models += 1
    for c in range(CHAINS):
        for k in range(CHAIN_LENGTH):
            parent = f"stg_{c % STAGING}" if k == 0 else f"int_{c}_{k - 1}"
            materialized = "table" if k % 2 == 0 else "view"
            write(os.path.join(folder, "models", "intermediate", f"int_{c}_{k}.sql"),
                  f"{{{{ config(materialized='{materialized}') }}}}\n"
                  f"select kind, date_trunc('day', ts) as day, sum(amount) as amount, count(*) as n\n"
                  f"from {{{{ ref('{parent}') }}}}\ngroup by kind, date_trunc('day', ts)\n"
                  if k == 0 else
                  f"{{{{ config(materialized='{materialized}') }}}}\n"
                  f"select kind, day, amount * 2 as amount, n\nfrom {{{{ ref('{parent}') }}}}\n"
                  f"where n > 0\n")
            models += 1
    last = CHAIN_LENGTH - 1
    for m in range(MARTS):
        parts = [f"select kind, day, amount, n from {{{{ ref('int_{(m + j * 7) % CHAINS}_{last}') }}}}"
                 for j in range(FAN_IN)]
        write(os.path.join(folder, "models", "marts", f"mart_{m}.sql"),
              "with unioned as (\n" + "\nunion all\n".join(parts) + "\n)\n"
              "select kind, day, sum(amount) as amount, sum(n) as n from unioned group by kind, day\n")
        models += 1
    return models


SOURCE_SQL = (
    "create schema if not exists raw; "
    "create or replace table raw.events as select i as id, "
    "case i % 4 when 0 then 'click' when 1 then 'view' when 2 then 'buy' else 'refund' end as kind, "
    "(i % 1000) / 10.0 as amount, timestamp '2024-01-01' + to_seconds(i * 13) as ts "
    f"from range({ROWS}) as t(i)"
)


def best(label, cmd, cwd, env=None):
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            print(f"{label} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", flush=True)
            return None
        times.append(elapsed)
    value = min(times)
    print(f"  {label:<34} {value:8.3f} s  (runs: {', '.join(f'{t:.3f}' for t in times)})", flush=True)
    return value


def main():
    if not os.path.exists(FLOWLINE):
        sys.exit(f"no flowline binary at {FLOWLINE}: run bench/models.sh")
    dbt, python = setup_dbt()
    folder = tempfile.mkdtemp(prefix="flowline-models-bench-")
    try:
        models = generate(folder)
        print(f"project: {models} models in {folder}, source raw.events of {ROWS} rows", flush=True)
        sh([FLOWLINE, "--project", folder, "sql", SOURCE_SQL], stdout=subprocess.DEVNULL)
        sh([python, "-c", f"import duckdb; duckdb.connect({os.path.join(folder, 'dbt.duckdb')!r}).execute({SOURCE_SQL!r})"])
        env = dict(os.environ, DBT_PROFILES_DIR=folder, DBT_SEND_ANONYMOUS_USAGE_STATS="false")
        fl = [FLOWLINE, "--project", folder, "models"]
        dbt_flags = ["--no-partial-parse", "--threads", THREADS]
        results = {}
        print("flowline:", flush=True)
        results[("flowline", "parse")] = best("models ls", fl + ["ls"], folder)
        results[("flowline", "compile")] = best("models compile", fl + ["compile"], folder)
        results[("flowline", "run")] = best("models run", fl + ["run", "--threads", THREADS], folder)
        print("dbt-duckdb:", flush=True)
        results[("dbt", "parse")] = best("dbt parse", [dbt, "parse", "--no-partial-parse"], folder, env)
        results[("dbt", "compile")] = best("dbt compile", [dbt, "compile", *dbt_flags], folder, env)
        results[("dbt", "run")] = best("dbt run", [dbt, "run", *dbt_flags], folder, env)

        check = subprocess.run(
            [FLOWLINE, "--project", folder, "sql", "select count(*) as n from mart_0"],
            capture_output=True, text=True)
        print(f"\nflowline's mart_0:\n{check.stdout.strip()}")

        print(f"\n{models} models, wall seconds (best of {REPEAT}); ratio = dbt / flowline")
        print(f"{'measure':<10}{'flowline':>12}{'dbt-duckdb':>14}{'ratio':>10}{'goal':>10}")
        for measure in ("parse", "compile", "run"):
            ours, theirs = results[("flowline", measure)], results[("dbt", measure)]
            ratio = f"{theirs / ours:.1f}x" if ours and theirs else "-"
            goal = f">={GOALS[measure]:.0f}x" if measure in GOALS else ""
            fmt = lambda v: f"{v:.3f}" if v is not None else "failed"
            print(f"{measure:<10}{fmt(ours):>12}{fmt(theirs):>14}{ratio:>10}{goal:>10}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
