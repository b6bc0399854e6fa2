//! `kind = "kafka"`: a continuous consumer of every partition of one topic.
//!
//! Kafka keeps messages in per-partition logs and lets each reader say
//! where it is, so flowline keeps that position itself: the offsets consumed
//! so far, per partition, are the pipeline's state, committed in the same
//! warehouse transaction as the rows they produced (see
//! [`StreamSource::checkpoint`]). A crash before a commit loses neither the
//! rows nor the offsets, and a crash after it commits both: on restart each
//! partition is read again from the committed offset + 1, so every message
//! is loaded exactly once without `dedupe_key` and without broker-side
//! consumer-group offsets.
//!
//! One background task per partition fetches with a bounded size (and a
//! long poll at the broker) into a bounded channel, so a slow warehouse
//! slows fetching instead of growing memory. Errors are retried with
//! backoff, and said so in the log with the broker's host:port only.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use rskafka::BackoffConfig;
use rskafka::client::error::{Error as KafkaError, ProtocolError};
use rskafka::client::partition::{OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder, Credentials, SaslConfig};
use serde::Deserialize;
use serde_json::json;
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

/// `[source] kind = "kafka"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KafkaSourceConfig {
    /// The bootstrap brokers inline (prefer `connection` with `${VAR}`).
    #[serde(default)]
    pub url: Option<String>,
    /// The topic consumed, every partition of it.
    pub topic: String,
    /// The name the consumed offsets are kept under in the pipeline's
    /// state; a different name starts over from `start`. Default: the
    /// pipeline's name. The broker's consumer groups are not used.
    #[serde(default)]
    pub group: Option<String>,
    /// Where reading starts when the state has no offsets for this topic
    /// and group (the first run): `earliest` (default) or `latest`.
    #[serde(default)]
    pub start: StartAt,
    /// Records fetched but not yet handed to the runner, at most. Default
    /// 10000.
    #[serde(default = "default_prefetch")]
    pub prefetch: usize,
    /// Bytes one fetch of one partition asks for, at most (the broker
    /// still returns a larger single record whole). Default 1 MiB.
    #[serde(default = "default_fetch_max_bytes")]
    pub fetch_max_bytes: i32,
    /// `connection` or `url`: where the broker is.
    #[serde(skip)]
    pub endpoint: Endpoint,
    /// `format`, `schema`, `columns`, `delimiter`: how payloads are read.
    #[serde(skip)]
    pub payload: PayloadOptions,
}

/// Where reading starts on the first run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// At the oldest record the broker still keeps.
    #[default]
    Earliest,
    /// At the next record produced.
    Latest,
}

fn default_prefetch() -> usize {
    10_000
}
fn default_fetch_max_bytes() -> i32 {
    1024 * 1024
}

/// How long the broker holds a fetch when there is nothing new.
const FETCH_WAIT_MS: i32 = 500;
/// The longest wait between two tries after an error.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(30);

impl KafkaSourceConfig {
    /// How payloads are read.
    pub fn payload(&self) -> PayloadOptions {
        self.payload.clone()
    }
}

/// The bootstrap brokers of a URL, and its SASL/PLAIN credentials if any.
#[derive(Debug, PartialEq, Eq)]
struct Bootstrap {
    /// `host:port` of each broker.
    brokers: Vec<String>,
    /// `(user, password)` from `kafka://user:password@host:port`.
    credentials: Option<(String, String)>,
}

