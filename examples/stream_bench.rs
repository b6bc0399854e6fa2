//! The helper of `bench/streams.py`: publishes the benchmark's messages to
//! RabbitMQ or NATS JetStream, and is the "bare loop" flowline's stream
//! runner is compared with: the same client library, the same prefetch, a
//! `serde_json::Value` decode of every payload, acknowledgements in batches
//! (as flowline acknowledges a committed batch), and nothing stored.
//!
//! ```text
//! stream_bench rabbitmq-publish --queue Q --count N [--rate R] [--url URL]
//! stream_bench rabbitmq-consume --queue Q --count N [--prefetch 20000] [--url URL]
//! stream_bench rabbitmq-delete  --queue Q [--url URL]
//! stream_bench nats-publish --stream S --subject SUBJ --count N [--rate R] [--url URL]
//! stream_bench nats-consume --stream S --consumer C --count N [--prefetch 20000] [--url URL]
//! stream_bench nats-delete  --stream S [--url URL]
//! ```
//!
//! Message `i` (from 1) is `{"event_id": i, "user_id": i % 1000, "page":
//! "/p/<i % 50>", "ts": "<now, RFC 3339>"}`. Without `--rate` the publisher
//! goes as fast as the broker confirms; with it, it publishes `R` messages a
//! second, in a small burst every 2 ms. RabbitMQ messages carry the AMQP
//! `timestamp` property (now, in milliseconds), which flowline reads for its
//! end-to-end latency; JetStream stamps its own publish time.
//!
//! Every subcommand prints one JSON object on stdout (`messages`, `seconds`,
//! `msgs_per_s`) and a sentence on stderr. The consumers give up after
//! 60 s without a message.
//!
//! Run: `cargo run --release --example stream_bench -- rabbitmq-publish --queue q --count 1000`

use std::collections::{HashMap, VecDeque};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};

const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
const NATS_URL: &str = "nats://127.0.0.1:4222";
/// Messages acknowledged at once by the bare consumers.
const ACK_EVERY: u64 = 1_000;
/// Messages the JetStream consumer asks for in one pull (as flowline does).
const PULL_BATCH: usize = 1_000;
/// RabbitMQ publishes awaiting their broker confirmation, at most.
const CONFIRM_WINDOW: usize = 5_000;
/// JetStream publishes awaiting their ack, at most: below the 5,000 the
/// client allows in flight, or the next publish would wait for a permit
/// that only an awaited ack gives back.
const JS_ACK_WINDOW: usize = 4_000;
/// Publishes handed to the client at once when not pacing.
const BURST: u64 = 500;
/// How often a paced publisher tops up to its rate.
const PACE_TICK: Duration = Duration::from_millis(2);
/// A consumer gives up after this long without a message.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, BoxError>;

const USAGE: &str = "usage: stream_bench <rabbitmq-publish|rabbitmq-consume|rabbitmq-delete|\
nats-publish|nats-consume|nats-delete> --queue Q | --stream S [--subject SUBJ] [--consumer C] \
[--count N] [--rate R] [--prefetch P] [--url URL]";

#[tokio::main]
async fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1);
    let Some(command) = argv.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("stream_bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let outcome = match command.as_str() {
        "rabbitmq-publish" => rabbitmq_publish(&args).await,
        "rabbitmq-consume" => rabbitmq_consume(&args).await,
        "rabbitmq-delete" => rabbitmq_delete(&args).await,
        "nats-publish" => nats_publish(&args).await,
        "nats-consume" => nats_consume(&args).await,
        "nats-delete" => nats_delete(&args).await,
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown subcommand {other:?}").into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stream_bench {command}: {e}");
            ExitCode::FAILURE
        }
    }
}

// ------------------------------------------------------------ arguments

/// `--name value` pairs.
struct Args(HashMap<String, String>);

impl Args {
    fn parse(mut argv: impl Iterator<Item = String>) -> Result<Self> {
        let mut map = HashMap::new();
        while let Some(flag) = argv.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected --flag, got {flag:?}"))?;
            let value = argv
                .next()
                .ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_string(), value);
        }
        Ok(Args(map))
    }

    fn text(&self, name: &str) -> Result<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn text_or<'a>(&'a self, name: &str, default: &'a str) -> &'a str {
        self.0.get(name).map_or(default, String::as_str)
    }

    fn number<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>> {
        self.0
            .get(name)
            .map(|v| {
                v.replace('_', "")
                    .parse()
                    .map_err(|_| format!("--{name}: {v:?} is not a valid number").into())
            })
            .transpose()
    }

    fn count(&self) -> Result<u64> {
        self.number("count")?
            .filter(|n| *n > 0)
            .ok_or_else(|| "--count N (at least 1) is required".into())
    }

    /// Messages a second, when pacing.
    fn rate(&self) -> Result<Option<f64>> {
        match self.number::<f64>("rate")? {
            Some(r) if !(r > 0.0 && r.is_finite()) => Err("--rate must be above 0".into()),
            r => Ok(r),
        }
    }
}

