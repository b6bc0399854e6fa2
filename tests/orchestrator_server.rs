//! The orchestrator as long-running processes: `flowline serve` (its
//! scheduler and HTTP API) and `flowline worker`s sharing a PostgreSQL
//! state store, with real processes killed mid-step.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{PgDatabase, TestProject};
use serde_json::Value;

/// A flowline process killed when the test ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(p: &TestProject, args: &[&str]) -> Running {
    Running(
        p.command(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn flowline"),
    )
}

/// A free port on loopback.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Waits until `check` holds, failing with `what` after `limit`.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    common::block_on(async {
        let mut request = reqwest::Client::new().get(url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                (status, response.text().await.unwrap_or_default())
            }
            Err(_) => (0, String::new()),
        }
    })
}

fn post(url: &str, token: Option<&str>, body: Value) -> (u16, Value) {
    common::block_on(async {
        let mut request = reqwest::Client::new().post(url).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn serve_runs_triggered_jobs_and_answers_the_api_and_metrics() {
    let p = TestProject::new();
    let port = free_port();
    p.write(
        "flowline.toml",
        format!("[project]\nname = \"test\"\n\n[server]\nlisten = \"127.0.0.1:{port}\"\n"),
    );
    p.write(
        "jobs/hello.toml",
        "params = { who = \"world\" }\n\n[[step]]\nname = \"greet\"\ncommand = [\"echo\", \"hello {{ params.who }}\"]\n",
    );
    let _serve = start(&p, &["serve"]);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the API", Duration::from_secs(30), || {
        get(&format!("{base}/healthz"), None).0 == 200
    });
    let (status, jobs) = get(&format!("{base}/api/jobs"), None);
    assert_eq!(status, 200);
    assert_eq!(json_of(&jobs)["jobs"][0]["job"], "hello");
    let (status, created) = post(
        &format!("{base}/api/jobs/hello/trigger"),
        None,
        serde_json::json!({ "params": { "who": "api" } }),
    );
    assert_eq!(status, 201, "{created}");
    let run = created["run_id"].as_str().expect("run_id").to_string();
    wait_for("the run to end", Duration::from_secs(30), || {
        let (_, body) = get(&format!("{base}/api/runs/{run}"), None);
        json_of(&body)["run"]["state"] == "succeeded"
    });
    let (_, logs) = get(&format!("{base}/api/runs/{run}/logs"), None);
    assert!(logs.contains("hello api"), "{logs}");
    let (_, events) = get(&format!("{base}/api/runs/{run}/logs/stream"), None);
    assert!(
        events.contains("event: log") && events.contains("hello api"),
        "{events}"
    );
    assert!(events.contains("event: end"), "{events}");
    // `jobs trigger` asks this server, which runs it.
    let triggered = p.ok(&["jobs", "trigger", "hello", "--wait"]);
    assert!(
        triggered.contains(&format!("started by the server at {base}")),
        "{triggered}"
    );
    // A server of another project refuses, naming both.
    let (status, refused) = post(
        &format!("{base}/api/jobs/hello/trigger"),
        None,
        serde_json::json!({ "project": "other" }),
    );
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused
            .to_string()
            .contains("serves project test, not other"),
        "{refused}"
    );
    let (status, metrics) = get(&format!("{base}/metrics"), None);
    assert_eq!(status, 200);
    assert!(
        metrics.contains("flowline_job_runs{state=\"succeeded\"} 2"),
        "{metrics}"
    );
    assert!(
        metrics.contains("flowline_step_duration_seconds_count{job=\"hello\",step=\"greet\"} 2"),
        "{metrics}"
    );
    let (_, spec) = get(&format!("{base}/api/openapi.json"), None);
    assert_eq!(json_of(&spec)["openapi"], "3.0.3");
}

#[test]
fn the_api_needs_its_token_and_refuses_to_listen_beyond_loopback_without_one() {
    let p = TestProject::new();
    let port = free_port();
    p.write(
        "flowline.toml",
        format!("[project]\nname = \"test\"\n\n[server]\nlisten = \"0.0.0.0:{port}\"\n"),
    );
    let out = p.fails(&["serve"]);
    assert!(out.contains("set [server] token"), "{out}");

    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"test\"\n\n[server]\nlisten = \"0.0.0.0:{port}\"\ntoken = \"${{FLOWLINE_TOKEN}}\"\n"
        ),
    );
    p.write(".env", "FLOWLINE_TOKEN=s3cret-token\n");
    let _serve = start(&p, &["serve"]);
    let base = format!("http://127.0.0.1:{port}");
    wait_for("the API", Duration::from_secs(30), || {
        get(&format!("{base}/healthz"), None).0 == 200
    });
    assert_eq!(get(&format!("{base}/api/jobs"), None).0, 401);
    assert_eq!(get(&format!("{base}/api/jobs"), Some("wrong")).0, 401);
    assert_eq!(get(&format!("{base}/metrics"), None).0, 401);
    assert_eq!(
        get(&format!("{base}/api/jobs"), Some("s3cret-token")).0,
        200
    );
}