/// Reads `kafka://[user:password@]host[:port][,host[:port]...]` or a plain
/// `host:port,host:port` list; the port defaults to 9092.
fn parse_bootstrap(url: &str) -> Result<Bootstrap> {
    let invalid = |why: &str| {
        Error::Config(format!(
            "[source] kind = \"kafka\": {why}: expected url = \"kafka://host:9092\" or \"host1:9092,host2:9092\""
        ))
    };
    let rest = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("kafka") => rest,
        Some((scheme, _)) => return Err(invalid(&format!("unknown scheme {scheme}://"))),
        None => url,
    };
    let rest = rest.trim_end_matches('/');
    let (credentials, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            (Some((decode(user), decode(password))), hosts)
        }
        None => (None, rest),
    };
    let mut brokers = Vec::new();
    for host in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
        if host.contains('/') {
            return Err(invalid("a broker address holds a path"));
        }
        // `[::1]:9092` and `[::1]` for IPv6, `host:9092` and `host` otherwise.
        let port = if host.starts_with('[') {
            host.split_once("]:").map(|(_, p)| p)
        } else {
            host.rsplit_once(':').map(|(_, p)| p)
        };
        match port {
            Some(port) if port.parse::<u16>().is_err() => {
                return Err(invalid(&format!("bad port in {host}")));
            }
            Some(_) => brokers.push(host.to_string()),
            None => brokers.push(format!("{host}:9092")),
        }
    }
    if brokers.is_empty() {
        return Err(invalid("no broker address"));
    }
    Ok(Bootstrap {
        brokers,
        credentials,
    })
}

/// The offsets a saved state holds for `topic` under `group`: the last
/// offset consumed (and committed) per partition.
fn saved_offsets(
    state: Option<&serde_json::Value>,
    topic: &str,
    group: &str,
) -> Option<BTreeMap<i32, i64>> {
    let state = state?;
    if state.get("topic")?.as_str()? != topic || state.get("group")?.as_str()? != group {
        return None;
    }
    let offsets = state.get("offsets")?.as_object()?;
    Some(
        offsets
            .iter()
            .filter_map(|(partition, offset)| Some((partition.parse().ok()?, offset.as_i64()?)))
            .collect(),
    )
}

/// One record on its way from a partition's fetch task to the runner.
struct Fetched {
    partition: i32,
    offset: i64,
    payload: Bytes,
    published_ms: Option<i64>,
}

/// Consumes one Kafka topic, its offsets kept in the pipeline's state.
pub struct KafkaSource {
    records: mpsc::Receiver<Fetched>,
    /// The sequence number the next message gets.
    next_seq: u64,
    /// Handed to the runner, not yet committed: (seq, partition, offset).
    delivered: VecDeque<(u64, i32, i64)>,
    /// Per partition, the last offset committed (or the one before where
    /// reading started).
    committed: BTreeMap<i32, i64>,
    /// Per partition, the high watermark the last fetch saw.
    high_watermarks: Arc<Mutex<BTreeMap<i32, i64>>>,
    topic: String,
    group: String,
    /// The origin prefix of messages: `kafka:<topic>/`.
    origin_prefix: String,
    fetchers: Vec<tokio::task::JoinHandle<()>>,
}

impl KafkaSource {
    /// Connects to the brokers of `url`, resumes every partition of
    /// `config.topic` after the offsets in `state` (or at `config.start`),
    /// and starts fetching. Fails if the first connection fails or the
    /// topic does not exist; later errors are retried.
    pub async fn start(
        config: KafkaSourceConfig,
        url: String,
        pipeline: &str,
        state: Option<&serde_json::Value>,
    ) -> Result<Self> {
        let bootstrap = parse_bootstrap(&url)?;
        let address = bootstrap.brokers.join(",");
        let topic = config.topic.clone();
        let group = config.group.clone().unwrap_or_else(|| pipeline.to_string());
        let fail = |what: &str, e: KafkaError| {
            let failure = ConnectionFailure::of(&e);
            Error::connection(
                format!("kafka {address}, topic {topic:?}"),
                failure,
                format!("{what}: {e}"),
                Some(Box::new(e)),
            )
        };
        if config.fetch_max_bytes < 1 {
            return Err(Error::Config(
                "[source] fetch_max_bytes must be at least 1".into(),
            ));
        }

        let client = connect(&bootstrap)
            .await
            .map_err(|e| fail("connecting", e))?;
        let topics = client
            .list_topics()
            .await
            .map_err(|e| fail("listing topics", e))?;
        let mut partitions = topics
            .into_iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.into_iter().collect::<Vec<_>>())
            .ok_or_else(|| {
                Error::connection(
                    format!("kafka {address}"),
                    ConnectionFailure::NotFound,
                    format!("topic {topic:?} does not exist; create it (or let producers create it) first"),
                    None,
                )
            })?;
        partitions.sort_unstable();

