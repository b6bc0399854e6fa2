//! `kind = "rabbitmq"`: a continuous consumer of one queue.
//!
//! A background task owns the connection: it consumes with a bounded
//! prefetch (so a slow warehouse slows consumption instead of growing
//! memory), and reconnects with backoff when the broker goes away. Messages
//! are acknowledged only when the runner says the batch holding them is
//! committed, with one `basic.ack(multiple)` per batch. Messages delivered
//! on a channel that has since died are not acknowledged: the broker
//! delivers them again, and `dedupe_key` drops the copies.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};
use serde::Deserialize;
use tokio::sync::{Mutex, mpsc};

use super::stream::{Endpoint, Message, PayloadOptions, StreamSource, read_config};
use crate::core::diagnostic::SpannedError;
use crate::core::error::{ConnectionFailure, Error, Result};
use crate::core::schema::SchemaFn;
use crate::core::{Mode, Workspace};
use crate::sources::SourceConnector;
use schemars::JsonSchema;
use toml::Spanned;
use toml::de::DeValue;

/// `[source] kind = "rabbitmq"`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RabbitMqSourceConfig {
    /// The queue consumed.
    pub queue: String,
    /// Declare the queue (durable) if it does not exist. Default true.
    #[serde(default = "default_true")]
    pub declare: bool,
    /// Messages delivered but not yet acknowledged, at most. Keep it above
    /// `[batch] max_rows`. Default 20000.
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// `connection` or `url`: where the broker is.
    #[serde(skip)]
    pub endpoint: Endpoint,
    /// `format`, `schema`, `columns`, `delimiter`: how payloads are read.
    #[serde(skip)]
    pub payload: PayloadOptions,
}

fn default_true() -> bool {
    true
}
fn default_prefetch() -> u16 {
    20_000
}

impl RabbitMqSourceConfig {
    /// How payloads are read.
    pub fn payload(&self) -> PayloadOptions {
        self.payload.clone()
    }
}

/// A delivery on its way to the runner, with what acknowledges it.
struct Delivered {
    message: Message,
    acker: Acker,
    generation: u64,
}

/// Consumes a RabbitMQ queue.
pub struct RabbitMqSource {
    deliveries: mpsc::Receiver<Delivered>,
    /// Delivered, not yet acknowledged: (seq, acker, channel generation).
    unacked: VecDeque<(u64, Acker, u64)>,
    /// The channel in use, for the queue's depth.
    channel: Arc<Mutex<Option<(Channel, u64)>>>,
    queue: String,
    consumer: tokio::task::JoinHandle<()>,
}

impl RabbitMqSource {
    /// Connects to `url` and starts consuming `config.queue`. Fails if the
    /// first connection fails; later losses are retried.
    pub async fn start(config: RabbitMqSourceConfig, url: String) -> Result<Self> {
        let (tx, rx) = mpsc::channel(usize::from(config.prefetch.max(1)));
        let channel = Arc::new(Mutex::new(None));
        let first = connect(&url, &config).await?;
        let consumer = tokio::spawn(consume(
            url,
            config.clone(),
            tx,
            channel.clone(),
            Some(first),
        ));
        Ok(RabbitMqSource {
            deliveries: rx,
            unacked: VecDeque::new(),
            channel,
            queue: config.queue,
            consumer,
        })
    }
}

impl Drop for RabbitMqSource {
    fn drop(&mut self) {
        self.consumer.abort();
    }
}

/// Where the broker is, without credentials, for messages.
fn broker_address(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .map(|u| {
            format!(
                "{}:{}",
                u.host_str().unwrap_or("?"),
                u.port().unwrap_or(5672)
            )
        })
        .unwrap_or_else(|| "the broker".into())
}

/// A broker error on `queue` while doing `what`, with its cause.
fn broker_error(url: &str, queue: &str, what: &str, e: lapin::Error) -> Error {
    Error::connection(
        format!("rabbitmq {}, queue {queue:?}", broker_address(url)),
        ConnectionFailure::of(&e),
        format!("{what}: {e}"),
        Some(Box::new(e)),
    )
}

/// A connection to the broker at `url` and a channel on it, for `queue`.
async fn open_channel(url: &str, queue: &str) -> Result<(Connection, Channel)> {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|e| broker_error(url, queue, "connecting", e))?;
    let channel = connection
        .create_channel()
        .await
        .map_err(|e| broker_error(url, queue, "opening a channel", e))?;
    Ok((connection, channel))
}

async fn connect(url: &str, config: &RabbitMqSourceConfig) -> Result<(Connection, Channel)> {
    let fail = |what: &str, e: lapin::Error| broker_error(url, &config.queue, what, e);
    let (connection, channel) = open_channel(url, &config.queue).await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| fail("setting the prefetch", e))?;
    let options = QueueDeclareOptions {
        durable: true,
        passive: !config.declare,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(config.queue.as_str().into(), options, FieldTable::default())
        .await
        .map_err(|e| fail("declaring the queue", e))?;
    Ok((connection, channel))
}

/// How many messages wait in `queue` at the broker at `url` (for the
/// orchestrator's queue sensor). The queue must exist.
pub async fn queue_depth(url: &str, queue: &str) -> Result<u64> {
    let (connection, channel) = open_channel(url, queue).await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await
        .map_err(|e| broker_error(url, queue, "looking up the queue", e))?;
    let _ = connection.close(200, "bye".into()).await;
    Ok(u64::from(declared.message_count()))
}

