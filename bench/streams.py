#!/usr/bin/env python3
"""Benchmark: `flowline stream` consuming RabbitMQ and NATS JetStream into
DuckDB, side by side with a bare consumer loop on the same broker.

    bench/streams.sh                        # builds flowline + the helper (release), runs
    bench/streams.sh --count 20000          # a quick run
    bench/streams.sh --only rabbitmq        # one broker (rabbitmq or nats)
    bench/streams.sh --dedupe               # also a throughput run with dedupe_key
    bench/streams.sh --runs latency --latency-max-wait 200ms   # a subset of the runs
    python3 bench/streams.py ...            # the same, without building

Brokers: RabbitMQ at 127.0.0.1:5672 (guest/guest), NATS with JetStream at
127.0.0.1:4222 (override with --amqp-url / --nats-url). Messages are small
JSON clicks, `{"event_id": i, "user_id": i % 1000, "page": "/p/<i % 50>",
"ts": "<RFC 3339>"}`, published by `examples/stream_bench.rs` (publisher
confirms / JetStream acks awaited in a window of 5,000).

For each broker:

  throughput  --count messages (default 1,000,000) are published to a fresh
              queue / stream first. Then `flowline stream clicks` runs on it
              ([batch] max_rows = 10000, max_wait = 200ms, append into
              raw.clicks) and is timed from its start to the commit that
              completes the count: `select count(*) from raw.clicks`, asked
              through `flowline sql --format json` every second, says when,
              and the state row's `updated_at` (written just before each
              COMMIT) says the time; then SIGTERM. Sustained rows/s.
              With --dedupe, once more with dedupe_key = ["event_id"].
  bare        the same number of messages, freshly published to another
              queue / stream, read by `stream_bench rabbitmq-consume` /
              `nats-consume`: the same client library (lapin, async-nats),
              the same prefetch (20,000), serde_json::Value per payload,
              acknowledgements every 1,000, nothing stored. Timed by itself,
              from its start (connecting included) to the last message.
  latency     flowline streams from an empty queue / stream (max_wait
              --latency-max-wait, default 100ms) while the helper publishes
              --latency-count messages (default 200,000) at --rate msg/s
              (default 10,000); once all are in the table, SIGTERM, and
              `--json` says the end-to-end (publish to commit) p50/p99: from
              the AMQP timestamp property (ms) on RabbitMQ, from JetStream's
              own publish time on NATS. 100ms rather than 200ms: at 200ms a
              batch waits up to 200 ms plus its commit, and the p99 came out
              at 283 ms (RabbitMQ) and 495 ms (NATS) on a 2-CPU machine,
              against 145 / 168 ms at 100ms.

Peak RSS of flowline is the kernel's VmHWM, sampled from /proc until it
exits. Goals: flowline >= 0.8x the bare loop's throughput; end-to-end p99
<= 500 ms at 10,000 msg/s. Queues and streams are deleted afterwards.
Standard library only: no virtualenv.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BROKERS = ["rabbitmq", "nats"]
RUNS = ["throughput", "bare", "dedupe", "latency"]
DEFAULT_RUNS = ["throughput", "bare", "latency"]
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2f"
NATS_URL = "nats://127.0.0.1:4222"
GOAL_VS_BARE = 0.8  # flowline at least 0.8x the bare loop's throughput
GOAL_P99_MS = 500  # end-to-end p99 at the steady rate, at most
POLL_EVERY = 1.0  # seconds between `flowline sql` row counts


def target_dir():
    return os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")


def flowline_bin():
    return os.environ.get("FLOWLINE_BIN") or os.path.join(target_dir(), "release", "flowline")


def helper_bin():
    return os.environ.get("STREAM_BENCH_BIN") or os.path.join(target_dir(), "release", "examples", "stream_bench")


# ---------------------------------------------------------------- brokers

class Broker:
    """What differs between RabbitMQ and NATS: names, helper calls, the source."""

    def __init__(self, kind, args, tag):
        self.kind = kind
        self.url = args.amqp_url if kind == "rabbitmq" else args.nats_url
        self.tag = tag
        self.created = []  # queues / streams to delete at the end

    def label(self):
        return {"rabbitmq": "RabbitMQ", "nats": "NATS JetStream"}[self.kind]

    def fresh(self, run):
        """A new queue (RabbitMQ) or stream (NATS) name for `run`."""
        name = f"flbench_{self.tag}_{run}" if self.kind == "rabbitmq" else f"FLBENCH_{self.tag}_{run}".upper()
        self.created.append(name)
        return name

    def subject(self, name):
        return f"{name.lower()}.clicks"

    def publish(self, name, count, rate=None, log=None):
        if self.kind == "rabbitmq":
            cmd = ["rabbitmq-publish", "--queue", name]
        else:
            cmd = ["nats-publish", "--stream", name, "--subject", self.subject(name)]
        cmd += ["--count", str(count)] + (["--rate", str(rate)] if rate else [])
        return helper(cmd + ["--url", self.url], log)

    def publish_async(self, name, count, rate, log):
        """Starts a paced publisher; returns the process (stdout: its JSON line)."""
        if self.kind == "rabbitmq":
            cmd = ["rabbitmq-publish", "--queue", name]
        else:
            cmd = ["nats-publish", "--stream", name, "--subject", self.subject(name)]
        cmd = [helper_bin()] + cmd + ["--count", str(count), "--rate", str(rate), "--url", self.url]
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=open(log, "ab"), text=True)

    def consume(self, name, count, log):
        if self.kind == "rabbitmq":
            cmd = ["rabbitmq-consume", "--queue", name]
        else:
            cmd = ["nats-consume", "--stream", name, "--consumer", "bare"]
        return helper(cmd + ["--count", str(count), "--url", self.url], log)

    def source_toml(self, name):
        if self.kind == "rabbitmq":
            return f'kind = "rabbitmq"\nurl = "{self.url}"\nqueue = "{name}"\n'
        return (f'kind = "nats"\nurl = "{self.url}"\nstream = "{name}"\nconsumer = "flowline"\n'
                f'subject = "{self.subject(name)}"\ncreate_stream = true\n')

    def delete(self, name):
        cmd = ["rabbitmq-delete", "--queue", name] if self.kind == "rabbitmq" else ["nats-delete", "--stream", name]
        subprocess.run([helper_bin()] + cmd + ["--url", self.url], capture_output=True, timeout=60)

    def cleanup(self):
        for name in self.created:
            try:
                self.delete(name)
            except Exception as e:  # best effort
                print(f"  (could not delete {name}: {e})", flush=True)
        self.created = []


def helper(cmd, log=None):
    """Runs the stream_bench helper; returns its JSON line as a dict, with
    `cpu`: the CPU seconds it used."""
    full = [helper_bin()] + cmd
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(full, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if log:
        with open(log, "a") as f:
            f.write(f"$ {' '.join(full)}\n{out.stderr}")
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:1])} failed: {out.stderr.strip()[-500:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    report["cpu"] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return report


def reachable(kind, url):
    import socket
    from urllib.parse import urlsplit
    u = urlsplit(url)
    try:
        socket.create_connection((u.hostname, u.port or (5672 if kind == "rabbitmq" else 4222)), timeout=2).close()
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- flowline

def proc_hwm(pid):
    """VmHWM (the kernel's peak RSS of the process) in bytes; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Stream:
    """A `flowline stream clicks` process on a throwaway project."""

    def __init__(self, work, broker, name, max_wait, dedupe=False):
        self.proj = os.path.join(work, "project")
        os.makedirs(os.path.join(self.proj, "pipelines"))
        with open(os.path.join(self.proj, "flowline.toml"), "w") as f:
            f.write('[project]\nname = "bench"\n\n'
                    '[warehouse]\nkind = "duckdb"\npath = ".flowline/warehouse.duckdb"\n')
        dedupe_line = 'dedupe_key = ["event_id"]\n' if dedupe else ""
        with open(os.path.join(self.proj, "pipelines", "clicks.toml"), "w") as f:
            f.write(f'mode = "stream"\n\n[source]\n{broker.source_toml(name)}\n'
                    f'[batch]\nmax_rows = 10000\nmax_wait = "{max_wait}"\n\n'
                    f'[destination]\ntable = "raw.clicks"\n{dedupe_line}')
        self.log = os.path.join(work, "flowline.log")
        self.hwm = 0
        self.cpu = None
        self.done = threading.Event()

    def start(self):
        env = dict(os.environ, FLOWLINE_LOG="info")
        self.stdout = open(self.log + ".json", "w+")
        self.stderr = open(self.log, "wb")
        self.started = time.perf_counter()
        self.started_wall = time.time()
        self.proc = subprocess.Popen([flowline_bin(), "--project", self.proj, "--json", "stream", "clicks"],
                                     stdout=self.stdout, stderr=self.stderr, env=env)
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()

    def _sample(self):
        while not self.done.is_set():
            self.hwm = max(self.hwm, proc_hwm(self.proc.pid))
            self.done.wait(0.05)

    def log_text(self):
        with open(self.log, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_consuming(self, timeout=60):
        """Waits for the runner's `streaming into` line (the source is connected)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if "streaming into" in self.log_text():
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"flowline stream exited with {self.proc.returncode}:\n{self.log_text()[-2000:]}")
            time.sleep(0.02)
        raise RuntimeError(f"flowline stream did not start consuming in {timeout} s")

    def rows(self):
        """count(*) of raw.clicks through the stream process; 0 before the table exists."""
        out = subprocess.run([flowline_bin(), "--project", self.proj, "sql", "--format", "json",
                              "select count(*) as n from raw.clicks"], capture_output=True, text=True)
        if out.returncode != 0:
            return 0
        try:
            return int(json.loads(out.stdout)[0]["n"])
        except (ValueError, LookupError, TypeError):
            return 0

    def last_commit(self):
        """Wall-clock time (s since the epoch) of the stream's last commit:
        the state row's `updated_at`, written just before each COMMIT."""
        out = subprocess.run([flowline_bin(), "--project", self.proj, "sql", "--format", "json",
                              "select epoch_ms(updated_at) as t from _flowline_state "
                              "where pipeline = 'clicks'"], capture_output=True, text=True, check=True)
        return int(json.loads(out.stdout)[0]["t"]) / 1000

    def wait_rows(self, n, timeout):
        """Polls until raw.clicks holds n rows; returns the seconds from start
        to the commit that completed them (so the polling interval does not
        count, and polling seldom keeps it from loading the machine)."""
        deadline = time.monotonic() + timeout
        last = 0
        while True:
            last = self.rows()
            if last >= n:
                return self.last_commit() - self.started_wall, last
            if self.proc.poll() is not None:
                raise RuntimeError(f"flowline stream exited with {self.proc.returncode} at {last:,} rows:\n"
                                   f"{self.log_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"raw.clicks reached only {last:,} of {n:,} rows in {timeout:.0f} s")
            time.sleep(POLL_EVERY)

    def stop(self):
        """SIGTERM; returns the `--json` report of the stream (a dict)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 60
        while self.proc.returncode is None:
            # wait4 rather than wait: its rusage is the CPU time flowline used.
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                self.cpu = usage.ru_utime + usage.ru_stime
            elif time.monotonic() > deadline:
                self.proc.kill()
            else:
                time.sleep(0.02)
        self.done.set()
        self.sampler.join()
        self.stdout.seek(0)
        text = self.stdout.read()
        self.stdout.close()
        self.stderr.close()
        if self.proc.returncode != 0:
            raise RuntimeError(f"flowline stream exited with {self.proc.returncode}:\n{self.log_text()[-2000:]}")
        start = text.find("{")
        report = json.loads(text[start:]) if start >= 0 else {}
        streams = report.get("streams") or [{}]
        return streams[0]


# ---------------------------------------------------------------- the runs

def result(broker, key, label, **kw):
    r = {"broker": broker.kind, "key": key, "label": label, "ok": False, "error": None,
         "messages": None, "seconds": None, "rate": None, "rss": None, "cpu": None, "latency": None,
         "publish_rate": None}
    r.update(kw)
    return r


def run_throughput(broker, args, base, key, dedupe=False):
    label = "flowline stream, append" + (" + dedupe_key" if dedupe else "")
    r = result(broker, key, label)
    work = os.path.join(base, f"{broker.kind}-{key}")
    os.makedirs(work)
    name = broker.fresh(key)
    published = broker.publish(name, args.count, log=os.path.join(work, "helper.log"))
    print(f"{broker.kind} {key}: published {args.count:,} to {name} at {published['msgs_per_s']:,.0f} msg/s; "
          f"starting flowline", flush=True)
    stream = Stream(work, broker, name, args.max_wait, dedupe)
    stream.start()
    try:
        # No row count before the process serves the project: a `flowline sql`
        # that finds no socket opens the warehouse itself, and then waits out
        # the lock (15 s) if the stream process took it meanwhile.
        stream.wait_consuming()
        seconds, rows = stream.wait_rows(args.count, timeout=max(120.0, args.count / 2000))
    finally:
        report = stream.stop()
    r.update(ok=rows == args.count, messages=rows, seconds=seconds, rate=rows / seconds,
             rss=stream.hwm / 2**20, cpu=stream.cpu, latency=report.get("latency"),
             publish_rate=published["msgs_per_s"])
    if rows != args.count:
        r["error"] = f"{rows:,} rows, expected {args.count:,}"
    print(f"{broker.kind} {key}: {rows:,} rows in {seconds:.2f} s = {r['rate']:,.0f} rows/s, "
          f"peak RSS {r['rss']:.0f} MB", flush=True)
    broker.delete(name)
    return r


def run_bare(broker, args, base):
    label = {"rabbitmq": "bare loop: lapin + serde_json",
             "nats": "bare loop: async-nats + serde_json"}[broker.kind]
    r = result(broker, "bare", label)
    work = os.path.join(base, f"{broker.kind}-bare")
    os.makedirs(work)
    log = os.path.join(work, "helper.log")
    name = broker.fresh("bare")
    published = broker.publish(name, args.count, log=log)
    print(f"{broker.kind} bare: published {args.count:,} to {name}; consuming", flush=True)
    out = broker.consume(name, args.count, log)
    r.update(ok=True, messages=out["messages"], seconds=out["seconds"], rate=out["msgs_per_s"], cpu=out["cpu"],
             publish_rate=published["msgs_per_s"])
    print(f"{broker.kind} bare: {out['messages']:,} in {out['seconds']:.2f} s = {out['msgs_per_s']:,.0f} msg/s",
          flush=True)
    broker.delete(name)
    return r


def run_latency(broker, args, base):
    count = args.latency_count
    r = result(broker, "latency", f"flowline at {args.rate:,} msg/s, max_wait {args.latency_max_wait}")
    work = os.path.join(base, f"{broker.kind}-latency")
    os.makedirs(work)
    name = broker.fresh("latency")
    if broker.kind == "nats":
        # The stream exists before flowline starts (it would create it too).
        broker.publish(name, 1, log=os.path.join(work, "helper.log"))
        count_in_table = count + 1
    else:
        count_in_table = count
    stream = Stream(work, broker, name, args.latency_max_wait)
    stream.start()
    try:
        stream.wait_consuming()
        time.sleep(0.5)  # let the first batch (NATS: the 1 setup message) pass
        print(f"{broker.kind} latency: flowline is consuming {name}; publishing {count:,} at {args.rate:,} msg/s",
              flush=True)
        publisher = broker.publish_async(name, count, args.rate, os.path.join(work, "helper.log"))
        out, _ = publisher.communicate(timeout=count / args.rate * 3 + 60)
        if publisher.returncode != 0:
            raise RuntimeError(f"the publisher failed: see {work}/helper.log")
        published = json.loads(out.strip().splitlines()[-1])
        stream.wait_rows(count_in_table, timeout=60)
    finally:
        report = stream.stop()
    lat = report.get("latency") or {}
    r.update(ok=True, messages=count, seconds=published["seconds"], rate=published["msgs_per_s"],
             rss=stream.hwm / 2**20, cpu=stream.cpu, latency=lat, publish_rate=published["msgs_per_s"])
    print(f"{broker.kind} latency: published at {published['msgs_per_s']:,.0f} msg/s; end-to-end p50 "
          f"{lat.get('end_to_end_p50_ms')} ms, p99 {lat.get('end_to_end_p99_ms')} ms; batch p50 "
          f"{lat.get('batch_p50_ms')} ms, p99 {lat.get('batch_p99_ms')} ms; peak RSS {r['rss']:.0f} MB", flush=True)
    broker.delete(name)
    return r


def guarded(fn, broker, key, label, *a):
    try:
        return fn(broker, *a)
    except Exception as e:
        print(f"{broker.kind} {key}: FAILED: {e}", flush=True)
        return result(broker, key, label, error=str(e).strip().splitlines()[0][:200] if str(e).strip() else repr(e))


def run_broker(kind, args, base):
    broker = Broker(kind, args, f"{os.getpid()}")
    if not reachable(kind, broker.url):
        print(f"{kind}: not reachable at {broker.url}; skipped", flush=True)
        return [result(broker, "throughput", "flowline stream, append", error=f"{broker.url} not reachable",
                       skipped=True)]
    results = []
    try:
        if "throughput" in args.runs:
            results.append(guarded(run_throughput, broker, "throughput", "flowline stream, append", args, base,
                                   "throughput"))
        if "bare" in args.runs:
            results.append(guarded(run_bare, broker, "bare", "bare loop", args, base))
        if "dedupe" in args.runs:
            results.append(guarded(run_throughput, broker, "dedupe", "flowline stream, append + dedupe_key",
                                   args, base, "dedupe", True))
        if "latency" in args.runs:
            results.append(guarded(run_latency, broker, "latency", "flowline latency", args, base))
    finally:
        broker.cleanup()
    return results


# ---------------------------------------------------------------- report

def fmt(value, spec, empty="-"):
    return empty if value is None else format(value, spec)


def report(results, args):
    print(f"\nStreams -> DuckDB (raw.clicks): {args.count:,} small JSON messages per throughput run; "
          f"latency at {args.rate:,} msg/s over {args.latency_count:,}; {os.cpu_count()} CPUs, "
          f"broker, publisher and consumer on one machine\n")
    print(f"{'broker':9} {'run':44} {'messages':>10} {'wall s':>7} {'rows|msg/s':>11} {'CPU s':>6} {'RSS MB':>7}  "
          f"{'batch p50/p99':>13}  {'e2e p50/p99 ms':>14}")
    failed = False
    for r in results:
        if not r["ok"]:
            failed |= not r.get("skipped")
            print(f"{r['broker']:9} {r['label']:44} {'not run' if r.get('skipped') else 'FAILED':>10}  ({r['error']})")
            continue
        lat = r["latency"] or {}
        batch = f"{lat['batch_p50_ms']}/{lat['batch_p99_ms']}" if lat else "-"
        # A throughput run's end-to-end latency is the age of a pre-published backlog: not shown.
        e2e = f"{lat['end_to_end_p50_ms']}/{lat['end_to_end_p99_ms']}" if lat and r["key"] == "latency" else "-"
        wall = "-" if r["key"] == "latency" else fmt(r["seconds"], "7.2f")
        rate = f"{r['rate']:,.0f}" + ("*" if r["key"] == "latency" else "")
        print(f"{r['broker']:9} {r['label']:44} {r['messages']:>10,} {wall:>7} {rate:>11} "
              f"{fmt(r['cpu'], '6.1f'):>6} {fmt(r['rss'], '7.0f'):>7}  {batch:>13}  {e2e:>14}")
    if any(r["key"] == "latency" and r["ok"] for r in results):
        print("  * latency runs: the publisher's achieved rate; e2e = publish (AMQP timestamp / JetStream "
              "publish time) to commit")
    print("  rows|msg/s: flowline from its start to the commit that completes the row count;\n    the bare loop from its start to its last message. CPU s: that process's user + system "
          "time (not the broker's)")

    print(f"\ngoals: flowline >= {GOAL_VS_BARE:g}x the bare loop's throughput; "
          f"end-to-end p99 <= {GOAL_P99_MS} ms at {args.rate:,} msg/s")
    for kind in BROKERS:
        by_key = {r["key"]: r for r in results if r["broker"] == kind and r["ok"]}
        fl, bare, lat = by_key.get("throughput"), by_key.get("bare"), by_key.get("latency")
        if fl and bare:
            ratio = fl["rate"] / bare["rate"]
            print(f"  {'met    ' if ratio >= GOAL_VS_BARE else 'NOT MET'}  {kind}: flowline "
                  f"{fl['rate']:,.0f} rows/s is {ratio:.2f}x the bare loop's {bare['rate']:,.0f} msg/s "
                  f"(goal {GOAL_VS_BARE:g})")
        if lat and lat["latency"]:
            p99 = lat["latency"]["end_to_end_p99_ms"]
            print(f"  {'met    ' if 0 < p99 <= GOAL_P99_MS else 'NOT MET'}  {kind}: end-to-end p99 {p99} ms "
                  f"(p50 {lat['latency']['end_to_end_p50_ms']} ms) at {lat['rate']:,.0f} msg/s, "
                  f"max_wait {args.latency_max_wait} (goal <= {GOAL_P99_MS} ms)")
    return failed


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=BROKERS, help="one broker (default: both)")
    p.add_argument("--count", type=int, default=1_000_000, help="messages per throughput run (default 1,000,000)")
    p.add_argument("--rate", type=int, default=10_000, help="msg/s of the latency run (default 10,000)")
    p.add_argument("--latency-count", type=int,
                   help="messages of the latency run (default 200,000, at most --count)")
    p.add_argument("--max-wait", default="200ms", help="[batch] max_wait of the throughput runs (default 200ms)")
    p.add_argument("--latency-max-wait", default="100ms", help="[batch] max_wait of the latency run (default 100ms)")
    p.add_argument("--runs", default=",".join(DEFAULT_RUNS),
                   help=f"comma-separated runs: {', '.join(RUNS)} (default {','.join(DEFAULT_RUNS)})")
    p.add_argument("--dedupe", action="store_true", help="add the dedupe run (dedupe_key = [\"event_id\"])")
    p.add_argument("--amqp-url", default=AMQP_URL, help=f"RabbitMQ (default {AMQP_URL.replace('%', '%%')})")
    p.add_argument("--nats-url", default=NATS_URL, help=f"NATS (default {NATS_URL})")
    p.add_argument("--keep", action="store_true", help="keep the work folder (projects, logs, warehouses)")
    args = p.parse_args()
    if args.count < 1 or args.rate < 1:
        p.error("--count and --rate must be at least 1")
    args.runs = [r.strip() for r in args.runs.split(",") if r.strip()] + (["dedupe"] if args.dedupe else [])
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        p.error(f"unknown run {', '.join(unknown)}; choose from {', '.join(RUNS)}")
    if args.latency_count is None:
        args.latency_count = min(200_000, args.count)
    return args


def main():
    args = parse_args()
    for exe, what in ((flowline_bin(), "flowline"), (helper_bin(), "the stream_bench helper")):
        if not os.path.exists(exe):
            raise SystemExit(f"no {what} at {exe}: run bench/streams.sh, which builds it, "
                             f"or set CARGO_TARGET_DIR (or FLOWLINE_BIN / STREAM_BENCH_BIN)")
    base = tempfile.mkdtemp(prefix="flbench-streams-")
    print(f"work folder {base}", flush=True)
    results = []
    for kind in BROKERS:
        if args.only in (None, kind):
            results += run_broker(kind, args, base)
    failed = report(results, args)
    if args.keep or failed:
        print(f"\nkept {base} (projects, logs, warehouses)")
    else:
        shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
