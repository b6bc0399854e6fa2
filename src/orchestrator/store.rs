//! The orchestrator's state: job runs, their steps (the queue), attempts,
//! logs, pauses and the scheduler's leader lease, in the project's state
//! store: SQLite by default, PostgreSQL when `[state] url` names one, so
//! that workers on several machines share one queue.
//!
//! A step is taken with a lease: `SELECT ... FOR UPDATE SKIP LOCKED`, then
//! marked running by its worker until a time the worker keeps pushing
//! forward (heartbeats). A worker that dies stops pushing; once the lease
//! has expired, the next worker to look puts the step back in the queue and
//! it runs again. Finishing a step and deciding which steps it frees is one
//! transaction that locks the run's row, so two workers finishing two
//! steps of one run at once cannot both miss the step that needed both.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;

use crate::config::JobConfig;
use crate::core::error::{Error, Result};
use crate::jobs::TriggerRule;
use crate::jobs::dag::{self, Node, StepState};
use crate::jobs::log::LogLine;
use crate::jobs::schedule::Interval;
use crate::state::db::{Db, Dialect, Migration, Row, Tx, Value, migrate, now_ms};

/// The schema, in order. Never edit a released migration: add one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "job runs, steps, attempts, logs, pauses, pools, leader",
        sql: "
CREATE TABLE job_runs (
    run_id TEXT PRIMARY KEY,
    root_run_id TEXT NOT NULL,
    job TEXT NOT NULL,
    run_key TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    state TEXT NOT NULL,
    max_active BIGINT NOT NULL,
    interval_start BIGINT NOT NULL,
    interval_end BIGINT NOT NULL,
    params TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    ended_at BIGINT,
    error TEXT,
    UNIQUE (job, run_key)
);
CREATE INDEX job_runs_by_job ON job_runs (job, created_at);
CREATE INDEX job_runs_by_state ON job_runs (state);
CREATE TABLE job_steps (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    position BIGINT NOT NULL,
    state TEXT NOT NULL,
    after_steps TEXT NOT NULL,
    trigger_rule TEXT NOT NULL,
    pool TEXT,
    tries BIGINT NOT NULL DEFAULT 0,
    max_tries BIGINT NOT NULL,
    lost BIGINT NOT NULL DEFAULT 0,
    ready_at BIGINT,
    lease_owner TEXT,
    lease_expires BIGINT,
    first_started_at BIGINT,
    started_at BIGINT,
    ended_at BIGINT,
    error TEXT,
    PRIMARY KEY (run_id, step)
);
CREATE INDEX job_steps_ready ON job_steps (state, ready_at);
CREATE TABLE job_attempts (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    worker TEXT NOT NULL,
    state TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    error TEXT,
    PRIMARY KEY (run_id, step, attempt)
);
CREATE TABLE job_logs (
    run_id TEXT NOT NULL,
    step TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    at BIGINT NOT NULL,
    stream TEXT NOT NULL,
    line TEXT NOT NULL,
    PRIMARY KEY (run_id, step, attempt, seq)
);
CREATE INDEX job_logs_by_time ON job_logs (at);
CREATE TABLE job_flags (
    job TEXT PRIMARY KEY,
    paused BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE job_pools (
    name TEXT PRIMARY KEY,
    slots BIGINT NOT NULL
);
CREATE TABLE job_leader (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
)",
    },
    Migration {
        version: 2,
        name: "job steps by run and state",
        sql: "CREATE INDEX job_steps_by_run_state ON job_steps (run_id, state)",
    },
];

/// Where a job run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for an earlier run of its job to end (`max_active_runs`).
    Queued,
    /// Its steps are being run.
    Running,
    /// Every step ended and none failed.
    Succeeded,
    /// A step failed.
    Failed,
}

impl RunState {
    /// The state as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
        }
    }

    /// Parses a stored state.
    pub fn parse(text: &str) -> RunState {
        match text {
            "queued" => RunState::Queued,
            "succeeded" => RunState::Succeeded,
            "failed" => RunState::Failed,
            _ => RunState::Running,
        }
    }

    /// Whether it has ended.
    pub fn is_done(self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// The scheduler, for a data interval.
    Schedule,
    /// `flowline jobs backfill`, for a past interval.
    Backfill,
    /// A person or a program: `jobs run`, `jobs trigger`, the API.
    Manual,
    /// A `job` step of another job's run.
    Step,
}

impl Trigger {
    /// As stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::Backfill => "backfill",
            Trigger::Manual => "manual",
            Trigger::Step => "step",
        }
    }

    fn parse(text: &str) -> Trigger {
        match text {
            "schedule" => Trigger::Schedule,
            "backfill" => Trigger::Backfill,
            "step" => Trigger::Step,
            _ => Trigger::Manual,
        }
    }
}

/// The key of a run of an interval: the scheduler, a backfill and a
/// second scheduler all compute the same, so an interval runs once.
pub fn interval_key(interval: &Interval) -> String {
    format!("interval:{}", interval.start.to_rfc3339())
}

/// One run of a job.
#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    /// Unique, time-ordered id.
    pub run_id: String,
    /// The run that started this one through `job` steps (itself if none).
    pub root_run_id: String,
    /// The job.
    pub job: String,
    /// What makes it unique within its job (an interval or a trigger).
    pub run_key: String,
    /// What started it.
    pub trigger: Trigger,
    /// Where it stands.
    pub state: RunState,
    /// The data interval it covers.
    pub interval: Interval,
    /// Its params (the job's, with the trigger's overrides).
    pub params: serde_json::Map<String, serde_json::Value>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its steps began to run.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// The first failed step's error.
    pub error: Option<String>,
}

