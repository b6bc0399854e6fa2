#!/usr/bin/env python3
"""Benchmark: orchestration latency, flowline against Prefect, Dagster and
Airflow, on the two shapes of the Windmill benchmark. Every step is its own
OS process running the same command, `sleep 0.01`:

- chain: 40 steps, each after the one before; seconds from trigger to the
  end of the run;
- fanout: 1,000 independent steps; seconds from trigger to the end of the run.

    bench/orchestration.sh            # builds flowline (release), sets up, runs

flowline runs each shape on its embedded default (`flowline jobs run JOB`,
SQLite state, exit code = outcome) and with a scheduler and 2 workers on
Postgres (`flowline serve`, `flowline worker --concurrency N`,
`flowline jobs trigger JOB --json`, then `flowline jobs runs JOB --json`
until the run is done). It also measures the resident memory of an idle
`flowline serve` and the CPU its scheduler spends on 1,000 jobs that fire
every minute.

The peers come from PyPI into virtualenvs the script creates under
~/.cache/flowline (Prefect and Dagster share one; Airflow, whose pins clash
with Prefect's, has its own, and is left out when it does not install). Each
runs in its fastest local mode, so the peers' figures are their floor, below
their published server figures: Prefect flows with tasks on its default
thread pool, Dagster's in-process executor, Airflow's `dag.test()`. Each
peer is warmed up with a 2-step run in the same process before the timing.

Prints a table of seconds per tool and shape with the ratio to flowline,
and the issue's goals.

Environment: FLOWLINE_BIN, BENCH_PG (Postgres server URL), BENCH_REPEAT
(runs per measure, best kept; default 3), BENCH_WORKER_CONCURRENCY
(default 16), BENCH_PEER_TIMEOUT (seconds per peer and shape; default 900),
BENCH_PEERS (comma list; default prefect,dagster,airflow),
BENCH_SCHEDULER_SECONDS (default 150; 0 skips that measure).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("FLOWLINE_CACHE", os.path.expanduser("~/.cache/flowline"))
VENV = os.path.join(CACHE, "orchestration-venv")
AIRFLOW_VENV = os.path.join(CACHE, "orchestration-venv-airflow")
FLOWLINE = os.environ.get("FLOWLINE_BIN", os.path.join(ROOT, "target", "release", "flowline"))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
PG_DB = "flowline_bench"
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
CONCURRENCY = int(os.environ.get("BENCH_WORKER_CONCURRENCY", "16"))
PEER_TIMEOUT = int(os.environ.get("BENCH_PEER_TIMEOUT", "900"))
PEERS = os.environ.get("BENCH_PEERS", "prefect,dagster,airflow").split(",")
SCHEDULER_SECONDS = int(os.environ.get("BENCH_SCHEDULER_SECONDS", "150"))

STEP = ["sleep", "0.01"]
SHAPES = {"chain": 40, "fanout": 1000}
GOALS = {"chain": 0.5, "fanout": 2.0}
GOAL_PEER_RATIO = 5.0
GOAL_IDLE_RSS_MB = 50
GOAL_SCHEDULER_CPU = 5.0
PUBLISHED_CHAIN = "Hatchet 1.22 s, Windmill 2.09 s, Prefect 4.87 s, Airflow 116 s (2 vCPUs)"


def sh(cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kw)


# --- the peers -------------------------------------------------------------

def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def install(venv, packages, probe, timeout):
    """Creates `venv` and installs `packages` unless `probe` imports already.
    Returns False (and says why) when the install fails or takes too long."""
    py = venv_python(venv)
    if not os.path.exists(py):
        sh([sys.executable, "-m", "venv", venv])
    if subprocess.run([py, "-c", probe], capture_output=True).returncode == 0:
        return True
    try:
        sh([py, "-m", "pip", "install", "-q", *packages], timeout=timeout)
    except subprocess.TimeoutExpired:
        print(f"{' '.join(packages)}: pip install took over {timeout} s; left out", flush=True)
        return False
    except subprocess.CalledProcessError as e:
        print(f"{' '.join(packages)}: pip install failed ({e.returncode}); left out", flush=True)
        return False
    return True


def setup_peers():
    """The peers that installed, each with the python that runs it."""
    ready = {}
    if {"prefect", "dagster"} & set(PEERS) and install(VENV, ["prefect", "dagster"], "import prefect, dagster", 1800):
        ready.update({p: venv_python(VENV) for p in ("prefect", "dagster") if p in PEERS})
    if "airflow" in PEERS and install(AIRFLOW_VENV, ["apache-airflow"], "import airflow", 1200):
        ready["airflow"] = venv_python(AIRFLOW_VENV)
    return ready


# One script per peer, run as `python -c SCRIPT SHAPE STEPS REPEAT`. Each
# defines a `build(shape, n)` and a `trigger(run)` that returns True on
# success, warms up on 2 steps, and prints the best of REPEAT timings.
PEER_MAIN = """
import json, sys, time
shape, steps, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
trigger(build("chain", 2))
run = build(shape, steps)
best = None
for _ in range(repeat):
    started = time.perf_counter()
    ok = trigger(run)
    seconds = time.perf_counter() - started
    if not ok:
        sys.exit(f"{shape}: the run failed")
    best = seconds if best is None else min(best, seconds)
