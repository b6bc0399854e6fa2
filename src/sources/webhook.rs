//! `kind = "webhook"`: an HTTP endpoint that turns POSTed records into rows.
//!
//! The source runs a small HTTP server (bound when the stream starts, shut
//! down when the source is dropped). `POST <path>` takes a JSON object, a
//! JSON array of objects or NDJSON (or text / CSV lines, per `format`).
//! The handler puts the request on a bounded queue to the stream runner and
//! answers only once the batch holding it is committed: the runner's
//! `ack(seq)` is what releases the answer. A client that gets no 2xx (a
//! timeout, a 503) retries, and `dedupe_key` drops the copies of requests
//! that were committed after all.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Deserializer};
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot};

use super::stream::{Format, Message, PayloadOptions, StreamSource, read_config};
use crate::core::diagnostic::SpannedError;
use crate::core::error::{Error, Result};
use crate::core::schema::SchemaFn;
use crate::core::{Mode, Workspace};
use crate::sources::SourceConnector;
use schemars::JsonSchema;
use toml::Spanned;
use toml::de::DeValue;

/// Requests accepted by the server and not yet taken by the runner, at most.
/// With `max_body`, this bounds the memory the queue can hold.
const QUEUE_REQUESTS: usize = 256;

/// What a 503 tells the client, in seconds, in `Retry-After`.
const RETRY_AFTER_SECONDS: &str = "1";

/// The header carrying flowline's own signature.
const SIGNATURE_HEADER: &str = "x-flowline-signature";

/// GitHub's name for the same signature.
const GITHUB_SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Where dead letters go, for the answers that mention it.
const DEAD_LETTER_TABLE: &str = "_flowline_dead_letter";

/// `[source] kind = "webhook"`.
#[derive(Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookSourceConfig {
    /// The address the server binds, `host:port`. Default `127.0.0.1:8088`
    /// (this machine only; `0.0.0.0:8088` listens on every interface).
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The path records are POSTed to. Default `/ingest/<pipeline name>`.
    #[serde(default)]
    pub path: Option<String>,
    /// The largest request body accepted, in bytes: `"10MB"`, `"512KB"`
    /// (1 KB = 1024 bytes) or a number. Larger bodies are answered 413.
    /// Default `"10MB"`.
    #[serde(default = "default_max_body", deserialize_with = "deserialize_size")]
    #[schemars(with = "crate::core::schema::ByteSize", extend("default" = "10MB"))]
    pub max_body: u64,
    /// When set, every request must carry `X-Flowline-Signature` (or
    /// `X-Hub-Signature-256`): `sha256=<hex of HMAC-SHA256(secret, body)>`.
    #[serde(default)]
    pub secret: Option<String>,
    /// When set, every request must carry `Authorization: Bearer <token>`.
    #[serde(default)]
    pub token: Option<String>,
    /// How long a request waits to be queued and committed before it is
    /// answered 503. Default `10s`.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ack_timeout: Duration,
    /// `format`, `schema`, `columns`, `delimiter`: how payloads are read.
    #[serde(skip)]
    pub payload: PayloadOptions,
}

impl fmt::Debug for WebhookSourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hidden = |value: &Option<String>| value.as_ref().map(|_| "***");
        f.debug_struct("WebhookSourceConfig")
            .field("listen", &self.listen)
            .field("path", &self.path)
            .field("max_body", &self.max_body)
            .field("secret", &hidden(&self.secret))
            .field("token", &hidden(&self.token))
            .field("ack_timeout", &self.ack_timeout)
            .field("payload", &self.payload)
            .finish()
    }
}

fn default_listen() -> String {
    "127.0.0.1:8088".into()
}
fn default_max_body() -> u64 {
    10 * 1024 * 1024
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(10)
}

