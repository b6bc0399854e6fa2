//! `kind = "mqtt"`: a continuous subscriber to one MQTT 3.1.1 topic filter.
//!
//! A background task owns the connection and polls its event loop without
//! pause: it reconnects with backoff when the broker goes away, subscribes
//! again when the broker kept no session, and hands publishes to the runner
//! over a bounded channel. Acknowledgements are manual: a QoS 1 or 2
//! publish is acknowledged only when the runner says the batch holding it
//! is committed. With a persistent session (`clean_session = false`) the
//! broker keeps what was published while flowline was away, and delivers
//! again what was delivered but never acknowledged; `dedupe_key` drops the
//! copies. Publishes delivered on a connection that has since been lost are
//! not acknowledged: the broker delivers them again on the new one.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rumqttc::{
    AsyncClient, Event, EventLoop, MqttOptions, Outgoing, Packet, Publish, QoS, SubscribeReasonCode,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};

use super::stream::{Endpoint, Message, PayloadOptions, StreamSource, read_config};
use crate::core::diagnostic::SpannedError;
use crate::core::error::{ConnectionFailure, Error, Result};
use crate::core::schema::SchemaFn;
use crate::core::{Mode, Workspace};
use crate::sources::SourceConnector;
use schemars::JsonSchema;
use toml::Spanned;
use toml::de::DeValue;

/// `[source] kind = "mqtt"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttSourceConfig {
    /// The topic filter subscribed to; `+` and `#` wildcards are allowed.
    pub topic: String,
    /// The subscription's quality of service: 0 (at most once), 1 (at least
    /// once, the default) or 2.
    #[serde(default)]
    #[schemars(extend("default" = 1))]
    pub qos: Qos,
    /// The MQTT client id, which names the broker's session. Default:
    /// `flowline-<pipeline>-<hash>`. The hash (8 hex digits) is of the
    /// project's name and the topic: the default is the same on every run,
    /// and a new session when the topic changes.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Start without the broker's stored session. Default false: the broker
    /// keeps the subscription and the QoS 1/2 messages published while
    /// flowline is away.
    #[serde(default)]
    pub clean_session: bool,
    /// `connection` or `url`: where the broker is.
    #[serde(skip)]
    pub endpoint: Endpoint,
    /// `format`, `schema`, `columns`, `delimiter`: how payloads are read.
    #[serde(skip)]
    pub payload: PayloadOptions,
}

/// An MQTT quality of service, as written in the config: 0, 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u8")]
pub struct Qos(pub QoS);

/// What [`Qos`]'s parser accepts: 0, 1 or 2.
impl JsonSchema for Qos {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Qos".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({ "type": "integer", "enum": [0, 1, 2] })
    }
}

impl Default for Qos {
    fn default() -> Self {
        Qos(QoS::AtLeastOnce)
    }
}

impl TryFrom<u8> for Qos {
    type Error = String;

    fn try_from(value: u8) -> std::result::Result<Self, String> {
        match value {
            0 => Ok(Qos(QoS::AtMostOnce)),
            1 => Ok(Qos(QoS::AtLeastOnce)),
            2 => Ok(Qos(QoS::ExactlyOnce)),
            other => Err(format!("qos = {other}: must be 0, 1 or 2")),
        }
    }
}

/// Publishes waiting in the channel to the runner, at most; past that the
/// background task stops reading the connection until the runner catches up.
const BUFFER: usize = 10_000;
/// The largest packet MQTT can carry (its remaining-length limit).
const MAX_PACKET: usize = 268_435_455;
/// Room in the client's request channel: one acknowledgement per packet id
/// in flight (at most 65535), plus subscribe and disconnect requests.
const REQUESTS: usize = u16::MAX as usize + 64;
/// How long `start` waits for the broker to confirm the subscription.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the background task may take to send the last acknowledgements
/// and disconnect once the source is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

impl MqttSourceConfig {
    /// How payloads are read.
    pub fn payload(&self) -> PayloadOptions {
        self.payload.clone()
    }

    /// The client id: `client_id`, or one derived from the pipeline's name,
    /// the project's name and the topic, stable across runs so that the
    /// broker's session is found again.
    pub fn client_id(&self, project: &str, pipeline: &str) -> String {
        if let Some(id) = &self.client_id {
            return id.clone();
        }
        let readable: String = pipeline
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(48)
            .collect();
        let digest = Sha256::digest(format!("{project}\n{}", self.topic).as_bytes());
        format!("flowline-{readable}-{}", hex::encode(&digest[..4]))
    }
}