/// A project whose state store is the PostgreSQL database `db`.
fn postgres_project(db: &PgDatabase) -> TestProject {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"test\"\n\n[state]\nurl = \"{}\"\n\n[server]\nlisten = \"127.0.0.1:{}\"\n",
            db.url(),
            free_port()
        ),
    );
    p
}

fn run_state(p: &TestProject, run: &str) -> Value {
    json_of(&p.ok(&["jobs", "show", run, "--json"]))
}

#[test]
fn a_killed_workers_step_runs_again_on_another_worker_and_rows_stay_exact() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    let p = postgres_project(&db);
    p.write("data/orders.csv", common::orders_csv(1, 200_000));
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/orders.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.write(
        "jobs/load.toml",
        // The step waits until the test lets it go, after the kill: the
        // killed attempt can never reach its echo, however slow the
        // machine is to see the step running.
        "[[step]]\nname = \"slow\"\n\
         command = \"until [ -e go ]; do sleep 0.1; done; echo slow >> slow.txt\"\n\n\
         [[step]]\nname = \"orders\"\npipeline = \"orders\"\nafter = [\"slow\"]\n",
    );
    let queued = json_of(&p.ok(&["jobs", "trigger", "load", "--json"]));
    let run = queued["run_id"].as_str().expect("run").to_string();
    let mut first = start(&p, &["worker", "--lease", "1s", "--concurrency", "1"]);
    wait_for(
        "the first worker to take the step",
        Duration::from_secs(30),
        || run_state(&p, &run)["steps"][0]["state"] == "running",
    );
    first.0.kill().expect("kill -9 the worker");
    let _ = first.0.wait();
    p.write("go", "");
    let _second = start(&p, &["worker", "--lease", "1s", "--concurrency", "1"]);
    wait_for("the run to end", Duration::from_secs(90), || {
        let state = &run_state(&p, &run)["run"]["state"];
        state == "succeeded" || state == "failed"
    });
    let shown = run_state(&p, &run);
    assert_eq!(shown["run"]["state"], "succeeded", "{shown}");
    // The killed attempt never reached its echo; the second ran once.
    let slow = std::fs::read_to_string(p.path().join("slow.txt")).unwrap_or_default();
    assert_eq!(slow.lines().count(), 1, "{slow}");
    let attempts: Vec<&Value> = shown["attempts"]
        .as_array()
        .map(|a| a.iter().filter(|a| a["step"] == "slow").collect())
        .unwrap_or_default();
    assert_eq!(attempts.len(), 2, "{shown}");
    assert_eq!(attempts[0]["state"], "lost");
    assert_eq!(attempts[1]["state"], "succeeded");
    drop(_second);
    assert_eq!(p.scalar("SELECT count(*) FROM raw.orders"), 200_000);
    assert_eq!(
        p.scalar("SELECT count(DISTINCT id) FROM raw.orders"),
        200_000
    );
}

#[test]
fn two_schedulers_on_one_postgres_store_never_schedule_an_interval_twice() {
    let Some(db) = PgDatabase::create() else {
        return;
    };
    // Two copies of one project (each serve owns its own warehouse file)
    // sharing the state store, with a job due every second.
    let job = "schedule = \"* * * * * *\"\n\n[[step]]\nname = \"tick\"\ncommand = \"true\"\n";
    let a = postgres_project(&db);
    a.write("jobs/tick.toml", job);
    let b = postgres_project(&db);
    b.write("jobs/tick.toml", job);
    let _serve_a = start(&a, &["serve", "--concurrency", "2"]);
    let _serve_b = start(&b, &["serve", "--concurrency", "2"]);
    std::thread::sleep(Duration::from_secs(6));
    let runs = json_of(&a.ok(&["jobs", "runs", "tick", "--json", "--limit", "1000"]));
    let runs = runs["runs"].as_array().cloned().unwrap_or_default();
    assert!(runs.len() >= 3, "the leader scheduled too little: {runs:?}");
    let mut intervals: Vec<String> = runs
        .iter()
        .map(|r| {
            r["interval"]["start"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    let total = intervals.len();
    intervals.sort();
    intervals.dedup();
    assert_eq!(intervals.len(), total, "an interval was scheduled twice");
}