        let saved = saved_offsets(state, &topic, &group);
        match (&saved, state.is_some()) {
            (Some(offsets), _) => tracing::info!(
                "kafka {address}: topic {topic:?}, group {group:?}: resuming {} partition(s) after the committed offsets",
                offsets.len()
            ),
            (None, true) => tracing::info!(
                "kafka {address}: the saved state holds no offsets for topic {topic:?}, group {group:?}: starting at the {} offsets",
                match config.start {
                    StartAt::Earliest => "earliest",
                    StartAt::Latest => "latest",
                }
            ),
            (None, false) => {}
        }
        // With offsets saved, a partition missing from them was added to
        // the topic since: all of it is new.
        let resumed = saved.is_some();
        let saved = saved.unwrap_or_default();

        let (tx, rx) = mpsc::channel(config.prefetch.max(1));
        let high_watermarks = Arc::new(Mutex::new(BTreeMap::new()));
        let mut committed = BTreeMap::new();
        let mut fetchers = Vec::with_capacity(partitions.len());
        for partition in partitions {
            let client = client
                .partition_client(topic.clone(), partition, UnknownTopicHandling::Retry)
                .await
                .map_err(|e| fail(&format!("partition {partition}"), e))?;
            let next = match saved.get(&partition) {
                Some(offset) => offset.saturating_add(1),
                None => {
                    let at = match config.start {
                        StartAt::Latest if !resumed => OffsetAt::Latest,
                        _ => OffsetAt::Earliest,
                    };
                    client
                        .get_offset(at)
                        .await
                        .map_err(|e| fail(&format!("partition {partition}: start offset"), e))?
                }
            };
            committed.insert(partition, next - 1);
            let fetch = Fetcher {
                client,
                address: address.clone(),
                topic: topic.clone(),
                partition,
                max_bytes: config.fetch_max_bytes,
                tx: tx.clone(),
                high_watermarks: high_watermarks.clone(),
            };
            fetchers.push(tokio::spawn(fetch.run(next)));
        }
        Ok(KafkaSource {
            records: rx,
            next_seq: 1,
            delivered: VecDeque::new(),
            committed,
            high_watermarks,
            origin_prefix: format!("kafka:{topic}/"),
            topic,
            group,
            fetchers,
        })
    }

    /// The committed offsets once every message up to `seq` is committed.
    fn offsets_through(&self, seq: u64) -> BTreeMap<i32, i64> {
        let mut offsets = self.committed.clone();
        for (s, partition, offset) in &self.delivered {
            if *s > seq {
                break;
            }
            offsets.insert(*partition, *offset);
        }
        offsets
    }
}

impl Drop for KafkaSource {
    fn drop(&mut self) {
        for fetcher in &self.fetchers {
            fetcher.abort();
        }
    }
}

/// A client for `bootstrap` whose requests give up after a while, so that
/// errors come back to the fetch loops (which retry and log) instead of
/// being retried silently for minutes.
async fn connect(bootstrap: &Bootstrap) -> std::result::Result<Client, KafkaError> {
    connect_within(bootstrap, Duration::from_secs(10)).await
}

/// A client for `bootstrap`, giving up after `deadline`.
async fn connect_within(
    bootstrap: &Bootstrap,
    deadline: Duration,
) -> std::result::Result<Client, KafkaError> {
    let backoff = BackoffConfig {
        init_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(2),
        base: 2.0,
        deadline: Some(deadline),
    };
    let mut builder = ClientBuilder::new(bootstrap.brokers.clone())
        .client_id("flowline")
        .backoff_config(backoff);
    if let Some((user, password)) = &bootstrap.credentials {
        builder = builder.sasl_config(SaslConfig::Plain(Credentials::new(
            user.clone(),
            password.clone(),
        )));
    }
    builder.build().await
}

