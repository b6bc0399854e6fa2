//! The stream runner: one stream pipeline, consumed continuously in
//! micro-batches until it is told to stop.
//!
//! A batch closes when it holds `[batch] max_rows` messages or its first
//! message has waited `max_wait`. It is decoded, transformed and written
//! like a batch-mode batch, committed with the pipeline's state, and only
//! then acknowledged to the broker: a crash before the commit means the
//! broker delivers the messages again (and `dedupe_key` drops copies of
//! rows already committed). The source's bounded prefetch and this loop's
//! one batch in hand bound memory; a slow warehouse slows consumption.
//!
//! Stopping (SIGINT/SIGTERM) drains: the batch in hand is committed and
//! acknowledged before the runner returns.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::sync::watch;

use crate::config::{Pipeline, Project};
use crate::core::error::{Error, Result};
use crate::destinations::{Destination, LoadSpec, TableName, Warehouse, WriteMode, Written};
use crate::sources::stream::{Message, PayloadDecoder, StreamSource};
use crate::state::{RunRecord, StateStore, StreamStats};
use crate::transforms::{self, Transform};

/// How often a running stream reports its numbers.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Live numbers of one stream pipeline.
pub struct StreamMetrics {
    /// Messages consumed and committed.
    pub messages: AtomicU64,
    /// Rows committed (after transforms and deduplication).
    pub rows: AtomicU64,
    /// Payload bytes committed.
    pub bytes: AtomicU64,
    /// Messages or records sent to the dead-letter table.
    pub bad_rows: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Milliseconds from a batch's first message to its commit.
    batch_latency: Mutex<Histogram<u64>>,
    /// Milliseconds from publish (as the broker or publisher stamps it) to commit.
    end_to_end: Mutex<Histogram<u64>>,
    /// The consumer lag the broker reported last.
    pub lag: AtomicU64,
}

impl Default for StreamMetrics {
    fn default() -> Self {
        let histogram = || {
            // One millisecond to one hour, three significant digits.
            Mutex::new(
                Histogram::new_with_bounds(1, 3_600_000, 3).expect("constant bounds are valid"),
            )
        };
        StreamMetrics {
            messages: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            bad_rows: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            batch_latency: histogram(),
            end_to_end: histogram(),
            lag: AtomicU64::new(u64::MAX),
        }
    }
}

/// Percentiles of the latencies seen so far.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Latencies {
    /// Median batch latency, ms.
    pub batch_p50_ms: u64,
    /// 99th percentile batch latency, ms.
    pub batch_p99_ms: u64,
    /// Median publish-to-commit latency, ms (0 when publishers stamp no time).
    pub end_to_end_p50_ms: u64,
    /// 99th percentile publish-to-commit latency, ms.
    pub end_to_end_p99_ms: u64,
}

impl StreamMetrics {
    /// The latency percentiles so far.
    pub fn latencies(&self) -> Latencies {
        let of = |h: &Mutex<Histogram<u64>>, q: f64| {
            let h = h.lock().unwrap_or_else(|p| p.into_inner());
            if h.is_empty() {
                0
            } else {
                h.value_at_quantile(q)
            }
        };
        Latencies {
            batch_p50_ms: of(&self.batch_latency, 0.5),
            batch_p99_ms: of(&self.batch_latency, 0.99),
            end_to_end_p50_ms: of(&self.end_to_end, 0.5),
            end_to_end_p99_ms: of(&self.end_to_end, 0.99),
        }
    }

    /// The session's numbers for its run record, over `elapsed`.
    pub fn stats(&self, elapsed: Duration) -> StreamStats {
        let l = self.latencies();
        let messages = self.messages.load(Ordering::Relaxed);
        StreamStats {
            messages,
            batches: self.batches.load(Ordering::Relaxed),
            messages_per_second: messages as f64 / elapsed.as_secs_f64().max(0.001),
            batch_p50_ms: l.batch_p50_ms,
            batch_p99_ms: l.batch_p99_ms,
            end_to_end_p50_ms: l.end_to_end_p50_ms,
            end_to_end_p99_ms: l.end_to_end_p99_ms,
            lag: match self.lag.load(Ordering::Relaxed) {
                u64::MAX => None,
                lag => Some(lag),
            },
        }
    }