/// One step of one run.
#[derive(Debug, Clone, Serialize)]
pub struct StepRun {
    /// The run.
    pub run_id: String,
    /// The step's name.
    pub step: String,
    /// Where it stands.
    pub state: StepState,
    /// Attempts started so far.
    pub tries: i64,
    /// Attempts allowed (retries + 1).
    pub max_tries: i64,
    /// Its pool.
    pub pool: Option<String>,
    /// The worker holding it, while running.
    pub worker: Option<String>,
    /// When it may run (queued, retrying or waiting).
    pub ready_at: Option<DateTime<Utc>>,
    /// When its current or last attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed (or why it was run again).
    pub error: Option<String>,
}

/// One attempt of a step.
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    /// The step.
    pub step: String,
    /// Its number, from 1.
    pub attempt: i64,
    /// The worker that ran it.
    pub worker: String,
    /// `running`, `succeeded`, `failed`, `waiting` (a sensor's poke),
    /// `lost` (its worker stopped) or `released` (given back on a stop).
    pub state: String,
    /// When it started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it failed.
    pub error: Option<String>,
}

/// A run to create.
pub struct NewRun<'a> {
    /// The job's name.
    pub job: &'a str,
    /// The job's config (its steps are copied into the run).
    pub config: &'a JobConfig,
    /// Unique within the job: see [`interval_key`].
    pub key: String,
    /// What starts it.
    pub trigger: Trigger,
    /// The interval it covers.
    pub interval: Interval,
    /// Its params.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The run whose `job` step starts it, if any.
    pub parent: Option<String>,
}

/// A step a worker has taken.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The run.
    pub run_id: String,
    /// The job.
    pub job: String,
    /// The step.
    pub step: String,
    /// The attempt's number, from 1.
    pub attempt: i64,
    /// Attempts allowed.
    pub max_tries: i64,
    /// The run's interval.
    pub interval: Interval,
    /// The run's params.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// When the step's first attempt started (a sensor's timeout counts
    /// from there).
    pub first_started_at: DateTime<Utc>,
    /// The last log line number of this attempt so far.
    pub log_seq: i64,
}

/// Which steps a worker takes.
#[derive(Debug, Clone, Default)]
pub struct Scope {
    /// Only steps of runs started by this run (`flowline jobs run`).
    pub root_run: Option<String>,
    /// Only steps of these pools (`flowline worker --pool`).
    pub pools: Vec<String>,
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Finish {
    /// Done.
    Succeeded,
    /// Failed; tried again after `retry_in` when attempts are left.
    Failed {
        /// Why.
        error: String,
        /// The wait before the next attempt.
        retry_in: Duration,
    },
    /// A sensor not met yet: poke again after this long.
    NotYet(Duration),
}

/// A run that ended with the transaction that finished its last step.
#[derive(Debug, Clone)]
pub struct RunEnded {
    /// The run.
    pub run_id: String,
    /// The job.
    pub job: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// The failed step and its error, for alerts.
    pub failed_step: Option<(String, String)>,
}

/// Counts for `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    /// Runs by state.
    pub runs: BTreeMap<String, i64>,
    /// Steps by state.
    pub steps: BTreeMap<String, i64>,
    /// Steps that may run now.
    pub queue_depth: i64,
    /// Attempts whose worker stopped (lease expired).
    pub lease_expiries: i64,
}

/// The orchestrator's store.
pub struct Store {
    db: Box<dyn Db>,
    /// When this process last looked for expired leases (ms).
    last_requeue: std::sync::atomic::AtomicI64,
}

/// How often a claim also looks for expired leases, at most (ms).
const REQUEUE_EVERY_MS: i64 = 250;

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn time(v: Option<i64>) -> Option<DateTime<Utc>> {
    v.and_then(|ms| Utc.timestamp_millis_opt(ms).single())
}

fn json_map(text: &str) -> serde_json::Map<String, serde_json::Value> {
    serde_json::from_str(text).unwrap_or_default()
}

const RUN_COLUMNS: &str = "run_id, root_run_id, job, run_key, trigger_kind, state, interval_start, \
     interval_end, params, created_at, started_at, ended_at, error";

fn run_from(row: &Row) -> JobRun {
    JobRun {
        run_id: row.text(0),
        root_run_id: row.text(1),
        job: row.text(2),
        run_key: row.text(3),
        trigger: Trigger::parse(&row.text(4)),
        state: RunState::parse(&row.text(5)),
        interval: Interval {
            start: time(row.opt_int(6)).unwrap_or_default(),
            end: time(row.opt_int(7)).unwrap_or_default(),
        },
        params: json_map(&row.text(8)),
        created_at: time(row.opt_int(9)).unwrap_or_default(),
        started_at: time(row.opt_int(10)),
        ended_at: time(row.opt_int(11)),
        error: row.opt_text(12),
    }
}

const STEP_COLUMNS: &str = "run_id, step, state, tries, max_tries, pool, lease_owner, ready_at, \
     started_at, ended_at, error";

fn step_from(row: &Row) -> StepRun {
    StepRun {
        run_id: row.text(0),
        step: row.text(1),
        state: StepState::parse(&row.text(2)),
        tries: row.int(3),
        max_tries: row.int(4),
        pool: row.opt_text(5),
        worker: row.opt_text(6),
        ready_at: time(row.opt_int(7)),
        started_at: time(row.opt_int(8)),
        ended_at: time(row.opt_int(9)),
        error: row.opt_text(10),
    }
}