/// `max_body` as a string (`"10MB"`) or a number of bytes.
fn deserialize_size<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    struct SizeVisitor;
    impl serde::de::Visitor<'_> for SizeVisitor {
        type Value = u64;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a size like \"10MB\", \"512KB\" or a number of bytes")
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u64, E> {
            parse_size(&v.to_string()).map_err(E::custom)
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u64, E> {
            parse_size(&v.to_string()).map_err(E::custom)
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<u64, E> {
            parse_size(v).map_err(E::custom)
        }
    }
    deserializer.deserialize_any(SizeVisitor)
}

/// Parses a size: a number of bytes, optionally followed by `B`, `KB`,
/// `MB` or `GB` (powers of 1024; `KiB`, `MiB`, `GiB` and `K`, `M`, `G`
/// too, in any case).
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let invalid = || {
        format!(
            "max_body = {text:?}: expected a size like \"10MB\", \"512KB\" or a number of bytes"
        )
    };
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let number: u64 = text[..digits].parse().map_err(|_| invalid())?;
    let unit = match text[digits..].trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(invalid()),
    };
    match number.checked_mul(unit) {
        Some(0) => Err(format!("max_body = {text:?}: must be at least 1 byte")),
        Some(bytes) if usize::try_from(bytes).is_ok() => Ok(bytes),
        _ => Err(format!("max_body = {text:?}: too large for this machine")),
    }
}

impl WebhookSourceConfig {
    /// How payloads are read.
    pub fn payload(&self) -> PayloadOptions {
        self.payload.clone()
    }

    /// The path served for `pipeline`, checked.
    fn resolve_path(&self, pipeline: &str) -> Result<String> {
        let (path, origin) = match &self.path {
            Some(path) => (path.clone(), "path"),
            None => (format!("/ingest/{pipeline}"), "the default path"),
        };
        let allowed = |c: char| c.is_ascii_alphanumeric() || "/-_.~".contains(c);
        if !path.starts_with('/') || !path.chars().all(allowed) || path.contains("//") {
            return Err(Error::Config(format!(
                "[source] {origin} {path:?}: a webhook path starts with / and holds only letters, digits, /, -, _, . and ~; set path = \"/ingest/name\""
            )));
        }
        if path == "/healthz" {
            return Err(Error::Config(
                "[source] path = \"/healthz\" is the health check: pick another path".into(),
            ));
        }
        Ok(path)
    }
}

/// One accepted request on its way to the runner.
struct Ingest {
    /// The messages it holds (one, or one per CSV line).
    parts: Vec<Bytes>,
    /// When it arrived, ms since the epoch.
    received_ms: i64,
    /// Fired once the batch holding its last message is committed.
    committed: oneshot::Sender<()>,
}

/// What the request handlers share.
struct Endpoint {
    queue: mpsc::Sender<Ingest>,
    payload: PayloadOptions,
    secret: Option<Vec<u8>>,
    token: Option<String>,
    max_body: u64,
    ack_timeout: Duration,
}

/// Serves a webhook endpoint and hands its requests to the stream runner.
pub struct WebhookSource {
    requests: mpsc::Receiver<Ingest>,
    /// Messages of a received request not yet handed to the runner.
    ready: VecDeque<Message>,
    /// Requests handed over and not yet committed: (seq of their last
    /// message, what tells their handler).
    waiting: VecDeque<(u64, oneshot::Sender<()>)>,
    next_seq: u64,
    /// `webhook:<path>`, the start of every message's origin.
    origin: String,
    /// Stops the server when the source is dropped.
    shutdown: Option<oneshot::Sender<()>>,
}