/// The broker's host and port, and the login, from an `mqtt://` URL.
struct Broker {
    host: String,
    port: u16,
    login: Option<(String, String)>,
}

impl Broker {
    fn parse(url: &str) -> Result<Broker> {
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::Config(format!(
                "[source] url: not an MQTT URL ({e}); expected mqtt://host:1883"
            ))
        })?;
        match parsed.scheme() {
            "mqtt" | "tcp" => {}
            "mqtts" | "ssl" => {
                return Err(Error::Config(
                    "[source] url: TLS (mqtts://) is not supported by the mqtt source; use mqtt://"
                        .into(),
                ));
            }
            other => {
                return Err(Error::Config(format!(
                    "[source] url: scheme {other:?} is not MQTT; expected mqtt://host:1883"
                )));
            }
        }
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                Error::Config("[source] url: no host; expected mqtt://host:1883".into())
            })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let login = (!parsed.username().is_empty()).then(|| {
            (
                percent_decode(parsed.username()),
                percent_decode(parsed.password().unwrap_or_default()),
            )
        });
        Ok(Broker {
            host,
            port: parsed.port().unwrap_or(1883),
            login,
        })
    }

    /// `host:port`, for messages (never the login).
    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// How long `flowline connections test` waits for the broker.
const TEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to the broker of `url` with a clean session and disconnects:
/// what answered, or the plain cause of why nothing did.
async fn test_broker(url: String) -> Result<String> {
    let broker = Broker::parse(&url)?;
    let address = broker.address();
    let client_id = format!("flowline-test-{}", std::process::id());
    let mut options = MqttOptions::new(client_id, broker.host.clone(), broker.port);
    options.set_clean_session(true).set_keep_alive(TEST_TIMEOUT);
    if let Some((user, password)) = &broker.login {
        options.set_credentials(user.clone(), password.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 1);
    let connected = tokio::time::timeout(TEST_TIMEOUT, async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
    })
    .await;
    let target = format!("mqtt {address}");
    match connected {
        Ok(Ok(())) => {
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_millis(500), eventloop.poll()).await;
            Ok(format!("MQTT broker at {address} (MQTT 3.1.1)"))
        }
        Ok(Err(e)) => {
            let (failure, message) = describe(&e);
            Err(Error::connection(
                target,
                failure,
                message,
                Some(Box::new(e)),
            ))
        }
        Err(_) => Err(Error::connection(
            target,
            ConnectionFailure::Network,
            format!(
                "no answer within {}s: {}",
                TEST_TIMEOUT.as_secs(),
                ConnectionFailure::Network.advice()
            ),
            None,
        )),
    }
}

/// Why connecting to a broker failed, in plain words with what to do.
fn describe(e: &rumqttc::ConnectionError) -> (ConnectionFailure, String) {
    use rumqttc::{ConnectReturnCode as Code, ConnectionError as E};
    let failure = match e {
        E::ConnectionRefused(Code::BadUserNamePassword | Code::NotAuthorized) => {
            ConnectionFailure::Auth
        }
        E::ConnectionRefused(_) => ConnectionFailure::Server,
        E::NetworkTimeout => ConnectionFailure::Network,
        other => ConnectionFailure::of(other),
    };
    let advice = match failure {
        ConnectionFailure::Auth => {
            "the broker refused the login: check the user and password in the URL \
             (mqtt://user:password@host:1883)"
        }
        other => other.advice(),
    };
    (failure, format!("{advice} ({e})"))
}

/// Decodes `%XX` escapes (URL user names and passwords).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| text.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The wait before reconnect attempt `attempt` (0, 1, ...): 200 ms,
/// doubling, at most 30 s.
fn backoff(attempt: usize) -> Duration {
    let doublings = u32::try_from(attempt.min(8)).unwrap_or(8);
    (Duration::from_millis(200) * 2u32.pow(doublings)).min(Duration::from_secs(30))
}

/// A publish on its way to the runner, with what acknowledges it.
struct Delivered {
    message: Message,
    publish: Publish,
    generation: u64,
}

/// Delivered publishes waiting for the commit of their batch, in order.
struct Unacked<T> {
    entries: VecDeque<(u64, u64, T)>,
}

impl<T> Unacked<T> {
    fn new() -> Self {
        Unacked {
            entries: VecDeque::new(),
        }
    }

    /// Keeps `item`, delivered as `seq` on connection `generation`.
    fn push(&mut self, seq: u64, generation: u64, item: T) {
        self.entries.push_back((seq, generation, item));
    }