print(json.dumps({"seconds": best}))
"""

PREFECT = """
import subprocess
from prefect import flow, task

@task
def step(i):
    subprocess.run(["sleep", "0.01"], check=True)
    return i

def build(shape, n):
    if shape == "chain":
        @flow(name=f"chain{n}")
        def run():
            for i in range(n):
                step(i)
    else:
        @flow(name=f"fanout{n}")
        def run():
            futures = step.map(range(n))
            futures.result()
    return run

def trigger(run):
    state = run(return_state=True)
    return state.is_completed()
"""

DAGSTER = """
import subprocess
from dagster import In, Nothing, job, op

def make_op(name):
    @op(name=name, ins={"after": In(Nothing)})
    def _op():
        subprocess.run(["sleep", "0.01"], check=True)
    return _op

def build(shape, n):
    ops = [make_op(f"s{i}") for i in range(n)]
    @job(name=f"{shape}{n}")
    def run():
        previous = None
        for o in ops:
            done = o(after=previous) if previous is not None else o()
            if shape == "chain":
                previous = done
    return run

def trigger(run):
    return run.execute_in_process().success
"""

AIRFLOW = """
import importlib.util, os

DAG_FILE = '''
import datetime
try:
    from airflow.sdk import DAG, chain
except ImportError:
    from airflow import DAG
    from airflow.models.baseoperator import chain
try:
    from airflow.providers.standard.operators.bash import BashOperator
except ImportError:
    from airflow.operators.bash import BashOperator

with DAG("{name}", schedule=None, start_date=datetime.datetime(2026, 1, 1), catchup=False) as dag:
    tasks = [BashOperator(task_id=f"s{{i}}", bash_command="sleep 0.01") for i in range({n})]
    if "{shape}" == "chain":
        chain(*tasks)
'''

def build(shape, n):
    # dag.test() runs only DAGs of the DAGs folder (Airflow 3 serializes them first).
    name = f"{shape}{n}"
    path = os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], name + ".py")
    with open(path, "w") as f:
        f.write(DAG_FILE.format(name=name, n=n, shape=shape))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag

def trigger(dag):
    run = dag.test()
    return str(getattr(run, "state", "success")).lower().endswith("success")
