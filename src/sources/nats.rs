//! `kind = "nats"`: a continuous consumer of one NATS JetStream stream,
//! through a durable pull consumer.
//!
//! A background task pulls messages (the server delivers at most `prefetch`
//! unacknowledged ones) into a bounded channel, so a slow warehouse slows
//! consumption instead of growing memory. The client reconnects by itself,
//! with backoff, and the task sets the pull up again after errors. Each
//! message is acknowledged on its own (`AckPolicy::Explicit`), only once the
//! runner says the batch holding it is committed. A message that is not
//! acknowledged within `ack_wait` (the process died, or a commit took that
//! long) is delivered again, and `dedupe_key` drops the copies.
//!
//! Why not `AckPolicy::All`: after a crash, the messages the dead process
//! held stay pending until `ack_wait` passes, while newer ones are delivered
//! at once; acknowledging a newer one would acknowledge the older pending
//! ones too, before they were ever committed.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::consumer::pull::{Config as PullConfig, MessagesErrorKind};
use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::stream::{Endpoint, Message, PayloadOptions, StreamSource, read_config};
use crate::core::diagnostic::SpannedError;
use crate::core::error::{ConnectionFailure, Error, Result};
use crate::core::schema::SchemaFn;
use crate::core::{Mode, Workspace};
use crate::sources::SourceConnector;
use schemars::JsonSchema;
use toml::Spanned;
use toml::de::DeValue;

/// `[source] kind = "nats"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(transform = |s: &mut schemars::Schema| crate::core::schema::alias(s, "max_ack_pending", "prefetch"))]
pub struct NatsSourceConfig {
    /// The JetStream stream read.
    pub stream: String,
    /// The durable pull consumer's name; created if it does not exist, and
    /// its settings updated to these if it does.
    pub consumer: String,
    /// Only messages on subjects matching this filter (wildcards allowed).
    /// Default: every subject of the stream.
    #[serde(default)]
    pub subject: Option<String>,
    /// Create the stream if it does not exist, with `subjects = [subject]`
    /// (or `["<stream>.>"]` without `subject`). Default false.
    #[serde(default)]
    pub create_stream: bool,
    /// Messages delivered but not yet acknowledged, at most (the consumer's
    /// `max_ack_pending`). Keep it above `[batch] max_rows`. Default 20000.
    #[serde(default = "default_prefetch", alias = "max_ack_pending")]
    pub prefetch: u32,
    /// How long the server waits for an acknowledgement before delivering a
    /// message again (the consumer's `ack_wait`). After a crash, the
    /// messages the dead process held come back once this has passed.
    /// Default 30s.
    #[serde(default = "default_ack_wait", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub ack_wait: Duration,
    /// `connection` or `url`: where the broker is.
    #[serde(skip)]
    pub endpoint: Endpoint,
    /// `format`, `schema`, `columns`, `delimiter`: how payloads are read.
    #[serde(skip)]
    pub payload: PayloadOptions,
}

fn default_prefetch() -> u32 {
    20_000
}
fn default_ack_wait() -> Duration {
    Duration::from_secs(30)
}

/// Messages asked for in one pull request, at most.
const PULL_BATCH: usize = 1_000;
/// How long acknowledging one batch may take before giving up on it (the
/// server then delivers those messages again after `ack_wait`).
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long asking for the consumer's lag may take.
const LAG_TIMEOUT: Duration = Duration::from_secs(2);

impl NatsSourceConfig {
    /// How payloads are read.
    pub fn payload(&self) -> PayloadOptions {
        self.payload.clone()
    }

    /// The subjects a stream created by `create_stream` takes.
    fn stream_subject(&self) -> String {
        self.subject
            .clone()
            .unwrap_or_else(|| format!("{}.>", self.stream))
    }