impl WebhookSource {
    /// Binds `config.listen` and starts serving the endpoint of `pipeline`.
    /// Fails when the address cannot be bound or the config is wrong.
    pub async fn start(config: WebhookSourceConfig, pipeline: &str) -> Result<Self> {
        let path = config.resolve_path(pipeline)?;
        for (key, value) in [("secret", &config.secret), ("token", &config.token)] {
            if let Some(value) = value {
                if value.is_empty() {
                    return Err(Error::Config(format!(
                        "[source] {key} is empty: set it (e.g. {key} = \"${{WEBHOOK_{}}}\") or remove it",
                        key.to_ascii_uppercase()
                    )));
                }
                crate::core::secrets::register(value);
            }
        }
        if config.ack_timeout.is_zero() {
            return Err(Error::Config(
                "[source] ack_timeout must be more than 0, e.g. \"10s\"".into(),
            ));
        }
        let max_body = usize::try_from(config.max_body)
            .map_err(|_| Error::Config("[source] max_body is too large for this machine".into()))?;
        let listener = tokio::net::TcpListener::bind(&config.listen)
            .await
            .map_err(|e| {
                Error::Other(format!(
                    "webhook: cannot listen on {}: {}",
                    config.listen,
                    bind_failure(&e)
                ))
            })?;
        let address = listener
            .local_addr()
            .map_or_else(|_| config.listen.clone(), |a| a.to_string());

        let (queue, requests) = mpsc::channel(QUEUE_REQUESTS);
        let endpoint = Arc::new(Endpoint {
            queue,
            payload: config.payload(),
            secret: config.secret.as_ref().map(|s| s.as_bytes().to_vec()),
            token: config.token.clone(),
            max_body: config.max_body,
            ack_timeout: config.ack_timeout,
        });
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route(&path, post(ingest))
            .layer(DefaultBodyLimit::max(max_body))
            .with_state(endpoint);
        let (shutdown, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!("webhook: the server stopped: {e}");
            }
        });
        tracing::info!(pipeline = %pipeline, "webhook: listening on http://{address}{path}");
        Ok(WebhookSource {
            requests,
            ready: VecDeque::new(),
            waiting: VecDeque::new(),
            next_seq: 0,
            origin: format!("webhook:{path}"),
            shutdown: Some(shutdown),
        })
    }
}

impl Drop for WebhookSource {
    fn drop(&mut self) {
        // Requests still waiting see their sender dropped and get a 503;
        // the server stops accepting and closes once they are answered.
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Why binding failed, in words.
fn bind_failure(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "address in use (another process, or another webhook pipeline, holds it): set another listen = \"host:port\"".into()
        }
        std::io::ErrorKind::AddrNotAvailable => "no such address on this machine".into(),
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (ports below 1024 need privileges)".into()
        }
        _ => e.to_string(),
    }
}

#[async_trait::async_trait]
impl StreamSource for WebhookSource {
    async fn recv(&mut self) -> Result<Option<Message>> {
        if let Some(message) = self.ready.pop_front() {
            return Ok(Some(message));
        }
        let Some(ingest) = self.requests.recv().await else {
            return Ok(None);
        };
        // From here on nothing awaits: the request cannot be lost to a
        // cancelled `recv`.
        for payload in ingest.parts {
            self.next_seq += 1;
            self.ready.push_back(Message {
                payload,
                origin: Arc::from(format!("{}#{}", self.origin, self.next_seq)),
                published_ms: Some(ingest.received_ms),
                seq: self.next_seq,
            });
        }
        self.waiting.push_back((self.next_seq, ingest.committed));
        Ok(self.ready.pop_front())
    }

    async fn ack(&mut self, seq: u64) -> Result<()> {
        while self.waiting.front().is_some_and(|(last, _)| *last <= seq) {
            if let Some((_, committed)) = self.waiting.pop_front() {
                // The client may have given up already; nothing to tell then.
                let _ = committed.send(());
            }
        }
        Ok(())
    }

    async fn lag(&mut self) -> Option<u64> {
        Some((self.requests.len() + self.ready.len()) as u64)
    }
}

/// An answer with a JSON body.
fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// A refusal: `{"error": "..."}`.
fn refuse(status: StatusCode, error: impl fmt::Display) -> Response {
    answer(status, json!({ "error": error.to_string() }))
}

/// A 503 asking the client to come back.
fn retry_later(error: impl fmt::Display) -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
        axum::Json(json!({ "error": error.to_string() })),
    )
        .into_response()
}

