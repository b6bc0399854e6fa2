//! End to end: `flowline stream` consuming a real RabbitMQ queue: ordered
//! delivery, draining on SIGTERM, poison messages, kill -9 and restart,
//! and a dropped broker connection. While the stream runs, `flowline sql`
//! queries the warehouse through the stream process.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

use common::rabbitmq::{AMQP, publish, purge_and_delete, rabbitmq};
use common::{TestProject, block_on, unique};

/// Messages ready in `queue` (not delivered, or delivered and not acknowledged
/// by a consumer that is gone).
fn ready(queue: &str) -> u32 {
    block_on(async {
        let conn = Connection::connect(AMQP, ConnectionProperties::default())
            .await
            .expect("connect");
        let channel = conn.create_channel().await.expect("channel");
        let q = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare");
        q.message_count()
    })
}

fn clicks(from: u64, to: u64) -> Vec<String> {
    (from..=to)
        .map(|i| {
            format!(
                r#"{{"event_id": {i}, "user_id": {}, "page": "/p/{i}"}}"#,
                i % 7
            )
        })
        .collect()
}

fn project(queue: &str, max_rows: usize) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/clicks.toml",
        format!(
            "mode = \"stream\"\n\n[source]\nkind = \"rabbitmq\"\nurl = \"{AMQP}\"\nqueue = \"{queue}\"\n\n\
             [batch]\nmax_rows = {max_rows}\nmax_wait = \"100ms\"\n\n\
             [[transform]]\nsql = \"select event_id, user_id, page from input where page is not null\"\n\n\
             [destination]\ntable = \"raw.clicks\"\ndedupe_key = [\"event_id\"]\n"
        ),
    );
    p
}