    /// Copies the numbers so far into `record`.
    fn fill(&self, record: &mut RunRecord) {
        record.rows = self.rows.load(Ordering::Relaxed);
        record.bytes = self.bytes.load(Ordering::Relaxed);
        record.bad_rows = self.bad_rows.load(Ordering::Relaxed);
        record.stream = Some(self.stats(record.duration()));
    }

    /// Counts a committed batch of `messages`, the first received at `first_at`.
    fn record(&self, messages: &[Message], first_at: Instant) {
        let now_ms = Utc::now().timestamp_millis();
        self.messages
            .fetch_add(messages.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_add(
            messages.iter().map(|m| m.payload.len() as u64).sum(),
            Ordering::Relaxed,
        );
        self.batches.fetch_add(1, Ordering::Relaxed);
        let batch_ms = first_at.elapsed().as_millis() as u64;
        if let Ok(mut h) = self.batch_latency.lock() {
            let _ = h.record(batch_ms.max(1));
        }
        if let Ok(mut h) = self.end_to_end.lock() {
            for published in messages.iter().filter_map(|m| m.published_ms) {
                let _ = h.record((now_ms - published).max(1) as u64);
            }
        }
    }
}

/// Runs `pipeline` until `stop` turns true (or the source ends), then
/// drains. The returned record is also kept in `store`.
pub async fn run_stream(
    project: &Project,
    pipeline: &Pipeline,
    warehouse: Arc<dyn Warehouse>,
    store: Arc<dyn StateStore>,
    stop: watch::Receiver<bool>,
    metrics: Arc<StreamMetrics>,
) -> RunRecord {
    let mut record = RunRecord::start(&pipeline.name);
    if let Err(e) = store.start_run(&record) {
        tracing::warn!("{e}");
    }
    // Every report also goes into the run history, so that `flowline status`
    // shows a long-running session's numbers while it runs.
    let mut progress = record.clone();
    let mut on_report = |metrics: &StreamMetrics| {
        metrics.fill(&mut progress);
        if let Err(e) = store.finish_run(&progress) {
            tracing::warn!("{e}");
        }
    };
    let outcome = consume(
        project,
        pipeline,
        warehouse,
        &record.run_id,
        stop,
        &metrics,
        &mut on_report,
    )
    .await
    .map_err(|e| super::pipeline_failure(&pipeline.name, e));
    metrics.fill(&mut record);
    record.finish(outcome);
    if let Err(e) = store.finish_run(&record) {
        tracing::warn!("{e}");
    }
    record
}

/// Sends `stop` once the streams' message count has not moved for `idle`:
/// `flowline stream --until-idle` and stream steps of jobs end this way.
pub async fn stop_when_idle(
    idle: Duration,
    streams: Vec<Arc<StreamMetrics>>,
    stop: Arc<watch::Sender<bool>>,
) {
    let count = || -> u64 {
        streams
            .iter()
            .map(|m| m.messages.load(Ordering::Relaxed))
            .sum()
    };
    let tick = (idle / 10).clamp(Duration::from_millis(10), Duration::from_millis(250));
    let (mut seen, mut since) = (count(), tokio::time::Instant::now());
    loop {
        tokio::time::sleep(tick).await;
        let now = count();
        if now != seen {
            (seen, since) = (now, tokio::time::Instant::now());
        } else if since.elapsed() >= idle {
            tracing::info!(
                "no message for {}: stopping after committing the batches in hand",
                humantime::format_duration(idle)
            );
            let _ = stop.send(true);
            return;
        }
    }
}

/// Runs `pipeline` until no message has arrived for `idle`, then drains
/// (commits and acknowledges the batch in hand) and returns its record: a
/// queue emptied in one go, as a job's step does it.
pub async fn drain(
    project: &Project,
    pipeline: &Pipeline,
    warehouse: Arc<dyn Warehouse>,
    store: Arc<dyn StateStore>,
    idle: Duration,
) -> RunRecord {
    let (stop, stopped) = watch::channel(false);
    let metrics = Arc::new(StreamMetrics::default());
    let watcher = tokio::spawn(stop_when_idle(idle, vec![metrics.clone()], Arc::new(stop)));
    let record = run_stream(project, pipeline, warehouse, store, stopped, metrics).await;
    watcher.abort();
    record
}

/// The batch in hand: messages since the last commit.
struct Pending {
    messages: Vec<Message>,
    first_at: Instant,
}

async fn consume(
    project: &Project,
    pipeline: &Pipeline,
    warehouse: Arc<dyn Warehouse>,
    run_id: &str,
    mut stop: watch::Receiver<bool>,
    metrics: &StreamMetrics,
    on_report: &mut (dyn FnMut(&StreamMetrics) + Send),
) -> Result<()> {
    let name = &pipeline.name;
    let config = &pipeline.config;
    let dest = &config.destination;
    if dest.write_mode() == WriteMode::Replace {
        return Err(Error::pipeline(
            name,
            "a stream cannot write = \"replace\": use append (with dedupe_key) or merge",
        ));
    }
    let table = TableName::parse(dest.table.get_ref()).map_err(|e| Error::pipeline(name, e))?;
    let spec = LoadSpec {
        pipeline: name.clone(),
        run_id: run_id.to_string(),
        table,
        write: dest.write_mode(),
        primary_key: dest.primary_key.clone(),
        dedupe_key: dest.dedupe_key.clone(),
        upsert: dest.write_mode() == WriteMode::Merge,
        schema: dest.schema,
    };
    let mut destination = tokio::task::block_in_place(|| warehouse.destination(spec))?;
    let mut chain = transforms::build(&config.transform, &project.workspace())?;
    let payload = config
        .source
        .payload_options()
        .ok_or_else(|| Error::pipeline(name, "not a stream source"))?;
    let mut decoder = PayloadDecoder::new(payload)?;
    let saved = tokio::task::block_in_place(|| warehouse.saved_state(name))?.map(|s| s.state);
    let mut source = config
        .source
        .start_stream(&project.workspace(), name, saved.as_ref())
        .await?;
    tracing::info!(pipeline = %name, "streaming into {}", dest.table.get_ref());

    let max_rows = config.batch.max_rows.max(1);
    let max_wait = config.batch.max_wait;
    let mut reporter = Reporter::new();
    loop {
        if *stop.borrow() {
            break;
        }
        // A quiet stream reports on the timer, so the numbers of its last
        // batch do not wait for the next message.
        let first = tokio::select! {
            message = source.recv() => message?,
            _ = stop.changed() => break,
            _ = tokio::time::sleep_until(reporter.next_at()) => {
                reporter.report(name, source.as_mut(), metrics, on_report).await;
                continue;
            }
        };
        let Some(first) = first else {
            tracing::info!(pipeline = %name, "the source ended");
            break;
        };
        let mut messages = Vec::with_capacity(max_rows.min(65_536));
        messages.push(first);
        let mut pending = Pending {
            messages,
            first_at: Instant::now(),
        };
        let deadline = tokio::time::Instant::from_std(pending.first_at + max_wait);
        let mut ended = false;
        while pending.messages.len() < max_rows {
            tokio::select! {
                message = source.recv() => match message? {
                    Some(m) => pending.messages.push(m),
                    None => { ended = true; break; }
                },
                _ = tokio::time::sleep_until(deadline) => break,
                _ = stop.changed() => break,
            }
        }
        let checkpoint = pending
            .messages
            .last()
            .and_then(|last| source.checkpoint(last.seq));
        commit_batch(
            &pending,
            checkpoint,
            &mut decoder,
            &mut chain,
            destination.as_mut(),
            metrics,
        )
        .map_err(|e| Error::pipeline(name, e.to_string()))?;
        if let Some(last) = pending.messages.last() {
            source.ack(last.seq).await?;
        }
        metrics.record(&pending.messages, pending.first_at);
        if reporter.due() {
            reporter
                .report(name, source.as_mut(), metrics, on_report)
                .await;
        }
        if ended {
            tracing::info!(pipeline = %name, "the source ended");
            break;
        }
    }
    source.close().await;
    Ok(())
}

/// When a running stream reports its numbers: every [`REPORT_EVERY`] after
/// a commit, and on a timer while no message comes, once per change.
struct Reporter {
    /// When it last reported.
    at: Instant,
    /// The messages committed then.
    messages: u64,
}

impl Reporter {
    fn new() -> Self {
        Reporter {
            at: Instant::now(),
            messages: 0,
        }
    }