    /// Takes every entry up to and including `seq`, and returns, in order,
    /// those delivered on connection `live`; the others were delivered on a
    /// connection since lost, and the broker delivers them again.
    fn take_through(&mut self, seq: u64, live: u64) -> Vec<T> {
        let mut live_items = Vec::new();
        while self.entries.front().is_some_and(|(s, _, _)| *s <= seq) {
            if let Some((_, generation, item)) = self.entries.pop_front()
                && generation == live
            {
                live_items.push(item);
            }
        }
        live_items
    }
}

/// Subscribes to an MQTT topic filter.
pub struct MqttSource {
    deliveries: mpsc::Receiver<Delivered>,
    unacked: Unacked<Publish>,
    client: AsyncClient,
    /// Counts connections made and lost: a publish is acknowledged only on
    /// the connection it came from.
    generation: Arc<AtomicU64>,
    address: String,
    polling: Option<tokio::task::JoinHandle<()>>,
}

impl MqttSource {
    /// Connects to `url`, subscribes to `config.topic` and waits for the
    /// broker to confirm. Fails if the first connection or the subscription
    /// fails; later losses are retried. `project` and `pipeline` name the
    /// default client id.
    pub async fn start(
        config: MqttSourceConfig,
        url: String,
        project: &str,
        pipeline: &str,
    ) -> Result<Self> {
        let broker = Broker::parse(&url)?;
        let address = broker.address();
        let mut options = MqttOptions::new(
            config.client_id(project, pipeline),
            broker.host.clone(),
            broker.port,
        );
        options
            .set_clean_session(config.clean_session)
            .set_manual_acks(true)
            .set_keep_alive(Duration::from_secs(30))
            .set_max_packet_size(MAX_PACKET, MAX_PACKET);
        if let Some((user, password)) = &broker.login {
            options.set_credentials(user.clone(), password.clone());
        }
        let (client, eventloop) = AsyncClient::new(options, REQUESTS);
        let (tx, rx) = mpsc::channel(BUFFER);
        let (ready_tx, ready_rx) = oneshot::channel();
        let generation = Arc::new(AtomicU64::new(0));
        let polling = tokio::spawn(poll(
            eventloop,
            client.clone(),
            config.clone(),
            address.clone(),
            tx,
            generation.clone(),
            ready_tx,
        ));
        let subscribed = tokio::time::timeout(SUBSCRIBE_TIMEOUT, ready_rx).await;
        let outcome = match subscribed {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(Error::connection(
                format!("mqtt {address}"),
                ConnectionFailure::Network,
                format!(
                    "the connection ended before the subscription to {:?} was confirmed",
                    config.topic
                ),
                None,
            )),
            Err(_) => Err(Error::connection(
                format!("mqtt {address}"),
                ConnectionFailure::Network,
                format!(
                    "the broker did not confirm the subscription to {:?} in {}",
                    config.topic,
                    humantime::format_duration(SUBSCRIBE_TIMEOUT)
                ),
                None,
            )),
        };
        if let Err(e) = outcome {
            polling.abort();
            return Err(e);
        }
        tracing::info!("mqtt {address}: subscribed to {:?}", config.topic);
        Ok(MqttSource {
            deliveries: rx,
            unacked: Unacked::new(),
            client,
            generation,
            address,
            polling: Some(polling),
        })
    }
}

impl Drop for MqttSource {
    fn drop(&mut self) {
        // The disconnect goes after the acknowledgements already queued, so
        // the polling task sends those, then the disconnect, then ends.
        let _ = self.client.try_disconnect();
        if let (Some(polling), Ok(runtime)) =
            (self.polling.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                tokio::time::sleep(CLOSE_TIMEOUT).await;
                polling.abort();
            });
        }
    }
}

