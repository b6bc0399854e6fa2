//! End to end: `flowline stream` serving a webhook endpoint over real HTTP.
//! A request is answered only once its records are committed; bad
//! signatures, tokens and sizes are refused before anything is loaded;
//! unreadable bodies land in the dead-letter table; SIGTERM drains.

mod common;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use common::{TestProject, block_on};

/// A port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A project with a stream pipeline `events` whose `[source]` is a webhook
/// on `port` with the `extra` keys, batching for `max_wait`.
fn project(port: u16, extra: &str, max_wait: &str) -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/events.toml",
        format!(
            "mode = \"stream\"\n\n[source]\nkind = \"webhook\"\nlisten = \"127.0.0.1:{port}\"\n{extra}\n\n\
             [batch]\nmax_wait = \"{max_wait}\"\n\n\
             [destination]\ntable = \"raw.events\"\ndedupe_key = [\"id\"]\n"
        ),
    );
    p
}

/// A running `flowline stream events` and its endpoint.
struct Stream {
    child: Child,
    base: String,
}

impl Stream {
    /// Starts the stream and waits until `/healthz` answers.
    fn start(p: &TestProject, port: u16) -> Stream {
        let mut child = p
            .command(&["stream", "events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start flowline stream");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            if let Ok((200, body, _)) = get(&format!("{base}/healthz")) {
                assert_eq!(body, "ok");
                return Stream { child, base };
            }
            if child.try_wait().expect("wait").is_some() {
                let out = child.wait_with_output().expect("output");
                panic!(
                    "flowline stream exited before serving:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the webhook never answered /healthz"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The ingest URL of pipeline `events`.
    fn ingest(&self) -> String {
        format!("{}/ingest/events", self.base)
    }

    /// Sends SIGTERM and returns the output once the process exits.
    fn stop(self) -> std::process::Output {
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        self.child
            .wait_with_output()
            .expect("wait for flowline stream")
    }
}

/// Status, body and `Retry-After` of a GET.
fn get(url: &str) -> reqwest::Result<(u16, String, Option<String>)> {
    block_on(async {
        let response = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await?;
        answer(response).await
    })
}

/// Status, body and `Retry-After` of a POST of `body` with `headers`.
fn post(
    url: &str,
    body: impl Into<Vec<u8>>,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let body = body.into();
    block_on(async {
        let mut request = reqwest::Client::new()
            .post(url)
            .timeout(Duration::from_secs(60))
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        answer(request.send().await?).await
    })
    .expect("the webhook answers")
}

async fn answer(response: reqwest::Response) -> reqwest::Result<(u16, String, Option<String>)> {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, response.text().await?, retry_after))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `sha256=<hex of HMAC-SHA256(secret, body)>`.
fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn assert_stopped_cleanly(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "flowline stream exits 0 on SIGTERM:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn objects_arrays_and_ndjson_are_rows_as_soon_as_the_request_is_answered() {
    let port = free_port();
    let p = project(port, "", "100ms");
    let stream = Stream::start(&p, port);

    let (status, body, _) = post(&stream.ingest(), r#"{"id": 1, "page": "/a"}"#, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        json(&body),
        serde_json::json!({ "accepted": 1, "rejected": 0 })
    );
    // The answer comes after the commit: the row is there already.
    assert_eq!(p.scalar("select count(*) from raw.events"), 1);

    let (status, body, _) = post(
        &stream.ingest(),
        r#"[{"id": 2, "page": "/b"}, {"id": 3, "page": "/c"}]"#,
        &[("content-type", "application/json")],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["accepted"], 2);
    assert_eq!(p.scalar("select count(*) from raw.events"), 3);

    let ndjson = "{\"id\": 4, \"page\": \"/d\"}\n\n{\"id\": 5, \"page\": \"/e\"}\n{\"id\": 6, \"page\": \"/f\"}\n";
    let (status, body, _) = post(
        &stream.ingest(),
        ndjson,
        &[("content-type", "application/x-ndjson")],
    );
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["accepted"], 3);
    assert_eq!(p.scalar("select count(*) from raw.events"), 6);

    let pretty = "{\n  \"id\": 7,\n  \"page\": \"/g\"\n}\n";
    let (status, body, _) = post(&stream.ingest(), pretty, &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(p.scalar("select count(*) from raw.events"), 7);

    // A resent request is committed again and deduplicated by id.
    let (status, _, _) = post(&stream.ingest(), r#"{"id": 1, "page": "/a"}"#, &[]);
    assert_eq!(status, 200);
    assert_eq!(p.scalar("select count(*) from raw.events"), 7);

    let (status, _, _) = post(
        &format!("{}/ingest/other", stream.base),
        r#"{"id": 8}"#,
        &[],
    );
    assert_eq!(status, 404);
    let (status, _, _) = get(&stream.ingest()).expect("GET answers");
    assert_eq!(status, 405);
    let (status, _, _) = post(&stream.ingest(), "   \n", &[]);
    assert_eq!(status, 400, "an empty body is refused");

    let out = stream.stop();
    assert_stopped_cleanly(&out);
    assert_eq!(p.scalar("select count(distinct id) from raw.events"), 7);
}

#[test]
fn concurrent_clients_are_all_answered_after_their_commit() {
    let port = free_port();
    let p = project(port, "", "50ms");
    let stream = Stream::start(&p, port);
    let clients: Vec<_> = (0..4)
        .map(|client| {
            let url = stream.ingest();
            std::thread::spawn(move || {
                for request in 0..25 {
                    let id = client * 1000 + request * 2;
                    let body = format!(r#"[{{"id": {id}}}, {{"id": {}}}]"#, id + 1);
                    let (status, answer, _) = post(&url, body, &[]);
                    assert_eq!(status, 200, "{answer}");
                }
            })
        })
        .collect();
    for client in clients {
        client.join().expect("client");
    }
    assert_eq!(p.scalar("select count(*) from raw.events"), 200);
    assert_stopped_cleanly(&stream.stop());
}

#[test]
fn an_unreadable_body_is_committed_to_the_dead_letter_table_and_answered_202() {
    let port = free_port();
    let p = project(port, "", "100ms");
    let stream = Stream::start(&p, port);

    let (status, body, _) = post(&stream.ingest(), "{oops", &[]);
    assert_eq!(status, 202, "{body}");
    let answer = json(&body);
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["rejected"], 1);
    assert_eq!(answer["dead_letter_table"], "_flowline_dead_letter");
    assert!(
        answer["reason"]
            .as_str()
            .unwrap_or("")
            .contains("invalid JSON"),
        "{body}"
    );
    let letters = p.query("select origin, reason, raw from _flowline_dead_letter");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert_eq!(letters[0]["raw"], "{oops");
    assert!(
        letters[0]["origin"]
            .as_str()
            .unwrap_or("")
            .starts_with("webhook:/ingest/events#"),
        "{letters:?}"
    );

    let (status, body, _) = post(&stream.ingest(), "{\"id\": 1}\n42\n", &[]);
    assert_eq!(status, 202, "{body}");
    assert_eq!(json(&body)["accepted"], 1);
    assert_eq!(json(&body)["rejected"], 1);
    assert_eq!(p.scalar("select count(*) from raw.events"), 1);
    assert_eq!(p.scalar("select count(*) from _flowline_dead_letter"), 2);

    assert_stopped_cleanly(&stream.stop());
}

#[test]
fn with_a_secret_only_correctly_signed_requests_are_loaded() {
    let secret = "whsec-test-7f3a9c";
    let port = free_port();
    let p = project(port, "secret = \"${WEBHOOK_SECRET}\"", "100ms");
    // In the project's .env, so that `flowline sql` loads the project too.
    p.write(".env", format!("WEBHOOK_SECRET={secret}\n"));
    let stream = Stream::start(&p, port);

    let bad = r#"{"id": 100}"#;
    let (status, body, _) = post(&stream.ingest(), bad, &[]);
    assert_eq!(status, 401, "no signature: {body}");
    let (status, _, _) = post(
        &stream.ingest(),
        bad,
        &[("x-flowline-signature", &sign("wrong-secret", bad))],
    );
    assert_eq!(status, 401, "wrong secret");
    let (status, _, _) = post(
        &stream.ingest(),
        bad,
        &[("x-flowline-signature", &sign(secret, r#"{"id": 101}"#))],
    );
    assert_eq!(status, 401, "signature of another body");

    let first = r#"{"id": 1}"#;
    let (status, body, _) = post(
        &stream.ingest(),
        first,
        &[("X-Flowline-Signature", &sign(secret, first))],
    );
    assert_eq!(status, 200, "{body}");
    let second = r#"{"id": 2}"#;
    let (status, body, _) = post(
        &stream.ingest(),
        second,
        &[("X-Hub-Signature-256", &sign(secret, second))],
    );
    assert_eq!(status, 200, "GitHub's header: {body}");
    assert_eq!(p.scalar("select count(*) from raw.events"), 2);
    assert_eq!(
        p.scalar("select count(*) from raw.events where id >= 100"),
        0
    );

    let out = stream.stop();
    assert_stopped_cleanly(&out);
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !printed.contains(secret),
        "the secret is never printed: {printed}"
    );
}

#[test]
fn with_a_token_requests_need_the_bearer_header() {
    let port = free_port();
    let p = project(port, "token = \"${WEBHOOK_TOKEN}\"", "100ms");
    p.write(".env", "WEBHOOK_TOKEN=tok-4417-abc\n");
    let stream = Stream::start(&p, port);

    let body = r#"{"id": 1}"#;
    let (status, _, _) = post(&stream.ingest(), body, &[]);
    assert_eq!(status, 401, "no header");
    let (status, _, _) = post(
        &stream.ingest(),
        body,
        &[("authorization", "Bearer tok-4417-abd")],
    );
    assert_eq!(status, 401, "wrong token");
    let (status, _, _) = post(&stream.ingest(), body, &[("authorization", "tok-4417-abc")]);
    assert_eq!(status, 401, "no scheme");
    let (status, answer, _) = post(
        &stream.ingest(),
        body,
        &[("authorization", "Bearer tok-4417-abc")],
    );
    assert_eq!(status, 200, "{answer}");
    assert_eq!(p.scalar("select count(*) from raw.events"), 1);

    assert_stopped_cleanly(&stream.stop());
}

#[test]
fn a_body_over_max_body_is_refused_with_413_and_not_loaded() {
    let port = free_port();
    let p = project(port, "max_body = \"1KB\"", "100ms");
    let stream = Stream::start(&p, port);

    let records: Vec<String> = (1..=100)
        .map(|i| format!(r#"{{"id": {i}, "page": "/page/{i}"}}"#))
        .collect();
    let big = format!("[{}]", records.join(","));
    assert!(big.len() > 1024);
    let (status, body, _) = post(&stream.ingest(), big.clone(), &[]);
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("max_body"), "{body}");

    // Without Content-Length (chunked), the limit holds while reading.
    let chunked = block_on(async {
        let chunks: Vec<std::io::Result<String>> =
            vec![Ok(big[..600].to_string()), Ok(big[600..].to_string())];
        let response = reqwest::Client::new()
            .post(stream.ingest())
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .expect("the webhook answers");
        answer(response).await.expect("answer")
    });
    assert_eq!(chunked.0, 413, "{}", chunked.1);

    let (status, body, _) = post(&stream.ingest(), records[0].clone(), &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(p.scalar("select count(*) from raw.events"), 1);

    assert_stopped_cleanly(&stream.stop());
}

#[test]
fn a_request_not_committed_within_ack_timeout_is_answered_503() {
    let port = free_port();
    // Batches close after 5 s, requests give up after 1 s.
    let p = project(port, "ack_timeout = \"1s\"", "5s");
    let stream = Stream::start(&p, port);

    let started = Instant::now();
    let (status, body, retry_after) = post(&stream.ingest(), r#"{"id": 1}"#, &[]);
    let waited = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(body.contains("ack_timeout"), "{body}");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );

    // The request was in the batch in hand: stopping commits it, which is
    // why a client retries with dedupe_key set.
    assert_stopped_cleanly(&stream.stop());
    assert_eq!(p.scalar("select count(*) from raw.events"), 1);
}

#[test]
fn sigterm_commits_the_batch_in_hand_and_answers_its_requests() {
    let port = free_port();
    let p = project(port, "ack_timeout = \"60s\"", "60s");
    let stream = Stream::start(&p, port);

    let url = stream.ingest();
    let client = std::thread::spawn(move || post(&url, r#"{"id": 1}"#, &[]));
    // Wait until the runner holds the request in its batch.
    std::thread::sleep(Duration::from_millis(700));
    let out = stream.stop();
    let (status, body, _) = client.join().expect("client thread");
    assert_eq!(status, 200, "{body}");
    assert_stopped_cleanly(&out);
    assert_eq!(p.scalar("select count(*) from raw.events"), 1);
}

#[test]
fn a_failing_batch_answers_503_and_loads_nothing() {
    let port = free_port();
    let p = TestProject::new();
    p.write(
        "pipelines/events.toml",
        format!(
            "mode = \"stream\"\n\n[source]\nkind = \"webhook\"\nlisten = \"127.0.0.1:{port}\"\n\n\
             [batch]\nmax_wait = \"100ms\"\n\n\
             [[transform]]\nsql = \"select cast(name as integer) as id from input\"\n\n\
             [destination]\ntable = \"raw.events\"\n"
        ),
    );
    let stream = Stream::start(&p, port);
    let (status, body, retry_after) = post(&stream.ingest(), r#"{"name": "not a number"}"#, &[]);
    assert_eq!(status, 503, "{body}");
    assert_eq!(retry_after.as_deref(), Some("1"));
    assert!(
        body.contains("stopped before this request was committed"),
        "{body}"
    );
    let out = stream
        .child
        .wait_with_output()
        .expect("flowline stream ends");
    assert!(
        !out.status.success(),
        "the failed pipeline makes the stream exit non-zero"
    );
    let tables =
        p.query("select count(*) as n from information_schema.tables where table_name = 'events'");
    assert_eq!(tables[0]["n"], 0, "nothing was loaded: {tables:?}");
}

#[test]
fn a_taken_address_fails_clearly() {
    let holder = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = holder.local_addr().expect("addr").port();
    let p = project(port, "", "100ms");
    let out = p.fails(&["stream", "events"]);
    assert!(
        out.contains(&format!(
            "webhook: cannot listen on 127.0.0.1:{port}: address in use"
        )),
        "{out}"
    );
    drop(holder);
}

#[test]
fn a_webhook_pipeline_is_not_run_in_batches() {
    let p = project(free_port(), "", "100ms");
    let out = p.fails(&["run", "events"]);
    assert!(out.contains("flowline stream"), "{out}");
}

/// The fenced blocks of a Markdown page: `(language, body)`.
fn fenced_blocks(page: &str) -> Vec<(String, String)> {
    let mut blocks = Vec::new();
    let mut open: Option<(String, String)> = None;
    for line in page.lines() {
        match (&mut open, line.strip_prefix("```")) {
            (None, Some(lang)) => open = Some((lang.trim().to_string(), String::new())),
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    blocks
}

/// What an example says it prints: its `# ...` comment (for a shell
/// block, the last line; for Python, after the `print(...)`).
fn expected_output(code: &str) -> String {
    let comment = code
        .lines()
        .filter_map(|line| line.split_once("# ").map(|(_, c)| c.trim()))
        .next_back()
        .unwrap_or_default();
    comment.to_string()
}

#[test]
fn the_signature_examples_of_the_page_are_accepted_by_its_own_config() {
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/streams-webhook.md"
    ))
    .expect("docs/streams-webhook.md");
    let blocks = fenced_blocks(&page);
    let port = free_port();
    let here = |text: &str| text.replace("127.0.0.1:8088", &format!("127.0.0.1:{port}"));
    let config = blocks
        .iter()
        .find(|(lang, _)| lang == "toml")
        .map(|(_, body)| here(body))
        .expect("the page's pipeline");
    let (secret, token) = ("whsec-0f9e8d7c", "tok-1a2b3c");
    let p = TestProject::new();
    p.write("pipelines/events.toml", &config);
    p.write(
        ".env",
        format!("WEBHOOK_SECRET={secret}\nWEBHOOK_TOKEN={token}\n"),
    );
    let stream = Stream::start(&p, port);

    let examples: Vec<&(String, String)> = blocks
        .iter()
        .filter(|(lang, body)| (lang == "sh" || lang == "python") && body.contains("/ingest/"))
        .collect();
    assert_eq!(examples.len(), 3, "curl, openssl and Python: {examples:?}");
    for (lang, code) in examples {
        let program = if lang == "sh" { "bash" } else { "python3" };
        let out = std::process::Command::new(program)
            .arg("-c")
            .arg(here(code))
            .env("WEBHOOK_SECRET", secret)
            .env("WEBHOOK_TOKEN", token)
            .env_remove("http_proxy")
            .env_remove("HTTP_PROXY")
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && printed.trim() == expected_output(code),
            "this example of streams-webhook.md:\n{code}\nprinted {printed:?}, not {:?}\n{}",
            expected_output(code),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = stream.stop();
    assert_stopped_cleanly(&out);
    assert_eq!(p.scalar("select count(*) from raw.events"), 4);
}