"""

PEER_CODE = {"prefect": PREFECT, "dagster": DAGSTER, "airflow": AIRFLOW}


def peer_env(tool, home):
    env = dict(os.environ, DO_NOT_TRACK="1")
    if tool == "prefect":
        env.update(PREFECT_HOME=os.path.join(home, "prefect"), PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180")
    if tool == "dagster":
        os.makedirs(os.path.join(home, "dagster"), exist_ok=True)
        env.update(DAGSTER_HOME=os.path.join(home, "dagster"))
    if tool == "airflow":
        env.update(AIRFLOW_HOME=os.path.join(home, "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                   AIRFLOW__CORE__DAGS_FOLDER=os.path.join(home, "airflow", "dags"))
    return env


def run_peer(tool, python, shape, home):
    """Seconds for `shape` with `tool`, or None (with the reason printed)."""
    os.makedirs(os.path.join(home, "airflow", "dags"), exist_ok=True)
    env = peer_env(tool, home)
    if tool == "airflow":
        migrate = [os.path.join(os.path.dirname(python), "airflow"), "db", "migrate"]
        if subprocess.run(migrate, env=env, capture_output=True).returncode != 0:
            print("airflow: `airflow db migrate` failed; left out", flush=True)
            return None
    script = textwrap.dedent(PEER_CODE[tool]) + PEER_MAIN
    repeat = REPEAT if shape == "chain" else 1
    print(f"+ {tool} {shape} ({SHAPES[shape]} steps)", flush=True)
    try:
        proc = subprocess.run([python, "-c", script, shape, str(SHAPES[shape]), str(repeat)], env=env, cwd=home,
                              capture_output=True, text=True, timeout=PEER_TIMEOUT)
    except subprocess.TimeoutExpired:
        print(f"{tool} {shape}: over {PEER_TIMEOUT} s; stopped", flush=True)
        return float("inf")
    if proc.returncode != 0:
        print(f"{tool} {shape} failed:\n{(proc.stderr or proc.stdout)[-2000:]}", flush=True)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])["seconds"]


# --- flowline --------------------------------------------------------------

def has_jobs_verb():
    if not os.path.exists(FLOWLINE):
        print(f"flowline: no binary at {FLOWLINE}; its rows are skipped (bench/orchestration.sh builds it)")
        return False
    probe = subprocess.run([FLOWLINE, "jobs", "--help"], capture_output=True)
    if probe.returncode != 0:
        print(f"flowline: {FLOWLINE} has no `jobs` verb yet; its rows are skipped")
        return False
    return True


def write_project(path, state_url=None, jobs=None):
    """A project with the two benchmark jobs (and `jobs`, name -> text)."""
    os.makedirs(os.path.join(path, "jobs"), exist_ok=True)
    with open(os.path.join(path, "flowline.toml"), "w") as f:
        f.write('[project]\nname = "bench"\n')
        if state_url:
            f.write(f'\n[state]\nurl = "{state_url}"\n')
    command = json.dumps(STEP)
    chain = [f'[[step]]\nname = "s{i}"\ncommand = {command}\n' + (f'after = ["s{i - 1}"]\n' if i else "")
             for i in range(SHAPES["chain"])]
    fanout = [f'[[step]]\nname = "f{i}"\ncommand = {command}\n' for i in range(SHAPES["fanout"])]
    for name, text in {"chain": "\n".join(chain), "fanout": "\n".join(fanout), **(jobs or {})}.items():
        with open(os.path.join(path, "jobs", f"{name}.toml"), "w") as f:
            f.write(text)
    return path


def flowline(project, *args):
    return [FLOWLINE, "--project", project, *args]


def best_of(repeat, measure):
    return min(measure() for _ in range(repeat))


def time_embedded(project, job):
    """`flowline jobs run JOB`: process start to exit, which is the run's end."""
    def once():
        started = time.perf_counter()
        proc = subprocess.run(flowline(project, "jobs", "run", job), capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise SystemExit(f"flowline jobs run {job} failed:\n{proc.stderr[-3000:]}")
        return seconds
    return best_of(REPEAT, once)


def run_json(project, *args):
    proc = subprocess.run(flowline(project, *args, "--json"), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip() or proc.stdout.strip())
    return json.loads(proc.stdout)


def field(record, *names):
    return next((record[n] for n in names if n in record), None)


def wait_for_run(project, job, run_id, timeout=300):
    """The finished run `run_id` of `job`, polling `flowline jobs runs`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = run_json(project, "jobs", "runs", job)
        runs = runs.get("runs", runs) if isinstance(runs, dict) else runs
        run = next((r for r in runs if str(field(r, "id", "run_id")) == str(run_id)), None)
        if run and str(field(run, "state", "status")).lower() in ("success", "succeeded", "failed", "error"):
            return run
        time.sleep(0.01)
    raise SystemExit(f"flowline: run {run_id} of {job} did not finish in {timeout} s")


def time_triggered(project, job):
    """`flowline jobs trigger JOB` to the run's end: the run's own end time
    when `jobs runs --json` gives one, else when polling saw it done."""
    def once():
        started_wall, started = time.time(), time.perf_counter()
        answer = run_json(project, "jobs", "trigger", job)
        run = wait_for_run(project, job, field(answer, "run_id", "id"))
        seen = time.perf_counter() - started
        if str(field(run, "state", "status")).lower() not in ("success", "succeeded"):
            raise SystemExit(f"flowline: run of {job} ended {field(run, 'state', 'status')}")
        ended = field(run, "ended_at", "finished_at", "end")
        if ended:
            from datetime import datetime
            return datetime.fromisoformat(str(ended).replace("Z", "+00:00")).timestamp() - started_wall
        return seen
    return best_of(REPEAT, once)


def start(cmd, log):
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(procs):
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_until_serving(project, server, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"flowline serve exited with {server.returncode}")
        if subprocess.run(flowline(project, "jobs", "list", "--json"), capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    raise SystemExit(f"flowline serve did not answer `jobs list` in {timeout} s")


def ensure_database():
    exists = subprocess.run(["psql", f"{PG}/postgres", "-qAtc", f"SELECT 1 FROM pg_database WHERE datname = '{PG_DB}'"],
                            capture_output=True, text=True, check=True).stdout.strip()
    if exists != "1":
        sh(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {PG_DB}"])


def flowline_on_postgres(work):
    """Both shapes triggered on `serve` with 2 workers sharing Postgres."""
    ensure_database()
    project = write_project(os.path.join(work, "flowline-postgres"), state_url=f"{PG}/{PG_DB}")
    log = open(os.path.join(work, "flowline-postgres.log"), "w")
    procs = [start(flowline(project, "serve"), log)]
    try:
        wait_until_serving(project, procs[0])
        for _ in range(2):
            procs.append(start(flowline(project, "worker", "--concurrency", str(CONCURRENCY)), log))
        return {shape: time_triggered(project, shape) for shape in SHAPES}
    finally:
        stop(procs)


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        fields = dict(line.split(":", 1) for line in f)
    return int(fields["VmRSS"].split()[0]) / 1024


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def idle_serve_rss(work, settle=10):
    """Resident memory of `flowline serve` on the embedded default, idle."""
    project = write_project(os.path.join(work, "flowline-idle"))
    log = open(os.path.join(work, "flowline-idle.log"), "w")
    server = start(flowline(project, "serve"), log)
    try:
        wait_until_serving(project, server)
        time.sleep(settle)
        return rss_mb(server.pid)
    finally:
        stop([server])


def scheduler_cpu(work, seconds):
    """Percent of one core `flowline serve` spends (its own CPU, not its
    steps') with 1,000 jobs that fire every minute, over `seconds`."""
    step = '[[step]]\nname = "tick"\ncommand = ["true"]\n'
    jobs = {f"tick{i:04}": f'schedule = "* * * * *"\ncatchup = false\n\n{step}' for i in range(1000)}
    project = write_project(os.path.join(work, "flowline-scheduler"), jobs=jobs)
    log = open(os.path.join(work, "flowline-scheduler.log"), "w")
    server = start(flowline(project, "serve"), log)
    try:
        wait_until_serving(project, server)
        before, started = cpu_seconds(server.pid), time.monotonic()
        time.sleep(seconds)
        return 100 * (cpu_seconds(server.pid) - before) / (time.monotonic() - started)
    finally:
        stop([server])


def flowline_results(work):
    """Rows (tool, shape, seconds) and the serve figures, or nothing when
    the binary lacks `jobs`."""
    if not has_jobs_verb():
        return [], {}
    embedded = write_project(os.path.join(work, "flowline-embedded"))
    rows = [("flowline (embedded)", shape, time_embedded(embedded, shape)) for shape in SHAPES]
    try:
        rows += [("flowline (2 workers, Postgres)", shape, s) for shape, s in flowline_on_postgres(work).items()]
    except (SystemExit, RuntimeError, subprocess.CalledProcessError) as e:
        print(f"flowline on Postgres: {e}", flush=True)
    extra = {"idle serve RSS (MB)": idle_serve_rss(work)}
    if SCHEDULER_SECONDS:
        extra["scheduler CPU, 1,000 jobs every minute (% of a core)"] = scheduler_cpu(work, SCHEDULER_SECONDS)
    return rows, extra


# --- the report ------------------------------------------------------------

def show(seconds):
    return "over the time limit" if seconds == float("inf") else f"{seconds:.2f}"


def print_table(rows):
    reference = {shape: s for tool, shape, s in rows if tool == "flowline (embedded)"}
    print(f"\n{'tool':<32} {'shape':<8} {'seconds':>20} {'vs flowline':>12}")
    for tool, shape, seconds in rows:
        ratio = f"{seconds / reference[shape]:.1f}x" if shape in reference else "n/a"
        print(f"{tool:<32} {shape:<8} {show(seconds):>20} {ratio:>12}")


def fastest_peer(rows, shape):
    """(seconds, tool) of the fastest peer on `shape`, or None."""
    times = [(s, tool) for tool, row_shape, s in rows if row_shape == shape and not tool.startswith("flowline")]
    return min(times) if times else None


def print_goals(rows, extra):
    print("\ngoals (issue 13):")
    for shape, goal in GOALS.items():
        fastest = fastest_peer(rows, shape)
        for tool, row_shape, seconds in rows:
            if tool.startswith("flowline") and row_shape == shape:
                met = "met" if seconds <= goal else "NOT met"
                line = f"  {tool} {shape}: {seconds:.3f} s, goal <= {goal} s: {met}"
                if fastest:
                    ratio = fastest[0] / seconds
                    line += (f"; fastest peer {fastest[1]} {show(fastest[0])} s = {ratio:.1f}x, goal >= "
                             f"{GOAL_PEER_RATIO}x: {'met' if ratio >= GOAL_PEER_RATIO else 'NOT met'}")
                print(line)
        if fastest and not any(t.startswith("flowline") and sh_ == shape for t, sh_, _ in rows):
            print(f"  {shape}: fastest peer {fastest[1]} {show(fastest[0])} s; flowline goal <= "
                  f"{goal} s and <= {show(fastest[0] / GOAL_PEER_RATIO)} s (5x faster)")
    for name, value in extra.items():
        goal = GOAL_IDLE_RSS_MB if "RSS" in name else GOAL_SCHEDULER_CPU
        print(f"  {name}: {value:.1f}, goal <= {goal}: {'met' if value <= goal else 'NOT met'}")
    print(f"  published chain figures: {PUBLISHED_CHAIN}")


def main():
    work = tempfile.mkdtemp(prefix="flowline-bench-orchestration-")
    try:
        peers = setup_peers()
        rows, extra = flowline_results(work)
        for tool, python in peers.items():
            for shape in SHAPES:
                seconds = run_peer(tool, python, shape, os.path.join(work, tool))
                if seconds is not None:
                    rows.append((tool, shape, seconds))
        print_table(rows)
        print_goals(rows, extra)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