impl Store {
    /// Opens the store on `db`, applying its migrations, and records the
    /// pools' sizes.
    pub async fn open(db: Box<dyn Db>, pools: &BTreeMap<String, u32>) -> Result<Store> {
        migrate(db.as_ref(), MIGRATIONS).await?;
        let store = Store {
            db,
            last_requeue: std::sync::atomic::AtomicI64::new(0),
        };
        let mut tx = store.db.begin().await?;
        for (name, slots) in pools {
            tx.execute(
                "INSERT INTO job_pools (name, slots) VALUES ($1, $2) \
                 ON CONFLICT (name) DO UPDATE SET slots = excluded.slots",
                &[name.into(), i64::from(*slots).into()],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(store)
    }

    /// Which engine it runs on.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// A transaction for the queue's frequent moves: taking, heartbeating
    /// and finishing steps, storing logs. Its commit does not wait for the
    /// disk ([`Db::begin_relaxed`]): a database crash may forget the last
    /// fraction of a second of such moves, and what it forgets is what a
    /// worker crash loses too: a finished step looks running until its
    /// lease expires, then runs again (pipelines commit atomically, so no
    /// row is doubled). Creating runs, pauses and backfills commit durably.
    async fn begin_hot(&self) -> Result<Box<dyn Tx>> {
        self.db.begin_relaxed().await
    }

    /// Creates a run with its steps, unless the job already has a run with
    /// the same key; returns the new run's id, or `None`.
    pub async fn create_run(&self, new: NewRun<'_>) -> Result<Option<String>> {
        let now = now_ms();
        let run_id = uuid::Uuid::now_v7().to_string();
        let mut tx = self.db.begin().await?;
        let root = match &new.parent {
            Some(parent) => tx
                .query(
                    "SELECT root_run_id FROM job_runs WHERE run_id = $1",
                    &[parent.into()],
                )
                .await?
                .first()
                .map_or_else(|| parent.clone(), |r| r.text(0)),
            None => run_id.clone(),
        };
        let active = tx
            .query(
                "SELECT count(*) FROM job_runs WHERE job = $1 AND state = 'running'",
                &[new.job.into()],
            )
            .await?
            .first()
            .map_or(0, |r| r.int(0));
        let max_active = i64::from(new.config.settings.max_active_runs.max(1));
        let (state, started) = if active < max_active {
            (RunState::Running, Some(now))
        } else {
            (RunState::Queued, None)
        };
        let inserted = tx
            .execute(
                &format!(
                    "INSERT INTO job_runs ({RUN_COLUMNS}, max_active) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL, NULL, $12) \
                     ON CONFLICT (job, run_key) DO NOTHING"
                ),
                &[
                    run_id.clone().into(),
                    root.into(),
                    new.job.into(),
                    new.key.into(),
                    new.trigger.as_str().into(),
                    state.as_str().into(),
                    ms(new.interval.start).into(),
                    ms(new.interval.end).into(),
                    serde_json::Value::Object(new.params).to_string().into(),
                    now.into(),
                    started.into(),
                    max_active.into(),
                ],
            )
            .await?;
        if inserted == 0 {
            return Ok(None);
        }
        for (position, step) in new.config.steps.iter().enumerate() {
            tx.execute(
                "INSERT INTO job_steps (run_id, step, position, state, after_steps, trigger_rule, \
                 pool, max_tries) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7)",
                &[
                    run_id.clone().into(),
                    step.name().into(),
                    (position as i64).into(),
                    serde_json::to_string(&step.settings.after)
                        .unwrap_or_default()
                        .into(),
                    step.settings.trigger_rule.as_str().into(),
                    step.settings.pool.clone().into(),
                    (i64::from(step.settings.retries) + 1).into(),
                ],
            )
            .await?;
        }
        advance(tx.as_mut(), &run_id, now).await?;
        tx.commit().await?;
        Ok(Some(run_id))
    }

    /// Takes up to `limit` steps that may run now for `worker`, holding
    /// them for `lease`. First puts back the steps whose worker stopped.
    pub async fn claim(
        &self,
        worker: &str,
        scope: &Scope,
        limit: usize,
        lease: Duration,
    ) -> Result<Vec<Claimed>> {
        let now = now_ms();
        let mut tx = self.begin_hot().await?;
        // Expired leases are looked for at most every REQUEUE_EVERY_MS,
        // not at every claim: a lease lasts seconds.
        let last = self.last_requeue.load(std::sync::atomic::Ordering::Relaxed);
        if now - last >= REQUEUE_EVERY_MS {
            self.last_requeue
                .store(now, std::sync::atomic::Ordering::Relaxed);
            requeue_expired(tx.as_mut(), now).await?;
        }
        if limit == 0 {
            tx.commit().await?;
            return Ok(Vec::new());
        }
        let mut sql = String::from(
            "SELECT s.run_id, s.step, s.pool, s.tries, s.max_tries, s.first_started_at, \
             r.job, r.interval_start, r.interval_end, r.params, \
             (SELECT COALESCE(max(l.seq), 0) FROM job_logs l WHERE l.run_id = s.run_id \
              AND l.step = s.step AND l.attempt = s.tries + 1) FROM job_steps s \
             JOIN job_runs r ON r.run_id = s.run_id \
             WHERE s.state IN ('queued', 'up_for_retry', 'waiting') AND s.ready_at <= $1 \
             AND r.state = 'running'",
        );
        let mut params: Vec<Value> = vec![now.into()];
        if let Some(root) = &scope.root_run {
            params.push(root.into());
            sql += &format!(" AND r.root_run_id = ${}", params.len());
        }
        if !scope.pools.is_empty() {
            let mut names = Vec::new();
            for pool in &scope.pools {
                params.push(pool.into());
                names.push(format!("${}", params.len()));
            }
            sql += &format!(" AND s.pool IN ({})", names.join(", "));
        }
        params.push(((limit * 4) as i64).into());
        sql += &format!(
            " ORDER BY s.ready_at, s.run_id, s.position LIMIT ${} FOR UPDATE OF s SKIP LOCKED",
            params.len()
        );
        let candidates = tx.query(&sql, &params).await?;
        let mut free: BTreeMap<String, i64> = BTreeMap::new();
        let mut claimed = Vec::new();
        let expires = now + lease.as_millis() as i64;
        for row in candidates {
            if claimed.len() == limit {
                break;
            }
            if let Some(pool) = row.opt_text(2) {
                if !free.contains_key(&pool) {
                    let slots = pool_free(tx.as_mut(), &pool).await?;
                    free.insert(pool.clone(), slots);
                }
                let slots = free.entry(pool).or_default();
                if *slots <= 0 {
                    continue;
                }
                *slots -= 1;
            }
            let (run_id, step) = (row.text(0), row.text(1));
            let attempt = row.int(3) + 1;
            claimed.push(Claimed {
                run_id,
                job: row.text(6),
                step,
                attempt,
                max_tries: row.int(4),
                interval: Interval {
                    start: time(row.opt_int(7)).unwrap_or_default(),
                    end: time(row.opt_int(8)).unwrap_or_default(),
                },
                params: json_map(&row.text(9)),
                first_started_at: time(row.opt_int(5).or(Some(now))).unwrap_or_default(),
                log_seq: row.int(10),
            });
        }
        mark_running(tx.as_mut(), &claimed, worker, expires, now).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    /// Pushes the leases of every step `worker` holds forward by `lease`.
    pub async fn heartbeat(&self, worker: &str, lease: Duration) -> Result<()> {
        let mut tx = self.begin_hot().await?;
        tx.execute(
            "UPDATE job_steps SET lease_expires = $2 WHERE lease_owner = $1 AND state = 'running'",
            &[worker.into(), (now_ms() + lease.as_millis() as i64).into()],
        )
        .await?;
        tx.commit().await
    }

    /// Records how an attempt ended, with the last lines of its log, and
    /// moves the run on: frees the steps that came after it, and ends the
    /// run when every step has. Returns
    /// the run's end when this ended it. An attempt whose lease was lost
    /// (another worker runs the step again) changes nothing.
    pub async fn finish(
        &self,
        claimed: &Claimed,
        worker: &str,
        finish: Finish,
        last_lines: &[LogLine],
    ) -> Result<Option<RunEnded>> {
        let now = now_ms();
        let mut tx = self.begin_hot().await?;
        insert_logs(
            tx.as_mut(),
            &claimed.run_id,
            &claimed.step,
            claimed.attempt,
            last_lines,
        )
        .await?;
        let retries_left = claimed.attempt < claimed.max_tries;
        let (state, ready_at, error, attempt_state, undo_try) = match &finish {
            Finish::Succeeded => (StepState::Succeeded, None, None, "succeeded", 0),
            Finish::Failed { error, retry_in } if retries_left => (
                StepState::UpForRetry,
                Some(now + retry_in.as_millis() as i64),
                Some(error.clone()),
                "failed",
                0,
            ),
            Finish::Failed { error, .. } => {
                (StepState::Failed, None, Some(error.clone()), "failed", 0)
            }
            // A poke is not an attempt: the next one keeps its number.
            Finish::NotYet(next) => (
                StepState::Waiting,
                Some(now + next.as_millis() as i64),
                None,
                "waiting",
                1,
            ),
        };
        let ended = state.is_done().then_some(now);
        let changed = tx
            .execute(
                "UPDATE job_steps SET state = $4, ready_at = $5, ended_at = $6, error = $7, \
                 lease_owner = NULL, lease_expires = NULL, tries = tries - $8 \
                 WHERE run_id = $1 AND step = $2 AND lease_owner = $3 AND state = 'running'",
                &[
                    claimed.run_id.clone().into(),
                    claimed.step.clone().into(),
                    worker.into(),
                    state.as_str().into(),
                    ready_at.into(),
                    ended.into(),
                    error.clone().into(),
                    undo_try.into(),
                ],
            )
            .await?;
        if changed == 0 {
            tx.commit().await?;
            tracing::warn!(
                "run {} step {}: its lease was lost while it ran; the result of attempt {} is dropped",
                claimed.run_id,
                claimed.step,
                claimed.attempt
            );
            return Ok(None);
        }
        tx.execute(
            "UPDATE job_attempts SET state = $4, ended_at = $5, error = $6 \
             WHERE run_id = $1 AND step = $2 AND attempt = $3",
            &[
                claimed.run_id.clone().into(),
                claimed.step.clone().into(),
                claimed.attempt.into(),
                attempt_state.into(),
                now.into(),
                error.into(),
            ],
        )
        .await?;
        // The run's row is locked only now, after this step's own rows are
        // written, so finishes of one run wait on each other only for the
        // reading of what they free. Each statement after the lock sees
        // every finish committed before it (read committed), so of two
        // steps ending at once the second sees the first, and a step after
        // both is freed.
        tx.query(
            "SELECT state FROM job_runs WHERE run_id = $1 FOR UPDATE",
            &[claimed.run_id.clone().into()],
        )
        .await?;
        let ended = advance(tx.as_mut(), &claimed.run_id, now).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// Appends log lines of an attempt.
    pub async fn append_logs(
        &self,
        run_id: &str,
        step: &str,
        attempt: i64,
        lines: &[LogLine],
    ) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_hot().await?;
        insert_logs(tx.as_mut(), run_id, step, attempt, lines).await?;
        tx.commit().await
    }

    /// The log of a run (of one step when given), after position `after`
    /// of each attempt's log... as (step, attempt, line), in time order.
    pub async fn logs(
        &self,
        run_id: &str,
        step: Option<&str>,
        after_at: i64,
    ) -> Result<Vec<(String, i64, LogLine)>> {
        let mut tx = self.db.begin().await?;
        let mut sql = String::from(
            "SELECT step, attempt, seq, at, stream, line FROM job_logs WHERE run_id = $1 AND at > $2",
        );
        let mut params: Vec<Value> = vec![run_id.into(), after_at.into()];
        if let Some(step) = step {
            params.push(step.into());
            sql += " AND step = $3";
        }
        sql += " ORDER BY at, step, attempt, seq";
        let rows = tx.query(&sql, &params).await?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.text(0),
                    r.int(1),
                    LogLine {
                        seq: r.int(2),
                        at: r.int(3),
                        stream: r.text(4),
                        text: r.text(5),
                    },
                )
            })
            .collect())
    }

    /// Deletes log lines written before `before` (Unix ms); returns how many.
    pub async fn prune_logs(&self, before: i64) -> Result<u64> {
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute("DELETE FROM job_logs WHERE at < $1", &[before.into()])
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// One run.
    pub async fn run(&self, run_id: &str) -> Result<Option<JobRun>> {
        let mut tx = self.db.begin().await?;
        let rows = tx
            .query(
                &format!("SELECT {RUN_COLUMNS} FROM job_runs WHERE run_id = $1"),
                &[run_id.into()],
            )
            .await?;
        Ok(rows.first().map(run_from))
    }

    /// The run of `job` with `key`, if there is one.
    pub async fn run_by_key(&self, job: &str, key: &str) -> Result<Option<JobRun>> {
        let mut tx = self.db.begin().await?;
        let rows = tx
            .query(
                &format!("SELECT {RUN_COLUMNS} FROM job_runs WHERE job = $1 AND run_key = $2"),
                &[job.into(), key.into()],
            )
            .await?;
        Ok(rows.first().map(run_from))
    }

    /// The latest `limit` runs of `job` (of every job when `None`), newest first.
    pub async fn runs(&self, job: Option<&str>, limit: usize) -> Result<Vec<JobRun>> {
        let mut tx = self.db.begin().await?;
        let rows = match job {
            Some(job) => {
                tx.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM job_runs WHERE job = $1 \
                         ORDER BY created_at DESC, run_id DESC LIMIT $2"
                    ),
                    &[job.into(), (limit as i64).into()],
                )
                .await?
            }
            None => {
                tx.query(
                    &format!(
                        "SELECT {RUN_COLUMNS} FROM job_runs \
                         ORDER BY created_at DESC, run_id DESC LIMIT $1"
                    ),
                    &[(limit as i64).into()],
                )
                .await?
            }
        };
        Ok(rows.iter().map(run_from).collect())
    }

    /// The steps of a run, in file order.
    pub async fn steps(&self, run_id: &str) -> Result<Vec<StepRun>> {
        let mut tx = self.db.begin().await?;
        let rows = tx
            .query(
                &format!(
                    "SELECT {STEP_COLUMNS} FROM job_steps WHERE run_id = $1 ORDER BY position"
                ),
                &[run_id.into()],
            )
            .await?;
        Ok(rows.iter().map(step_from).collect())
    }

    /// The attempts of a run's steps, oldest first.
    pub async fn attempts(&self, run_id: &str) -> Result<Vec<Attempt>> {
        let mut tx = self.db.begin().await?;
        let rows = tx
            .query(
                "SELECT step, attempt, worker, state, started_at, ended_at, error \
                 FROM job_attempts WHERE run_id = $1 ORDER BY started_at, step, attempt",
                &[run_id.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| Attempt {
                step: r.text(0),
                attempt: r.int(1),
                worker: r.text(2),
                state: r.text(3),
                started_at: time(r.opt_int(4)),
                ended_at: time(r.opt_int(5)),
                error: r.opt_text(6),
            })
            .collect())
    }

    /// The end of the latest interval scheduled (or backfilled) for `job`.
    pub async fn last_interval_end(&self, job: &str) -> Result<Option<DateTime<Utc>>> {
        let mut tx = self.db.begin().await?;
        let rows = tx
            .query(
                "SELECT max(interval_end) FROM job_runs WHERE job = $1 AND trigger_kind = 'schedule'",
                &[job.into()],
            )
            .await?;
        Ok(time(rows.first().and_then(|r| r.opt_int(0))))
    }

    /// Pauses or resumes a job's schedule.
    pub async fn set_paused(&self, job: &str, paused: bool) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "INSERT INTO job_flags (job, paused) VALUES ($1, $2) \
             ON CONFLICT (job) DO UPDATE SET paused = excluded.paused",
            &[job.into(), i64::from(paused).into()],
        )
        .await?;
        tx.commit().await
    }

    /// The paused jobs.
    pub async fn paused(&self) -> Result<Vec<String>> {
        let mut tx = self.db.begin().await?;
        let rows = tx
            .query("SELECT job FROM job_flags WHERE paused = 1", &[])
            .await?;
        Ok(rows.iter().map(|r| r.text(0)).collect())
    }

    /// Puts a run's failed and not-run steps back to pending (tries
    /// reset), and the run back to running: `backfill --reprocess-failed`.
    pub async fn rerun_failed(&self, run_id: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        tx.query(
            "SELECT state FROM job_runs WHERE run_id = $1 FOR UPDATE",
            &[run_id.into()],
        )
        .await?;
        tx.execute(
            "UPDATE job_steps SET state = 'pending', tries = 0, error = NULL, ended_at = NULL, \
             first_started_at = NULL WHERE run_id = $1 \
             AND state IN ('failed', 'upstream_failed', 'skipped')",
            &[run_id.into()],
        )
        .await?;
        tx.execute(
            "UPDATE job_runs SET state = 'running', ended_at = NULL, error = NULL, started_at = $2 \
             WHERE run_id = $1",
            &[run_id.into(), now.into()],
        )
        .await?;
        advance(tx.as_mut(), run_id, now).await?;
        tx.commit().await
    }

    /// Takes or keeps the scheduler's leadership for `holder` until `ttl`
    /// from now; `false` while another holder's lease runs.
    pub async fn lead(&self, holder: &str, ttl: Duration) -> Result<bool> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        tx.execute(
            "INSERT INTO job_leader (name, holder, expires_at) VALUES ('scheduler', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
             expires_at = excluded.expires_at \
             WHERE job_leader.holder = excluded.holder OR job_leader.expires_at < $3",
            &[
                holder.into(),
                (now + ttl.as_millis() as i64).into(),
                now.into(),
            ],
        )
        .await?;
        let rows = tx
            .query(
                "SELECT holder FROM job_leader WHERE name = 'scheduler'",
                &[],
            )
            .await?;
        tx.commit().await?;
        Ok(rows.first().is_some_and(|r| r.text(0) == holder))
    }

    /// Gives up leadership (on shutdown), so another scheduler takes over
    /// at once.
    pub async fn resign(&self, holder: &str) -> Result<()> {
        let mut tx = self.db.begin().await?;
        tx.execute(
            "DELETE FROM job_leader WHERE name = 'scheduler' AND holder = $1",
            &[holder.into()],
        )
        .await?;
        tx.commit().await
    }

    /// Gives the steps `worker` holds back to the queue (a graceful stop
    /// past its grace period).
    pub async fn release(&self, worker: &str) -> Result<u64> {
        let mut tx = self.db.begin().await?;
        let n = tx
            .execute(
                "UPDATE job_steps SET state = 'queued', ready_at = $2, lease_owner = NULL, \
                 lease_expires = NULL, tries = tries - 1, \
                 error = 'its worker stopped before it ended; running it again' \
                 WHERE lease_owner = $1 AND state = 'running'",
                &[worker.into(), now_ms().into()],
            )
            .await?;
        tx.execute(
            "UPDATE job_attempts SET state = 'released', ended_at = $2 \
             WHERE worker = $1 AND state = 'running'",
            &[worker.into(), now_ms().into()],
        )
        .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Runs and steps by state, the queue's depth and lease expiries.
    pub async fn counts(&self) -> Result<Counts> {
        let now = now_ms();
        let mut tx = self.db.begin().await?;
        let mut counts = Counts::default();
        for row in tx
            .query("SELECT state, count(*) FROM job_runs GROUP BY state", &[])
            .await?
        {
            counts.runs.insert(row.text(0), row.int(1));
        }
        for row in tx
            .query("SELECT state, count(*) FROM job_steps GROUP BY state", &[])
            .await?
        {
            counts.steps.insert(row.text(0), row.int(1));
        }
        counts.queue_depth = tx
            .query(
                "SELECT count(*) FROM job_steps s JOIN job_runs r ON r.run_id = s.run_id \
                 WHERE s.state IN ('queued', 'up_for_retry', 'waiting') AND s.ready_at <= $1 \
                 AND r.state = 'running'",
                &[now.into()],
            )
            .await?
            .first()
            .map_or(0, |r| r.int(0));
        counts.lease_expiries = tx
            .query(
                "SELECT count(*) FROM job_attempts WHERE state = 'lost'",
                &[],
            )
            .await?
            .first()
            .map_or(0, |r| r.int(0));
        Ok(counts)
    }

    /// Durations (seconds) of the attempts that ended after `since_ms`,
    /// by job and step, for `/metrics`.
    pub async fn attempt_durations(&self, since_ms: i64) -> Result<Vec<(String, String, f64)>> {
        let mut tx = self.db.begin().await?;
        let rows = tx
            .query(
                "SELECT r.job, a.step, a.ended_at - a.started_at FROM job_attempts a \
                 JOIN job_runs r ON r.run_id = a.run_id \
                 WHERE a.ended_at IS NOT NULL AND a.ended_at > $1",
                &[since_ms.into()],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (r.text(0), r.text(1), r.int(2) as f64 / 1000.0))
            .collect())
    }
}

