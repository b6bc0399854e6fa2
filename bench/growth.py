#!/usr/bin/env python3
"""Benchmark: how flowline grows, printed side by side in one run.

    bench/growth.sh                    # builds flowline (release), runs both parts
    bench/growth.sh --only sql         # lineitem SF1 vs SF10 only
    bench/growth.sh --only streams     # 1 vs 8 RabbitMQ stream pipelines only
    FLOWLINE_BIN=... STREAM_BENCH_BIN=... python3 bench/growth.py   # other builds

sql      TPC-H lineitem at scale factor 1 (6,001,215 rows) and 10
         (59,986,052 rows), PostgreSQL -> DuckDB by `flowline run` on its
         defaults (see bench/sql_to_duckdb.py; SF10 is made once into the
         database `flowline_bench_sf10`). Goals: SF10 time <= 10.5x SF1
         (linear), peak RSS <= 256 MB at both sizes (flat).
streams  `flowline stream` with one RabbitMQ pipeline, then with 8 pipelines
         (8 queues, 8 tables) in one process, each pipeline consuming
         --count messages published beforehand. Per pipeline: the time from
         the start to the commit that completed its count (its state row's
         `updated_at`). Goal: each of the 8 keeps >= 0.9x the throughput it
         has alone where cores allow; the report says what the machine's
         cores allow (the 8 share them, so on 2 cores the sum, not each, is
         what can hold).
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sql_to_duckdb as sqlbench  # noqa: E402
import streams as streambench  # noqa: E402

GOAL_TIME_RATIO = 10.5
GOAL_RSS_MB = 256
GOAL_PER_PIPELINE = 0.9


def flowline_bin():
    return streambench.flowline_bin()


# ---------------------------------------------------------------- sql

def load_lineitem(scale, work):
    """`flowline run` of lineitem at `scale` into a fresh project: (s, MB, rows)."""
    db = "flowline_bench" if scale == 1 else f"flowline_bench_sf{scale}"
    sqlbench.setup_data(scale=scale, db=db)
    rows = int(sqlbench.psql("SELECT count(*) FROM lineitem", db=db))
    proj = os.path.join(work, f"sf{scale}")
    os.makedirs(os.path.join(proj, "pipelines"))
    with open(os.path.join(proj, "flowline.toml"), "w") as f:
        f.write(f'[project]\nname = "growth"\n[connections.pg]\nurl = "{sqlbench.PG}/{db}"\n')
    with open(os.path.join(proj, "pipelines", "lineitem.toml"), "w") as f:
        f.write('[source]\nkind = "postgres"\nconnection = "pg"\ntable = "public.lineitem"\n'
                '[destination]\ntable = "lineitem"\nwrite = "append"\n')
    seconds, rss = sqlbench.measure(f"flowline SF{scale}", [flowline_bin(), "--project", proj, "run"])
    loaded = subprocess.run([flowline_bin(), "--project", proj, "sql", "--format", "csv",
                             "select count(*) from lineitem"],
                            capture_output=True, text=True, check=True).stdout.split()[-1]
    if int(loaded) != rows:
        raise SystemExit(f"SF{scale}: flowline loaded {loaded} of {rows} rows")
    shutil.rmtree(proj, ignore_errors=True)
    return seconds, rss, rows


def run_sql(work):
    sqlbench.setup_venv(packages=("tpchgen-cli",))
    small = load_lineitem(1, work)
    large = load_lineitem(10, work)
    ratio = large[0] / small[0]
    print("\nlineitem PostgreSQL -> DuckDB, flowline on its defaults\n")
    print(f"{'scale':6} {'rows':>12} {'wall s':>8} {'rows/s':>12} {'peak RSS MB':>12}")
    for scale, (s, rss, rows) in ((1, small), (10, large)):
        print(f"SF{scale:<4} {rows:12,} {s:8.1f} {rows / s:12,.0f} {rss:12.0f}")
    print(f"\nSF10 / SF1 time: {ratio:.2f}x (goal <= {GOAL_TIME_RATIO}x: "
          f"{'met' if ratio <= GOAL_TIME_RATIO else 'NOT met'}); "
          f"peak RSS {small[1]:.0f} -> {large[1]:.0f} MB (goal <= {GOAL_RSS_MB} MB: "
          f"{'met' if max(small[1], large[1]) <= GOAL_RSS_MB else 'NOT met'})")


# ---------------------------------------------------------------- streams

class Streams:
    """One `flowline stream` process running `queues` pipelines, one per queue."""

    def __init__(self, work, broker, queues):
        self.proj = os.path.join(work, "project")
        self.names = [f"p{i}" for i in range(len(queues))]
        os.makedirs(os.path.join(self.proj, "pipelines"))
        with open(os.path.join(self.proj, "flowline.toml"), "w") as f:
            f.write('[project]\nname = "growth"\n')
        for name, queue in zip(self.names, queues):
            with open(os.path.join(self.proj, "pipelines", f"{name}.toml"), "w") as f:
                f.write(f'mode = "stream"\n\n[source]\n{broker.source_toml(queue)}\n'
                        f'[batch]\nmax_rows = 10000\nmax_wait = "200ms"\n\n'
                        f'[destination]\ntable = "raw.{name}"\n')
        self.log = open(os.path.join(work, "flowline.log"), "wb")

    def start(self):
        self.started = time.time()
        self.proc = subprocess.Popen([flowline_bin(), "--project", self.proj, "stream", *self.names],
                                     stdout=subprocess.DEVNULL, stderr=self.log)

    def sql(self, query):
        out = subprocess.run([flowline_bin(), "--project", self.proj, "sql", "--format", "json", query],
                             capture_output=True, text=True)
        if out.returncode != 0:
            return None
        try:
            return json.loads(out.stdout)
        except ValueError:
            return None

    def wait(self, count, timeout):
        """Polls until every table holds `count` rows; returns each pipeline's
        seconds from the start to the commit that completed it."""
        deadline = time.monotonic() + timeout
        union = " union all ".join(
            f"select '{n}' as p, (select count(*) from raw.{n}) as n" for n in self.names)
        while time.monotonic() < deadline:
            rows = self.sql(union) or []
            if len(rows) == len(self.names) and all(int(r["n"]) >= count for r in rows):
                done = self.sql("select pipeline, epoch_ms(updated_at) as t from _flowline_state") or []
                return {r["pipeline"]: int(r["t"]) / 1000 - self.started for r in done}
            if self.proc.poll() is not None:
                raise SystemExit(f"flowline stream exited with {self.proc.returncode}")
            time.sleep(1.0)
        raise SystemExit(f"the pipelines did not load {count:,} rows each in {timeout:.0f} s")

    def stop(self):
        """SIGTERM; returns the CPU seconds the process used."""
        self.proc.send_signal(signal.SIGTERM)
        _, _, usage = os.wait4(self.proc.pid, 0)
        self.log.close()
        return usage.ru_utime + usage.ru_stime


def machine_busy():
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields) - idle, sum(fields)


def stream_run(broker, work, pipelines, count):
    queues = [broker.fresh(f"growth{pipelines}_{i}") for i in range(pipelines)]
    with ThreadPoolExecutor(max_workers=pipelines) as pool:
        list(pool.map(lambda q: broker.publish(q, count, log=os.path.join(work, "helper.log")), queues))
    streams = Streams(work, broker, queues)
    busy_before, total_before = machine_busy()
    streams.start()
    try:
        seconds = streams.wait(count, timeout=max(300.0, pipelines * count / 1000))
        busy_after, total_after = machine_busy()
    finally:
        streams.stop()
    for queue in queues:
        broker.delete(queue)
    # The share of the whole machine (flowline, the broker, everything)
    # busy while the pipelines ran.
    return seconds, (busy_after - busy_before) / max(1, total_after - total_before)


def run_streams(work, count):
    args = argparse.Namespace(amqp_url=streambench.AMQP_URL, nats_url=streambench.NATS_URL)
    broker = streambench.Broker("rabbitmq", args, tag=str(os.getpid()))
    alone_dir = os.path.join(work, "alone")
    eight_dir = os.path.join(work, "eight")
    os.makedirs(alone_dir)
    os.makedirs(eight_dir)
    alone_times, alone_busy = stream_run(broker, alone_dir, 1, count)
    alone = list(alone_times.values())[0]
    eight, _ = stream_run(broker, eight_dir, 8, count)
    alone_rate = count / alone
    cores = os.cpu_count() or 1
    print(f"\nRabbitMQ -> DuckDB, {count:,} messages per pipeline, {cores} cores\n")
    print(f"{'run':22} {'wall s':>8} {'rows/s':>10} {'vs alone':>9}")
    print(f"{'1 pipeline alone':22} {alone:8.2f} {alone_rate:10,.0f} {1.0:8.2f}x")
    worst = None
    for name in sorted(eight):
        rate = count / eight[name]
        worst = rate if worst is None else min(worst, rate)
        print(f"{'8 in one process: ' + name:22} {eight[name]:8.2f} {rate:10,.0f} "
              f"{rate / alone_rate:8.2f}x")
    total = 8 * count / max(eight.values())
    print(f"\nall 8 together: {total:,.0f} rows/s = {total / alone_rate:.2f}x one pipeline alone")
    # One pipeline alone kept this share of the machine busy (flowline and
    # the broker); 8 at that pace would need 8 times as much.
    allowed = min(1.0, 1.0 / (8 * alone_busy))
    print(f"one pipeline alone kept {alone_busy * cores:.2f} of {cores} cores busy (flowline and "
          f"the broker); 8 sharing them can each keep at most about {allowed:.2f}x of its pace")
    goal = GOAL_PER_PIPELINE * allowed
    print(f"each of 8 keeps {worst / alone_rate:.2f}x; goal {GOAL_PER_PIPELINE}x of what cores "
          f"allow = {goal:.2f}x: {'met' if worst / alone_rate >= goal else 'NOT met'}")
    broker.cleanup()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["sql", "streams"])
    parser.add_argument("--count", type=int, default=200_000, help="messages per stream pipeline")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="flowline-growth-")
    try:
        if args.only in (None, "streams"):
            run_streams(work, args.count)
        if args.only in (None, "sql"):
            run_sql(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