/// Polls the event loop until the source is dropped: reconnects with
/// backoff, subscribes when the broker has no session, and forwards
/// publishes. `ready` learns whether the first subscription succeeded.
async fn poll(
    mut eventloop: EventLoop,
    client: AsyncClient,
    config: MqttSourceConfig,
    address: String,
    tx: mpsc::Sender<Delivered>,
    generation: Arc<AtomicU64>,
    ready: oneshot::Sender<Result<()>>,
) {
    let mut ready = Some(ready);
    let mut seq = 0u64;
    let mut attempt = 0usize;
    let mut subscribed = false;
    let mut connected_before = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(connack))) => {
                generation.fetch_add(1, Ordering::SeqCst);
                attempt = 0;
                if connected_before {
                    tracing::info!(
                        "mqtt {address}: reconnected ({})",
                        if connack.session_present {
                            "session resumed"
                        } else {
                            "new session"
                        }
                    );
                }
                connected_before = true;
                if (!connack.session_present || !subscribed)
                    && let Err(e) = client.subscribe(config.topic.clone(), config.qos.0).await
                {
                    tracing::warn!("mqtt {address}: subscribing to {:?}: {e}", config.topic);
                }
            }
            Ok(Event::Incoming(Packet::SubAck(suback))) => {
                let refused = suback
                    .return_codes
                    .iter()
                    .any(|code| matches!(code, SubscribeReasonCode::Failure));
                if refused {
                    let e = Error::connection(
                        format!("mqtt {address}"),
                        ConnectionFailure::Auth,
                        format!(
                            "the broker refused the subscription to {:?}; check the topic filter and the broker's access rules",
                            config.topic
                        ),
                        None,
                    );
                    match ready.take() {
                        Some(ready) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                        None => tracing::error!("{e}"),
                    }
                } else {
                    subscribed = true;
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(Ok(()));
                    }
                }
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => {
                seq += 1;
                let message = Message {
                    payload: publish.payload.clone(),
                    origin: Arc::from(format!("mqtt:{}#{seq}", publish.topic)),
                    published_ms: None,
                    seq,
                };
                let delivered = Delivered {
                    message,
                    publish,
                    generation: generation.load(Ordering::SeqCst),
                };
                if tx.send(delivered).await.is_err() {
                    close(&mut eventloop).await;
                    return;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                generation.fetch_add(1, Ordering::SeqCst);
                if let Some(ready) = ready.take() {
                    let (failure, message) = describe(&e);
                    let _ = ready.send(Err(Error::connection(
                        format!("mqtt {address}"),
                        failure,
                        format!("connecting: {message}"),
                        Some(Box::new(e)),
                    )));
                    return;
                }
                if tx.is_closed() {
                    return;
                }
                let wait = backoff(attempt);
                attempt += 1;
                tracing::warn!(
                    "mqtt {address}: connection lost ({e}); reconnecting in {}",
                    humantime::format_duration(wait)
                );
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Once the runner is gone: sends what is queued (acknowledgements, then
/// the disconnect), for a short while at most.
async fn close(eventloop: &mut EventLoop) {
    let deadline = tokio::time::Instant::now() + CLOSE_TIMEOUT;
    while let Ok(Ok(event)) = tokio::time::timeout_at(deadline, eventloop.poll()).await {
        if event == Event::Outgoing(Outgoing::Disconnect) {
            return;
        }
    }
}

#[async_trait::async_trait]
impl StreamSource for MqttSource {
    async fn recv(&mut self) -> Result<Option<Message>> {
        let Some(delivered) = self.deliveries.recv().await else {
            return Ok(None);
        };
        self.unacked.push(
            delivered.message.seq,
            delivered.generation,
            delivered.publish,
        );
        Ok(Some(delivered.message))
    }

    async fn ack(&mut self, seq: u64) -> Result<()> {
        let live = self.generation.load(Ordering::SeqCst);
        for publish in self.unacked.take_through(seq, live) {
            if let Err(e) = self.client.ack(&publish).await {
                tracing::warn!(
                    "mqtt {}: acknowledging failed ({e}); the broker will deliver those messages again",
                    self.address
                );
                break;
            }
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl SourceConnector for MqttSourceConfig {
    fn parse(table: Spanned<DeValue<'_>>) -> std::result::Result<Self, SpannedError> {
        let (endpoint, payload, config) = read_config::<Self>(table, true)?;
        Ok(MqttSourceConfig {
            endpoint,
            payload,
            ..config
        })
    }

    fn shared_schemas() -> Vec<SchemaFn> {
        super::stream::broker_schemas()
    }

    fn kind() -> &'static str {
        "mqtt"
    }

    fn mode() -> Mode {
        Mode::Stream
    }

    fn summary() -> &'static str {
        "An MQTT topic filter, subscribed to continuously"
    }

    fn schemes() -> &'static [&'static str] {
        &["mqtt", "mqtts"]
    }

    fn test_connection(
        _name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        let _ = workspace;
        Box::pin(test_broker(url))
    }

    fn validate(&self, workspace: &Workspace, _pipeline: &str) -> Result<Vec<String>> {
        if !rumqttc::valid_filter(&self.topic) {
            return Err(Error::Config(format!(
                "[source] topic = {:?} is not an MQTT topic filter: `#` stands alone as the last \
                 level (`sensors/#`) and `+` is a whole level (`sensors/+/temperature`)",
                self.topic
            )));
        }
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
        let _ = state;
        Ok(Box::new(
            MqttSource::start(self.clone(), url, &workspace.name, pipeline).await?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> MqttSourceConfig {
        crate::sources::parse_for_test(toml_text).expect("valid config")
    }

    #[test]
    fn defaults() {
        let c = config("url = \"mqtt://127.0.0.1:1883\"\ntopic = \"sensors/+/temp\"\n");
        assert_eq!(c.qos, Qos(QoS::AtLeastOnce));
        assert!(!c.clean_session);
        assert_eq!(c.payload.delimiter, ',');
        let id = c.client_id("shop", "sensor readings");
        assert!(id.starts_with("flowline-sensor_readings-"), "{id}");
        assert_eq!(id.len(), "flowline-sensor_readings-".len() + 8, "{id}");
        assert_eq!(
            id,
            c.client_id("shop", "sensor readings"),
            "stable across runs"
        );
        assert_ne!(
            id,
            c.client_id("other", "sensor readings"),
            "differs between projects"
        );
        let moved = config("url = \"mqtt://x\"\ntopic = \"sensors/#\"\n");
        assert_ne!(
            id,
            moved.client_id("shop", "sensor readings"),
            "a new topic is a new session"
        );
    }

    #[test]
    fn qos_must_be_0_1_or_2() {
        assert_eq!(
            config("url = \"mqtt://x\"\ntopic = \"t\"\nqos = 2\n").qos,
            Qos(QoS::ExactlyOnce)
        );
        let e = crate::sources::parse_for_test::<MqttSourceConfig>(
            "url = \"mqtt://x\"\ntopic = \"t\"\nqos = 3\n",
        )
        .expect_err("qos 3");
        assert!(e.message.contains("must be 0, 1 or 2"), "{e}");
    }

    #[test]
    fn a_client_id_given_is_kept() {
        let c = config("url = \"mqtt://x\"\ntopic = \"t\"\nclient_id = \"ingest-1\"\n");
        assert_eq!(c.client_id("p", "x"), "ingest-1");
    }

    #[test]
    fn urls_give_host_port_and_login_and_addresses_hide_the_login() {
        let b = Broker::parse("mqtt://user:p%40ss@broker.local:1884").expect("parses");
        assert_eq!(b.address(), "broker.local:1884");
        assert_eq!(b.login, Some(("user".into(), "p@ss".into())));
        let b = Broker::parse("mqtt://127.0.0.1").expect("parses");
        assert_eq!(b.address(), "127.0.0.1:1883");
        assert!(b.login.is_none());
        let e = Broker::parse("mqtts://broker:8883").err().expect("no TLS");
        assert!(e.to_string().contains("TLS"), "{e}");
        assert!(Broker::parse("http://broker").is_err());
    }

    #[test]
    fn acknowledging_takes_every_publish_up_to_the_sequence_in_order() {
        let mut unacked = Unacked::new();
        for seq in 1..=5 {
            unacked.push(seq, 1, seq * 10);
        }
        assert_eq!(unacked.take_through(0, 1), Vec::<u64>::new());
        assert_eq!(unacked.take_through(3, 1), vec![10, 20, 30]);
        assert_eq!(unacked.take_through(9, 1), vec![40, 50]);
        assert!(unacked.entries.is_empty());
    }

    #[test]
    fn publishes_from_a_lost_connection_are_not_acknowledged() {
        let mut unacked = Unacked::new();
        unacked.push(1, 1, "old");
        unacked.push(2, 1, "old too");
        unacked.push(3, 3, "new");
        assert_eq!(unacked.take_through(3, 3), vec!["new"]);
        assert!(
            unacked.entries.is_empty(),
            "the stale ones are dropped, not kept"
        );
    }

    #[test]
    fn backoff_doubles_up_to_thirty_seconds() {
        assert_eq!(backoff(0), Duration::from_millis(200));
        assert_eq!(backoff(2), Duration::from_millis(800));
        assert_eq!(backoff(40), Duration::from_secs(30));
    }

    #[test]
    fn an_invalid_topic_filter_is_refused_without_connecting() {
        let workspace = Workspace::default();
        let bad = config("url = \"mqtt://127.0.0.1:1\"\ntopic = \"a/#/b\"\n");
        let e = bad.validate(&workspace, "p").expect_err("a/#/b");
        assert!(e.to_string().contains("not an MQTT topic filter"), "{e}");
        let good = config("url = \"mqtt://127.0.0.1:1\"\ntopic = \"a/+/b/#\"\n");
        assert!(good.validate(&workspace, "p").is_ok());
    }
}