/// Free slots of `pool` now, with its row locked so workers taking steps
/// at once see each other's.
async fn pool_free(tx: &mut dyn Tx, pool: &str) -> Result<i64> {
    let slots = tx
        .query(
            "SELECT slots FROM job_pools WHERE name = $1 FOR UPDATE",
            &[pool.into()],
        )
        .await?
        .first()
        .map_or(0, |r| r.int(0));
    let running = tx
        .query(
            "SELECT count(*) FROM job_steps WHERE pool = $1 AND state = 'running'",
            &[pool.into()],
        )
        .await?
        .first()
        .map_or(0, |r| r.int(0));
    Ok(slots - running)
}

/// Marks the claimed steps running for `worker` until `expires`, and
/// records their attempts: two statements for any number of steps.
async fn mark_running(
    tx: &mut dyn Tx,
    claimed: &[Claimed],
    worker: &str,
    expires: i64,
    now: i64,
) -> Result<()> {
    for chunk in claimed.chunks(200) {
        let mut params: Vec<Value> = vec![worker.into(), expires.into(), now.into()];
        let mut pairs = Vec::with_capacity(chunk.len());
        for step in chunk {
            params.push(step.run_id.clone().into());
            params.push(step.step.clone().into());
            pairs.push(format!("(${}, ${})", params.len() - 1, params.len()));
        }
        let pairs = pairs.join(", ");
        tx.execute(
            &format!(
                "UPDATE job_steps SET state = 'running', tries = tries + 1, lease_owner = $1, \
                 lease_expires = $2, started_at = $3, ended_at = NULL, \
                 first_started_at = COALESCE(first_started_at, $3) \
                 WHERE (run_id, step) IN (VALUES {pairs})"
            ),
            &params,
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO job_attempts (run_id, step, attempt, worker, state, started_at) \
                 SELECT run_id, step, tries, $1, 'running', $3 FROM job_steps \
                 WHERE (run_id, step) IN (VALUES {pairs}) AND lease_expires = $2 \
                 ON CONFLICT (run_id, step, attempt) \
                 DO UPDATE SET worker = excluded.worker, state = 'running'"
            ),
            &params,
        )
        .await?;
    }
    Ok(())
}

