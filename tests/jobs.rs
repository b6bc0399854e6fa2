//! Jobs end to end: DAG order, retries, trigger rules, timeouts, sensors,
//! templates, backfills and bad job files, through the built binary on the
//! embedded default.

mod common;

use common::TestProject;
use serde_json::Value;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// The states of a run's steps, by name, from `jobs show --json`.
fn step_states(p: &TestProject, run_id: &str) -> Vec<(String, String)> {
    let shown = json(&p.ok(&["jobs", "show", run_id, "--json"]));
    shown["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["step"].as_str().unwrap_or_default().to_string(),
                s["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The id of the latest run of `job`.
fn last_run(p: &TestProject, job: &str) -> String {
    let runs = json(&p.ok(&["jobs", "runs", job, "--json"]));
    runs["runs"][0]["run_id"]
        .as_str()
        .expect("a run")
        .to_string()
}

fn lines(p: &TestProject, file: &str) -> Vec<String> {
    std::fs::read_to_string(p.path().join(file))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_job_runs_its_steps_in_dependency_order_and_exits_with_its_outcome() {
    let p = TestProject::new();
    p.write("data/orders.csv", common::orders_csv(1, 50));
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/orders.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.write(
        "jobs/daily.toml",
        r#"
[[step]]
name = "extract"
command = ["sh", "-c", "echo extract >> order.txt"]

[[step]]
name = "orders"
pipeline = "orders"
after = ["extract"]

[[step]]
name = "count"
after = ["orders"]
sql = "CREATE TABLE raw.order_count AS SELECT count(*) AS n FROM raw.orders"

[[step]]
name = "report"
after = ["count"]
command = "echo report >> order.txt && echo all done"
"#,
    );
    let out = p.ok(&["jobs", "run", "daily"]);
    assert!(out.contains("run ") && out.contains("succeeded"), "{out}");
    assert_eq!(lines(&p, "order.txt"), ["extract", "report"]);
    assert_eq!(p.scalar("SELECT n FROM raw.order_count"), 50);
    let run = last_run(&p, "daily");
    let states = step_states(&p, &run);
    assert!(states.iter().all(|(_, s)| s == "succeeded"), "{states:?}");
    let logs = p.ok(&["jobs", "logs", &run, "report"]);
    assert!(logs.contains("[report#1 stdout] all done"), "{logs}");
    let logs = p.ok(&["jobs", "logs", &run, "orders"]);
    assert!(logs.contains("50 rows loaded"), "{logs}");
}

#[test]
fn a_failing_step_is_retried_then_fails_the_run_and_trigger_rules_decide_the_rest() {
    let p = TestProject::new();
    p.write(
        "jobs/flaky.toml",
        r#"
[[step]]
name = "load"
command = "echo try >> tries.txt; exit 3"
retries = 2
retry_backoff = "50ms"

[[step]]
name = "publish"
after = ["load"]
command = "echo publish >> ran.txt"

[[step]]
name = "cleanup"
after = ["load"]
trigger_rule = "all_done"
command = "echo cleanup >> ran.txt"

[[step]]
name = "alert"
after = ["load"]
trigger_rule = "one_failed"
command = "echo alert >> ran.txt"

[[step]]
name = "celebrate"
after = ["publish"]
trigger_rule = "one_success"
command = "echo celebrate >> ran.txt"
"#,
    );
    let out = p.fails(&["jobs", "run", "flaky"]);
    assert!(out.contains("exited with code 3"), "{out}");
    assert_eq!(
        lines(&p, "tries.txt").len(),
        3,
        "one attempt and two retries"
    );
    let mut ran = lines(&p, "ran.txt");
    ran.sort();
    assert_eq!(ran, ["alert", "cleanup"]);
    let states = step_states(&p, &last_run(&p, "flaky"));
    let state = |name: &str| {
        states
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s.clone())
            .unwrap_or_default()
    };
    assert_eq!(state("load"), "failed");
    assert_eq!(state("publish"), "upstream_failed");
    assert_eq!(state("celebrate"), "upstream_failed");
    assert_eq!(state("cleanup"), "succeeded");
    assert_eq!(state("alert"), "succeeded");
}

#[test]
fn a_timeout_kills_the_steps_whole_process_group() {
    let p = TestProject::new();
    p.write(
        "jobs/slow.toml",
        r#"
[[step]]
name = "hang"
command = "sleep 60 & echo $! > child.pid; sleep 60"
timeout = "1s"
"#,
    );
    let started = std::time::Instant::now();
    let out = p.fails(&["jobs", "run", "slow"]);
    assert!(out.contains("timed out after 1s"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    let child: i32 = lines(&p, "child.pid")[0].trim().parse().expect("pid");
    // The background child was in the step's process group: it is gone
    // (or a zombie about to be reaped by init).
    std::thread::sleep(std::time::Duration::from_millis(300));
    let status = std::fs::read_to_string(format!("/proc/{child}/status")).unwrap_or_default();
    assert!(
        status.is_empty() || status.contains("State:\tZ"),
        "the step's child {child} still runs:\n{status}"
    );
}

#[test]
fn a_waiting_sensor_holds_no_worker_slot() {
    let p = TestProject::new();
    // One slot: if the sensor kept it while waiting, the step that makes
    // its file could never run.
    p.write(
        "jobs/landing.toml",
        r#"
[[step]]
name = "wait_for_file"
sensor = { file = "landing/{{ ds }}/*.csv", poke = "100ms", timeout = "30s" }

[[step]]
name = "drop_file"
command = "sleep 0.5; mkdir -p landing/{{ ds }}; echo id > landing/{{ ds }}/orders.csv"

[[step]]
name = "load"
after = ["wait_for_file"]
command = "ls landing/{{ ds }}"
"#,
    );
    let out = p.ok(&["jobs", "run", "landing", "--concurrency", "1"]);
    assert!(out.contains("succeeded"), "{out}");
    let run = last_run(&p, "landing");
    let logs = p.ok(&["jobs", "logs", &run, "load"]);
    assert!(logs.contains("orders.csv"), "{logs}");
}

#[test]
fn a_sensor_that_never_sees_its_condition_fails_at_its_timeout() {
    let p = TestProject::new();
    p.write(
        "jobs/never.toml",
        "[[step]]\nname = \"wait\"\nsensor = { file = \"nowhere/*.csv\", poke = \"100ms\", timeout = \"1s\" }\n",
    );
    let out = p.fails(&["jobs", "run", "never"]);
    assert!(out.contains("sensor timed out after 1s"), "{out}");
}

#[test]
fn templates_render_the_interval_params_and_environment() {
    let p = TestProject::new();
    p.write(".env", "REGION=eu-west\n");
    p.write(
        "jobs/export.toml",
        r#"
schedule = "@daily"
timezone = "Europe/Amsterdam"
params = { country = "NL", limit = 10 }

[[step]]
name = "export"
command = ["echo", "{{ ds }}|{{ params.country }}|{{ params.limit }}|{{ env.REGION }}|{{ run_id }}"]
"#,
    );
    p.ok(&["jobs", "run", "export", "--param", "country=BE"]);
    let run = last_run(&p, "export");
    let logs = p.ok(&["jobs", "logs", &run, "--json"]);
    let line = logs
        .lines()
        .map(json)
        .find(|l| l["stream"] == "stdout")
        .expect("a stdout line");
    let text = line["line"].as_str().unwrap_or_default();
    let yesterday = (chrono::Utc::now().with_timezone(&chrono_tz::Europe::Amsterdam)
        - chrono::Duration::days(1))
    .format("%Y-%m-%d")
    .to_string();
    assert_eq!(text, format!("{yesterday}|BE|10|eu-west|{run}"));
}

#[test]
fn an_unknown_template_name_fails_the_step_naming_it() {
    let p = TestProject::new();
    p.write(
        "jobs/typo.toml",
        "[[step]]\nname = \"s\"\ncommand = [\"echo\", \"{{ params.contry }}\"]\n",
    );
    let out = p.fails(&["jobs", "run", "typo"]);
    assert!(out.contains("undefined"), "{out}");
}

#[test]
fn backfill_runs_exactly_the_intervals_between_two_dates_once() {
    let p = TestProject::new();
    p.write(
        "jobs/daily.toml",
        r#"
schedule = "@daily"
start = 2026-01-01

[[step]]
name = "mark"
command = "echo {{ ds }} >> days.txt; test {{ ds }} != 2026-01-03 || test -f fixed"
"#,
    );
    let out = p.fails(&[
        "jobs",
        "backfill",
        "daily",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-04",
    ]);
    assert!(out.contains("failed"), "{out}");
    assert_eq!(
        lines(&p, "days.txt"),
        ["2026-01-02", "2026-01-03", "2026-01-04"]
    );
    // Again: the intervals that ran are kept, the failed one too.
    p.fails(&[
        "jobs",
        "backfill",
        "daily",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-04",
    ]);
    assert_eq!(lines(&p, "days.txt").len(), 3);
    // --reprocess-failed runs the failed interval again, only it.
    p.write("fixed", "");
    p.ok(&[
        "jobs",
        "backfill",
        "daily",
        "--from",
        "2026-01-02",
        "--to",
        "2026-01-04",
        "--reprocess-failed",
    ]);
    assert_eq!(
        lines(&p, "days.txt"),
        ["2026-01-02", "2026-01-03", "2026-01-04", "2026-01-03"]
    );
}

#[test]
fn a_job_step_runs_another_job_and_waits_for_it() {
    let p = TestProject::new();
    p.write(
        "jobs/child.toml",
        "[[step]]\nname = \"work\"\ncommand = \"sleep 0.3; echo child >> ran.txt\"\n",
    );
    p.write(
        "jobs/parent.toml",
        r#"
[[step]]
name = "child"
job = "child"

[[step]]
name = "after"
after = ["child"]
command = "echo parent >> ran.txt"
"#,
    );
    p.ok(&["jobs", "run", "parent"]);
    assert_eq!(lines(&p, "ran.txt"), ["child", "parent"]);
}

#[test]
fn pause_and_list_show_a_jobs_schedule() {
    let p = TestProject::new();
    p.write(
        "jobs/hourly.toml",
        "schedule = \"@hourly\"\n\n[[step]]\nname = \"s\"\ncommand = \"true\"\n",
    );
    let list = json(&p.ok(&["jobs", "list", "--json"]));
    assert_eq!(list["jobs"][0]["schedule"], "@hourly");
    assert_eq!(list["jobs"][0]["paused"], false);
    assert!(list["jobs"][0]["next_run"].is_string(), "{list}");
    p.ok(&["jobs", "pause", "hourly"]);
    let list = json(&p.ok(&["jobs", "list", "--json"]));
    assert_eq!(list["jobs"][0]["paused"], true);
    let table = p.ok(&["jobs", "list"]);
    assert!(table.contains("paused"), "{table}");
}

/// `flowline validate` on a project with `jobs/bad.toml` = `job`, and
/// what it says.
fn invalid(job: &str) -> String {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        "[project]\nname = \"test\"\n\n[pools]\nexports = 2\n",
    );
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\n\n[destination]\ntable = \"raw.orders\"\n",
    );
    p.write("jobs/bad.toml", job);
    p.fails(&["validate"])
}

#[test]
fn bad_job_files_are_reported_with_file_line_and_column() {
    let out = invalid("[[step]]\nname = \"a\"\ncommand = \"true\"\nafter = [\"b\"]\n");
    assert!(
        out.contains("jobs/bad.toml:1:1") && out.contains("comes after \"b\", which is not a step"),
        "{out}"
    );
    let out = invalid(
        "[[step]]\nname = \"a\"\ncommand = \"true\"\nafter = [\"c\"]\n\n\
         [[step]]\nname = \"b\"\ncommand = \"true\"\nafter = [\"a\"]\n\n\
         [[step]]\nname = \"c\"\ncommand = \"true\"\nafter = [\"b\"]\n",
    );
    assert!(
        out.contains("the steps form a cycle: a -> b -> c -> a") || out.contains("cycle"),
        "{out}"
    );
    let out = invalid("schedule = \"61 * * * *\"\n\n[[step]]\nname = \"a\"\ncommand = \"true\"\n");
    assert!(out.contains("jobs/bad.toml:1:12"), "{out}");
    let out = invalid("[[step]]\nname = \"a\"\ncommand = \"true\"\npool = \"export\"\n");
    assert!(
        out.contains("pool \"export\" is not in [pools]")
            && out.contains("did you mean \"exports\""),
        "{out}"
    );
    let out = invalid("[[step]]\nname = \"a\"\npipeline = \"order\"\n");
    assert!(out.contains("no pipeline named \"order\""), "{out}");
    let out = invalid("[[step]]\nname = \"a\"\npipeline = \"orders\"\ncommand = \"true\"\n");
    assert!(out.contains("a step does one thing"), "{out}");
    let out = invalid("[[step]]\nname = \"a\"\ncomand = \"true\"\n");
    assert!(out.contains("a step needs one of"), "{out}");
    let out = invalid("[[step]]\nname = \"a\"\ncommand = \"true\"\nretires = 2\n");
    assert!(
        out.contains("jobs/bad.toml:4:1") && out.contains("did you mean \"retries\""),
        "{out}"
    );
    let out =
        invalid("timezone = \"Europe/Amsterdan\"\n[[step]]\nname = \"a\"\ncommand = \"true\"\n");
    assert!(out.contains("unknown time zone"), "{out}");
}

#[test]
fn http_and_sql_steps_and_a_failure_alert_reach_real_servers() {
    use std::sync::{Arc, Mutex};
    let alerts: Arc<Mutex<Vec<Value>>> = Arc::default();
    let received = alerts.clone();
    let router = axum::Router::new()
        .route("/ok", axum::routing::post(|| async { "pong" }))
        .route(
            "/broken",
            axum::routing::get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "upstream down") }),
        )
        .route(
            "/alert",
            axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
                let received = received.clone();
                async move {
                    received.lock().expect("lock").push(body);
                    "ok"
                }
            }),
        );
    let base = common::serve_http(router);
    let p = TestProject::new();
    p.write(
        "jobs/calls.toml",
        format!(
            r#"
on_failure = {{ webhook = "{base}/alert" }}

[[step]]
name = "ping"
http = {{ url = "{base}/ok", method = "POST", body = "{{{{ ds }}}}" }}

[[step]]
name = "table"
after = ["ping"]
sql = "CREATE TABLE marks AS SELECT 1 AS n"

[[step]]
name = "ready"
after = ["table"]
sensor = {{ sql = "SELECT n FROM marks WHERE n = 1", poke = "100ms", timeout = "10s" }}

[[step]]
name = "broken"
after = ["ready"]
http = {{ url = "{base}/broken" }}
"#
        ),
    );
    let out = p.fails(&["jobs", "run", "calls"]);
    assert!(
        out.contains("answered 502 Bad Gateway: upstream down"),
        "{out}"
    );
    let states = step_states(&p, &last_run(&p, "calls"));
    assert_eq!(
        states.iter().map(|(_, s)| s.as_str()).collect::<Vec<_>>(),
        ["succeeded", "succeeded", "succeeded", "failed"]
    );
    let alerts = alerts.lock().expect("lock");
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["job"], "calls");
    assert_eq!(alerts[0]["step"], "broken");
    assert!(
        alerts[0]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("502"),
        "{alerts:?}"
    );
}