    /// The durable pull consumer's settings.
    fn consumer_config(&self) -> PullConfig {
        PullConfig {
            durable_name: Some(self.consumer.clone()),
            filter_subject: self.subject.clone().unwrap_or_default(),
            deliver_policy: DeliverPolicy::All,
            ack_policy: AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_ack_pending: i64::from(self.prefetch.max(1)),
            ..PullConfig::default()
        }
    }

    /// `stream/consumer`, for messages.
    fn describe(&self) -> String {
        format!("stream {:?}, consumer {:?}", self.stream, self.consumer)
    }
}

/// A message on its way to the runner, with the subject its
/// acknowledgement goes to (an empty message there is `+ACK`). Only the
/// subject is kept, not an `Acker`: that carries a clone of the whole
/// JetStream context, and each of a million messages would move it around.
struct Delivered {
    message: Message,
    reply: Option<async_nats::Subject>,
}

/// Consumes a NATS JetStream stream.
pub struct NatsSource {
    deliveries: mpsc::Receiver<Delivered>,
    /// Delivered, not yet acknowledged, in delivery order.
    unacked: VecDeque<(u64, async_nats::Subject)>,
    /// For flushing acknowledgements.
    client: async_nats::Client,
    /// For the consumer's lag.
    consumer: PullConsumer,
    consuming: tokio::task::JoinHandle<()>,
    /// The acknowledgements of the last committed batch, still being sent
    /// while the next batch fills.
    acking: Option<tokio::task::JoinHandle<()>>,
}

impl NatsSource {
    /// Connects to `url`, sets up the stream (when `create_stream`) and the
    /// durable consumer, and starts consuming. Fails if the first connection
    /// or the setup fails; later losses are retried.
    pub async fn start(config: NatsSourceConfig, url: String) -> Result<Self> {
        let address = server_address(&url);
        let client = connect(&url, &address, config.prefetch).await?;
        let jetstream = jetstream::new(client.clone());
        let consumer = set_up(&jetstream, &config, &address).await?;
        let (tx, rx) = mpsc::channel(usize::try_from(config.prefetch.max(1)).unwrap_or(20_000));
        let consuming = tokio::spawn(consume(
            jetstream,
            config,
            address,
            tx,
            Some(consumer.clone()),
        ));
        Ok(NatsSource {
            deliveries: rx,
            unacked: VecDeque::new(),
            client,
            consumer,
            consuming,
            acking: None,
        })
    }
}

impl Drop for NatsSource {
    fn drop(&mut self) {
        self.consuming.abort();
    }
}

/// Where the server is, without credentials, for messages.
fn server_address(url: &str) -> String {
    let with_scheme = if url.contains("://") {
        url.to_string()
    } else {
        format!("nats://{url}")
    };
    url::Url::parse(&with_scheme)
        .ok()
        .and_then(|u| {
            u.host_str()
                .map(|host| format!("{host}:{}", u.port().unwrap_or(4222)))
        })
        .unwrap_or_else(|| "the server".into())
}

/// The wait before reconnect attempt `attempt` (0, 1, ...): 200 ms,
/// doubling, at most 30 s.
fn backoff(attempt: usize) -> Duration {
    let doublings = u32::try_from(attempt.min(8)).unwrap_or(8);
    (Duration::from_millis(200) * 2u32.pow(doublings)).min(Duration::from_secs(30))
}

