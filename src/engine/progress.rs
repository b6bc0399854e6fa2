//! Progress of running pipelines: a live bar per pipeline on a terminal,
//! plain log lines otherwise.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{
    HumanBytes, HumanCount, MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle,
};

use crate::state::{RunRecord, RunStatus};

/// How often plain log lines report progress when not on a terminal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Progress of all pipelines of one command.
pub struct Progress {
    multi: Option<MultiProgress>,
}

impl Progress {
    /// Live bars when `interactive`, log lines otherwise.
    pub fn new(interactive: bool) -> Self {
        let multi =
            interactive.then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { multi }
    }

    /// Starts tracking `pipeline`.
    pub fn pipeline(&self, pipeline: &str) -> PipelineProgress {
        let bar = self.multi.as_ref().map(|multi| {
            let bar = multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("{spinner:.cyan} {prefix:.bold} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.set_prefix(pipeline.to_string());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        PipelineProgress {
            pipeline: pipeline.to_string(),
            bar,
            started: Instant::now(),
            last_log: Mutex::new(Instant::now()),
            rows: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            committed_rows: AtomicU64::new(0),
            committed_duplicates: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            bad_rows: AtomicU64::new(0),
        }
    }
}

/// Counters of one pipeline run.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counts {
    /// Rows loaded: inserted or updated, and committed.
    pub rows: u64,
    /// Rows left out as duplicates of loaded ones, in committed loads.
    pub duplicates: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Rows rejected.
    pub bad_rows: u64,
}

/// Progress of one pipeline run.
pub struct PipelineProgress {
    pipeline: String,
    bar: Option<ProgressBar>,
    started: Instant,
    last_log: Mutex<Instant>,
    /// Rows written, committed or not (the live numbers).
    rows: AtomicU64,
    duplicates: AtomicU64,
    /// Rows in committed loads (what the run record says).
    committed_rows: AtomicU64,
    committed_duplicates: AtomicU64,
    bytes: AtomicU64,
    bad_rows: AtomicU64,
}

impl PipelineProgress {
    /// Adds rows written (inserted or updated), rows left out as
    /// duplicates, and bytes read; rows count as loaded once committed.
    pub fn add(&self, rows: u64, duplicates: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let message = self.message();
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => {
                let mut last = self.last_log.lock().unwrap_or_else(|p| p.into_inner());
                if last.elapsed() >= LOG_EVERY {
                    *last = Instant::now();
                    tracing::info!(pipeline = %self.pipeline, "{message}");
                }
            }
        }
    }

    /// Marks every row written so far as committed.
    pub fn committed(&self) {
        self.committed_rows
            .store(self.rows.load(Ordering::Relaxed), Ordering::Relaxed);
        self.committed_duplicates
            .store(self.duplicates.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Adds rejected rows; returns the run's total so far.
    pub fn add_bad_rows(&self, n: u64) -> u64 {
        self.bad_rows.fetch_add(n, Ordering::Relaxed) + n
    }

    /// The counters so far, rows as committed.
    pub fn counts(&self) -> Counts {
        Counts {
            rows: self.committed_rows.load(Ordering::Relaxed),
            duplicates: self.committed_duplicates.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            bad_rows: self.bad_rows.load(Ordering::Relaxed),
        }
    }

    fn message(&self) -> String {
        let rows = self.rows.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        format!(
            "{} rows  {}  {} rows/s",
            HumanCount(rows),
            HumanBytes(bytes),
            HumanCount((rows as f64 / secs) as u64)
        )
    }

    /// Ends the bar (or logs the outcome).
    pub fn finish(&self, record: &RunRecord) {
        let ok = record.status == RunStatus::Succeeded;
        match &self.bar {
            Some(bar) => {
                bar.finish_and_clear();
            }
            None if ok => tracing::debug!(pipeline = %self.pipeline, "done: {}", self.message()),
            None => tracing::debug!(pipeline = %self.pipeline, "failed after {}", self.message()),
        }
    }
}
