//! The scheduler: creates the runs of scheduled jobs as their intervals
//! end. Only one scheduler leads at a time (a lease in the state store), so
//! two `flowline serve` processes on one PostgreSQL store never schedule a
//! run twice; and a run's key is its interval, so even two leaders in a
//! race could not create it twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{Notify, watch};

use super::store::{NewRun, Store, Trigger, interval_key};
use crate::config::Project;
use crate::core::error::Result;

/// How long a leader's lease lasts without renewal.
const LEADER_TTL: Duration = Duration::from_secs(15);

/// How often the scheduler looks at the schedules.
const TICK: Duration = Duration::from_secs(1);

/// Creates due runs until `stop` turns true; wakes `runner` when it did.
pub async fn run(
    project: Arc<Project>,
    store: Arc<Store>,
    holder: String,
    runner: Arc<Notify>,
    retention: Option<Duration>,
    mut stop: watch::Receiver<bool>,
) {
    let mut leading = false;
    let mut next_looks = NextLooks::new();
    let mut last_prune = std::time::Instant::now() - Duration::from_secs(3600);
    loop {
        match store.lead(&holder, LEADER_TTL).await {
            Ok(now_leading) => {
                if now_leading != leading {
                    tracing::info!(
                        "scheduler {holder}: {}",
                        if now_leading {
                            "leading"
                        } else {
                            "standing by"
                        }
                    );
                }
                if now_leading && !leading {
                    // Another leader may have scheduled meanwhile.
                    next_looks.clear();
                }
                leading = now_leading;
            }
            Err(e) => {
                tracing::warn!("scheduler: {e}");
                leading = false;
            }
        }
        if leading {
            match schedule_due(&project, &store, &mut next_looks).await {
                Ok(0) => {}
                Ok(_) => runner.notify_one(),
                Err(e) => tracing::warn!("scheduler: {e}"),
            }
            if let Some(retention) = retention
                && last_prune.elapsed() > Duration::from_secs(3600)
            {
                last_prune = std::time::Instant::now();
                let before = Utc::now().timestamp_millis() - retention.as_millis() as i64;
                match store.prune_logs(before).await {
                    Ok(n) if n > 0 => tracing::info!("pruned {n} log lines"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("pruning logs: {e}"),
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(TICK) => {}
            _ = stop.changed() => {
                if leading && let Err(e) = store.resign(&holder).await {
                    tracing::warn!("scheduler: {e}");
                }
                return;
            }
        }
    }
}

/// When to look at each job again: its next fire time. Until then nothing
/// of it can be due, so a tick with a thousand scheduled jobs reads the
/// store only for those whose time came.
pub type NextLooks = BTreeMap<String, DateTime<Utc>>;

/// Creates the runs whose intervals are due now; returns how many. Skips
/// the jobs whose next look (in `next_looks`) is still ahead, and sets it
/// for the others.
pub async fn schedule_due(
    project: &Project,
    store: &Store,
    next_looks: &mut NextLooks,
) -> Result<usize> {
    let paused = store.paused().await?;
    let now = Utc::now();
    let mut created = 0;
    for job in &project.jobs {
        if next_looks.get(&job.name).is_some_and(|next| now < *next) {
            continue;
        }
        let Some(schedule) = job.config.schedule() else {
            continue;
        };
        if paused.contains(&job.name) {
            continue;
        }
        let last_end = store.last_interval_end(&job.name).await?;
        let start = job.config.start();
        let catchup = job.config.settings.catchup && start.is_some();
        // Without a start, the first interval is the latest complete one.
        let start = start.unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        let next_look = schedule
            .next_after(now, start)
            .unwrap_or(now + chrono::Duration::minutes(1));
        for interval in schedule.due_intervals(start, last_end, now, catchup) {
            let new = NewRun {
                job: &job.name,
                config: &job.config,
                key: interval_key(&interval),
                trigger: Trigger::Schedule,
                interval,
                params: job.config.params_json(),
                parent: None,
            };
            if let Some(run_id) = store.create_run(new).await? {
                tracing::info!(
                    "scheduled {} run {run_id} for {} to {}",
                    job.name,
                    interval.start,
                    interval.end
                );
                created += 1;
            }
        }
        // Only once its runs exist: after an error it is looked at again.
        next_looks.insert(job.name.clone(), next_look);
    }
    Ok(created)
}