/// Opens the connection; the client reconnects by itself afterwards, and
/// says so in the log.
async fn connect(url: &str, address: &str, prefetch: u32) -> Result<async_nats::Client> {
    let events = address.to_string();
    let connected_before = Arc::new(AtomicBool::new(false));
    async_nats::ConnectOptions::new()
        .name("flowline")
        .connection_timeout(Duration::from_secs(5))
        // Room for every message the server may have delivered unacknowledged.
        .subscription_capacity((prefetch as usize + PULL_BATCH).max(65_536))
        // Attempt 1 is the first connection or the first reconnection: at
        // once; then 200 ms, doubling, at most 30 s.
        .reconnect_delay_callback(|attempts| match attempts {
            0 | 1 => Duration::ZERO,
            n => backoff(n - 2),
        })
        .event_callback(move |event| {
            let address = events.clone();
            let connected_before = connected_before.clone();
            async move {
                match event {
                    async_nats::Event::Connected => {
                        if connected_before.swap(true, Ordering::Relaxed) {
                            tracing::info!("nats {address}: reconnected")
                        }
                    }
                    async_nats::Event::Disconnected => tracing::warn!(
                        "nats {address}: connection lost; reconnecting"
                    ),
                    async_nats::Event::SlowConsumer(_) => tracing::warn!(
                        "nats {address}: messages arrived faster than they were read and the client dropped some; the server delivers them again after ack_wait"
                    ),
                    async_nats::Event::Closed => {}
                    other => tracing::warn!("nats {address}: {other}"),
                }
            }
        })
        .connect(url)
        .await
        .map_err(|e| {
            let failure = ConnectionFailure::of(&e);
            Error::connection(
                format!("nats {address}"),
                failure,
                format!("connecting: {e}"),
                Some(Box::new(e)),
            )
        })
}

/// Finds (or creates) the stream and creates or updates the consumer.
async fn set_up(
    jetstream: &jetstream::Context,
    config: &NatsSourceConfig,
    address: &str,
) -> Result<PullConsumer> {
    let fail = |what: &str, e: &dyn std::fmt::Display| Error::Client {
        context: format!("nats {address}, {}: {what}", config.describe()),
        message: e.to_string(),
        source: None,
    };
    let stream = if config.create_stream {
        jetstream
            .get_or_create_stream(jetstream::stream::Config {
                name: config.stream.clone(),
                subjects: vec![config.stream_subject()],
                ..Default::default()
            })
            .await
            .map_err(|e| fail("creating the stream", &e))?
    } else {
        jetstream.get_stream(&config.stream).await.map_err(|e| {
            let missing = matches!(
                e.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            );
            if missing {
                Error::Config(format!(
                    "nats {address}: no JetStream stream {:?}; create it, or set create_stream = true in [source]",
                    config.stream
                ))
            } else {
                fail("reading the stream", &e)
            }
        })?
    };
    stream
        .create_consumer(config.consumer_config())
        .await
        .map_err(|e| fail("creating the consumer", &e))
}

/// Pulls messages until the runner goes away, setting the pull up again
/// with backoff after errors.
async fn consume(
    jetstream: jetstream::Context,
    config: NatsSourceConfig,
    address: String,
    tx: mpsc::Sender<Delivered>,
    mut ready: Option<PullConsumer>,
) {
    let origin_prefix = format!("nats:{}", config.stream);
    let mut seq = 0u64;
    let mut attempt = 0usize;
    loop {
        let consumer = match ready.take() {
            Some(c) => c,
            None => match set_up(&jetstream, &config, &address).await {
                Ok(c) => {
                    tracing::info!("nats {address}: consuming {} again", config.describe());
                    c
                }
                Err(e) => {
                    let wait = backoff(attempt);
                    attempt += 1;
                    tracing::warn!("{e}; retrying in {}", humantime::format_duration(wait));
                    tokio::time::sleep(wait).await;
                    continue;
                }
            },
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH.min(config.prefetch.max(1) as usize))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                let wait = backoff(attempt);
                attempt += 1;
                tracing::warn!(
                    "nats {address}, {}: pulling: {e}; retrying in {}",
                    config.describe(),
                    humantime::format_duration(wait)
                );
                tokio::time::sleep(wait).await;
                continue;
            }
        };
        while let Some(next) = messages.next().await {
            let message = match next {
                Ok(m) => m,
                Err(e) if e.kind() == MessagesErrorKind::MissingHeartbeat => {
                    tracing::warn!(
                        "nats {address}, {}: no heartbeat from the server; pulling again",
                        config.describe()
                    );
                    break;
                }
                Err(e) => {
                    tracing::warn!("nats {address}, {}: {e}; pulling again", config.describe());
                    break;
                }
            };
            attempt = 0;
            seq += 1;
            let (stream_seq, published_ms) = match message.info() {
                Ok(info) => (
                    Some(info.stream_sequence),
                    i64::try_from(info.published.unix_timestamp_nanos() / 1_000_000).ok(),
                ),
                Err(_) => (None, None),
            };
            let message = message.message;
            let origin = match stream_seq {
                Some(s) => format!("{origin_prefix}#{s}"),
                None => format!("{origin_prefix}:{}", message.subject),
            };
            let delivered = Delivered {
                message: Message {
                    payload: message.payload,
                    origin: Arc::from(origin),
                    published_ms,
                    seq,
                },
                reply: message.reply,
            };
            if tx.send(delivered).await.is_err() {
                return;
            }
        }
        if tx.is_closed() {
            return;
        }
        let wait = backoff(attempt);
        attempt += 1;
        tokio::time::sleep(wait).await;
    }
}

