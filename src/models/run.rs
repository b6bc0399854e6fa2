//! Running selected models: parents before children, independent models
//! on up to `threads` threads at once. A model that fails leaves its
//! previous version in place, and every selected model downstream of it is
//! skipped with the reason.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::catalog;
use super::compile::Compiler;
use super::config::Materialized;
use super::materialize::{self, Build};
use super::project::ModelProject;
use crate::core::error::{Error, Result};
use crate::destinations::Warehouse;

/// How a run goes.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Rebuild incremental models from scratch (`is_incremental()` false).
    pub full_refresh: bool,
    /// Models built at once, at least 1.
    pub threads: usize,
}

/// How one model's build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Built.
    Success,
    /// Its build failed; its previous version is in place.
    Error,
    /// Not built, because a model it reads failed.
    Skipped,
}

/// One model's result.
#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    /// The model.
    pub model: String,
    /// Its file.
    pub file: String,
    /// How it is materialized.
    pub materialized: String,
    /// Where it was built.
    pub relation: String,
    /// How it ended.
    pub status: Status,
    /// What was done, or why it failed or was skipped.
    pub message: String,
    /// How long it took, in seconds.
    pub seconds: f64,
}

/// Builds the `selected` models of `project` in `warehouse`, calling
/// `on_result` as each one ends; returns every result in the order they
/// ended. Ephemeral models are not built: they run inside their dependents.
pub fn run(
    project: &ModelProject,
    warehouse: &dyn Warehouse,
    selected: &BTreeSet<usize>,
    options: RunOptions,
    on_result: &(dyn Fn(&ModelResult) + Sync),
) -> Result<Vec<ModelResult>> {
    let default_schema = catalog::default_schema(warehouse)?;
    let compiler = Compiler::new(project, &default_schema)?;
    let queue: Vec<usize> = project
        .order
        .iter()
        .copied()
        .filter(|i| selected.contains(i))
        .filter(|&i| project.models[i].config.materialized != Materialized::Ephemeral)
        .collect();
    let schemas: BTreeSet<String> = queue
        .iter()
        .map(|&i| materialize::create_schema(&project.models[i].relation(&default_schema)))
        .collect();
    if !schemas.is_empty() {
        warehouse.execute(&schemas.into_iter().collect::<Vec<_>>())?;
    }
    // A model waits for the queued models it reads, directly or not.
    let waits_for: BTreeMap<usize, BTreeSet<usize>> = queue
        .iter()
        .map(|&i| {
            let upstream = project.graph.ancestors(i, None);
            (
                i,
                upstream.into_iter().filter(|a| queue.contains(a)).collect(),
            )
        })
        .collect();
    let board = Board {
        state: Mutex::new(State {
            pending: queue,
            ended: BTreeMap::new(),
            results: Vec::new(),
        }),
        changed: Condvar::new(),
    };
    let threads = options.threads.max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(next) = board.next(&waits_for, project, on_result) {
                    let result = build_one(project, &compiler, warehouse, next, options);
                    board.end(next, result, on_result);
                }
            });
        }
    });
    let state = board.state.into_inner().unwrap_or_else(|p| p.into_inner());
    Ok(state.results)
}

/// The run's shared state: what waits, what runs, how each ended.
struct Board {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    pending: Vec<usize>,
    ended: BTreeMap<usize, Status>,
    results: Vec<ModelResult>,
}

impl Board {
    /// The next model to build, once one can be; `None` when all are done.
    /// Models whose upstream failed are skipped on the way.
    fn next(
        &self,
        waits_for: &BTreeMap<usize, BTreeSet<usize>>,
        project: &ModelProject,
        on_result: &(dyn Fn(&ModelResult) + Sync),
    ) -> Option<usize> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if state.pending.is_empty() {
                return None;
            }
            let mut chosen = None;
            let mut skipped = None;
            for (at, &i) in state.pending.iter().enumerate() {
                let upstream = waits_for.get(&i).cloned().unwrap_or_default();
                let ended = |status: Status| {
                    upstream
                        .iter()
                        .copied()
                        .find(|u| state.ended.get(u) == Some(&status))
                };
                // The reason names a failed model upstream when there is one.
                if let Some(failed) = ended(Status::Error).or_else(|| ended(Status::Skipped)) {
                    skipped = Some((at, i, failed));
                    break;
                }
                if upstream.iter().all(|u| state.ended.contains_key(u)) {
                    chosen = Some((at, i));
                    break;
                }
            }
            if let Some((at, i, failed)) = skipped {
                state.pending.remove(at);
                let model = &project.models[i];
                let verb = match state.ended.get(&failed) {
                    Some(Status::Error) => "failed",
                    _ => "was skipped",
                };
                let reason = format!(
                    "skipped: upstream model {} {verb}",
                    project.models[failed].name
                );
                let result = ModelResult {
                    model: model.name.clone(),
                    file: model.file.display().to_string(),
                    materialized: model.config.materialized.to_string(),
                    relation: String::new(),
                    status: Status::Skipped,
                    message: reason,
                    seconds: 0.0,
                };
                on_result(&result);
                state.ended.insert(i, Status::Skipped);
                state.results.push(result);
                self.changed.notify_all();
                continue;
            }
            if let Some((at, i)) = chosen {
                state.pending.remove(at);
                return Some(i);
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn end(&self, i: usize, result: ModelResult, on_result: &(dyn Fn(&ModelResult) + Sync)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        on_result(&result);
        state.ended.insert(i, result.status);
        state.results.push(result);
        self.changed.notify_all();
    }
}

/// Compiles and builds model `i`; a failure becomes its result.
fn build_one(
    project: &ModelProject,
    compiler: &Compiler<'_>,
    warehouse: &dyn Warehouse,
    i: usize,
    options: RunOptions,
) -> ModelResult {
    let model = &project.models[i];
    let relation = model.relation(compiler.default_schema());
    let started = Instant::now();
    let outcome = (|| -> Result<String> {
        let existing = catalog::kind(warehouse, &relation)?;
        let is_incremental =
            materialize::incremental_run(&model.config, existing, options.full_refresh);
        let sql = compiler.compile(i, is_incremental)?;
        compiler.write(i, &sql)?;
        materialize::build(
            warehouse,
            &Build {
                config: &model.config,
                relation: &relation,
                sql: &sql,
                existing,
                full_refresh: options.full_refresh,
            },
        )
        .map_err(|e| Error::Other(format!("{}: {e}", model.file.display())))
    })();
    let (status, message) = match outcome {
        Ok(done) => (Status::Success, done),
        Err(e) => (Status::Error, e.to_string()),
    };
    ModelResult {
        model: model.name.clone(),
        file: model.file.display().to_string(),
        materialized: model.config.materialized.to_string(),
        relation: relation.to_string(),
        status,
        message,
        seconds: started.elapsed().as_secs_f64(),
    }
}
