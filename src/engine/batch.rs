//! The batch runner: one run of one pipeline, from the saved state to the
//! end of the source.
//!
//! The source runs as its own task and sends batches through a bounded
//! channel; the loader applies the transforms, writes, and commits at every
//! checkpoint (for `replace`, once at the end). One load holds the
//! pipeline's table and the source's child tables, so each commit makes all
//! of them visible together with the state. A whole file a source offers
//! (see [`crate::core::scan`]) is loaded by the warehouse in one commit of
//! its own when nothing needs its batches, else read by the source. Memory
//! is bounded by batch size times queue depth. If anything fails,
//! everything since the last commit is rolled back, so a re-run resumes
//! from committed state.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::progress::PipelineProgress;
use crate::config::{Pipeline, Project};
use crate::core::error::{Error, Result};
use crate::core::{DeadLetter, ScanOffer, SourceBatch};
use crate::destinations::{Destination, LoadSpec, TableName, Warehouse, WriteMode, Written};
use crate::sources::SourceContext;
use crate::state::{RunRecord, StateStore};
use crate::transforms::{self, Transform};

/// How many batches may wait between source and loader.
const QUEUE_DEPTH: usize = 2;

/// Rejected rows kept, past a failed run's rollback, to explain the failure.
const KEEP_DEAD_LETTERS: usize = 10_000;

/// A `merge` load, which a re-run repeats without changing anything,
/// commits after this many rows with the saved state unmoved: DuckDB keeps
/// a transaction's new rows and updates in memory until it commits, so one
/// transaction for a large merge outgrows `load_memory_limit`. After a
/// crash, the re-run merges the same rows again, which leaves the table as
/// it was.
const MERGE_COMMIT_ROWS: u64 = 100_000;

/// Options of one `flowline run`.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Ignore saved progress and rebuild the table from everything the source has.
    pub full_refresh: bool,
}

/// Runs `pipeline` once and returns its run record (also kept in `store`).
/// Never panics on bad data: every failure ends up in the record.
pub async fn run_pipeline(
    project: &Project,
    pipeline: &Pipeline,
    warehouse: &dyn Warehouse,
    store: &dyn StateStore,
    options: RunOptions,
    progress: Arc<PipelineProgress>,
) -> RunRecord {
    let mut record = RunRecord::start(&pipeline.name);
    if let Err(e) = store.start_run(&record) {
        tracing::warn!("{e}");
    }
    let outcome = execute(
        project,
        pipeline,
        warehouse,
        options,
        &record.run_id,
        &progress,
    )
    .await
    .map_err(|e| super::pipeline_failure(&pipeline.name, e));
    let counts = progress.counts();
    record.rows = counts.rows;
    record.duplicates = counts.duplicates;
    record.bytes = counts.bytes;
    record.bad_rows = counts.bad_rows;
    record.finish(outcome);
    if let Err(e) = store.finish_run(&record) {
        tracing::warn!("{e}");
    }
    progress.finish(&record);
    record
}

