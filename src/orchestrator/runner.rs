//! The step runner: takes steps from the queue up to its concurrency, runs
//! each with its timeout, keeps their leases alive, stores their logs, and
//! records how they ended (which frees the steps after them at once, so a
//! chain of steps runs without waiting for a poll).
//!
//! `flowline serve` runs one on the embedded default, `flowline worker`
//! is one, and `flowline jobs run` runs one limited to its own run.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use super::host::Host;
use super::store::{Claimed, Finish, RunEnded, Scope};
use crate::core::error::Result;
use crate::jobs::log::Log;
use crate::jobs::steps::{Outcome, StepContext};
use crate::jobs::template::Vars;

/// How a runner takes steps.
#[derive(Debug, Clone)]
pub struct RunnerOptions {
    /// Steps at once, at most.
    pub concurrency: usize,
    /// Which steps it takes.
    pub scope: Scope,
    /// How long a step stays this runner's without a heartbeat.
    pub lease: Duration,
    /// How often it looks for work when idle.
    pub poll: Duration,
    /// On a stop, how long running steps may take to finish before their
    /// leases are given back.
    pub grace: Duration,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            concurrency: 16,
            scope: Scope::default(),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(100),
            grace: Duration::from_secs(30),
        }
    }
}

/// A step runner.
pub struct Runner {
    host: Arc<Host>,
    options: RunnerOptions,
    /// This runner's name in leases: host, pid and a random part.
    id: String,
    /// Wakes the runner when work was added in this process.
    wake: Arc<Notify>,
}

/// One finished attempt, as the loop learns of it.
type Ended = Option<RunEnded>;