/// Consumes until the runner goes away, reconnecting with backoff.
async fn consume(
    url: String,
    config: RabbitMqSourceConfig,
    tx: mpsc::Sender<Delivered>,
    current: Arc<Mutex<Option<(Channel, u64)>>>,
    mut connected: Option<(Connection, Channel)>,
) {
    let address = broker_address(&url);
    let mut seq = 0u64;
    let mut generation = 0u64;
    let mut wait = Duration::from_millis(200);
    loop {
        let (connection, channel) = match connected.take() {
            Some(c) => c,
            None => match connect(&url, &config).await {
                Ok(c) => {
                    tracing::info!(
                        "rabbitmq {address}: reconnected, consuming {:?} again",
                        config.queue
                    );
                    c
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying in {}", humantime::format_duration(wait));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
        };
        wait = Duration::from_millis(200);
        generation += 1;
        *current.lock().await = Some((channel.clone(), generation));
        let consumer = channel
            .basic_consume(
                config.queue.as_str().into(),
                format!("flowline-{}", std::process::id()).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await;
        let mut consumer = match consumer {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("rabbitmq {address}: consuming {:?}: {e}", config.queue);
                continue;
            }
        };
        while let Some(delivery) = consumer.next().await {
            let delivery = match delivery {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!("rabbitmq {address}: connection lost ({e}); reconnecting");
                    break;
                }
            };
            seq += 1;
            let published_ms = delivery.properties.timestamp().map(|t| {
                // AMQP says seconds; many publishers send milliseconds.
                let t = t as i64;
                if t > 100_000_000_000 { t } else { t * 1000 }
            });
            let message = Message {
                origin: Arc::from(format!(
                    "rabbitmq:{}#{}",
                    config.queue, delivery.delivery_tag
                )),
                payload: Bytes::from(delivery.data),
                published_ms,
                seq,
            };
            let delivered = Delivered {
                message,
                acker: delivery.acker,
                generation,
            };
            if tx.send(delivered).await.is_err() {
                let _ = connection.close(200, "flowline stopped".into()).await;
                return;
            }
        }
        *current.lock().await = None;
        let _ = connection.close(200, "reconnecting".into()).await;
        if tx.is_closed() {
            return;
        }
        tracing::warn!(
            "rabbitmq {address}: consumer of {:?} ended; reconnecting",
            config.queue
        );
    }
}

#[async_trait::async_trait]
impl StreamSource for RabbitMqSource {
    async fn recv(&mut self) -> Result<Option<Message>> {
        let Some(delivered) = self.deliveries.recv().await else {
            return Ok(None);
        };
        self.unacked
            .push_back((delivered.message.seq, delivered.acker, delivered.generation));
        Ok(Some(delivered.message))
    }

    async fn ack(&mut self, seq: u64) -> Result<()> {
        let live = self.channel.lock().await.as_ref().map(|(_, g)| *g);
        let mut last_live = None;
        while let Some((s, _, _)) = self.unacked.front() {
            if *s > seq {
                break;
            }
            if let Some((_, acker, generation)) = self.unacked.pop_front()
                && Some(generation) == live
            {
                last_live = Some(acker);
            }
        }
        if let Some(acker) = last_live {
            // `multiple` acknowledges every earlier delivery on the channel too.
            if let Err(e) = acker.ack(BasicAckOptions { multiple: true }).await {
                tracing::warn!(
                    "rabbitmq: acknowledging failed ({e}); the broker will deliver those messages again"
                );
            }
        }
        Ok(())
    }

    async fn lag(&mut self) -> Option<u64> {
        let channel = self.channel.lock().await.as_ref().map(|(c, _)| c.clone())?;
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(self.queue.as_str().into(), options, FieldTable::default())
            .await
            .ok()
            .map(|q| u64::from(q.message_count()))
    }
}

#[async_trait::async_trait]
impl SourceConnector for RabbitMqSourceConfig {
    fn parse(table: Spanned<DeValue<'_>>) -> std::result::Result<Self, SpannedError> {
        let (endpoint, payload, config) = read_config::<Self>(table, true)?;
        Ok(RabbitMqSourceConfig {
            endpoint,
            payload,
            ..config
        })
    }

    fn shared_schemas() -> Vec<SchemaFn> {
        super::stream::broker_schemas()
    }

    fn kind() -> &'static str {
        "rabbitmq"
    }

    fn mode() -> Mode {
        Mode::Stream
    }

    fn summary() -> &'static str {
        "A RabbitMQ queue, consumed continuously"
    }

    fn schemes() -> &'static [&'static str] {
        &["amqp", "amqps"]
    }

    fn test_connection(
        _name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        let _ = workspace;
        Box::pin(async move {
            let address = broker_address(&url);
            let connection = Connection::connect(&url, ConnectionProperties::default())
                .await
                .map_err(|e| {
                    let failure = ConnectionFailure::of(&e);
                    Error::connection(
                        format!("rabbitmq {address}"),
                        failure,
                        format!("connecting: {e}"),
                        Some(Box::new(e)),
                    )
                })?;
            let _ = connection.close(200, "connection test".into()).await;
            Ok(format!("RabbitMQ at {address} (AMQP 0-9-1)"))
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
        Ok(Box::new(RabbitMqSource::start(self.clone(), url).await?))
    }
}