/// How long `flowline connections test` waits for the brokers.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Reaches the bootstrap brokers of `url` and lists their topics: what
/// answered, or the plain cause of why nothing did.
async fn test_brokers(url: String) -> Result<String> {
    let bootstrap = parse_bootstrap(&url)?;
    let address = bootstrap.brokers.join(",");
    let target = format!("kafka {address}");
    // The client library keeps the causes of a failed connection as text
    // only: a TCP connection first tells refused, unknown host and silence apart.
    let mut unreachable = None;
    for broker in &bootstrap.brokers {
        match reach(broker).await {
            Ok(()) => {
                unreachable = None;
                break;
            }
            Err(cause) => unreachable = Some(cause),
        }
    }
    if let Some((failure, cause)) = unreachable {
        let message = format!("{} ({cause})", failure.advice());
        return Err(Error::connection(target, failure, message, None));
    }
    let client = connect_within(&bootstrap, TEST_TIMEOUT)
        .await
        .map_err(|e| {
            let (failure, check) = match bootstrap.credentials {
                Some(_) => (
                    ConnectionFailure::Auth,
                    "the user and password of the URL (SASL/PLAIN), and that the port is a Kafka listener",
                ),
                None => (
                    ConnectionFailure::Server,
                    "that the port is a Kafka listener and whether the broker requires a login (kafka://user:password@host:9092)",
                ),
            };
            Error::connection(
                target.clone(),
                failure,
                format!("the broker took the connection but not this Kafka client: check {check} ({e})"),
                Some(Box::new(e)),
            )
        })?;
    let mut topics: Vec<String> = client
        .list_topics()
        .await
        .map_err(|e| {
            Error::connection(
                target.clone(),
                ConnectionFailure::of(&e),
                format!("listing topics: {e}"),
                Some(Box::new(e)),
            )
        })?
        .into_iter()
        .map(|t| t.name)
        .collect();
    topics.sort_unstable();
    Ok(format!("Kafka at {address}: {}", topic_summary(&topics)))
}

/// `3 topics (a, b, c)`, naming the first ten.
fn topic_summary(topics: &[String]) -> String {
    const SHOWN: usize = 10;
    let count = match topics.len() {
        1 => "1 topic".to_string(),
        n => format!("{n} topics"),
    };
    if topics.is_empty() {
        return count;
    }
    let mut names = topics
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if topics.len() > SHOWN {
        names.push_str(", ...");
    }
    format!("{count} ({names})")
}

/// Opens (and closes) a TCP connection to `broker`: why it cannot be
/// reached, if it cannot.
async fn reach(broker: &str) -> std::result::Result<(), (ConnectionFailure, String)> {
    let addresses: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(broker).await {
        Ok(addresses) => addresses.collect(),
        Err(e) => return Err((ConnectionFailure::HostNotFound, format!("{broker}: {e}"))),
    };
    match tokio::time::timeout(TEST_TIMEOUT, tokio::net::TcpStream::connect(&addresses[..])).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            Err((ConnectionFailure::Refused, format!("{broker}: {e}")))
        }
        Ok(Err(e)) => Err((ConnectionFailure::Network, format!("{broker}: {e}"))),
        Err(_) => Err((
            ConnectionFailure::Network,
            format!("{broker}: no answer within {}s", TEST_TIMEOUT.as_secs()),
        )),
    }
}

/// Fetches one partition into the shared channel.
struct Fetcher {
    client: PartitionClient,
    address: String,
    topic: String,
    partition: i32,
    max_bytes: i32,
    tx: mpsc::Sender<Fetched>,
    high_watermarks: Arc<Mutex<BTreeMap<i32, i64>>>,
}

