//! Running selected models: parents before children, independent models
//! on up to `threads` threads at once. A model that fails leaves its
//! previous version in place, and every selected model downstream of it is
//! skipped with the reason. In `build`, each model's tests run as soon as
//! it (and every other model they read) is built, and a failing test skips
//! what is downstream too.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Condvar, Mutex};
use std::time::Instant;

use serde::Serialize;

use super::catalog;
use super::catalog::RelationKind;
use super::compile::Compiler;
use super::config::Materialized;
use super::datatest::{self, DataTest, TestResult};
use super::jinja::Renderer;
use super::materialize::{self, Build};
use super::project::ModelProject;
use super::relation::Relation;
use crate::core::error::{Error, Result};
use crate::destinations::Warehouse;

/// How a run goes.
#[derive(Debug, Clone, Copy)]
pub struct RunOptions {
    /// Rebuild incremental models from scratch (`is_incremental()` false).
    pub full_refresh: bool,
    /// Models built at once, at least 1.
    pub threads: usize,
    /// Test each model right after it is built (`build`): a failing test
    /// (severity error) skips the models downstream, as a failed build does.
    pub tests: bool,
}

/// How one model's build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Built.
    Success,
    /// Its build failed; its previous version is in place.
    Error,
    /// Not built, because a model it reads failed, or a test on it failed.
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

/// What a run reports as it goes: a model's result, or a test's.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A model ended.
    Model(&'a ModelResult),
    /// A test ended.
    Test(&'a TestResult),
}

/// Everything a run did, in the order things ended.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// The models' results.
    pub models: Vec<ModelResult>,
    /// The tests' results (with [`RunOptions::tests`]).
    pub tests: Vec<TestResult>,
}

/// Builds the `selected` models of `project` in `warehouse`, calling
/// `on_event` as each model (and, with [`RunOptions::tests`], each test)
/// ends. Ephemeral models are not built: they run inside their dependents.
pub fn run(
    project: &ModelProject,
    warehouse: &dyn Warehouse,
    selected: &BTreeSet<usize>,
    options: RunOptions,
    on_event: &(dyn Fn(Event<'_>) + Sync),
) -> Result<RunReport> {
    let default_schema = catalog::default_schema(warehouse)?;
    let compiler = Compiler::new(project, &default_schema)?;
    let queue: Vec<usize> = project
        .order
        .iter()
        .copied()
        .filter(|i| selected.contains(i))
        .filter(|&i| project.models[i].config.materialized != Materialized::Ephemeral)
        .collect();
    let relations: BTreeMap<usize, Relation> = queue
        .iter()
        .map(|&i| (i, project.models[i].relation(&default_schema)))
        .collect();
    let schemas: BTreeSet<String> = relations.values().map(materialize::create_schema).collect();
    if !schemas.is_empty() {
        warehouse.execute(&schemas.into_iter().collect::<Vec<_>>())?;
    }
    let existing = catalog::kinds(
        warehouse,
        &relations.values().map(|r| r.schema.clone()).collect(),
    )?;
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
    // A test waits for the queued models it reads.
    let tests: Vec<(&DataTest, BTreeSet<usize>)> = if options.tests {
        project
            .tests_of(selected)
            .into_iter()
            .map(|t| {
                let on: BTreeSet<usize> = t
                    .depends_on
                    .iter()
                    .filter_map(|m| project.index_of(m))
                    .filter(|i| queue.contains(i))
                    .collect();
                (t, on)
            })
            .collect()
    } else {
        Vec::new()
    };
    let board = Board {
        state: Mutex::new(State {
            pending: queue,
            ended: BTreeMap::new(),
            built: BTreeSet::new(),
            tests_failed: BTreeSet::new(),
            tests_started: BTreeSet::new(),
            report: RunReport::default(),
        }),
        changed: Condvar::new(),
    };
    let renderer = project.renderer(&default_schema);
    let test_run = TestRun {
        tests: &tests,
        renderer: &renderer,
        warehouse,
    };
    let threads = options.threads.max(1);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                while let Some(next) = board.next(&waits_for, project, on_event) {
                    let result = build_one(
                        project,
                        &compiler,
                        warehouse,
                        next,
                        existing.get(&relations[&next]).copied(),
                        options,
                    );
                    on_event(Event::Model(&result));
                    let tests_passed = result.status != Status::Success
                        || board.test(Some(next), &test_run, on_event);
                    board.end(next, result, tests_passed);
                }
            });
        }
    });
    // Tests on no queued model (ephemeral ones) run last; those whose
    // models failed are skipped.
    board.test(None, &test_run, on_event);
    let mut state = board.state.into_inner().unwrap_or_else(|p| p.into_inner());
    for (at, (test, _)) in tests.iter().enumerate() {
        if !state.tests_started.contains(&at) {
            let result = TestResult::skipped(test, "a model it tests failed or was skipped");
            on_event(Event::Test(&result));
            state.report.tests.push(result);
        }
    }
    Ok(state.report)
}