async fn execute(
    project: &Project,
    pipeline: &Pipeline,
    warehouse: &dyn Warehouse,
    options: RunOptions,
    run_id: &str,
    progress: &Arc<PipelineProgress>,
) -> Result<()> {
    let config = &pipeline.config;
    let dest_config = &config.destination;
    let write = if options.full_refresh {
        WriteMode::Replace
    } else {
        dest_config.write_mode()
    };
    let table = TableName::parse(dest_config.table.get_ref())
        .map_err(|e| Error::pipeline(&pipeline.name, e))?;
    let mut state = match write {
        WriteMode::Replace => None,
        _ => warehouse.saved_state(&pipeline.name)?.map(|s| s.state),
    };
    if state.is_some() && !warehouse.table_exists(&table)? {
        tracing::warn!(
            pipeline = %pipeline.name,
            "table {table} does not exist (renamed or dropped?): loading from the start"
        );
        state = None;
    }
    let spec = LoadSpec {
        pipeline: pipeline.name.clone(),
        run_id: run_id.to_string(),
        table,
        write,
        primary_key: dest_config.primary_key.clone(),
        dedupe_key: dest_config.dedupe_key.clone(),
        upsert: match dest_config.write_mode() {
            WriteMode::Merge => true,
            WriteMode::Replace => !dest_config.primary_key.is_empty(),
            WriteMode::Append => false,
        },
        schema: dest_config.schema,
    };
    // One load for the pipeline's table and its child tables: each commit
    // holds them all with the state.
    let mut destination = warehouse.destination(spec)?;
    for child in config.source.child_tables() {
        destination.add_child(&child.name, child.primary_key)?;
    }
    let chain = transforms::build(&config.transform, &project.workspace())?;
    let commit_at_checkpoints = write != WriteMode::Replace;
    let ctx = SourceContext {
        pipeline: pipeline.name.clone(),
        project_dir: project.dir.clone(),
        state,
        takes_files: chain.is_empty() && commit_at_checkpoints && destination.reads_files(),
    };

    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let source = config.source.build(&project.workspace())?;
    let source_task = tokio::spawn(source.read(ctx, tx));
    // Child tables without a key append, which a re-run would repeat.
    let repeatable = write == WriteMode::Merge
        && config
            .source
            .child_tables()
            .iter()
            .all(|child| !child.primary_key.is_empty());
    let loader = Loader {
        pipeline: pipeline.name.clone(),
        destination,
        chain,
        commit_at_checkpoints,
        commit_every: repeatable.then_some(MERGE_COMMIT_ROWS),
        uncommitted_rows: 0,
        max_bad_rows: config.max_bad_rows,
        progress: progress.clone(),
        last_checkpoint: None,
        uncommitted_letters: Vec::new(),
    };
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || loader.run(rx, &handle, source_task))
        .await
        .map_err(|e| Error::pipeline(&pipeline.name, format!("loader stopped: {e}")))?
}

/// The receiving end: transforms, writes and commits.
struct Loader {
    pipeline: String,
    /// The pipeline's table and the source's child tables.
    destination: Box<dyn Destination>,
    chain: Vec<Box<dyn Transform>>,
    commit_at_checkpoints: bool,
    /// For a load a re-run repeats harmlessly: commit, keeping the saved
    /// state, once this many rows are written.
    commit_every: Option<u64>,
    uncommitted_rows: u64,
    max_bad_rows: Option<u64>,
    progress: Arc<PipelineProgress>,
    last_checkpoint: Option<serde_json::Value>,
    /// Rejected rows since the last commit, kept (up to a limit) if the run fails.
    uncommitted_letters: Vec<DeadLetter>,
}