impl Fetcher {
    /// Fetches from offset `next` on until the runner goes away, retrying
    /// errors with backoff.
    async fn run(self, mut next: i64) {
        let Fetcher {
            client,
            address,
            topic,
            partition,
            max_bytes,
            tx,
            high_watermarks,
        } = self;
        let mut wait = Duration::from_millis(200);
        let mut failing = false;
        loop {
            let fetched = client
                .fetch_records(next, 1..max_bytes.max(1), FETCH_WAIT_MS)
                .await;
            match fetched {
                Ok((records, high_watermark)) => {
                    if failing {
                        tracing::info!(
                            "kafka {address}: topic {topic:?} partition {partition}: reconnected, fetching again at offset {next}"
                        );
                        failing = false;
                        wait = Duration::from_millis(200);
                    }
                    if let Ok(mut marks) = high_watermarks.lock() {
                        marks.insert(partition, high_watermark);
                    }
                    for record in records {
                        // A compressed batch may start before the offset asked for.
                        if record.offset < next {
                            continue;
                        }
                        next = record.offset + 1;
                        let millis = record.record.timestamp.timestamp_millis();
                        let fetched = Fetched {
                            partition,
                            offset: record.offset,
                            payload: Bytes::from(record.record.value.unwrap_or_default()),
                            published_ms: (millis > 0).then_some(millis),
                        };
                        if tx.send(fetched).await.is_err() {
                            return;
                        }
                    }
                }
                Err(KafkaError::ServerError {
                    protocol_error: ProtocolError::OffsetOutOfRange,
                    ..
                }) => match client.get_offset(OffsetAt::Earliest).await {
                    Ok(earliest) => {
                        if earliest > next {
                            tracing::warn!(
                                "kafka {address}: topic {topic:?} partition {partition}: offsets {next}..{} were deleted (retention) before they were loaded; going on at {earliest}",
                                earliest - 1
                            );
                        } else {
                            tracing::warn!(
                                "kafka {address}: topic {topic:?} partition {partition}: offset {next} is past the end of the log (was the topic deleted and created again?); reading again from {earliest}"
                            );
                        }
                        next = earliest;
                    }
                    Err(e) => {
                        failing = true;
                        retry_later(&address, &topic, partition, &e, &mut wait).await;
                    }
                },
                Err(e) => {
                    failing = true;
                    retry_later(&address, &topic, partition, &e, &mut wait).await;
                }
            }
            if tx.is_closed() {
                return;
            }
        }
    }
}

/// Logs `e` and waits before the next try, doubling the wait.
async fn retry_later(
    address: &str,
    topic: &str,
    partition: i32,
    e: &KafkaError,
    wait: &mut Duration,
) {
    tracing::warn!(
        "kafka {address}: topic {topic:?} partition {partition}: {e}; reconnecting in {}",
        humantime::format_duration(*wait)
    );
    tokio::time::sleep(*wait).await;
    *wait = (*wait * 2).min(MAX_RETRY_WAIT);
}

#[async_trait::async_trait]
impl StreamSource for KafkaSource {
    async fn recv(&mut self) -> Result<Option<Message>> {
        let Some(fetched) = self.records.recv().await else {
            return Ok(None);
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.delivered
            .push_back((seq, fetched.partition, fetched.offset));
        Ok(Some(Message {
            payload: fetched.payload,
            origin: Arc::from(format!(
                "{}{}#{}",
                self.origin_prefix, fetched.partition, fetched.offset
            )),
            published_ms: fetched.published_ms,
            seq,
        }))
    }

    async fn ack(&mut self, seq: u64) -> Result<()> {
        while let Some((s, partition, offset)) = self.delivered.front().copied() {
            if s > seq {
                break;
            }
            self.committed.insert(partition, offset);
            self.delivered.pop_front();
        }
        Ok(())
    }

    fn checkpoint(&self, seq: u64) -> Option<serde_json::Value> {
        let offsets: serde_json::Map<String, serde_json::Value> = self
            .offsets_through(seq)
            .into_iter()
            .map(|(partition, offset)| (partition.to_string(), json!(offset)))
            .collect();
        Some(json!({ "topic": self.topic, "group": self.group, "offsets": offsets }))
    }

    async fn lag(&mut self) -> Option<u64> {
        let marks = self.high_watermarks.lock().ok()?;
        if marks.is_empty() {
            return None;
        }
        Some(
            marks
                .iter()
                .map(|(partition, high)| {
                    let next = self.committed.get(partition).map_or(0, |c| c + 1);
                    u64::try_from(high - next).unwrap_or(0)
                })
                .sum(),
        )
    }
}

#[async_trait::async_trait]
impl SourceConnector for KafkaSourceConfig {
    fn parse(table: Spanned<DeValue<'_>>) -> std::result::Result<Self, SpannedError> {
        let (endpoint, payload, config) = read_config::<Self>(table, true)?;
        Ok(KafkaSourceConfig {
            endpoint,
            payload,
            ..config
        })
    }