/// Starts `flowline stream clicks` in the background.
fn start(p: &TestProject) -> Child {
    p.command(&["stream", "clicks"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start flowline stream")
}

/// Polls `count(*)` of raw.clicks (through the stream process) until it is
/// `n`; on a timeout, shows what the stream process said.
fn wait_for_rows(p: &TestProject, child: &mut Child, n: i64) {
    let started = Instant::now();
    loop {
        let out = p.flowline(&[
            "sql",
            "--format",
            "json",
            "select count(*) as n from raw.clicks",
        ]);
        if out.status.success() {
            let text = String::from_utf8_lossy(&out.stdout);
            if let Ok(serde_json::Value::Array(rows)) = serde_json::from_str(text.trim())
                && rows.first().and_then(|r| r["n"].as_i64()) == Some(n)
            {
                return;
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let mut said = String::new();
            if let Some(mut stderr) = child.stderr.take() {
                use std::io::Read;
                let _ = stderr.read_to_string(&mut said);
            }
            panic!(
                "raw.clicks never reached {n} rows; last answer: {}{}\nflowline stream said:\n{said}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: sending a signal to our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Sends SIGTERM and returns the output once the process exits.
fn stop(child: Child) -> std::process::Output {
    signal(&child, libc::SIGTERM);
    child.wait_with_output().expect("wait for flowline stream")
}

#[test]
fn messages_load_in_order_and_sigterm_drains() {
    if !rabbitmq() {
        return;
    }
    let queue = unique("fl_clicks");
    publish(&queue, &clicks(1, 500));
    let p = project(&queue, 64);
    let mut child = start(&p);
    wait_for_rows(&p, &mut child, 500);
    let ids = p.query("select event_id from raw.clicks order by rowid");
    let ids: Vec<i64> = ids.iter().filter_map(|r| r["event_id"].as_i64()).collect();
    assert_eq!(ids, (1..=500).collect::<Vec<_>>(), "in publish order");

    publish(&queue, &clicks(501, 600));
    let out = stop(child);
    assert!(
        out.status.success(),
        "flowline stream exits 0 on SIGTERM:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // Everything consumed before the stop was committed and acknowledged.
    let loaded = p.scalar("select count(*) from raw.clicks");
    assert_eq!(loaded + i64::from(ready(&queue)), 600);
    assert_eq!(
        p.scalar("select count(distinct event_id) from raw.clicks"),
        loaded
    );
    // The session's numbers are kept in the run history.
    let status: serde_json::Value =
        serde_json::from_str(&p.ok(&["status", "--json"])).expect("status is JSON");
    let run = &status[0]["last_run"];
    assert_eq!(run["status"], "succeeded", "{status}");
    assert_eq!(run["rows"].as_i64(), Some(loaded), "{status}");
    let stats = &run["stream"];
    assert_eq!(stats["messages"].as_i64(), Some(loaded), "{status}");
    assert!(stats["batches"].as_u64() >= Some(1), "{status}");
    assert!(stats["batch_p99_ms"].as_u64() >= Some(1), "{status}");
    assert!(
        stats["end_to_end_p99_ms"].as_u64() >= Some(1),
        "RabbitMQ messages carry a publish time: {status}"
    );
    let table = p.ok(&["status"]);
    assert!(table.contains("msg/s"), "{table}");
    purge_and_delete(&queue);
}

#[test]
fn poison_messages_go_to_the_dead_letter_table_and_the_stream_goes_on() {
    if !rabbitmq() {
        return;
    }
    let queue = unique("fl_poison");
    let mut payloads = clicks(1, 3);
    payloads.insert(1, "{oops".into());
    payloads.push("42".into());
    publish(&queue, &payloads);
    let p = project(&queue, 10);
    let mut child = start(&p);
    wait_for_rows(&p, &mut child, 3);
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter order by raw");
    let out = stop(child);
    assert!(out.status.success());
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[1]["raw"], "{oops");
    assert!(
        letters[1]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON"),
        "{letters:?}"
    );
    assert!(
        letters[1]["origin"]
            .as_str()
            .unwrap_or("")
            .starts_with("rabbitmq:")
    );
    assert_eq!(ready(&queue), 0, "poison messages are acknowledged too");
    purge_and_delete(&queue);
}

#[test]
fn kill_9_mid_stream_then_restart_loads_every_message_exactly_once() {
    if !rabbitmq() {
        return;
    }
    let queue = unique("fl_crash");
    publish(&queue, &clicks(1, 3000));
    let p = project(&queue, 50);
    let child = start(&p);
    // Kill it once part of the queue is in the table.
    let started = Instant::now();
    loop {
        let out = p.flowline(&[
            "sql",
            "--format",
            "json",
            "select count(*) as n from raw.clicks",
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let n = serde_json::from_str::<serde_json::Value>(text.trim())
            .ok()
            .and_then(|v| v[0]["n"].as_i64())
            .unwrap_or(0);
        if n > 0 || started.elapsed() > Duration::from_secs(30) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(&child, libc::SIGKILL);
    let _ = child.wait_with_output();

    // The first process may have committed everything before it died: wait
    // for the second to take over the project (its socket, in place of the
    // dead one's) before stopping it.
    let socket = p.path().join(".flowline/flowline.sock");
    let _ = std::fs::remove_file(&socket);
    let mut child = start(&p);
    let started = Instant::now();
    while !socket.exists() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    wait_for_rows(&p, &mut child, 3000);
    let out = stop(child);
    assert!(
        out.status.success(),
        "the restarted stream exits 0 on SIGTERM:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        p.scalar("select count(distinct event_id) from raw.clicks"),
        3000
    );
    assert_eq!(p.scalar("select count(*) from raw.clicks"), 3000);
    purge_and_delete(&queue);
}

#[test]
fn a_dropped_connection_reconnects_without_losing_messages() {
    if !rabbitmq() {
        return;
    }
    let queue = unique("fl_drop");
    publish(&queue, &clicks(1, 200));
    let p = project(&queue, 50);
    let mut child = start(&p);
    wait_for_rows(&p, &mut child, 200);
    // The broker drops every client connection, as on a restart.
    let closed = std::process::Command::new("rabbitmqctl")
        .args(["close_all_connections", "flowline test: broker restart"])
        .output();
    match closed {
        Ok(out) if out.status.success() => {}
        other => {
            common::skip(&format!(
                "rabbitmqctl close_all_connections is not usable here: {other:?}"
            ));
            let _ = stop(child);
            return;
        }
    }
    publish(&queue, &clicks(201, 400));
    wait_for_rows(&p, &mut child, 400);
    let out = stop(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("reconnect"), "says so in the log: {stderr}");
    assert_eq!(
        p.scalar("select count(distinct event_id) from raw.clicks"),
        400
    );
    purge_and_delete(&queue);
}

#[test]
fn a_quiet_stream_shows_its_committed_rows_in_status_without_further_messages() {
    if !rabbitmq() {
        return;
    }
    let queue = unique("fl_quiet");
    publish(&queue, &clicks(1, 7));
    let p = project(&queue, 1000);
    let mut child = start(&p);
    wait_for_rows(&p, &mut child, 7);
    // No message follows; the numbers come with the next report (every 5 s).
    let started = Instant::now();
    let run = loop {
        let status: serde_json::Value =
            serde_json::from_str(&p.ok(&["status", "--json"])).expect("status is JSON");
        let run = status[0]["last_run"].clone();
        if run["rows"].as_i64() == Some(7) || started.elapsed() > Duration::from_secs(15) {
            break run;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(run["status"], "running", "{run}");
    assert_eq!(run["rows"].as_i64(), Some(7), "{run}");
    assert_eq!(run["stream"]["messages"].as_i64(), Some(7), "{run}");
    let table = p.ok(&["status"]);
    assert!(table.contains("running  7 "), "{table}");
    assert!(stop(child).status.success());
    purge_and_delete(&queue);
}

#[test]
fn run_refuses_stream_pipelines_without_recording_a_run() {
    let p = project("anything", 10);
    let out = p.fails(&["run", "clicks"]);
    assert!(
        out.contains("pipeline clicks is a stream pipeline")
            && out.contains("`flowline stream clicks`"),
        "{out}"
    );
    let out = p.fails(&["run"]);
    assert!(
        out.contains("is a stream pipeline (mode = \"stream\")")
            && out.contains("`flowline stream`")
            && !out.contains("no pipelines"),
        "{out}"
    );
    // No failed run hides the last stream session in `status`.
    let status: serde_json::Value =
        serde_json::from_str(&p.ok(&["status", "--json"])).expect("status is JSON");
    assert!(status[0]["last_run"].is_null(), "{status}");
}

#[test]
fn a_stream_pipeline_is_not_run_in_batches() {
    let p = project("anything", 10);
    let out = p.fails(&["run", "clicks"]);
    assert!(out.contains("flowline stream"), "{out}");
    let p = TestProject::new();
    p.write(
        "pipelines/q.toml",
        "[source]\nkind = \"rabbitmq\"\nurl = \"amqp://x\"\nqueue = \"q\"\n[destination]\ntable = \"t\"\n",
    );
    let out = p.fails(&["validate"]);
    assert!(out.contains("mode = \"stream\""), "{out}");
}

#[test]
fn until_idle_drains_the_queue_then_exits_zero() {
    if !rabbitmq() {
        return;
    }
    let queue = unique("fl_clicks");
    publish(&queue, &clicks(1, 300));
    let p = project(&queue, 64);
    let started = Instant::now();
    let out = p
        .command(&["stream", "clicks", "--until-idle", "1s"])
        .output()
        .expect("flowline stream --until-idle");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("ok      clicks: 300 rows"), "{text}");
    assert!(started.elapsed() >= Duration::from_secs(1), "{text}");
    assert_eq!(
        p.scalar("select count(distinct event_id) from raw.clicks"),
        300
    );
    assert_eq!(ready(&queue), 0, "every message acknowledged");

    // Run again on an empty queue: nothing to load, it still ends.
    let out = p
        .command(&["stream", "clicks", "--until-idle", "300ms"])
        .output()
        .expect("flowline stream --until-idle");
    assert!(out.status.success());
    assert_eq!(p.scalar("select count(*) from raw.clicks"), 300);
    purge_and_delete(&queue);
}