    /// When the next report is due.
    fn next_at(&self) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.at + REPORT_EVERY)
    }

    fn due(&self) -> bool {
        self.at.elapsed() >= REPORT_EVERY
    }

    /// Logs the numbers and hands them to `on_report` (the run history),
    /// when messages were committed since the last report.
    async fn report(
        &mut self,
        pipeline: &str,
        source: &mut dyn StreamSource,
        metrics: &StreamMetrics,
        on_report: &mut (dyn FnMut(&StreamMetrics) + Send),
    ) {
        let total = metrics.messages.load(Ordering::Relaxed);
        if total != self.messages {
            if let Some(lag) = source.lag().await {
                metrics.lag.store(lag, Ordering::Relaxed);
            }
            report(pipeline, metrics, total - self.messages, self.at.elapsed());
            on_report(metrics);
        }
        self.messages = total;
        self.at = Instant::now();
    }
}

/// Decodes, transforms, writes and commits one batch.
fn commit_batch(
    pending: &Pending,
    checkpoint: Option<serde_json::Value>,
    decoder: &mut PayloadDecoder,
    chain: &mut [Box<dyn Transform>],
    destination: &mut dyn Destination,
    metrics: &StreamMetrics,
) -> Result<()> {
    let (batch, letters) = decoder.decode(&pending.messages)?;
    tokio::task::block_in_place(|| {
        let written = (|| {
            if !letters.is_empty() {
                destination.write_dead_letters(&letters)?;
            }
            let mut written = Written::default();
            if batch.num_rows() > 0
                && let Some(out) = transforms::apply_all(chain, batch)?
            {
                written = destination.write(out)?;
                // Rows the table cannot take are dead letters, acknowledged
                // with the batch: one message never blocks the stream.
                destination.write_dead_letters(&written.dead_letters)?;
            }
            let state = checkpoint.unwrap_or_else(|| {
                let committed =
                    metrics.messages.load(Ordering::Relaxed) + pending.messages.len() as u64;
                json!({ "messages": committed })
            });
            destination.commit(Some(&state))?;
            Ok(written)
        })();
        match written {
            Ok(written) => {
                metrics.rows.fetch_add(written.rows, Ordering::Relaxed);
                metrics.bad_rows.fetch_add(
                    (letters.len() + written.dead_letters.len()) as u64,
                    Ordering::Relaxed,
                );
                Ok(())
            }
            Err(e) => {
                if let Err(rollback) = destination.rollback() {
                    tracing::warn!("rollback failed: {rollback}");
                }
                Err(e)
            }
        }
    })
}

/// One log line of live numbers.
fn report(pipeline: &str, metrics: &StreamMetrics, messages: u64, over: Duration) {
    let rate = messages as f64 / over.as_secs_f64().max(0.001);
    let l = metrics.latencies();
    let lag = match metrics.lag.load(Ordering::Relaxed) {
        u64::MAX => String::new(),
        lag => format!(", lag {lag}"),
    };
    let end_to_end = if l.end_to_end_p99_ms > 0 {
        format!(
            ", end-to-end p50 {} ms p99 {} ms",
            l.end_to_end_p50_ms, l.end_to_end_p99_ms
        )
    } else {
        String::new()
    };
    tracing::info!(
        pipeline = %pipeline,
        "{rate:.0} msg/s, {} rows committed, batch p50 {} ms p99 {} ms{end_to_end}{lag}",
        metrics.rows.load(Ordering::Relaxed),
        l.batch_p50_ms,
        l.batch_p99_ms,
    );
}
