//! End to end: `flowline stream` consuming a real Kafka-protocol broker
//! (started by `scripts/kafka-broker`): ordered delivery, draining on
//! SIGTERM, resuming from the offsets in the pipeline's state, kill -9 and
//! restart loading every message exactly once without `dedupe_key`,
//! `start = "latest"`, and poison messages. While the stream runs,
//! `flowline sql` queries the warehouse through the stream process.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rskafka::chrono::Utc;
use rskafka::client::ClientBuilder;
use rskafka::client::partition::{Compression, UnknownTopicHandling};
use rskafka::record::Record;

use common::{TestProject, block_on, service, unique};

const BROKER: &str = "127.0.0.1:9092";

fn kafka() -> bool {
    service("Kafka", BROKER)
}

/// Creates `topic` with `partitions` partitions.
fn create_topic(topic: &str, partitions: i32) {
    block_on(async {
        let client = ClientBuilder::new(vec![BROKER.to_string()])
            .build()
            .await
            .expect("connect to Kafka");
        client
            .controller_client()
            .expect("controller client")
            .create_topic(topic, partitions, 1, 10_000)
            .await
            .expect("create topic");
    });
}

/// Produces `messages` (partition, payload), in order per partition.
fn produce(topic: &str, messages: &[(i32, String)]) {
    let mut by_partition: BTreeMap<i32, Vec<&String>> = BTreeMap::new();
    for (partition, payload) in messages {
        by_partition.entry(*partition).or_default().push(payload);
    }
    block_on(async {
        let client = ClientBuilder::new(vec![BROKER.to_string()])
            .build()
            .await
            .expect("connect to Kafka");
        for (partition, payloads) in by_partition {
            let partition_client = client
                .partition_client(topic, partition, UnknownTopicHandling::Retry)
                .await
                .expect("partition client");
            // One record per batch: tansu 0.6 answers a fetch at an offset
            // inside a batch from the next batch on, and gives the base
            // offset of the last batch + 1 as the latest offset (Apache
            // Kafka returns the whole batch holding the offset, which the
            // source filters).
            for payload in payloads {
                let record = Record {
                    key: None,
                    value: Some(payload.as_bytes().to_vec()),
                    headers: BTreeMap::new(),
                    timestamp: Utc::now(),
                };
                partition_client
                    .produce(vec![record], Compression::NoCompression)
                    .await
                    .expect("produce");
            }
        }
    });
}

/// Click events `from..=to`, spread over `partitions` partitions by id.
fn clicks(from: u64, to: u64, partitions: i32) -> Vec<(i32, String)> {
    (from..=to)
        .map(|i| {
            (
                (i % partitions as u64) as i32,
                format!(
                    r#"{{"event_id": {i}, "user_id": {}, "page": "/p/{i}"}}"#,
                    i % 7
                ),
            )
        })
        .collect()
}

/// A stream pipeline `clicks` reading `topic` into raw.clicks, with no
/// `dedupe_key`: exactly-once comes from the offsets in the state.
fn project(topic: &str, max_rows: usize, extra: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/clicks.toml",
        format!(
            "mode = \"stream\"\n\n[source]\nkind = \"kafka\"\nurl = \"kafka://{BROKER}\"\ntopic = \"{topic}\"\ngroup = \"loader\"\n{extra}\n\
             [batch]\nmax_rows = {max_rows}\nmax_wait = \"100ms\"\n\n\
             [[transform]]\nsql = \"select event_id, user_id, page from input where page is not null\"\n\n\
             [destination]\ntable = \"raw.clicks\"\n"
        ),
    );
    p
}

/// A running `flowline stream clicks`, what it says collected as it comes.
struct Running {
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Running {
    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Sends SIGTERM; returns whether it exited 0, and what it logged.
    fn stop(mut self) -> (bool, String) {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().expect("wait for flowline stream");
        // Let the reader thread take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status.success(), self.log())
    }

    /// Kills it with SIGKILL: no draining, no last commit.
    fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }

    /// Waits until the log holds `needle`.
    fn wait_for_log(&mut self, needle: &str) {
        let started = Instant::now();
        while !self.log().contains(needle) {
            if started.elapsed() > Duration::from_secs(30) {
                let _ = self.child.kill();
                panic!(
                    "flowline stream never said {needle:?}; it said:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts `flowline stream clicks` in the background.
fn start(p: &TestProject) -> Running {
    let mut child = p
        .command(&["stream", "clicks"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start flowline stream");
    let log = Arc::new(Mutex::new(String::new()));
    if let Some(stdout) = child.stdout.take() {
        collect(stdout, log.clone());
    }
    if let Some(stderr) = child.stderr.take() {
        collect(stderr, log.clone());
    }
    Running { child, log }
}

/// Appends what `from` says to `log`, on a thread of its own.
fn collect(mut from: impl Read + Send + 'static, log: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok(n) = from.read(&mut buffer) {
            if n == 0 {
                break;
            }
            if let Ok(mut log) = log.lock() {
                log.push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        }
    });
}

/// `count(*)` of raw.clicks, through the stream process; `None` while the
/// table is not there yet.
fn count(p: &TestProject) -> Option<i64> {
    let out = p.flowline(&[
        "sql",
        "--format",
        "json",
        "select count(*) as n from raw.clicks",
    ]);
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str::<serde_json::Value>(text.trim())
        .ok()
        .and_then(|v| v[0]["n"].as_i64())
}

/// Polls until raw.clicks holds `n` rows; on a timeout, shows what the
/// stream process said.
fn wait_for_rows(p: &TestProject, running: &mut Running, n: i64) {
    let started = Instant::now();
    loop {
        let now = count(p);
        if now == Some(n) {
            return;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = running.child.kill();
            panic!(
                "raw.clicks never reached {n} rows (last count {now:?}); flowline stream said:\n{}",
                running.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The saved offsets, per partition, that `flowline status --json` shows.
fn saved_offsets(p: &TestProject) -> BTreeMap<String, i64> {
    let status = p.ok(&["status", "--json"]);
    let report: serde_json::Value = serde_json::from_str(status.trim()).expect("status json");
    let pipelines = report.as_array().cloned().unwrap_or_default();
    let clicks = pipelines
        .iter()
        .find(|p| p["pipeline"] == "clicks")
        .unwrap_or_else(|| panic!("clicks in {status}"));
    let kafka = &clicks["saved_state"];
    assert_eq!(kafka["group"], "loader", "{status}");
    kafka["offsets"]
        .as_object()
        .unwrap_or_else(|| panic!("offsets in {status}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_i64().expect("an offset")))
        .collect()
}

#[test]
fn messages_load_in_order_sigterm_drains_and_a_restart_resumes() {
    if !kafka() {
        return;
    }
    let topic = unique("fl_clicks");
    create_topic(&topic, 1);
    produce(&topic, &clicks(1, 500, 1));
    let p = project(&topic, 64, "");
    let mut running = start(&p);
    wait_for_rows(&p, &mut running, 500);
    let ids = p.query("select event_id from raw.clicks order by rowid");
    let ids: Vec<i64> = ids.iter().filter_map(|r| r["event_id"].as_i64()).collect();
    assert_eq!(ids, (1..=500).collect::<Vec<_>>(), "in produce order");

    produce(&topic, &clicks(501, 600, 1));
    let (ok, log) = running.stop();
    assert!(ok, "flowline stream exits 0 on SIGTERM:\n{log}");
    // Everything consumed before the stop was committed, with its offset.
    let loaded = p.scalar("select count(*) from raw.clicks");
    assert!((500..=600).contains(&loaded), "{loaded}");
    let offsets = saved_offsets(&p);
    assert_eq!(offsets.get("0"), Some(&(loaded - 1)), "{offsets:?}");

    // A restart goes on after the saved offset: no copies, none missing.
    produce(&topic, &clicks(601, 700, 1));
    let mut running = start(&p);
    wait_for_rows(&p, &mut running, 700);
    let (ok, log) = running.stop();
    assert!(ok, "{log}");
    assert!(log.contains("resuming"), "says where it resumes: {log}");
    assert_eq!(
        p.scalar("select count(distinct event_id) from raw.clicks"),
        700
    );
    assert_eq!(saved_offsets(&p).get("0"), Some(&699));
}

#[test]
fn kill_9_mid_stream_then_restart_loads_every_message_exactly_once() {
    if !kafka() {
        return;
    }
    let topic = unique("fl_crash");
    create_topic(&topic, 3);
    produce(&topic, &clicks(1, 6000, 3));
    let p = project(&topic, 10, "");
    // Three times: kill it (no drain, no last commit) a little while after
    // it starts streaming.
    let mut loaded = Vec::new();
    for round in 1..=3 {
        let mut running = start(&p);
        running.wait_for_log("streaming into");
        std::thread::sleep(Duration::from_millis(150 * round));
        running.kill();
        loaded.push(count(&p).unwrap_or(0));
    }
    assert!(
        loaded[2] > 0,
        "nothing was loaded before the kills: {loaded:?}"
    );
    assert!(
        loaded.iter().any(|n| *n < 6000),
        "every kill came after the end: {loaded:?}"
    );

    let mut running = start(&p);
    wait_for_rows(&p, &mut running, 6000);
    // Nothing more arrives: no message is loaded twice.
    std::thread::sleep(Duration::from_millis(500));
    let (ok, log) = running.stop();
    assert!(ok, "{log}");
    assert_eq!(
        p.scalar("select count(*) from raw.clicks"),
        6000,
        "{loaded:?}"
    );
    assert_eq!(
        p.scalar("select count(distinct event_id) from raw.clicks"),
        6000
    );
    let offsets = saved_offsets(&p);
    assert_eq!(offsets.len(), 3, "{offsets:?}");
    assert_eq!(offsets.values().map(|o| o + 1).sum::<i64>(), 6000);
    eprintln!("rows committed at each kill: {loaded:?}");
}

#[test]
fn start_latest_skips_what_was_there_before_the_first_run() {
    if !kafka() {
        return;
    }
    let topic = unique("fl_latest");
    create_topic(&topic, 2);
    produce(&topic, &clicks(1, 50, 2));
    let p = project(&topic, 10, "start = \"latest\"\n");
    let mut running = start(&p);
    running.wait_for_log("streaming into");
    produce(&topic, &clicks(51, 60, 2));
    wait_for_rows(&p, &mut running, 10);
    let (ok, log) = running.stop();
    assert!(ok, "{log}");
    assert_eq!(p.scalar("select min(event_id) from raw.clicks"), 51);
}

#[test]
fn poison_messages_go_to_the_dead_letter_table_and_the_stream_goes_on() {
    if !kafka() {
        return;
    }
    let topic = unique("fl_poison");
    create_topic(&topic, 1);
    let mut messages = clicks(1, 3, 1);
    messages.insert(1, (0, "{oops".into()));
    messages.push((0, "42".into()));
    produce(&topic, &messages);
    let p = project(&topic, 10, "");
    let mut running = start(&p);
    wait_for_rows(&p, &mut running, 3);
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter order by raw");
    let (ok, log) = running.stop();
    assert!(ok, "{log}");
    assert_eq!(letters.len(), 2, "{letters:?}");
    assert_eq!(letters[1]["raw"], "{oops");
    assert!(
        letters[1]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON"),
        "{letters:?}"
    );
    assert_eq!(
        letters[1]["origin"].as_str().unwrap_or(""),
        format!("kafka:{topic}/0#1")
    );
    // Poison messages count as consumed: the offsets cover them.
    assert_eq!(saved_offsets(&p).get("0"), Some(&4));
}

#[test]
fn a_missing_topic_is_a_clear_error() {
    if !kafka() {
        return;
    }
    let p = project(&unique("fl_missing"), 10, "");
    let running = start(&p);
    let started = Instant::now();
    let mut child = running.child;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("flowline stream did not stop on a missing topic");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(100));
    let log = running.log.lock().map(|l| l.clone()).unwrap_or_default();
    assert!(!status.success(), "{log}");
    assert!(log.contains("does not exist"), "{log}");
}

#[test]
fn a_kafka_stream_pipeline_is_not_run_in_batches() {
    let p = project("anything", 10, "");
    let out = p.fails(&["run", "clicks"]);
    assert!(out.contains("flowline stream"), "{out}");
    let p = TestProject::new();
    p.write(
        "pipelines/k.toml",
        "mode = \"stream\"\n[source]\nkind = \"kafka\"\nurl = \"kafka://127.0.0.1:9092\"\ntopic = \"t\"\nstart = \"middle\"\n[destination]\ntable = \"t\"\n",
    );
    let out = p.fails(&["validate"]);
    assert!(out.contains("middle"), "{out}");
}