/// A step whose worker lost it this many times fails instead of running
/// again: something in it takes its workers down.
const MAX_LOST: i64 = 3;

/// Puts steps whose lease expired back in the queue (their attempt is
/// recorded as lost).
async fn requeue_expired(tx: &mut dyn Tx, now: i64) -> Result<()> {
    let expired = tx
        .query(
            "SELECT run_id, step, tries, lease_owner, lost FROM job_steps \
             WHERE state = 'running' AND lease_expires < $1 FOR UPDATE SKIP LOCKED",
            &[now.into()],
        )
        .await?;
    for row in expired {
        let (run_id, step, tries, owner) = (row.text(0), row.text(1), row.int(2), row.text(3));
        tracing::warn!(
            "run {run_id} step {step}: worker {owner} stopped heartbeating; running the step again"
        );
        tx.execute(
            "UPDATE job_attempts SET state = 'lost', ended_at = $4, \
             error = 'its worker stopped (lease expired)' \
             WHERE run_id = $1 AND step = $2 AND attempt = $3",
            &[
                run_id.clone().into(),
                step.clone().into(),
                tries.into(),
                now.into(),
            ],
        )
        .await?;
        let gives_up = row.int(4) + 1 >= MAX_LOST;
        tx.execute(
            "UPDATE job_steps SET state = $3, ready_at = $4, lease_owner = NULL, \
             lease_expires = NULL, lost = lost + 1, ended_at = $5, error = $6 \
             WHERE run_id = $1 AND step = $2",
            &[
                run_id.clone().into(),
                step.into(),
                if gives_up { "failed" } else { "queued" }.into(),
                now.into(),
                gives_up.then_some(now).into(),
                if gives_up {
                    format!("its worker stopped {MAX_LOST} times while running it")
                } else {
                    format!("worker {owner} stopped while running it; running it again")
                }
                .into(),
            ],
        )
        .await?;
        if gives_up {
            advance(tx, &run_id, now).await?;
        }
    }
    Ok(())
}

