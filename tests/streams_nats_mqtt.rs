//! End to end: `flowline stream` consuming NATS JetStream and MQTT (real
//! brokers: nats-server with JetStream on 127.0.0.1:4222, Mosquitto on
//! 127.0.0.1:1883): ordered delivery exactly once, draining on SIGTERM,
//! poison messages, and kill -9 then restart. While the stream runs,
//! `flowline sql` queries the warehouse through the stream process.

mod common;

use std::io::Read;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};

use common::{TestProject, block_on, service, unique};

const NATS: &str = "nats://127.0.0.1:4222";
const MQTT: &str = "mqtt://127.0.0.1:1883";
/// How long a table may take to reach the expected count.
const PATIENCE: Duration = Duration::from_secs(30);

fn nats() -> bool {
    service("NATS JetStream", "127.0.0.1:4222")
}

fn mosquitto() -> bool {
    service("Mosquitto", "127.0.0.1:1883")
}

/// `{"id": i, ...}` for every id in `ids`.
fn events(ids: impl IntoIterator<Item = i64>) -> Vec<String> {
    ids.into_iter()
        .map(|i| {
            format!(
                r#"{{"id": {i}, "device": "d{}", "reading": {}.5}}"#,
                i % 5,
                i * 3
            )
        })
        .collect()
}

/// A project with `pipelines/x.toml`: `source` (the `[source]` body), batches
/// of `max_rows`, into `raw.events` deduplicated on `id`.
fn project(source: &str, max_rows: usize) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/x.toml",
        format!(
            "mode = \"stream\"\n\n[source]\n{source}\n\n\
             [batch]\nmax_rows = {max_rows}\nmax_wait = \"200ms\"\n\n\
             [destination]\ntable = \"raw.events\"\ndedupe_key = [\"id\"]\n"
        ),
    );
    p
}

/// A running `flowline stream x`, with its stderr collected as it comes.
struct Streaming {
    child: Child,
    stderr: Arc<Mutex<String>>,
}