    fn shared_schemas() -> Vec<SchemaFn> {
        super::stream::broker_schemas()
    }

    fn kind() -> &'static str {
        "kafka"
    }

    fn mode() -> Mode {
        Mode::Stream
    }

    fn summary() -> &'static str {
        "A Kafka topic, consumed continuously, its offsets kept in the pipeline state"
    }

    fn schemes() -> &'static [&'static str] {
        &["kafka"]
    }

    fn test_connection(
        _name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        let _ = workspace;
        Box::pin(test_brokers(url))
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
        Ok(Box::new(
            KafkaSource::start(self.clone(), url, pipeline, state).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_urls() {
        let b = parse_bootstrap("kafka://127.0.0.1:9092").expect("parses");
        assert_eq!(b.brokers, vec!["127.0.0.1:9092"]);
        assert_eq!(b.credentials, None);
        let b = parse_bootstrap("a:1, b ,c:3").expect("parses");
        assert_eq!(b.brokers, vec!["a:1", "b:9092", "c:3"]);
        let b = parse_bootstrap("kafka://user:p%40ss@h1,h2:9093/").expect("parses");
        assert_eq!(b.brokers, vec!["h1:9092", "h2:9093"]);
        assert_eq!(b.credentials, Some(("user".into(), "p@ss".into())));
        assert!(parse_bootstrap("amqp://h").is_err());
        assert!(parse_bootstrap("kafka://").is_err());
        assert!(parse_bootstrap("h:notaport").is_err());
    }

    #[test]
    fn saved_offsets_belong_to_one_topic_and_group() {
        let state = json!({"topic": "t", "group": "g", "offsets": {"0": 41, "2": 7}});
        let offsets = saved_offsets(Some(&state), "t", "g").expect("offsets");
        assert_eq!(offsets, BTreeMap::from([(0, 41), (2, 7)]));
        assert_eq!(saved_offsets(Some(&state), "t", "other"), None);
        assert_eq!(saved_offsets(Some(&state), "u", "g"), None);
        assert_eq!(saved_offsets(Some(&json!({"messages": 3})), "t", "g"), None);
        assert_eq!(saved_offsets(None, "t", "g"), None);
    }

    #[tokio::test]
    async fn checkpoints_cover_what_is_delivered_up_to_seq() {
        let (_tx, rx) = mpsc::channel(1);
        let mut source = KafkaSource {
            records: rx,
            next_seq: 4,
            delivered: VecDeque::from([(1, 0, 10), (2, 1, 5), (3, 0, 11)]),
            committed: BTreeMap::from([(0, 9), (1, 4), (2, -1)]),
            high_watermarks: Arc::new(Mutex::new(BTreeMap::from([(0, 20), (1, 6), (2, 0)]))),
            topic: "t".into(),
            group: "g".into(),
            origin_prefix: "kafka:t/".into(),
            fetchers: Vec::new(),
        };
        let state = source.checkpoint(2).expect("a checkpoint");
        assert_eq!(
            state,
            json!({"topic": "t", "group": "g", "offsets": {"0": 10, "1": 5, "2": -1}})
        );
        source.ack(2).await.expect("ack");
        assert_eq!(source.delivered.len(), 1);
        // Partition 0: 20 - 11, partition 1: 6 - 6, partition 2: 0 - 0.
        assert_eq!(source.lag().await, Some(9));
        source.ack(3).await.expect("ack");
        assert_eq!(
            saved_offsets(source.checkpoint(3).as_ref(), "t", "g"),
            Some(BTreeMap::from([(0, 11), (1, 5), (2, -1)]))
        );
    }
}