/// Stores log lines of an attempt (a line already stored is kept).
async fn insert_logs(
    tx: &mut dyn Tx,
    run_id: &str,
    step: &str,
    attempt: i64,
    lines: &[LogLine],
) -> Result<()> {
    for line in lines {
        tx.execute(
            "INSERT INTO job_logs (run_id, step, attempt, seq, at, stream, line) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
            &[
                run_id.into(),
                step.into(),
                attempt.into(),
                line.seq.into(),
                line.at.into(),
                line.stream.clone().into(),
                line.text.clone().into(),
            ],
        )
        .await?;
    }
    Ok(())
}

/// Applies the trigger rules to a run's pending steps until nothing
/// changes, and ends the run when every step has ended (starting the next
/// queued run of its job). Returns the run's end when this ended it.
///
/// It reads only what can change: the pending steps and the states of the
/// steps they come after, so finishing one of a thousand independent steps
/// costs two indexed queries, not a read of the whole run.
async fn advance(tx: &mut dyn Tx, run_id: &str, now: i64) -> Result<Option<RunEnded>> {
    let pending = tx
        .query(
            "SELECT step, after_steps, trigger_rule FROM job_steps \
             WHERE run_id = $1 AND state = 'pending'",
            &[run_id.into()],
        )
        .await?;
    let mut nodes: BTreeMap<String, Node> = BTreeMap::new();
    for row in &pending {
        nodes.insert(
            row.text(0),
            Node {
                state: StepState::Pending,
                after: serde_json::from_str(&row.text(1)).unwrap_or_default(),
                trigger_rule: TriggerRule::parse(&row.text(2)),
            },
        );
    }
    let upstream: Vec<String> = nodes
        .values()
        .flat_map(|node| node.after.iter())
        .filter(|name| !nodes.contains_key(*name))
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for (name, state) in step_states(tx, run_id, &upstream).await? {
        nodes.insert(
            name,
            Node {
                state,
                after: Vec::new(),
                trigger_rule: TriggerRule::AllSuccess,
            },
        );
    }
    loop {
        let moves = dag::advance(&nodes);
        if moves.is_empty() {
            break;
        }
        for (step, state) in moves {
            let (ready, ended) = match state {
                StepState::Queued => (Some(now), None),
                _ => (None, Some(now)),
            };
            tx.execute(
                "UPDATE job_steps SET state = $3, ready_at = $4, ended_at = $5 \
                 WHERE run_id = $1 AND step = $2",
                &[
                    run_id.into(),
                    step.clone().into(),
                    state.as_str().into(),
                    ready.into(),
                    ended.into(),
                ],
            )
            .await?;
            if let Some(node) = nodes.get_mut(&step) {
                node.state = state;
            }
        }
    }
    if nodes.values().any(|node| !node.state.is_done()) {
        // A step is still pending or was just queued: the run goes on.
        return Ok(None);
    }
    end_if_done(tx, run_id, now).await
}

