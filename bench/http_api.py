#!/usr/bin/env python3
"""Benchmark: a paginated REST API (1,000,000 JSON records, 1,000 per page)
loaded into DuckDB by flowline and by its peers, side by side.

    bench/http_api.sh                       # builds flowline (release), sets up, runs
    bench/http_api.sh --records 20000       # a quick run
    bench/http_api.sh --only flowline,dlt-parquet,bare   # a subset (tools below)
    python3 bench/http_api.py ...           # the same, without building flowline

A local server (Python's ThreadingHTTPServer, HTTP/1.1 keep-alive, every
response prepared in memory at start) serves GET /items?page=N (N from 1):
{"items": [...], "page": N, "total_pages": T}; pages past the last have no
items. Every tool reads the same server, one after another:

  flowline   `flowline run items`: an http source with page pagination into
             the project's DuckDB warehouse, table raw.items (write = replace)
  dlt        dlt 1.x rest_api_source, page_number paginator, into a DuckDB file,
             otherwise its defaults: the records go through insert_values files
             (one huge INSERT per 16 MB of SQL: at 1M records about 4 minutes
             and 7.5 GB of RSS), and `tags` becomes the child table
             raw.items__tags
  dlt-parquet  the same with loader_file_format="parquet" (pyarrow), dlt's
             fast path to DuckDB
  bare       requests.Session GET of every page + orjson.loads, nothing stored:
             the floor for "download and parse"
  bare-json  the same with the standard library's json.loads

Peers come from PyPI into the virtualenv shared with bench/sql_to_duckdb.py,
which the script creates, and into which it re-executes itself. Each tool runs
in its own process; we measure its wall time and its peak RSS (the largest of
the process tree's summed RSS, sampled every 10 ms, and of each process's
VmHWM), and check the row count it loaded.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CACHE = os.environ.get("FLOWLINE_CACHE", os.path.expanduser("~/.cache/flowline"))
VENV = os.path.join(CACHE, "bench-venv")
PY = os.path.join(VENV, "bin", "python")
# Shared with bench/sql_to_duckdb.py (which adds dlt's sql-database extra and more).
PACKAGES = ["dlt[duckdb]>=1,<2", "pyarrow", "requests", "duckdb", "psutil", "orjson"]
TOOLS = ["flowline", "dlt", "dlt-parquet", "bare", "bare-json"]
GOAL_VS_DLT = 5.0  # flowline at least 5x faster than dlt
GOAL_VS_BARE = 0.8  # flowline at least 0.8x the bare loop's throughput


def flowline_bin():
    if os.environ.get("FLOWLINE_BIN"):
        return os.environ["FLOWLINE_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
    return os.path.join(target, "release", "flowline")


def sh(cmd, **kw):
    print("+", cmd if isinstance(cmd, str) else " ".join(cmd), flush=True)
    return subprocess.run(cmd, shell=isinstance(cmd, str), check=True, **kw)


# ---------------------------------------------------------------- the server

TAGS = ['["a","b"]', '["b"]', '["a","c","d"]', '[]']


def record(i):
    day, rest = divmod(i, 86400)
    hour, rest = divmod(rest, 3600)
    return (f'{{"id":{i},"name":"item-{i}","price":{(i * 7919) % 100000 / 100},'
            f'"active":{"true" if i % 3 else "false"},'
            f'"updated_at":"2026-01-{1 + day % 28:02d}T{hour:02d}:{rest // 60:02d}:{rest % 60:02d}Z",'
            f'"tags":{TAGS[i % len(TAGS)]}}}')


def page_body(page, total_pages, records, page_size):
    first = (page - 1) * page_size + 1
    last = min(page * page_size, records)
    items = ",".join(record(i) for i in range(first, last + 1))
    return f'{{"items":[{items}],"page":{page},"total_pages":{total_pages}}}'.encode()


def http_response(status, body, close=False):
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}[status]
    head = f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    if close:
        head += "Connection: close\r\n"
    return (head + "\r\n").encode("ascii") + body


def serve(args):
    """Serves the pages until killed; prints `ready PORT` once listening."""
    total_pages = -(-args.records // args.page_size)
    # Each page's whole response (status line, headers, body) is built once,
    # so a request costs the server one parse and one write.
    responses = [http_response(200, page_body(p, total_pages, args.records, args.page_size))
                 for p in range(1, total_pages + 1)]
    json.loads(responses[0].split(b"\r\n\r\n", 1)[1])  # the generator makes valid JSON
    stats = {"requests": 0, "bytes": 0}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *_):
            pass

        def reply(self, status, body=None, response=None):
            if response is None or self.close_connection:
                response = http_response(status, body if body is not None else response.split(b"\r\n\r\n", 1)[1],
                                         close=self.close_connection)
            self.wfile.write(response)
            return len(response)

        def do_GET(self):
            url = urlsplit(self.path)
            if url.path == "/_stats":
                with lock:
                    body = json.dumps(stats).encode()
                self.reply(200, body)
                return
            if url.path != "/items":
                self.reply(404, b'{"error":"not found"}')
                return
            try:
                page = int(parse_qs(url.query).get("page", ["1"])[-1])
            except ValueError:
                page = 0
            if page < 1:
                sent = self.reply(400, b'{"error":"page must be an integer >= 1"}')
            elif page <= total_pages:
                sent = self.reply(200, response=responses[page - 1])
            else:
                sent = self.reply(200, f'{{"items":[],"page":{page},"total_pages":{total_pages}}}'.encode())
            with lock:
                stats["requests"] += 1
                stats["bytes"] += sent

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    size = sum(len(r) for r in responses)
    print(f"ready {server.server_address[1]} {total_pages} {size}", flush=True)
    server.serve_forever()


class Server:
    def __init__(self, args):
        cmd = [sys.executable, os.path.abspath(__file__), "--serve", "--records", str(args.records),
               "--page-size", str(args.page_size), "--port", str(args.port)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "ready":
            self.proc.kill()
            raise SystemExit("the benchmark server did not start")
        self.port, self.total_pages, self.size = int(line[1]), int(line[2]), int(line[3])
        self.base = f"http://127.0.0.1:{self.port}"

    def stats(self):
        import requests
        return requests.get(f"{self.base}/_stats", timeout=10).json()

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


# ---------------------------------------------------------------- measuring

def proc_memory(pid):
    """(VmRSS, VmHWM) of a process in bytes, from /proc; (0, 0) once it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return rss, hwm