#[test]
fn a_queue_sensor_waits_for_messages_in_rabbitmq() {
    if !common::rabbitmq::rabbitmq() {
        return;
    }
    let queue = common::unique("flowline_sensor");
    common::rabbitmq::publish(&queue, &[]);
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"test\"\n\n[connections.rabbit]\nurl = \"{}\"\n",
            common::rabbitmq::AMQP
        ),
    );
    p.write(
        "jobs/queued.toml",
        format!(
            "[[step]]\nname = \"wait\"\nsensor = {{ queue = \"{queue}\", connection = \"rabbit\", poke = \"100ms\", timeout = \"30s\" }}\n"
        ),
    );
    let mut run = p
        .command(&["jobs", "run", "queued"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(800));
    assert!(
        run.try_wait().expect("wait").is_none(),
        "the sensor did not wait"
    );
    common::rabbitmq::publish(&queue, &["{\"id\":1}".to_string()]);
    let status = run.wait().expect("wait");
    common::rabbitmq::purge_and_delete(&queue);
    assert!(status.success());
    let logs = p.ok(&["jobs", "logs", &last_run(&p, "queued")]);
    assert!(logs.contains("1 messages waiting"), "{logs}");
}

#[test]
fn a_pipeline_step_drains_a_stream_pipeline_until_its_queue_is_quiet() {
    if !common::rabbitmq::rabbitmq() {
        return;
    }
    let queue = common::unique("flowline_drain");
    let events: Vec<String> = (1..=250)
        .map(|i| format!("{{\"event_id\": {i}, \"kind\": \"click\"}}"))
        .collect();
    common::rabbitmq::publish(&queue, &events);
    let p = TestProject::new();
    p.write(
        "pipelines/events.toml",
        format!(
            "mode = \"stream\"\n\n[source]\nkind = \"rabbitmq\"\nurl = \"{}\"\nqueue = \"{queue}\"\n\n\
             [batch]\nmax_rows = 100\nmax_wait = \"100ms\"\n\n\
             [destination]\ntable = \"raw.events\"\ndedupe_key = [\"event_id\"]\n",
            common::rabbitmq::AMQP
        ),
    );
    p.write(
        "jobs/ingest.toml",
        "[[step]]\nname = \"events\"\npipeline = { name = \"events\", until_idle = \"500ms\" }\n\n\
         [[step]]\nname = \"count\"\nafter = [\"events\"]\n\
         sql = \"CREATE TABLE raw.event_count AS SELECT count(*) AS n FROM raw.events\"\n",
    );
    p.ok(&["validate"]);
    p.ok(&["jobs", "run", "ingest"]);
    assert_eq!(p.scalar("SELECT n FROM raw.event_count"), 250);
    let logs = p.ok(&["jobs", "logs", &last_run(&p, "ingest"), "events"]);
    assert!(logs.contains("pipeline events: 250 rows loaded"), "{logs}");
    common::rabbitmq::purge_and_delete(&queue);

    // Without until_idle, a stream pipeline is refused as a step.
    p.write(
        "jobs/ingest.toml",
        "[[step]]\nname = \"events\"\npipeline = \"events\"\n",
    );
    let out = p.fails(&["validate"]);
    assert!(
        out.contains("is a stream pipeline") && out.contains("until_idle"),
        "{out}"
    );
}