// ------------------------------------------------------------ shared

/// Message `i`.
fn payload(i: u64) -> Vec<u8> {
    let ts = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    format!(
        r#"{{"event_id": {i}, "user_id": {}, "page": "/p/{}", "ts": "{ts}"}}"#,
        i % 1000,
        i % 50
    )
    .into_bytes()
}

fn now_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// Decodes a payload as the stream runner would have to; a payload that is
/// not JSON is counted, not fatal.
fn decode(payload: &[u8], invalid: &mut u64) {
    if serde_json::from_slice::<serde_json::Value>(payload).is_err() {
        *invalid += 1;
    }
}

/// Hands out the messages `1..=count` to publish, in bursts of consecutive
/// numbers: as fast as they are taken, or paced at `rate` a second.
struct Pacer {
    count: u64,
    rate: Option<f64>,
    sent: u64,
    started: Instant,
    tick: tokio::time::Interval,
}

impl Pacer {
    fn new(count: u64, rate: Option<f64>) -> Self {
        let mut tick = tokio::time::interval(PACE_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Pacer {
            count,
            rate,
            sent: 0,
            started: Instant::now(),
            tick,
        }
    }

    /// The next burst, `(first, n)`, once it is due; `None` when all are out.
    async fn next(&mut self) -> Option<(u64, u64)> {
        while self.sent < self.count {
            let due = match self.rate {
                None => (self.sent + BURST).min(self.count),
                Some(r) => {
                    self.tick.tick().await;
                    ((self.started.elapsed().as_secs_f64() * r) as u64).clamp(self.sent, self.count)
                }
            };
            if due > self.sent {
                let burst = (self.sent + 1, due - self.sent);
                self.sent = due;
                return Some(burst);
            }
        }
        None
    }
}

/// Prints the outcome: one JSON line on stdout, a sentence on stderr.
fn report(what: &str, messages: u64, seconds: f64, invalid: u64) {
    let rate = messages as f64 / seconds.max(1e-9);
    println!(
        "{}",
        serde_json::json!({
            "messages": messages,
            "seconds": seconds,
            "msgs_per_s": rate,
            "invalid": invalid,
        })
    );
    eprintln!("{what} {messages} messages in {seconds:.3} s: {rate:.0} msg/s");
}

/// Waits for the next item of a consumer, at most `IDLE_TIMEOUT`.
async fn next_or_idle<S: futures_util::Stream + Unpin>(
    stream: &mut S,
    received: u64,
) -> Result<S::Item> {
    match tokio::time::timeout(IDLE_TIMEOUT, stream.next()).await {
        Ok(Some(item)) => Ok(item),
        Ok(None) => Err(format!("the consumer ended after {received} messages").into()),
        Err(_) => Err(format!(
            "no message for {} s after {received} messages",
            IDLE_TIMEOUT.as_secs()
        )
        .into()),
    }
}

// ------------------------------------------------------------ RabbitMQ

async fn amqp_channel(args: &Args) -> Result<(Connection, Channel)> {
    let url = args.text_or("url", AMQP_URL);
    let connection = Connection::connect(url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    Ok((connection, channel))
}

async fn declare_durable(channel: &Channel, queue: &str) -> Result<u32> {
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let q = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?;
    Ok(q.message_count())
}

/// Publishes messages `first..first + n` at once, stamped now.
async fn amqp_burst(
    channel: &Channel,
    queue: &str,
    first: u64,
    n: u64,
) -> Result<Vec<PublisherConfirm>> {
    let payloads: Vec<Vec<u8>> = (first..first + n).map(payload).collect();
    let stamp = now_ms();
    let publishes = payloads.iter().map(|body| {
        channel.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_timestamp(stamp),
        )
    });
    Ok(try_join_all(publishes).await?)
}

async fn rabbitmq_publish(args: &Args) -> Result<()> {
    let queue = args.text("queue")?;
    let count = args.count()?;
    let rate = args.rate()?;
    let (connection, channel) = amqp_channel(args).await?;
    declare_durable(&channel, queue).await?;
    // Confirms on, awaited in a window: the count is exact when this returns.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut unconfirmed: VecDeque<PublisherConfirm> = VecDeque::new();
    let started = Instant::now();
    let mut pacer = Pacer::new(count, rate);
    while let Some((first, n)) = pacer.next().await {
        unconfirmed.extend(amqp_burst(&channel, queue, first, n).await?);
        while unconfirmed.len() > CONFIRM_WINDOW {
            if let Some(confirm) = unconfirmed.pop_front() {
                confirm.await?;
            }
        }
    }
    for confirm in unconfirmed {
        confirm.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    connection.close(200, "published".into()).await?;
    report("published", count, seconds, 0);
    Ok(())
}

async fn rabbitmq_consume(args: &Args) -> Result<()> {
    let queue = args.text("queue")?;
    let count = args.count()?;
    let prefetch: u16 = args.number("prefetch")?.unwrap_or(20_000);
    let started = Instant::now();
    let (connection, channel) = amqp_channel(args).await?;
    channel
        .basic_qos(prefetch, BasicQosOptions::default())
        .await?;
    declare_durable(&channel, queue).await?;
    let mut consumer = channel
        .basic_consume(
            queue.into(),
            format!("stream-bench-{}", std::process::id()).into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let (mut received, mut invalid) = (0u64, 0u64);
    while received < count {
        let delivery = next_or_idle(&mut consumer, received).await??;
        received += 1;
        decode(&delivery.data, &mut invalid);
        if received % ACK_EVERY == 0 || received == count {
            delivery
                .acker
                .ack(BasicAckOptions { multiple: true })
                .await?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    connection.close(200, "consumed".into()).await?;
    report("consumed", received, seconds, invalid);
    Ok(())
}

async fn rabbitmq_delete(args: &Args) -> Result<()> {
    let queue = args.text("queue")?;
    let (connection, channel) = amqp_channel(args).await?;
    let dropped = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    connection.close(200, "deleted".into()).await?;
    eprintln!("deleted queue {queue:?} ({dropped} messages in it)");
    Ok(())
}

// ------------------------------------------------------------ NATS JetStream

async fn nats_context(args: &Args) -> Result<(async_nats::Client, jetstream::Context)> {
    let client = async_nats::connect(args.text_or("url", NATS_URL)).await?;
    let context = jetstream::new(client.clone());
    Ok((client, context))
}

async fn nats_publish(args: &Args) -> Result<()> {
    let stream = args.text("stream")?;
    let subject = args.text("subject")?;
    let count = args.count()?;
    let rate = args.rate()?;
    let (client, js) = nats_context(args).await?;
    js.get_or_create_stream(jetstream::stream::Config {
        name: stream.to_string(),
        subjects: vec![subject.to_string()],
        ..Default::default()
    })
    .await?;
    let mut unacked = VecDeque::new();
    let started = Instant::now();
    let mut pacer = Pacer::new(count, rate);
    while let Some((first, n)) = pacer.next().await {
        for i in first..first + n {
            if unacked.len() >= JS_ACK_WINDOW
                && let Some(ack) = unacked.pop_front()
            {
                ack.await?;
            }
            unacked.push_back(js.publish(subject.to_string(), payload(i).into()).await?);
        }
    }
    for ack in unacked {
        ack.await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    client.flush().await?;
    report("published", count, seconds, 0);
    Ok(())
}

/// The durable pull consumer `name` on `stream`, explicit acks, at most
/// `prefetch` unacknowledged (flowline's settings).
async fn pull_consumer(
    js: &jetstream::Context,
    stream: &str,
    name: &str,
    prefetch: i64,
) -> Result<PullConsumer> {
    let stream = js.get_stream(stream).await?;
    let config = pull::Config {
        durable_name: Some(name.to_string()),
        ack_policy: AckPolicy::Explicit,
        max_ack_pending: prefetch,
        ..pull::Config::default()
    };
    Ok(stream.get_or_create_consumer(name, config).await?)
}

async fn nats_consume(args: &Args) -> Result<()> {
    let stream = args.text("stream")?;
    let name = args.text("consumer")?;
    let count = args.count()?;
    let prefetch: i64 = args.number("prefetch")?.unwrap_or(20_000);
    let started = Instant::now();
    let (client, js) = nats_context(args).await?;
    let consumer = pull_consumer(&js, stream, name, prefetch).await?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .messages()
        .await?;
    let (mut received, mut invalid) = (0u64, 0u64);
    let mut ackers = Vec::with_capacity(ACK_EVERY as usize);
    while received < count {
        let message = next_or_idle(&mut messages, received).await??;
        received += 1;
        let (message, acker) = message.split();
        decode(&message.payload, &mut invalid);
        ackers.push(acker);
        if received % ACK_EVERY == 0 || received == count {
            // Each message on its own, as flowline does (AckPolicy::Explicit).
            for acker in ackers.drain(..) {
                acker.ack().await?;
            }
            client.flush().await?;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    report("consumed", received, seconds, invalid);
    Ok(())
}

async fn nats_delete(args: &Args) -> Result<()> {
    let stream = args.text("stream")?;
    let (client, js) = nats_context(args).await?;
    js.delete_stream(stream).await?;
    client.flush().await?;
    eprintln!("deleted stream {stream:?}");
    Ok(())
}