/// Takes the entries up to and including `seq` off the front of `unacked`.
impl NatsSource {
    /// Waits until the acknowledgements in flight are sent.
    async fn settle(&mut self) {
        if let Some(acking) = self.acking.take() {
            let _ = acking.await;
        }
    }
}

/// Sends the acknowledgements of one committed batch and flushes them; a
/// failure is logged (the server delivers those messages again).
async fn send_acks(client: async_nats::Client, replies: Vec<async_nats::Subject>) {
    let count = replies.len();
    let acked = tokio::time::timeout(ACK_TIMEOUT, async {
        for reply in replies {
            client
                .publish(reply, Bytes::new())
                .await
                .map_err(|e| e.to_string())?;
        }
        client.flush().await.map_err(|e| e.to_string())
    })
    .await;
    let failure = match acked {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e,
        Err(_) => format!("no answer in {}", humantime::format_duration(ACK_TIMEOUT)),
    };
    tracing::warn!(
        "nats: acknowledging {count} messages failed ({failure}); the server will deliver them again"
    );
}

fn take_through<T>(unacked: &mut VecDeque<(u64, T)>, seq: u64) -> Vec<T> {
    let mut taken = Vec::new();
    while unacked.front().is_some_and(|(s, _)| *s <= seq) {
        if let Some((_, item)) = unacked.pop_front() {
            taken.push(item);
        }
    }
    taken
}

#[async_trait::async_trait]
impl StreamSource for NatsSource {
    async fn recv(&mut self) -> Result<Option<Message>> {
        let Some(delivered) = self.deliveries.recv().await else {
            return Ok(None);
        };
        if let Some(reply) = delivered.reply {
            self.unacked.push_back((delivered.message.seq, reply));
        }
        Ok(Some(delivered.message))
    }

    async fn ack(&mut self, seq: u64) -> Result<()> {
        let replies = take_through(&mut self.unacked, seq);
        if replies.is_empty() {
            return Ok(());
        }
        // One batch's acknowledgements in flight at a time: they are sent
        // while the next batch fills, instead of holding it up.
        self.settle().await;
        let client = self.client.clone();
        self.acking = Some(tokio::spawn(send_acks(client, replies)));
        Ok(())
    }

    async fn close(&mut self) {
        self.settle().await;
    }

    async fn lag(&mut self) -> Option<u64> {
        tokio::time::timeout(LAG_TIMEOUT, self.consumer.get_info())
            .await
            .ok()?
            .ok()
            .map(|info| info.num_pending)
    }
}

#[async_trait::async_trait]
impl SourceConnector for NatsSourceConfig {
    fn parse(table: Spanned<DeValue<'_>>) -> std::result::Result<Self, SpannedError> {
        let (endpoint, payload, config) = read_config::<Self>(table, true)?;
        Ok(NatsSourceConfig {
            endpoint,
            payload,
            ..config
        })
    }