/// `POST <path>`: checks, queues, and answers once committed.
async fn ingest(State(endpoint): State<Arc<Endpoint>>, request: Request) -> Response {
    let headers = request.headers();
    if let Some(token) = &endpoint.token
        && !bearer_matches(headers, token)
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token: send Authorization: Bearer <token>",
        );
    }
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the body is larger than max_body ({} bytes): send fewer records per request",
                endpoint.max_body
            ),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > endpoint.max_body) {
        return too_large();
    }
    let signature = signature_header(headers);
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large();
        }
        Err(rejection) => return refuse(rejection.status(), rejection.body_text()),
    };
    if let Some(secret) = &endpoint.secret
        && let Err(reason) = verify_signature(secret, signature.as_deref(), &body)
    {
        return refuse(StatusCode::UNAUTHORIZED, reason);
    }
    if body.trim_ascii().is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "empty body: nothing to load");
    }
    let prepared = prepare(body, &endpoint.payload);
    if prepared.tally.accepted + prepared.tally.rejected == 0 {
        return answer(StatusCode::OK, json!({ "accepted": 0, "rejected": 0 }));
    }

    // The client waits at most ack_timeout from here: to be queued, then
    // for the commit.
    let deadline = tokio::time::Instant::now() + endpoint.ack_timeout;
    let (committed, is_committed) = oneshot::channel();
    let request = Ingest {
        parts: prepared.parts,
        received_ms: chrono::Utc::now().timestamp_millis(),
        committed,
    };
    match tokio::time::timeout_at(deadline, endpoint.queue.send(request)).await {
        Ok(Ok(())) => {}
        Ok(Err(_)) => return retry_later("the stream is stopping: nothing was loaded; retry"),
        Err(_) => {
            return retry_later(format!(
                "the pipeline is not keeping up: nothing was queued within ack_timeout ({}); retry",
                humantime::format_duration(endpoint.ack_timeout)
            ));
        }
    }
    match tokio::time::timeout_at(deadline, is_committed).await {
        Ok(Ok(())) => prepared.tally.into_response(),
        Ok(Err(_)) => retry_later(
            "the stream stopped before this request was committed; retry (dedupe_key drops rows already loaded)",
        ),
        Err(_) => retry_later(format!(
            "not committed within ack_timeout ({}): it may still be loaded; retry (dedupe_key drops the copy)",
            humantime::format_duration(endpoint.ack_timeout)
        )),
    }
}

/// Whether `Authorization: Bearer <token>` is there, compared in constant time.
fn bearer_matches(headers: &HeaderMap, token: &str) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, given)) = value.trim().split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
}

/// The signature the request carries: flowline's header, else GitHub's.
fn signature_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get(SIGNATURE_HEADER)
        .or_else(|| headers.get(GITHUB_SIGNATURE_HEADER))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// Checks `signature` (`sha256=<hex>`) against HMAC-SHA256(`secret`, `body`)
/// in constant time; the reason when it does not match.
pub fn verify_signature(
    secret: &[u8],
    signature: Option<&str>,
    body: &[u8],
) -> std::result::Result<(), &'static str> {
    let signature = signature.ok_or(
        "missing signature: send X-Flowline-Signature: sha256=<hex of HMAC-SHA256(secret, body)>",
    )?;
    let digest = signature
        .trim()
        .strip_prefix("sha256=")
        .ok_or("the signature must look like sha256=<hex>")?;
    let expected = hex::decode(digest).map_err(|_| "the signature is not hexadecimal")?;
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret).map_err(|_| "the secret cannot key an HMAC")?;
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| "the signature does not match the body and secret")
}

/// A request body cut into messages, with what the handler will answer.
struct Prepared {
    parts: Vec<Bytes>,
    tally: Tally,
}

/// The records of a request: how many go to the table, how many to the
/// dead-letter table (and why the first did).
#[derive(Debug, Default, PartialEq)]
struct Tally {
    accepted: u64,
    rejected: u64,
    reason: Option<String>,
}