/// The tests of a run and what they run with.
struct TestRun<'a> {
    tests: &'a [(&'a DataTest, BTreeSet<usize>)],
    renderer: &'a Renderer,
    warehouse: &'a dyn Warehouse,
}

/// The run's shared state: what waits, what runs, how each ended.
struct Board {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    pending: Vec<usize>,
    ended: BTreeMap<usize, Status>,
    /// The models built so far, whose tests may run (they may not have
    /// ended yet: a model ends once its tests ran).
    built: BTreeSet<usize>,
    /// Built models a test failed on: what reads them is skipped.
    tests_failed: BTreeSet<usize>,
    /// The tests taken to run (by index).
    tests_started: BTreeSet<usize>,
    report: RunReport,
}

impl Board {
    /// The next model to build, once one can be; `None` when all are done.
    /// Models whose upstream failed are skipped on the way.
    fn next(
        &self,
        waits_for: &BTreeMap<usize, BTreeSet<usize>>,
        project: &ModelProject,
        on_event: &(dyn Fn(Event<'_>) + Sync),
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
                let test_failed = upstream
                    .iter()
                    .copied()
                    .find(|u| state.tests_failed.contains(u));
                if let Some(failed) = ended(Status::Error)
                    .or(test_failed)
                    .or_else(|| ended(Status::Skipped))
                {
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
                let upstream = &project.models[failed].name;
                let reason = if state.tests_failed.contains(&failed) {
                    format!("skipped: a test on upstream model {upstream} failed")
                } else if state.ended.get(&failed) == Some(&Status::Error) {
                    format!("skipped: upstream model {upstream} failed")
                } else {
                    format!("skipped: upstream model {upstream} was skipped")
                };
                let result = ModelResult {
                    model: model.name.clone(),
                    file: model.file.display().to_string(),
                    materialized: model.config.materialized.to_string(),
                    relation: String::new(),
                    status: Status::Skipped,
                    message: reason,
                    seconds: 0.0,
                };
                on_event(Event::Model(&result));
                state.ended.insert(i, Status::Skipped);
                state.report.models.push(result);
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

    /// Runs the tests that model `built` (just built) completes: those whose
    /// other models are built too; with `None`, those on no queued model.
    /// Whether none of them failed.
    fn test(
        &self,
        built: Option<usize>,
        run: &TestRun<'_>,
        on_event: &(dyn Fn(Event<'_>) + Sync),
    ) -> bool {
        let ready: Vec<usize> = {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            // Recorded and claimed under one lock: of two models a test
            // reads, the one built second runs it.
            state.built.extend(built);
            let ready: Vec<usize> = run
                .tests
                .iter()
                .enumerate()
                .filter(|(at, (_, on))| {
                    !state.tests_started.contains(at)
                        && match built {
                            None => on.is_empty(),
                            Some(built) => {
                                on.contains(&built) && on.iter().all(|m| state.built.contains(m))
                            }
                        }
                })
                .map(|(at, _)| at)
                .collect();
            state.tests_started.extend(ready.iter().copied());
            ready
        };
        let mut passed = true;
        for at in ready {
            let result = datatest::run(run.tests[at].0, run.renderer, run.warehouse);
            passed &= !result.status.blocks();
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            on_event(Event::Test(&result));
            state.report.tests.push(result);
        }
        passed
    }

    /// Records how model `i` ended, which may let others start.
    fn end(&self, i: usize, result: ModelResult, tests_passed: bool) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.ended.insert(i, result.status);
        if !tests_passed {
            state.tests_failed.insert(i);
        }
        state.report.models.push(result);
        self.changed.notify_all();
    }
}

/// Compiles and builds model `i`, whose relation is `existing` now; a
/// failure becomes its result.
fn build_one(
    project: &ModelProject,
    compiler: &Compiler<'_>,
    warehouse: &dyn Warehouse,
    i: usize,
    existing: Option<RelationKind>,
    options: RunOptions,
) -> ModelResult {
    let model = &project.models[i];
    let relation = model.relation(compiler.default_schema());
    let started = Instant::now();
    let outcome = (|| -> Result<String> {
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