def measure(cmd, cwd, log, env=None):
    """Runs cmd; returns (exit code, seconds, peak RSS in MB of its process tree).

    A thread samples the tree every 10 ms: the peak is the larger of the
    largest summed RSS seen and the largest VmHWM (the kernel's own peak RSS
    of one process since its exec). The child's ru_maxrss is not used: it
    counts this script's memory, which the child held between fork and exec.
    """
    import psutil

    peak = [0]
    done = threading.Event()
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)

        def poll():
            try:
                root = psutil.Process(proc.pid)
            except psutil.NoSuchProcess:
                return
            while not done.is_set():
                try:
                    pids = [proc.pid] + [c.pid for c in root.children(recursive=True)]
                except psutil.NoSuchProcess:
                    return
                mem = [proc_memory(pid) for pid in pids]
                peak[0] = max(peak[0], sum(rss for rss, _ in mem), max(hwm for _, hwm in mem))
                done.wait(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        _, status, _ = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, seconds, peak[0] / 2**20


def log_tail(log, chars=3000):
    with open(log, "rb") as f:
        return f.read().decode(errors="replace")[-chars:]


def count_rows(db, table):
    import duckdb
    con = duckdb.connect(db, read_only=True)
    try:
        return con.execute(f"select count(*) from {table}").fetchone()[0]
    finally:
        con.close()


# ---------------------------------------------------------------- the tools
# Each takes (server, run folder) and returns (command, cwd, env, rows_fn).

def tool_flowline(server, work):
    exe = flowline_bin()
    if not os.path.exists(exe):
        raise FileNotFoundError(f"no flowline binary at {exe}: run bench/http_api.sh, which builds it, "
                                f"or set FLOWLINE_BIN (or CARGO_TARGET_DIR)")
    proj = os.path.join(work, "project")
    os.makedirs(os.path.join(proj, "pipelines"))
    with open(os.path.join(proj, "flowline.toml"), "w") as f:
        f.write('[project]\nname = "bench"\n\n'
                '[warehouse]\nkind = "duckdb"\npath = ".flowline/warehouse.duckdb"\n')
    with open(os.path.join(proj, "pipelines", "items.toml"), "w") as f:
        f.write(textwrap.dedent(f"""\
            [source]
            kind = "http"
            url = "{server.base}/items"
            records = "items"
            paginate = {{ kind = "page", param = "page", start = 1, total_path = "total_pages" }}

            [destination]
            table = "raw.items"
            write = "replace"
        """))

    def rows():
        db = os.path.join(proj, ".flowline", "warehouse.duckdb")
        try:
            return count_rows(db, "raw.items")
        except Exception as e:  # e.g. a DuckDB storage version the Python package cannot read
            print(f"  (duckdb package could not read {db}: {e}; asking flowline sql)", flush=True)
            out = subprocess.run([exe, "--project", proj, "sql", "--format", "csv",
                                  "select count(*) from raw.items"],
                                 capture_output=True, text=True, check=True).stdout
            return int(out.split()[-1])

    return [exe, "--project", proj, "run", "items"], proj, None, rows


def dlt_rest_api(loader_file_format):
    def tool(server, work):
        return dlt_tool(server, work, loader_file_format)
    return tool


def dlt_tool(server, work, loader_file_format):
    db = os.path.join(work, "dlt.duckdb")
    script = os.path.join(work, "dlt_rest_api.py")
    with open(script, "w") as f:
        f.write(textwrap.dedent(f"""\
            import dlt
            from dlt.sources.rest_api import rest_api_source

            source = rest_api_source({{
                "client": {{
                    "base_url": "{server.base}/",
                    "paginator": {{"type": "page_number", "base_page": 1, "page_param": "page",
                                   "total_path": "total_pages"}},
                }},
                "resource_defaults": {{"write_disposition": "replace"}},
                "resources": [{{"name": "items", "endpoint": {{"path": "items", "data_selector": "items"}}}}],
            }})
            pipeline = dlt.pipeline(pipeline_name="http_api_bench", destination=dlt.destinations.duckdb({db!r}),
                                    dataset_name="raw", pipelines_dir={os.path.join(work, "pipelines")!r})
            print(pipeline.run(source{f", loader_file_format={loader_file_format!r}" if loader_file_format else ""}))
        """))
    env = dict(os.environ, RUNTIME__DLTHUB_TELEMETRY="false")
    return [PY, script], work, env, lambda: count_rows(db, "raw.items")


def bare_loop(parse_import, parse_call):
    def tool(server, work):
        script = os.path.join(work, "bare.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent(f"""\
                import requests
                {parse_import}

                session = requests.Session()
                rows, page = 0, 1
                while True:
                    response = session.get("{server.base}/items", params={{"page": page}})
                    response.raise_for_status()
                    doc = {parse_call}
                    rows += len(doc["items"])
                    if page >= doc["total_pages"]:
                        break
                    page += 1
                with open("rows", "w") as out:
                    out.write(str(rows))
            """))
        return [PY, script], work, None, lambda: int(open(os.path.join(work, "rows")).read())
    return tool


RUNNERS = {
    "flowline": ("flowline run (http source -> DuckDB)", tool_flowline),
    "dlt": ("dlt rest_api_source -> DuckDB", dlt_rest_api(None)),
    "dlt-parquet": ("dlt rest_api_source, parquet -> DuckDB", dlt_rest_api("parquet")),
    "bare": ("bare loop: requests + orjson.loads", bare_loop("import orjson", "orjson.loads(response.content)")),
    "bare-json": ("bare loop: requests + json.loads", bare_loop("import json", "json.loads(response.content)")),
}


def run_tool(key, server, base, repeat):
    """Runs one tool `repeat` times; returns a result dict (fastest run, largest RSS)."""
    label, make = RUNNERS[key]
    result = {"key": key, "label": label, "ok": False, "skipped": False, "seconds": None, "rss": None,
              "rows": None, "requests": None, "error": None}
    for attempt in range(repeat):
        work = os.path.join(base, f"{key}-{attempt + 1}")
        os.makedirs(work)
        try:
            cmd, cwd, env, rows_fn = make(server, work)
        except FileNotFoundError as e:
            result.update(error=str(e), skipped=True)
            print(f"{key}: skipped: {e}", flush=True)
            return result
        before = server.stats()["requests"]
        print(f"{key}: running{f' ({attempt + 1}/{repeat})' if repeat > 1 else ''}: {' '.join(cmd)}", flush=True)
        log = os.path.join(work, "output.log")
        code, seconds, rss = measure(cmd, cwd, log, env)
        requests_made = server.stats()["requests"] - before
        if code != 0:
            last = [line for line in log_tail(log).splitlines() if line.strip()][-1:] or ["no output"]
            result["error"] = f"exit code {code}: {last[0][:200]}"
            print(f"{key}: FAILED after {seconds:.2f} s; output ({log}):\n{log_tail(log)}", flush=True)
            return result
        rows = rows_fn()
        print(f"{key}: {seconds:.2f} s, {rss:.0f} MB, {rows:,} rows, {requests_made} requests", flush=True)
        result.update(ok=True, rows=rows, requests=requests_made,
                      rss=max(result["rss"] or 0, rss),
                      seconds=min(result["seconds"] or seconds, seconds))
    return result


def report(results, args, server):
    by_key = {r["key"]: r for r in results}
    fl = by_key.get("flowline")
    fl_s = fl["seconds"] if fl and fl["ok"] else None
    print(f"\nREST API -> DuckDB: {args.records:,} records, {args.page_size:,} per page "
          f"({server.total_pages:,} pages, {server.size / 1e6:.0f} MB of JSON), local HTTP/1.1 server"
          f"{f', fastest of {args.repeat} runs' if args.repeat > 1 else ''}\n")
    print(f"{'tool':40} {'wall s':>8} {'peak RSS MB':>12} {'rows':>11} {'requests':>9}  flowline vs tool")
    failed = False
    for r in results:
        if not r["ok"]:
            failed = True
            print(f"{r['label']:40} {'not run' if r['skipped'] else 'FAILED':>8}"
                  f"  ({r['error'].splitlines()[0] if r['error'] else ''})")
            continue
        rows_ok = r["rows"] == args.records
        failed |= not rows_ok
        if r["key"] == "flowline" or fl_s is None:
            vs = ""
        elif r["key"].startswith("bare"):
            vs = f"{r['seconds'] / fl_s:.2f}x its throughput"
        else:
            vs = f"{r['seconds'] / fl_s:.2f}x faster"
        print(f"{r['label']:40} {r['seconds']:8.2f} {r['rss']:12.0f} {r['rows']:11,}{'' if rows_ok else '!'} "
              f"{r['requests']:9}  {vs}{'' if rows_ok else f'  WRONG ROW COUNT: expected {args.records:,}'}")
    print(f"\ngoals: flowline >= {GOAL_VS_DLT:g}x faster than dlt; "
          f">= {GOAL_VS_BARE:g}x the bare loop's throughput (requests + orjson: bare_s / flowline_s)")
    for key, goal, what in (("dlt", GOAL_VS_DLT, "x faster than dlt (its defaults)"),
                            ("dlt-parquet", GOAL_VS_DLT, "x faster than dlt with parquet"),
                            ("bare", GOAL_VS_BARE, "x the bare loop's throughput")):
        peer = by_key.get(key)
        if fl_s is not None and peer and peer["ok"]:
            ratio = peer["seconds"] / fl_s
            print(f"  {'met    ' if ratio >= goal else 'NOT MET'}  flowline is {ratio:.2f}{what} (goal {goal:g})")
    return failed


def setup_venv(skip_install):
    if not os.path.exists(PY):
        sh([sys.executable, "-m", "venv", VENV])
    elif skip_install:
        return
    sh([PY, "-m", "pip", "install", "-q", *PACKAGES])


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=1_000_000, help="records the API serves (default 1,000,000)")
    p.add_argument("--page-size", type=int, default=1000, help="records per page (default 1,000)")
    p.add_argument("--port", type=int, default=0, help="the server's port (default: any free one)")
    p.add_argument("--only", default=",".join(TOOLS), help=f"comma-separated tools to run: {', '.join(TOOLS)}")
    p.add_argument("--repeat", type=int, default=1, help="runs per tool; the fastest is reported")
    p.add_argument("--skip-install", action="store_true", help="do not pip install when the venv exists")
    p.add_argument("--keep", action="store_true", help="keep the work folder (projects, logs, databases)")
    p.add_argument("--serve", action="store_true", help="only run the API server (prints `ready PORT ...`)")
    args = p.parse_args()
    args.only = [t.strip() for t in args.only.split(",") if t.strip()]
    unknown = [t for t in args.only if t not in TOOLS]
    if unknown:
        p.error(f"unknown tool {', '.join(unknown)}; choose from {', '.join(TOOLS)}")
    if args.records < 1 or args.page_size < 1 or args.repeat < 1:
        p.error("--records, --page-size and --repeat must be at least 1")
    return args


def main():
    args = parse_args()
    if args.serve:
        serve(args)
        return
    if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
        setup_venv(args.skip_install)
        os.execv(PY, [PY, os.path.abspath(__file__), *sys.argv[1:]])

    base = tempfile.mkdtemp(prefix="flowline-bench-http-")
    server = Server(args)
    print(f"server: {server.base}/items, {server.total_pages:,} pages, {server.size / 1e6:.0f} MB; "
          f"work folder {base}", flush=True)
    try:
        results = [run_tool(key, server, base, args.repeat) for key in TOOLS if key in args.only]
    finally:
        server.stop()
    failed = report(results, args, server)
    if args.keep or any(r["error"] and not r["skipped"] for r in results):
        print(f"\nkept {base} (projects, scripts, logs, databases)")
    else:
        shutil.rmtree(base, ignore_errors=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