impl Tally {
    fn reject(&mut self, reason: String) {
        self.rejected += 1;
        self.reason.get_or_insert(reason);
    }

    /// 200 when every record was loaded; 202 when some went to the
    /// dead-letter table instead (committed there, so not to be resent).
    fn into_response(self) -> Response {
        if self.rejected == 0 {
            return answer(
                StatusCode::OK,
                json!({ "accepted": self.accepted, "rejected": 0 }),
            );
        }
        answer(
            StatusCode::ACCEPTED,
            json!({
                "accepted": self.accepted,
                "rejected": self.rejected,
                "dead_letter_table": DEAD_LETTER_TABLE,
                "reason": self.reason,
            }),
        )
    }
}

/// Cuts `body` into messages the way the payload decoder reads them, and
/// counts the records it will accept or send to the dead-letter table.
fn prepare(body: Bytes, options: &PayloadOptions) -> Prepared {
    let mut tally = Tally::default();
    let parts = match options.format {
        Format::Json => {
            let body = one_line_object(body);
            tally_json(&body, &mut tally);
            vec![body]
        }
        Format::Text => {
            match std::str::from_utf8(&body) {
                Ok(_) => tally.accepted += 1,
                Err(e) => tally.reject(format!("not UTF-8 text: {e}")),
            }
            vec![body]
        }
        Format::Csv => csv_lines(&body, options, &mut tally),
    };
    Prepared { parts, tally }
}

/// A single pretty-printed JSON object on one line: the decoder reads a
/// payload that is not an array line by line. JSON strings cannot hold raw
/// line breaks, so replacing them changes no value.
fn one_line_object(body: Bytes) -> Bytes {
    let trimmed = body.trim_ascii();
    let multiline = trimmed.contains(&b'\n') || trimmed.contains(&b'\r');
    if !multiline
        || !trimmed.starts_with(b"{")
        || serde_json::from_slice::<serde::de::IgnoredAny>(trimmed).is_err()
    {
        return body;
    }
    Bytes::from(
        trimmed
            .iter()
            .map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b })
            .collect::<Vec<u8>>(),
    )
}

/// Counts the JSON records of `payload` as the payload decoder splits them:
/// an array of objects, else one object per line.
fn tally_json(payload: &[u8], tally: &mut Tally) {
    let trimmed = payload.trim_ascii();
    if trimmed.starts_with(b"[") {
        match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(trimmed) {
            Ok(items) => {
                for item in items {
                    if item.get().starts_with('{') {
                        tally.accepted += 1;
                    } else {
                        let found: String = item.get().chars().take(60).collect();
                        tally.reject(format!("expected a JSON object, found {found}"));
                    }
                }
            }
            Err(e) => tally.reject(format!("invalid JSON: {e}")),
        }
        return;
    }
    for line in trimmed
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
    {
        match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            Ok(_) if line.starts_with(b"{") => tally.accepted += 1,
            Ok(_) => tally.reject("expected a JSON object".into()),
            Err(e) => tally.reject(format!("invalid JSON: {e}")),
        }
    }
}

/// The CSV records of `body`, one message each (quoted fields may span
/// lines); a record without exactly `columns` fields is counted rejected.
fn csv_lines(body: &Bytes, options: &PayloadOptions, tally: &mut Tally) -> Vec<Bytes> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(options.delimiter_byte())
        .from_reader(body.as_ref());
    let mut record = csv::ByteRecord::new();
    let mut parts = Vec::new();
    let mut start = 0usize;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {
                let end = usize::try_from(reader.position().byte())
                    .unwrap_or(body.len())
                    .min(body.len());
                parts.push(body.slice(start..end));
                start = end;
                if record.len() == options.columns.len() {
                    tally.accepted += 1;
                } else {
                    tally.reject(format!(
                        "{} fields, expected {}",
                        record.len(),
                        options.columns.len()
                    ));
                }
            }
            Ok(false) => break,
            Err(e) => {
                // The rest goes to the decoder as one message, which
                // records it as a dead letter with the reason.
                parts.push(body.slice(start.min(body.len())..));
                tally.reject(format!("invalid CSV: {e}"));
                break;
            }
        }
    }
    parts
}