impl Streaming {
    /// Starts it and waits until it streams.
    fn start(p: &TestProject) -> Streaming {
        let mut child = p
            .command(&["stream", "x"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start flowline stream");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().expect("stderr");
        let collected = stderr.clone();
        std::thread::spawn(move || {
            let mut buffer = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buffer) {
                if n == 0 {
                    break;
                }
                if let Ok(mut text) = collected.lock() {
                    text.push_str(&String::from_utf8_lossy(&buffer[..n]));
                }
            }
        });
        let mut streaming = Streaming { child, stderr };
        // Connected (subscribed) and serving other commands: only then do
        // `flowline sql` calls go through it instead of opening the warehouse.
        streaming.wait_for_log("streaming into");
        streaming
    }

    fn log(&self) -> String {
        self.stderr.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Waits until the log says `what` (or the process ends, or time runs out).
    fn wait_for_log(&mut self, what: &str) {
        let started = Instant::now();
        while !self.log().contains(what) {
            let exited = self.child.try_wait().expect("try_wait");
            assert!(
                exited.is_none() && started.elapsed() < PATIENCE,
                "flowline stream never logged {what:?} (exit: {exited:?}):\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn signal(&self, signal: i32) {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    /// SIGTERM; asserts that it drains and exits 0; returns the log.
    fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().expect("wait for flowline stream");
        // The reader thread sees the pipe close once the process is gone.
        std::thread::sleep(Duration::from_millis(100));
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut stdout);
        }
        let log = self.log();
        assert!(
            status.success(),
            "flowline stream exits 0 on SIGTERM ({status}):\n{stdout}{log}"
        );
        log
    }

    /// SIGKILL, as a crash.
    fn kill(mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

impl Drop for Streaming {
    /// A test that fails half-way leaves no process behind.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `count(*)` of raw.events through the running stream, or 0 while there
/// is no answer yet (no table, the process starting).
fn count(p: &TestProject) -> i64 {
    let out = p.flowline(&[
        "sql",
        "--format",
        "json",
        "select count(*) as n from raw.events",
    ]);
    if !out.status.success() {
        return 0;
    }
    serde_json::from_str::<serde_json::Value>(String::from_utf8_lossy(&out.stdout).trim())
        .ok()
        .and_then(|rows| rows[0]["n"].as_i64())
        .unwrap_or(0)
}

/// Polls until raw.events holds `n` rows.
fn wait_for_rows(p: &TestProject, stream: &Streaming, n: i64) {
    let started = Instant::now();
    loop {
        let now = count(p);
        if now == n {
            return;
        }
        assert!(
            started.elapsed() < PATIENCE,
            "raw.events never reached {n} rows (it has {now}):\n{}",
            stream.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Polls until raw.events holds at least one row.
fn wait_for_some_rows(p: &TestProject, stream: &Streaming) {
    let started = Instant::now();
    while count(p) == 0 {
        assert!(
            started.elapsed() < PATIENCE,
            "raw.events never got a row:\n{}",
            stream.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The ids in raw.events, in the order they were loaded.
fn loaded_ids(p: &TestProject) -> Vec<i64> {
    p.query("select id from raw.events order by rowid")
        .iter()
        .filter_map(|r| r["id"].as_i64())
        .collect()
}

// ---------------------------------------------------------------- NATS

/// Creates stream `name` on subjects `name.>`.
fn nats_create_stream(name: &str) {
    block_on(async {
        let client = async_nats::connect(NATS).await.expect("connect to NATS");
        jetstream::new(client)
            .create_stream(jetstream::stream::Config {
                name: name.to_string(),
                subjects: vec![format!("{name}.>")],
                ..Default::default()
            })
            .await
            .expect("create stream");
    });
}

/// Publishes `payloads` to `subject`, each confirmed by JetStream; retries
/// while the stream does not exist yet (flowline creating it).
fn nats_publish(subject: &str, payloads: &[String]) {
    block_on(async {
        let client = async_nats::connect(NATS).await.expect("connect to NATS");
        let js = jetstream::new(client);
        let started = Instant::now();
        for payload in payloads {
            loop {
                let confirmed = match js
                    .publish(subject.to_string(), payload.clone().into())
                    .await
                {
                    Ok(ack) => ack.await.map(|_| ()).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                match confirmed {
                    Ok(()) => break,
                    Err(e) => {
                        assert!(started.elapsed() < PATIENCE, "publishing to {subject}: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    });
}

/// The consumer's (not yet delivered, delivered but not acknowledged) counts.
fn nats_consumer_pending(stream: &str, consumer: &str) -> (u64, usize) {
    block_on(async {
        let js = jetstream::new(async_nats::connect(NATS).await.expect("connect"));
        let info = js
            .get_stream(stream)
            .await
            .expect("stream")
            .consumer_info(consumer)
            .await
            .expect("consumer info");
        (info.num_pending, info.num_ack_pending)
    })
}

fn nats_delete_stream(name: &str) {
    block_on(async {
        if let Ok(client) = async_nats::connect(NATS).await {
            let _ = jetstream::new(client).delete_stream(name).await;
        }
    });
}

fn nats_source(stream: &str, extra: &str) -> String {
    format!(
        "kind = \"nats\"\nurl = \"{NATS}\"\nstream = \"{stream}\"\nconsumer = \"flowline\"\n{extra}"
    )
}

#[test]
fn nats_messages_load_exactly_once_in_order_and_sigterm_drains() {
    if !nats() {
        return;
    }
    let stream = unique("FL_ORDERED");
    nats_create_stream(&stream);
    let subject = format!("{stream}.events");
    nats_publish(&subject, &events(1..=300));
    let p = project(&nats_source(&stream, ""), 64);
    let running = Streaming::start(&p);
    wait_for_rows(&p, &running, 300);
    assert_eq!(
        loaded_ids(&p),
        (1..=300).collect::<Vec<_>>(),
        "in publish order"
    );

    nats_publish(&subject, &events(301..=400));
    wait_for_rows(&p, &running, 400);
    running.stop();
    assert_eq!(loaded_ids(&p), (1..=400).collect::<Vec<_>>());
    assert_eq!(
        nats_consumer_pending(&stream, "flowline"),
        (0, 0),
        "every message was delivered and acknowledged"
    );
    nats_delete_stream(&stream);
}

#[test]
fn nats_poison_messages_go_to_the_dead_letter_table_and_the_others_load() {
    if !nats() {
        return;
    }
    let stream = unique("FL_POISON");
    // flowline creates the stream (subjects = ["<stream>.>"]).
    let p = project(&nats_source(&stream, "create_stream = true"), 10);
    let running = Streaming::start(&p);
    let mut payloads = events(1..=3);
    payloads.insert(1, "{oops".into());
    payloads.push("42".into());
    nats_publish(&format!("{stream}.in"), &payloads);
    wait_for_rows(&p, &running, 3);
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter order by raw");
    running.stop();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let oops = &letters[1];
    assert_eq!(oops["raw"], "{oops");
    assert!(
        oops["reason"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON"),
        "{letters:?}"
    );
    assert_eq!(oops["origin"], format!("nats:{stream}#2"), "{letters:?}");
    assert!(
        letters[0]["reason"]
            .as_str()
            .unwrap_or("")
            .contains("expected a JSON object")
    );
    assert_eq!(loaded_ids(&p), vec![1, 2, 3]);
    assert_eq!(
        nats_consumer_pending(&stream, "flowline"),
        (0, 0),
        "poison messages are acknowledged too"
    );
    nats_delete_stream(&stream);
}

#[test]
fn nats_kill_9_mid_stream_then_restart_loads_every_message_exactly_once() {
    if !nats() {
        return;
    }
    let stream = unique("FL_CRASH");
    nats_create_stream(&stream);
    let subject = format!("{stream}.events");
    nats_publish(&subject, &events(1..=3000));
    // A short ack_wait: what the killed process held comes back quickly.
    let p = project(&nats_source(&stream, "ack_wait = \"2s\""), 50);
    let running = Streaming::start(&p);
    wait_for_some_rows(&p, &running);
    running.kill();

    let running = Streaming::start(&p);
    // New messages arrive before the killed process's are delivered again:
    // acknowledging them must not acknowledge the older ones.
    nats_publish(&subject, &events(3001..=3500));
    wait_for_rows(&p, &running, 3500);
    running.stop();
    assert_eq!(p.scalar("select count(distinct id) from raw.events"), 3500);
    assert_eq!(p.scalar("select count(*) from raw.events"), 3500);
    assert_eq!(p.scalar("select min(id) from raw.events"), 1);
    assert_eq!(p.scalar("select max(id) from raw.events"), 3500);
    nats_delete_stream(&stream);
}

#[test]
fn nats_a_deleted_consumer_is_set_up_again_without_losing_messages() {
    if !nats() {
        return;
    }
    let stream = unique("FL_RESETUP");
    nats_create_stream(&stream);
    let subject = format!("{stream}.events");
    nats_publish(&subject, &events(1..=100));
    let p = project(&nats_source(&stream, ""), 50);
    let running = Streaming::start(&p);
    wait_for_rows(&p, &running, 100);
    block_on(async {
        let js = jetstream::new(async_nats::connect(NATS).await.expect("connect"));
        js.delete_consumer_from_stream("flowline", &stream)
            .await
            .expect("delete the consumer");
    });
    nats_publish(&subject, &events(101..=200));
    wait_for_rows(&p, &running, 200);
    let log = running.stop();
    assert!(
        log.contains("consuming stream"),
        "says so in the log: {log}"
    );
    assert_eq!(p.scalar("select count(distinct id) from raw.events"), 200);
    assert_eq!(p.scalar("select count(*) from raw.events"), 200);
    nats_delete_stream(&stream);
}

/// A nats-server of this test's own, stopped when dropped.
struct OwnNatsServer(Child);

impl Drop for OwnNatsServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A nats-server of this test's own (JetStream, storage in `store`), on `port`.
fn own_nats_server(port: u16, store: &std::path::Path) -> Option<OwnNatsServer> {
    let binary = [
        "/usr/sbin/nats-server",
        "/usr/bin/nats-server",
        "/usr/local/bin/nats-server",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).is_file())?;
    let child = std::process::Command::new(binary)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < PATIENCE,
            "nats-server on port {port} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(OwnNatsServer(child))
}

#[test]
fn nats_a_restarted_server_is_reconnected_to_without_losing_messages() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let store = tempfile::tempdir().expect("temp dir");
    let Some(mut server) = own_nats_server(port, store.path()) else {
        common::skip("nats-server is not installed: CI needs it (Debian package nats-server)");
        return;
    };
    let url = format!("nats://127.0.0.1:{port}");
    let stream = "RESTARTED";
    let subject = format!("{stream}.events");
    let publish = |ids: std::ops::RangeInclusive<i64>| {
        block_on(async {
            let js = jetstream::new(async_nats::connect(url.as_str()).await.expect("connect"));
            for payload in events(ids) {
                js.publish(subject.clone(), payload.into())
                    .await
                    .expect("publish")
                    .await
                    .expect("confirmed");
            }
        })
    };
    let p = project(
        &format!(
            "kind = \"nats\"\nurl = \"{url}\"\nstream = \"{stream}\"\nconsumer = \"flowline\"\ncreate_stream = true"
        ),
        50,
    );
    let running = Streaming::start(&p);
    publish(1..=100);
    wait_for_rows(&p, &running, 100);

    // SAFETY: stopping our own child process.
    unsafe {
        libc::kill(server.0.id() as i32, libc::SIGTERM);
    }
    let _ = server.0.wait();
    std::thread::sleep(Duration::from_millis(500));
    let server = own_nats_server(port, store.path()).expect("nats-server again");
    publish(101..=200);
    wait_for_rows(&p, &running, 200);
    let log = running.stop();
    drop(server);
    assert!(log.contains("connection lost"), "says so in the log: {log}");
    assert!(log.contains("reconnected"), "{log}");
    assert_eq!(p.scalar("select count(distinct id) from raw.events"), 200);
    assert_eq!(p.scalar("select count(*) from raw.events"), 200);
}

#[test]
fn nats_a_missing_stream_is_an_error_that_says_what_to_do() {
    if !nats() {
        return;
    }
    let p = project(&nats_source(&unique("FL_MISSING"), ""), 10);
    let out = p.fails(&["stream", "x"]);
    assert!(out.contains("create_stream = true"), "{out}");
}

// ---------------------------------------------------------------- MQTT

/// Publishes `payloads` to `topic` at QoS 1 and waits for every PUBACK.
fn mqtt_publish(topic: &str, payloads: &[String]) {
    block_on(async {
        let mut options = MqttOptions::new(unique("fl-test-pub"), "127.0.0.1", 1883);
        options.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        let topic = topic.to_string();
        let payloads = payloads.to_vec();
        let total = payloads.len();
        let publisher = client.clone();
        tokio::spawn(async move {
            for payload in payloads {
                publisher
                    .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                    .await
                    .expect("queue publish");
            }
        });
        let mut acked = 0;
        let started = Instant::now();
        while acked < total {
            assert!(
                started.elapsed() < PATIENCE,
                "publishing: {acked} of {total} confirmed"
            );
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                Ok(_) => {}
                Err(e) => panic!("publishing to Mosquitto: {e}"),
            }
        }
        client.disconnect().await.expect("disconnect");
        while let Ok(event) = eventloop.poll().await {
            if event == Event::Outgoing(Outgoing::Disconnect) {
                break;
            }
        }
    });
}

/// Ends the persistent session of `client_id` (connects with a clean session).
fn mqtt_forget_session(client_id: &str) {
    block_on(async {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", 1883);
        options.set_clean_session(true);
        let (client, mut eventloop) = AsyncClient::new(options, 8);
        if let Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) =
            tokio::time::timeout(Duration::from_secs(5), eventloop.poll()).await
        {
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await;
        }
    });
}

/// Connects as `client_id` to its persistent session, collects the ids of
/// what the broker delivers within a second, and leaves without
/// acknowledging anything (so the broker delivers those again next time).
/// A running flowline with that client id loses its connection meanwhile.
fn mqtt_session_peek(client_id: &str) -> Vec<i64> {
    block_on(async {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", 1883);
        options.set_clean_session(false).set_manual_acks(true);
        let (client, mut eventloop) = AsyncClient::new(options, 8);
        let mut ids = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while let Ok(event) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
            match event {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    let value: serde_json::Value =
                        serde_json::from_slice(&publish.payload).expect("json payload");
                    ids.push(value["id"].as_i64().expect("id"));
                }
                Ok(_) => {}
                // Taken over in turn (flowline reconnecting).
                Err(_) => return ids,
            }
        }
        let _ = client.disconnect().await;
        while let Ok(Ok(event)) =
            tokio::time::timeout(Duration::from_secs(2), eventloop.poll()).await
        {
            if event == Event::Outgoing(Outgoing::Disconnect) {
                break;
            }
        }
        ids
    })
}

fn mqtt_source(topic: &str, client_id: &str) -> String {
    format!("kind = \"mqtt\"\nurl = \"{MQTT}\"\ntopic = \"{topic}\"\nclient_id = \"{client_id}\"")
}

#[test]
fn mqtt_messages_load_exactly_once_in_order_and_sigterm_drains() {
    if !mosquitto() {
        return;
    }
    let topic = format!("flowline/{}/events", unique("ordered"));
    let client_id = unique("fl-ordered");
    let p = project(&mqtt_source(&topic, &client_id), 50);
    let mut running = Streaming::start(&p);
    running.wait_for_log("subscribed to");
    mqtt_publish(&topic, &events(1..=300));
    wait_for_rows(&p, &running, 300);
    assert_eq!(
        loaded_ids(&p),
        (1..=300).collect::<Vec<_>>(),
        "in publish order"
    );
    running.stop();

    // Everything loaded was acknowledged before the exit, and the session
    // keeps what is published while flowline is down.
    mqtt_publish(&topic, &events(301..=310));
    assert_eq!(
        mqtt_session_peek(&client_id),
        (301..=310).collect::<Vec<_>>(),
        "the session holds only what was published while down"
    );
    let running = Streaming::start(&p);
    wait_for_rows(&p, &running, 310);
    running.stop();
    assert_eq!(loaded_ids(&p), (1..=310).collect::<Vec<_>>());
    mqtt_forget_session(&client_id);
}

#[test]
fn mqtt_poison_messages_go_to_the_dead_letter_table_and_the_others_load() {
    if !mosquitto() {
        return;
    }
    let topic = format!("flowline/{}/events", unique("poison"));
    let client_id = unique("fl-poison");
    let p = project(&mqtt_source(&topic, &client_id), 10);
    let mut running = Streaming::start(&p);
    running.wait_for_log("subscribed to");
    let mut payloads = events(1..=3);
    payloads.insert(1, "{oops".into());
    payloads.push("42".into());
    mqtt_publish(&topic, &payloads);
    wait_for_rows(&p, &running, 3);
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter order by raw");
    running.stop();
    assert_eq!(letters.len(), 2, "{letters:?}");
    let oops = &letters[1];
    assert_eq!(oops["raw"], "{oops");
    assert!(
        oops["reason"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON"),
        "{letters:?}"
    );
    assert_eq!(oops["origin"], format!("mqtt:{topic}#2"), "{letters:?}");
    assert_eq!(loaded_ids(&p), vec![1, 2, 3]);
    mqtt_forget_session(&client_id);
}

#[test]
fn mqtt_kill_9_then_restart_loads_every_message_exactly_once_including_those_sent_while_down() {
    if !mosquitto() {
        return;
    }
    let topic = format!("flowline/{}/events", unique("crash"));
    let client_id = unique("fl-crash");
    // Batches as large as Mosquitto's default in-flight window (20).
    let p = project(&mqtt_source(&topic, &client_id), 20);
    let mut running = Streaming::start(&p);
    running.wait_for_log("subscribed to");
    mqtt_publish(&topic, &events(1..=600));
    wait_for_some_rows(&p, &running);
    running.kill();

    // Published while flowline is down: the persistent session keeps them.
    mqtt_publish(&topic, &events(601..=800));
    let running = Streaming::start(&p);
    wait_for_rows(&p, &running, 800);
    running.stop();
    assert_eq!(p.scalar("select count(distinct id) from raw.events"), 800);
    assert_eq!(p.scalar("select count(*) from raw.events"), 800);
    mqtt_forget_session(&client_id);
}

#[test]
fn mqtt_an_unreachable_broker_fails_at_start_naming_it_without_the_password() {
    let p = project(
        "kind = \"mqtt\"\nurl = \"mqtt://ingest:s3cret-pass@127.0.0.1:1\"\ntopic = \"t/#\"",
        10,
    );
    let out = p.fails(&["stream", "x"]);
    assert!(out.contains("mqtt 127.0.0.1:1"), "{out}");
    assert!(!out.contains("s3cret-pass"), "{out}");
}

#[test]
fn mqtt_a_dropped_connection_reconnects_and_resumes_the_session_without_losing_messages() {
    if !mosquitto() {
        return;
    }
    let topic = format!("flowline/{}/events", unique("drop"));
    let client_id = unique("fl-drop");
    let p = project(&mqtt_source(&topic, &client_id), 20);
    let running = Streaming::start(&p);
    mqtt_publish(&topic, &events(1..=100));
    wait_for_rows(&p, &running, 100);
    // Another connection with the same client id takes the session over:
    // the broker drops flowline's connection.
    mqtt_publish(&topic, &events(101..=200));
    let _ = mqtt_session_peek(&client_id);
    mqtt_publish(&topic, &events(201..=300));
    wait_for_rows(&p, &running, 300);
    let log = running.stop();
    assert!(log.contains("connection lost"), "says so in the log: {log}");
    assert!(log.contains("reconnected (session resumed)"), "{log}");
    assert_eq!(p.scalar("select count(distinct id) from raw.events"), 300);
    assert_eq!(p.scalar("select count(*) from raw.events"), 300);
    mqtt_forget_session(&client_id);
}