    fn shared_schemas() -> Vec<SchemaFn> {
        super::stream::broker_schemas()
    }

    fn kind() -> &'static str {
        "nats"
    }

    fn mode() -> Mode {
        Mode::Stream
    }

    fn summary() -> &'static str {
        "A NATS JetStream stream, consumed by a durable pull consumer"
    }

    fn schemes() -> &'static [&'static str] {
        &["nats"]
    }

    fn test_connection(
        _name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        let _ = workspace;
        Box::pin(async move {
            let address = server_address(&url);
            let client = connect(&url, &address, 1).await?;
            let info = client.server_info();
            Ok(format!(
                "NATS {} at {address}{}",
                info.version,
                if info.jetstream {
                    ", JetStream on"
                } else {
                    ", JetStream off"
                }
            ))
        })
    }

    fn validate(&self, workspace: &Workspace, _pipeline: &str) -> Result<Vec<String>> {
        super::stream::validate(Some(&self.endpoint), &self.payload, workspace)
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
        let url = self.endpoint.resolve(workspace)?;
        let _ = (pipeline, state);
        Ok(Box::new(NatsSource::start(self.clone(), url).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> NatsSourceConfig {
        crate::sources::parse_for_test(toml_text).expect("valid config")
    }

    #[test]
    fn defaults_and_the_consumer_they_make() {
        let c = config(
            "url = \"nats://127.0.0.1:4222\"\nstream = \"ORDERS\"\nconsumer = \"flowline\"\n",
        );
        assert_eq!(c.prefetch, 20_000);
        assert_eq!(c.ack_wait, Duration::from_secs(30));
        assert!(!c.create_stream);
        assert_eq!(c.stream_subject(), "ORDERS.>");
        let consumer = c.consumer_config();
        assert_eq!(consumer.durable_name.as_deref(), Some("flowline"));
        assert_eq!(consumer.ack_policy, AckPolicy::Explicit);
        assert_eq!(consumer.max_ack_pending, 20_000);
        assert_eq!(consumer.filter_subject, "");
    }

    #[test]
    fn max_ack_pending_is_another_name_for_prefetch() {
        let c = config(
            "url = \"nats://x\"\nstream = \"S\"\nconsumer = \"c\"\nsubject = \"S.orders\"\nmax_ack_pending = 50\nack_wait = \"5s\"\n",
        );
        assert_eq!(c.prefetch, 50);
        assert_eq!(c.stream_subject(), "S.orders");
        assert_eq!(c.consumer_config().filter_subject, "S.orders");
        assert_eq!(c.consumer_config().ack_wait, Duration::from_secs(5));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = crate::sources::parse_for_test::<NatsSourceConfig>(
            "url = \"nats://x\"\nstream = \"S\"\nconsumer = \"c\"\nqueue = \"q\"\n",
        )
        .expect_err("unknown key");
        assert!(e.message.contains("queue"), "{e}");
    }

    #[test]
    fn acknowledging_takes_every_message_up_to_the_sequence_in_order() {
        let mut unacked: VecDeque<(u64, &str)> = [(1, "a"), (2, "b"), (3, "c"), (5, "e")].into();
        assert_eq!(take_through(&mut unacked, 0), Vec::<&str>::new());
        assert_eq!(take_through(&mut unacked, 2), vec!["a", "b"]);
        assert_eq!(take_through(&mut unacked, 4), vec!["c"]);
        assert_eq!(take_through(&mut unacked, 9), vec!["e"]);
        assert!(unacked.is_empty());
    }

    #[test]
    fn addresses_never_show_credentials() {
        assert_eq!(
            server_address("nats://user:secret@broker:4223"),
            "broker:4223"
        );
        assert_eq!(server_address("127.0.0.1"), "127.0.0.1:4222");
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(1), Duration::from_millis(400));
        assert_eq!(backoff(50), Duration::from_secs(30));
    }
}