/// The states of the named steps of a run (in chunks, so that any number
/// of names fits a statement).
async fn step_states(
    tx: &mut dyn Tx,
    run_id: &str,
    names: &[String],
) -> Result<Vec<(String, StepState)>> {
    let mut states = Vec::with_capacity(names.len());
    for chunk in names.chunks(500) {
        let marks: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
        let mut params: Vec<Value> = vec![run_id.into()];
        params.extend(chunk.iter().map(|n| n.clone().into()));
        let rows = tx
            .query(
                &format!(
                    "SELECT step, state FROM job_steps WHERE run_id = $1 AND step IN ({})",
                    marks.join(", ")
                ),
                &params,
            )
            .await?;
        states.extend(
            rows.iter()
                .map(|r| (r.text(0), StepState::parse(&r.text(1)))),
        );
    }
    Ok(states)
}

/// Ends the run when none of its steps is left to run: failed, naming the
/// first failed step, when any failed.
async fn end_if_done(tx: &mut dyn Tx, run_id: &str, now: i64) -> Result<Option<RunEnded>> {
    let open = tx
        .query(
            "SELECT count(*) FROM job_steps WHERE run_id = $1 \
             AND state IN ('pending', 'queued', 'up_for_retry', 'waiting', 'running')",
            &[run_id.into()],
        )
        .await?
        .first()
        .map_or(0, |r| r.int(0));
    if open > 0 {
        return Ok(None);
    }
    let failures = tx
        .query(
            "SELECT step, state, error FROM job_steps WHERE run_id = $1 \
             AND state IN ('failed', 'upstream_failed') ORDER BY position",
            &[run_id.into()],
        )
        .await?;
    let ok = failures.is_empty();
    let failed_step = failures
        .iter()
        .find(|row| StepState::parse(&row.text(1)) == StepState::Failed)
        .map(|row| (row.text(0), row.opt_text(2).unwrap_or_default()));
    let state = if ok {
        RunState::Succeeded
    } else {
        RunState::Failed
    };
    let error = failed_step
        .as_ref()
        .map(|(step, error)| format!("step {step}: {error}"));
    let changed = tx
        .execute(
            "UPDATE job_runs SET state = $2, ended_at = $3, error = $4 \
             WHERE run_id = $1 AND state IN ('running', 'queued')",
            &[
                run_id.into(),
                state.as_str().into(),
                now.into(),
                error.into(),
            ],
        )
        .await?;
    if changed == 0 {
        return Ok(None);
    }
    let job = tx
        .query(
            "SELECT job FROM job_runs WHERE run_id = $1",
            &[run_id.into()],
        )
        .await?
        .first()
        .map(|r| r.text(0))
        .ok_or_else(|| Error::Other(format!("run {run_id} vanished")))?;
    start_next_queued(tx, &job, now).await?;
    Ok(Some(RunEnded {
        run_id: run_id.to_string(),
        job,
        ok,
        failed_step,
    }))
}

/// Starts the oldest queued run of `job` when fewer than its
/// `max_active_runs` run.
async fn start_next_queued(tx: &mut dyn Tx, job: &str, now: i64) -> Result<()> {
    let next = tx
        .query(
            "SELECT run_id, max_active FROM job_runs WHERE job = $1 AND state = 'queued' \
             ORDER BY interval_start, created_at LIMIT 1",
            &[job.into()],
        )
        .await?;
    let Some(next) = next.first() else {
        return Ok(());
    };
    let active = tx
        .query(
            "SELECT count(*) FROM job_runs WHERE job = $1 AND state = 'running'",
            &[job.into()],
        )
        .await?
        .first()
        .map_or(0, |r| r.int(0));
    if active < next.int(1) {
        tx.execute(
            "UPDATE job_runs SET state = 'running', started_at = $2 WHERE run_id = $1",
            &[next.text(0).into(), now.into()],
        )
        .await?;
    }
    Ok(())
}