impl Runner {
    /// A runner on `host`.
    pub fn new(host: Arc<Host>, options: RunnerOptions) -> Runner {
        let machine = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        let id = format!("{machine}:{}:{:04x}", std::process::id(), fastrand::u16(..));
        Runner {
            host,
            options,
            id,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Its name in leases.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A handle that wakes it (after creating runs in this process).
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Runs steps until `stop` turns true (or, with `until`, until that
    /// returns true after a step ends). Calls `on_run_end` for each run a
    /// step of this runner ended.
    pub async fn run(
        &self,
        mut stop: watch::Receiver<bool>,
        until: Option<&(dyn Fn() -> futures_util::future::BoxFuture<'static, bool> + Sync)>,
        on_run_end: &(dyn Fn(RunEnded) + Sync),
    ) -> Result<()> {
        let store = self.host.store.clone();
        let heartbeat = tokio::spawn(heartbeats(
            store.clone(),
            self.id.clone(),
            self.options.lease,
        ));
        let mut running: JoinSet<Ended> = JoinSet::new();
        let result = loop {
            if *stop.borrow() {
                break Ok(());
            }
            let free = self.options.concurrency.saturating_sub(running.len());
            let claimed = match store
                .claim(&self.id, &self.options.scope, free, self.options.lease)
                .await
            {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!("taking steps: {e}");
                    Vec::new()
                }
            };
            let took = !claimed.is_empty();
            for claimed in claimed {
                running.spawn(attempt(self.host.clone(), self.id.clone(), claimed));
            }
            if took && running.len() < self.options.concurrency {
                continue;
            }
            if running.is_empty()
                && let Some(until) = until
                && until().await
            {
                break Ok(());
            }
            tokio::select! {
                Some(ended) = running.join_next(), if !running.is_empty() => {
                    if let Ok(Some(ended)) = ended {
                        on_run_end(ended);
                    }
                    while let Some(ended) = running.try_join_next() {
                        if let Ok(Some(ended)) = ended {
                            on_run_end(ended);
                        }
                    }
                }
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.options.poll) => {}
                _ = stop.changed() => {}
            }
        };
        self.drain(running, on_run_end).await;
        heartbeat.abort();
        result
    }

    /// Lets the running steps finish within the grace period, then gives
    /// the others' leases back so another worker runs them again.
    async fn drain(&self, mut running: JoinSet<Ended>, on_run_end: &(dyn Fn(RunEnded) + Sync)) {
        if running.is_empty() {
            return;
        }
        tracing::info!(
            "waiting up to {:?} for {} running steps",
            self.options.grace,
            running.len()
        );
        let deadline = tokio::time::sleep(self.options.grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                next = running.join_next() => match next {
                    Some(Ok(Some(ended))) => on_run_end(ended),
                    Some(_) => {}
                    None => return,
                },
                _ = &mut deadline => break,
            }
        }
        running.abort_all();
        while running.join_next().await.is_some() {}
        match self.host.store.release(&self.id).await {
            Ok(n) if n > 0 => tracing::warn!("gave {n} unfinished steps back to the queue"),
            Ok(_) => {}
            Err(e) => tracing::warn!("giving steps back: {e}"),
        }
    }
}

/// Pushes this runner's leases forward every third of the lease.
async fn heartbeats(store: Arc<super::store::Store>, id: String, lease: Duration) {
    let mut tick = tokio::time::interval(lease / 3);
    loop {
        tick.tick().await;
        if let Err(e) = store.heartbeat(&id, lease).await {
            tracing::warn!("heartbeat: {e}");
        }
    }
}

/// Runs one attempt of a claimed step and records its end.
async fn attempt(host: Arc<Host>, worker: String, claimed: Claimed) -> Ended {
    let log = Log::default();
    log.continue_after(claimed.log_seq);
    let flusher = tokio::spawn(flush_logs(host.clone(), claimed.clone(), log.clone()));
    let finish = execute(&host, &claimed, &log).await;
    if let Finish::Failed { error, .. } = &finish {
        log.flowline(format!("attempt {} failed: {error}", claimed.attempt));
    }
    flusher.abort();
    let last_lines = log.take();
    match host
        .store
        .finish(&claimed, &worker, finish, &last_lines)
        .await
    {
        Ok(ended) => ended,
        Err(e) => {
            tracing::warn!(
                "run {} step {}: recording its end: {e}",
                claimed.run_id,
                claimed.step
            );
            None
        }
    }
}

/// What the attempt's step did.
async fn execute(host: &Arc<Host>, claimed: &Claimed, log: &Log) -> Finish {
    let fail = |error: String| Finish::Failed {
        error,
        retry_in: Duration::ZERO,
    };
    let Ok(job) = host.project.job(&claimed.job) else {
        return fail(format!(
            "job {} is no longer in this project's jobs/ folder",
            claimed.job
        ));
    };
    let Some(step) = job.config.step(&claimed.step) else {
        return fail(format!(
            "step {} is no longer in {}",
            claimed.step,
            job.file.display()
        ));
    };
    let env = crate::config::env::Variables::load(&host.project.dir)
        .map(|v| v.all())
        .unwrap_or_default();
    let vars = Vars::new(
        &claimed.job,
        &claimed.run_id,
        (claimed.interval.start, claimed.interval.end),
        job.config.timezone(),
        claimed.params.clone(),
        env,
    );
    let context = StepContext {
        dir: host.project.dir.clone(),
        host: host.clone(),
        vars,
        log: log.clone(),
        run_id: claimed.run_id.clone(),
        step: claimed.step.clone(),
    };
    if claimed.attempt > 1 && step.action.poke().is_none() {
        log.flowline(format!(
            "attempt {} of {}",
            claimed.attempt, claimed.max_tries
        ));
    }
    let work = step.action.run(&context);
    let outcome = match step.timeout {
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "timed out after {}",
                humantime::format_duration(limit)
            )),
        },
        None => work.await,
    };
    let retry_in = backoff(step.retry_backoff, step.max_retry_backoff, claimed.attempt);
    match outcome {
        Ok(Outcome::Done) => Finish::Succeeded,
        Err(error) => Finish::Failed { error, retry_in },
        Ok(Outcome::NotYet) => {
            let poke = step.action.poke();
            let waited = chrono::Utc::now() - claimed.first_started_at;
            match poke {
                Some(poke)
                    if poke
                        .timeout
                        .is_some_and(|limit| waited.to_std().unwrap_or_default() >= limit) =>
                {
                    // A sensor that timed out is not retried: waiting
                    // longer is what its timeout forbids.
                    Finish::Failed {
                        error: format!(
                            "sensor timed out after {}: its condition was never met",
                            humantime::format_duration(poke.timeout.unwrap_or_default())
                        ),
                        retry_in,
                    }
                }
                Some(poke) => Finish::NotYet(poke.every),
                None => Finish::NotYet(Duration::from_secs(30)),
            }
        }
    }
}

/// The wait before retry number `attempt` (the first failure is 1):
/// `base` doubled per earlier retry, capped at `max`, with up to a quarter
/// more of jitter so retries of many steps spread out.
pub fn backoff(base: Duration, max: Duration, attempt: i64) -> Duration {
    let doublings = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    let wait = base.saturating_mul(1u32 << doublings).min(max);
    let jitter = wait.mul_f64(fastrand::f64() * 0.25);
    (wait + jitter).min(max.max(base))
}

/// Stores the log's new lines every half second while the step runs (a
/// step that ends sooner has its lines stored with its end).
async fn flush_logs(host: Arc<Host>, claimed: Claimed, log: Log) {
    let every = Duration::from_millis(500);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tick.tick().await;
        store_logs(&host, &claimed, &log).await;
    }
}

async fn store_logs(host: &Host, claimed: &Claimed, log: &Log) {
    let lines = log.take();
    if let Err(e) = host
        .store
        .append_logs(&claimed.run_id, &claimed.step, claimed.attempt, &lines)
        .await
    {
        tracing::warn!("storing the log of step {}: {e}", claimed.step);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(60);
        let first = backoff(base, max, 1);
        assert!(first >= base && first <= base.mul_f64(1.25), "{first:?}");
        let third = backoff(base, max, 3);
        assert!(
            third >= Duration::from_secs(40) && third <= Duration::from_secs(50),
            "{third:?}"
        );
        assert_eq!(backoff(base, max, 10), max);
    }
}