impl Loader {
    fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceBatch>,
        handle: &tokio::runtime::Handle,
        source_task: tokio::task::JoinHandle<Result<()>>,
    ) -> Result<()> {
        let mut loaded = Ok(());
        while let Some(batch) = rx.blocking_recv() {
            if let Err(e) = self.load(batch) {
                loaded = Err(e);
                break;
            }
        }
        drop(rx);
        let read = handle
            .block_on(source_task)
            .map_err(Error::task("source"))
            .and_then(|r| r);
        if let Err(e) = loaded.and(read) {
            if let Err(rollback) = self.destination.rollback() {
                tracing::warn!(pipeline = %self.pipeline, "rollback failed: {rollback}");
            }
            if let Err(keep) = self
                .destination
                .keep_dead_letters(&self.uncommitted_letters)
            {
                tracing::warn!(pipeline = %self.pipeline, "could not keep rejected rows: {keep}");
            }
            return Err(e);
        }
        // Commit whatever is left: the final state for `replace`, or rows a
        // source sent after its last checkpoint.
        let last = self.last_checkpoint.take();
        self.commit(last.as_ref())
    }

    fn load(&mut self, batch: SourceBatch) -> Result<()> {
        let SourceBatch {
            batch,
            bytes,
            dead_letters,
            checkpoint,
            table,
            offer,
        } = batch;
        if let Some(offer) = offer {
            return self.offered(*offer);
        }
        self.reject(dead_letters)?;
        let written = if let Some(child) = table {
            // Child rows load as they come: the transforms are written for
            // the pipeline's own table.
            self.destination.write_child(&child, batch)?
        } else if batch.num_rows() > 0
            && let Some(out) = transforms::apply_all(&mut self.chain, batch)?
        {
            self.destination.write(out)?
        } else {
            Written::default()
        };
        self.progress.add(written.rows, written.duplicates, bytes);
        self.uncommitted_rows += written.rows + written.duplicates;
        self.reject(written.dead_letters)?;
        if checkpoint.is_none()
            && self
                .commit_every
                .is_some_and(|every| self.uncommitted_rows >= every)
        {
            self.commit(None)?;
        }
        if let Some(checkpoint) = checkpoint {
            if self.commit_at_checkpoints {
                self.commit(Some(&checkpoint))?;
                self.last_checkpoint = None;
            } else {
                self.last_checkpoint = Some(checkpoint);
            }
        }
        Ok(())
    }

    /// A whole file the source offers for the warehouse to read itself:
    /// loaded and committed with its checkpoint when no transform needs its
    /// batches, each commit holds one file, and nothing waits uncommitted;
    /// otherwise (or when the warehouse declines it) the source reads it.
    fn offered(&mut self, offer: ScanOffer) -> Result<()> {
        // The warehouse declines a load it cannot take whole (`replace`,
        // `merge`); the transforms and what waits uncommitted are ours.
        let takes_files = self.chain.is_empty()
            && self.uncommitted_rows == 0
            && self.uncommitted_letters.is_empty();
        let loaded = if takes_files {
            self.destination.load_file(&offer.scan)
        } else {
            Ok(None)
        };
        let written = match loaded {
            Ok(Some(written)) => written,
            Ok(None) => {
                offer.answer(false);
                return Ok(());
            }
            Err(e) => {
                offer.answer(false);
                return Err(e);
            }
        };
        tracing::debug!(pipeline = %self.pipeline, "{}: read by the warehouse", offer.scan.name);
        self.progress
            .add(written.rows, written.duplicates, offer.bytes);
        self.uncommitted_rows += written.rows;
        let committed = self.commit(Some(&offer.checkpoint));
        offer.answer(committed.is_ok());
        committed
    }

    /// Records rows rejected by the source or the warehouse, and fails the
    /// run past `max_bad_rows`.
    fn reject(&mut self, dead_letters: Vec<DeadLetter>) -> Result<()> {
        if dead_letters.is_empty() {
            return Ok(());
        }
        self.destination.write_dead_letters(&dead_letters)?;
        let bad = self.progress.add_bad_rows(dead_letters.len() as u64);
        let last = dead_letters[dead_letters.len() - 1].clone();
        let room = KEEP_DEAD_LETTERS.saturating_sub(self.uncommitted_letters.len());
        self.uncommitted_letters
            .extend(dead_letters.into_iter().take(room));
        if let Some(max) = self.max_bad_rows
            && bad > max
        {
            return Err(Error::pipeline(
                &self.pipeline,
                format!(
                    "{bad} rows rejected, more than max_bad_rows = {max}, so nothing of this \
                     run was loaded; the last: {} ({}); all are in the _flowline_dead_letter table",
                    last.origin, last.reason
                ),
            ));
        }
        Ok(())
    }

    /// Commits what was written since the last commit, with `state`; its
    /// rows count as loaded from now on.
    fn commit(&mut self, state: Option<&serde_json::Value>) -> Result<()> {
        self.destination.commit(state)?;
        self.uncommitted_rows = 0;
        self.progress.committed();
        self.uncommitted_letters.clear();
        Ok(())
    }
}