#[async_trait::async_trait]
impl SourceConnector for WebhookSourceConfig {
    fn parse(table: Spanned<DeValue<'_>>) -> std::result::Result<Self, SpannedError> {
        let (_, payload, config) = read_config::<Self>(table, false)?;
        Ok(WebhookSourceConfig { payload, ..config })
    }

    fn shared_schemas() -> Vec<SchemaFn> {
        vec![PayloadOptions::json_schema]
    }
    fn kind() -> &'static str {
        "webhook"
    }

    fn mode() -> Mode {
        Mode::Stream
    }

    fn summary() -> &'static str {
        "An HTTP endpoint that records are POSTed to"
    }

    fn validate(&self, workspace: &Workspace, _pipeline: &str) -> Result<Vec<String>> {
        super::stream::validate(None, &self.payload, workspace)
    }

    fn payload_options(&self) -> Option<PayloadOptions> {
        Some(self.payload())
    }

    async fn stream_reader(
        &self,
        workspace: &Workspace,
        pipeline: &str,
        state: Option<&serde_json::Value>,
    ) -> Result<Box<dyn StreamSource>> {
        let _ = (workspace, state);
        Ok(Box::new(
            WebhookSource::start(self.clone(), pipeline).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("key");
        mac.update(body);
        format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn sizes_parse_with_or_without_units() {
        assert_eq!(parse_size("10MB"), Ok(10 * 1024 * 1024));
        assert_eq!(parse_size("512KB"), Ok(512 * 1024));
        assert_eq!(parse_size("512 kb"), Ok(512 * 1024));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2048"), Ok(2048));
        assert_eq!(parse_size("100B"), Ok(100));
        assert!(parse_size("0").is_err());
        assert!(parse_size("MB").is_err());
        assert!(parse_size("10XB").unwrap_err().contains("expected a size"));
        assert!(parse_size("-5KB").is_err());
        assert!(parse_size("99999999999999999999GB").is_err());
    }

    #[test]
    fn max_body_reads_from_toml_as_text_or_number() {
        let config: WebhookSourceConfig =
            crate::sources::parse_for_test("max_body = \"1KB\"").expect("text");
        assert_eq!(config.max_body, 1024);
        let config: WebhookSourceConfig =
            crate::sources::parse_for_test("max_body = 300").expect("number");
        assert_eq!(config.max_body, 300);
        let config: WebhookSourceConfig = crate::sources::parse_for_test("").expect("defaults");
        assert_eq!(config.max_body, 10 * 1024 * 1024);
        assert_eq!(config.listen, "127.0.0.1:8088");
        assert_eq!(config.ack_timeout, Duration::from_secs(10));
        let err = crate::sources::parse_for_test::<WebhookSourceConfig>("max_body = \"lots\"")
            .expect_err("not a size");
        assert!(err.message.contains("max_body"), "{err}");
    }

    #[test]
    fn a_signature_matches_only_its_body_and_secret() {
        let body = br#"{"id": 1}"#;
        let good = sign("s3cret", body);
        assert_eq!(verify_signature(b"s3cret", Some(&good), body), Ok(()));
        let upper = format!("sha256={}", good["sha256=".len()..].to_ascii_uppercase());
        assert_eq!(verify_signature(b"s3cret", Some(&upper), body), Ok(()));
        assert!(verify_signature(b"other", Some(&good), body).is_err());
        assert!(verify_signature(b"s3cret", Some(&good), br#"{"id": 2}"#).is_err());
        assert!(
            verify_signature(b"s3cret", None, body)
                .unwrap_err()
                .contains("missing")
        );
        let bare = good.trim_start_matches("sha256=");
        assert!(
            verify_signature(b"s3cret", Some(bare), body)
                .unwrap_err()
                .contains("sha256=")
        );
        assert!(
            verify_signature(b"s3cret", Some("sha256=zz"), body)
                .unwrap_err()
                .contains("hex")
        );
        assert!(verify_signature(b"s3cret", Some("sha256=abcd"), body).is_err());
    }

    #[test]
    fn either_signature_header_is_read_and_bearer_tokens_compare_whole() {
        let mut headers = HeaderMap::new();
        assert_eq!(signature_header(&headers), None);
        headers.insert(GITHUB_SIGNATURE_HEADER, "sha256=ab".parse().expect("value"));
        assert_eq!(signature_header(&headers).as_deref(), Some("sha256=ab"));
        headers.insert(SIGNATURE_HEADER, "sha256=cd".parse().expect("value"));
        assert_eq!(signature_header(&headers).as_deref(), Some("sha256=cd"));

        let mut headers = HeaderMap::new();
        assert!(!bearer_matches(&headers, "tok-123"));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer tok-123".parse().expect("value"),
        );
        assert!(bearer_matches(&headers, "tok-123"));
        assert!(!bearer_matches(&headers, "tok-12"));
        headers.insert(
            header::AUTHORIZATION,
            "bearer tok-123".parse().expect("value"),
        );
        assert!(bearer_matches(&headers, "tok-123"));
        headers.insert(
            header::AUTHORIZATION,
            "Basic tok-123".parse().expect("value"),
        );
        assert!(!bearer_matches(&headers, "tok-123"));
    }

    #[test]
    fn bodies_are_counted_as_the_decoder_reads_them() {
        let json = PayloadOptions::default();
        let count = |body: &str| {
            let p = prepare(Bytes::from(body.to_string()), &json);
            (p.parts.len(), p.tally.accepted, p.tally.rejected)
        };
        assert_eq!(count(r#"{"a": 1}"#), (1, 1, 0));
        assert_eq!(count(r#"[{"a": 1}, {"a": 2}, 3]"#), (1, 2, 1));
        assert_eq!(count("{\"a\": 1}\n\n{\"a\": 2}\n{oops\n"), (1, 2, 1));
        assert_eq!(count("{oops"), (1, 0, 1));
        assert_eq!(count("[]"), (1, 0, 0));

        let pretty = prepare(Bytes::from("{\n  \"a\": \"x\",\n  \"b\": 2\n}\n"), &json);
        assert_eq!((pretty.tally.accepted, pretty.tally.rejected), (1, 0));
        assert!(!pretty.parts[0].contains(&b'\n'));

        let csv = PayloadOptions {
            format: Format::Csv,
            columns: vec!["id".into(), "page".into()],
            delimiter: ',',
            ..Default::default()
        };
        let p = prepare(Bytes::from("1,/a\n2,\"/b\nc\"\n3\n"), &csv);
        assert_eq!(p.parts.len(), 3);
        assert_eq!(p.parts[1], Bytes::from("2,\"/b\nc\"\n"));
        assert_eq!((p.tally.accepted, p.tally.rejected), (2, 1));
    }

    #[test]
    fn paths_default_to_the_pipeline_and_are_checked() {
        let mut config: WebhookSourceConfig = crate::sources::parse_for_test("").expect("defaults");
        assert_eq!(
            config.resolve_path("orders").expect("path"),
            "/ingest/orders"
        );
        config.path = Some("/hooks/github".into());
        assert_eq!(
            config.resolve_path("orders").expect("path"),
            "/hooks/github"
        );
        for bad in ["hooks", "/a/{id}", "/healthz", "/a b", "/a//b"] {
            config.path = Some(bad.into());
            assert!(config.resolve_path("orders").is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_output_hides_the_secret_and_token() {
        let config: WebhookSourceConfig =
            crate::sources::parse_for_test("secret = \"hunter22\"\ntoken = \"tok-999\"")
                .expect("config");
        let shown = format!("{config:?}");
        assert!(
            !shown.contains("hunter22") && !shown.contains("tok-999"),
            "{shown}"
        );
    }
}
