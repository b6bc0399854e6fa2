//! `flowline jobs ...`: list jobs, run or trigger them, backfill, pause,
//! and read their runs and logs.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use tokio::sync::watch;

use super::output::{human_duration, text_table};
use crate::config::{Job, Project};
use crate::core::error::{Error, Result};
use crate::orchestrator::host::Host;
use crate::orchestrator::runner::{Runner, RunnerOptions};
use crate::orchestrator::store::{NewRun, Scope, Trigger, interval_key};
use crate::orchestrator::{Interval, JobRun, RunState, Store, open_store};

/// The `jobs` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum JobsCommand {
    /// List the jobs with their schedule, next run and last run.
    List,
    /// Run a job now in this process and wait for it; the exit code is its outcome.
    Run(RunArgs),
    /// Ask `flowline serve` to start a run (queued in the state store when no server answers).
    Trigger(RunArgs),
    /// Run a scheduled job for each past interval between two dates, here.
    Backfill(BackfillArgs),
    /// Stop scheduling a job (runs already queued still run).
    Pause(JobArg),
    /// Schedule a paused job again.
    Unpause(JobArg),
    /// A job's latest runs.
    Runs(RunsArgs),
    /// A run's steps.
    Show(RunArg),
    /// A run's logs (of one step when named).
    Logs(LogsArgs),
}

/// A job's name.
#[derive(Debug, clap::Args)]
pub struct JobArg {
    /// The job, by file name without `.toml`.
    pub job: String,
}

/// Arguments of `jobs run` and `jobs trigger`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The job, by file name without `.toml`.
    pub job: String,
    /// Override a param: `--param country=BE` (repeatable).
    #[arg(long = "param", value_name = "KEY=VALUE")]
    pub params: Vec<String>,
    /// Wait for the run to end (`jobs run` always does); the exit code is its outcome.
    #[arg(long)]
    pub wait: bool,
    /// Steps at once, at most (`jobs run`).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// Arguments of `jobs backfill`.
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// The job, by file name without `.toml`.
    pub job: String,
    /// The first interval's start date (or date-time), in the job's time zone.
    #[arg(long)]
    pub from: String,
    /// The last interval's start date (or date-time), inclusive.
    #[arg(long)]
    pub to: String,
    /// Run again the intervals whose earlier run failed.
    #[arg(long)]
    pub reprocess_failed: bool,
    /// Steps at once, at most.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// Arguments of `jobs runs`.
#[derive(Debug, clap::Args)]
pub struct RunsArgs {
    /// The job, by file name without `.toml`.
    pub job: String,
    /// How many runs to show.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// A run's id.
#[derive(Debug, clap::Args)]
pub struct RunArg {
    /// The run's id.
    pub run: String,
}

/// Arguments of `jobs logs`.
#[derive(Debug, clap::Args)]
pub struct LogsArgs {
    /// The run's id.
    pub run: String,
    /// Only this step's log.
    pub step: Option<String>,
    /// Keep printing new lines until the run ends.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

/// Runs a `jobs` verb.
pub async fn execute(project_dir: &Path, json: bool, command: JobsCommand) -> Result<ExitCode> {
    let project = Arc::new(Project::load(project_dir)?);
    let store = open_store(&project).await?;
    match command {
        JobsCommand::List => list(&project, &store, json).await,
        JobsCommand::Run(args) => run_here(project, store, json, args).await,
        JobsCommand::Trigger(args) => trigger(&project, &store, json, args).await,
        JobsCommand::Backfill(args) => backfill(project, store, json, args).await,
        JobsCommand::Pause(arg) => pause(&project, &store, json, &arg.job, true).await,
        JobsCommand::Unpause(arg) => pause(&project, &store, json, &arg.job, false).await,
        JobsCommand::Runs(args) => runs(&project, &store, json, args).await,
        JobsCommand::Show(arg) => show(&store, json, &arg.run).await,
        JobsCommand::Logs(args) => logs(&store, json, args).await,
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

async fn list(project: &Project, store: &Store, json: bool) -> Result<ExitCode> {
    let paused = store.paused().await?;
    let mut rows = Vec::new();
    let mut report = Vec::new();
    for job in &project.jobs {
        let schedule = job
            .config
            .settings
            .schedule
            .as_ref()
            .map(|s| s.get_ref().clone());
        let next = job.config.schedule().and_then(|s| {
            let anchor = job.config.start().unwrap_or_else(Utc::now);
            s.next_after(Utc::now(), anchor)
        });
        let last = store.runs(Some(&job.name), 1).await?.into_iter().next();
        let is_paused = paused.contains(&job.name);
        rows.push(vec![
            job.name.clone(),
            schedule.clone().unwrap_or_else(|| "-".into()),
            if is_paused {
                "paused".into()
            } else {
                next.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into())
            },
            last.as_ref()
                .map(|r| {
                    format!(
                        "{} {}",
                        r.state.as_str(),
                        r.created_at.format("%Y-%m-%d %H:%M")
                    )
                })
                .unwrap_or_else(|| "-".into()),
            job.config.steps.len().to_string(),
        ]);
        report.push(json!({
            "job": job.name,
            "file": job.file,
            "description": job.config.settings.description,
            "schedule": schedule,
            "timezone": job.config.timezone().name(),
            "paused": is_paused,
            "next_run": next,
            "steps": job.config.steps.iter().map(|s| json!({
                "name": s.name(),
                "kind": s.action.kind(),
                "does": s.action.describe(),
                "after": s.settings.after,
            })).collect::<Vec<_>>(),
            "last_run": last,
        }));
    }
    if json {
        print_json(&json!({ "jobs": report }));
    } else if rows.is_empty() {
        println!(
            "no jobs in {}",
            project.dir.join(crate::config::JOBS_DIR).display()
        );
    } else {
        println!(
            "{}",
            text_table(&["job", "schedule", "next run", "last run", "steps"], &rows)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The job's params with `--param k=v` over them.
fn params(job: &Job, overrides: &[String]) -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut params = job.config.params_json();
    for item in overrides {
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| Error::Config(format!("--param {item}: write --param key=value")))?;
        // A value that reads as JSON (a number, true) keeps its type.
        let value = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        params.insert(key.to_string(), value);
    }
    Ok(params)
}

/// The interval of a run started by hand now: the latest complete one of
/// a scheduled job, or the moment itself for a job without a schedule.
fn manual_interval(job: &Job) -> Interval {
    let now = Utc::now();
    job.config
        .schedule()
        .and_then(|s| s.interval_before(now, job.config.start().unwrap_or(now)))
        .unwrap_or(Interval {
            start: now,
            end: now,
        })
}

async fn create_manual_run(store: &Store, job: &Job, overrides: &[String]) -> Result<String> {
    let run = store
        .create_run(NewRun {
            job: &job.name,
            config: &job.config,
            key: format!("manual:{}", uuid::Uuid::now_v7()),
            trigger: Trigger::Manual,
            interval: manual_interval(job),
            params: params(job, overrides)?,
            parent: None,
        })
        .await?;
    run.ok_or_else(|| Error::Other(format!("job {}: the run was not created", job.name)))
}

/// Runs the steps of the runs `roots` (and the runs their `job` steps
/// start) in this process until all have ended.
async fn run_to_end(
    project: Arc<Project>,
    store: Arc<Store>,
    roots: Vec<String>,
    concurrency: usize,
) -> Result<()> {
    let host = Arc::new(Host::new(
        project.clone(),
        store.clone(),
        Arc::new(crate::server::access::FoundWarehouse::new()),
    ));
    let mut runners = Vec::new();
    for root in &roots {
        runners.push(Runner::new(
            host.clone(),
            RunnerOptions {
                concurrency,
                scope: Scope {
                    root_run: Some(root.clone()),
                    pools: Vec::new(),
                },
                ..RunnerOptions::default()
            },
        ));
    }
    let (_stop, stopped) = watch::channel(false);
    // Alerts are sent before this process exits.
    let alerts = std::sync::Mutex::new(Vec::new());
    let on_end = |ended: crate::orchestrator::store::RunEnded| {
        let project = project.clone();
        let sent = tokio::spawn(async move { crate::orchestrator::alert(&project, &ended).await });
        alerts.lock().unwrap_or_else(|p| p.into_inner()).push(sent);
    };
    // One runner per root run, one after another: each ends with its run.
    for (runner, root) in runners.iter().zip(roots) {
        let store = store.clone();
        let until = move || {
            let store = store.clone();
            let root = root.clone();
            Box::pin(async move {
                matches!(store.run(&root).await, Ok(Some(run)) if run.state.is_done())
            }) as futures_util::future::BoxFuture<'static, bool>
        };
        runner.run(stopped.clone(), Some(&until), &on_end).await?;
    }
    let sent = std::mem::take(&mut *alerts.lock().unwrap_or_else(|p| p.into_inner()));
    for alert in sent {
        let _ = alert.await;
    }
    Ok(())
}

async fn run_here(
    project: Arc<Project>,
    store: Arc<Store>,
    json: bool,
    args: RunArgs,
) -> Result<ExitCode> {
    let job = project.job(&args.job)?;
    let run_id = create_manual_run(&store, job, &args.params).await?;
    if !json {
        println!("run {run_id} of job {}", job.name);
    }
    run_to_end(
        project.clone(),
        store.clone(),
        vec![run_id.clone()],
        args.concurrency.max(1),
    )
    .await?;
    report_run(&store, json, &run_id).await
}

/// Prints a run's steps and returns its outcome as an exit code.
async fn report_run(store: &Store, json: bool, run_id: &str) -> Result<ExitCode> {
    let run = store
        .run(run_id)
        .await?
        .ok_or_else(|| Error::Other(format!("no run {run_id}")))?;
    let steps = store.steps(run_id).await?;
    if json {
        let attempts = store.attempts(run_id).await?;
        print_json(&json!({ "run": run, "steps": steps, "attempts": attempts }));
    } else {
        for step in &steps {
            let took = match (step.started_at, step.ended_at) {
                (Some(start), Some(end)) => {
                    format!(
                        " in {}",
                        human_duration((end - start).to_std().unwrap_or_default())
                    )
                }
                _ => String::new(),
            };
            let tries = if step.tries > 1 {
                format!(" after {} attempts", step.tries)
            } else {
                String::new()
            };
            let error = step
                .error
                .as_deref()
                .filter(|_| step.state.is_failure())
                .map(|e| format!(": {e}"))
                .unwrap_or_default();
            println!(
                "{:<16}{}{took}{tries}{error}",
                step.state.as_str(),
                step.step
            );
        }
        println!("run {} {}", run.run_id, run.state.as_str());
    }
    Ok(exit(run.state))
}

fn exit(state: RunState) -> ExitCode {
    if state == RunState::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn trigger(
    project: &Project,
    store: &Arc<Store>,
    json: bool,
    args: RunArgs,
) -> Result<ExitCode> {
    let job = project.job(&args.job)?;
    let params = params(job, &args.params)?;
    let (run_id, server) = match trigger_on_server(project, &job.name, &params).await? {
        Some((run_id, url)) => (run_id, Some(url)),
        None => (create_manual_run(store, job, &args.params).await?, None),
    };
    if !json {
        match &server {
            Some(url) => println!(
                "run {run_id} of job {} started by the server at {url}",
                job.name
            ),
            None => {
                println!("queued run {run_id} of job {}", job.name);
                if store.dialect() == crate::state::db::Dialect::Sqlite
                    && !serve_runs(project).await
                {
                    println!(
                        "no `flowline serve` runs for this project: the run starts when one \
                         does (or run the job here with `flowline jobs run {}`)",
                        job.name
                    );
                }
            }
        }
    }
    if !args.wait {
        if json {
            print_json(&json!({
                "run_id": run_id,
                "job": job.name,
                "state": "queued",
                "server": server,
            }));
        }
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        if let Some(run) = store.run(&run_id).await?
            && run.state.is_done()
        {
            return report_run(store, json, &run_id).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a flowline process serves this project on this machine (its
/// control socket answers), with or without its HTTP API.
async fn serve_runs(project: &Project) -> bool {
    let project = project.clone();
    tokio::task::spawn_blocking(move || {
        crate::server::client::LocalClient::connect(&project).map(|c| c.is_some())
    })
    .await
    .unwrap_or(Ok(false))
    .unwrap_or(false)
}

/// Asks the project's server (`[server] url`, else its `listen` address)
/// to start a run of `job`: `Ok(Some((run id, server URL)))`, or
/// `Ok(None)` when no server answers there (the caller queues the run in
/// the state store, where a server or worker finds it). A server that
/// answers but refuses (another project, unknown job, a wrong token) is an
/// error.
async fn trigger_on_server(
    project: &Project,
    job: &str,
    params: &serde_json::Map<String, serde_json::Value>,
) -> Result<Option<(String, String)>> {
    let settings = &project.settings.server;
    let Some(base) = settings.public_url() else {
        return Ok(None);
    };
    let base = base.trim_end_matches('/').to_string();
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Other(format!("an HTTP client: {e}")))?;
    let mut request = client
        .post(format!("{base}/api/jobs/{job}/trigger"))
        .json(&json!({ "params": params, "project": project.settings.project.name }));
    if let Some(token) = &settings.token {
        request = request.bearer_auth(token);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if e.is_connect() || e.is_timeout() => return Ok(None),
        Err(e) => {
            return Err(Error::Other(format!(
                "asking the server at {base}: {}",
                crate::core::secrets::redact(&e.to_string())
            )));
        }
    };
    let status = response.status();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        let reason = body["error"].as_str().unwrap_or("no reason given");
        return Err(Error::Other(format!(
            "the server at {base} refused to start job {job}: {status}: {reason}"
        )));
    }
    let run_id = body["run_id"].as_str().ok_or_else(|| {
        Error::Other(format!(
            "the server at {base} answered without a run id: {body}"
        ))
    })?;
    Ok(Some((run_id.to_string(), base)))
}

async fn backfill(
    project: Arc<Project>,
    store: Arc<Store>,
    json: bool,
    args: BackfillArgs,
) -> Result<ExitCode> {
    let job = project.job(&args.job)?;
    let schedule = job.config.schedule().ok_or_else(|| {
        Error::Config(format!(
            "job {} has no schedule, so no intervals to backfill: run it with `flowline jobs run {}`",
            job.name, job.name
        ))
    })?;
    let tz = job.config.timezone();
    let date = |text: &str, flag: &str| {
        crate::jobs::schedule::parse_start(text, tz)
            .map_err(|e| Error::Config(format!("--{flag} {text}: {e}")))
    };
    let (from, to) = (date(&args.from, "from")?, date(&args.to, "to")?);
    if from > to {
        return Err(Error::Config(format!(
            "--from {} is after --to {}",
            args.from, args.to
        )));
    }
    let anchor = job.config.start().unwrap_or(from);
    let intervals = schedule.intervals_between(anchor, from, to);
    let mut roots = Vec::new();
    let mut report = Vec::new();
    // A failed run kept in the range fails the backfill too.
    let mut kept_failed = false;
    for interval in &intervals {
        let key = interval_key(interval);
        let created = store
            .create_run(NewRun {
                job: &job.name,
                config: &job.config,
                key: key.clone(),
                trigger: Trigger::Backfill,
                interval: *interval,
                params: job.config.params_json(),
                parent: None,
            })
            .await?;
        let (run_id, what) = match created {
            Some(run_id) => (run_id, "run"),
            None => {
                let existing = store
                    .run_by_key(&job.name, &key)
                    .await?
                    .ok_or_else(|| Error::Other("a run vanished".into()))?;
                match existing.state {
                    RunState::Failed if args.reprocess_failed => {
                        store.rerun_failed(&existing.run_id).await?;
                        (existing.run_id, "rerun")
                    }
                    state => {
                        kept_failed |= state == RunState::Failed;
                        report.push(json!({
                            "interval_start": interval.start,
                            "run_id": existing.run_id,
                            "action": "kept",
                            "state": state,
                        }));
                        if !json {
                            println!(
                                "{}: kept run {} ({})",
                                interval.start.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
                                existing.run_id,
                                state.as_str()
                            );
                        }
                        continue;
                    }
                }
            }
        };
        report.push(json!({ "interval_start": interval.start, "run_id": run_id, "action": what }));
        roots.push(run_id);
    }
    if !json {
        println!(
            "backfilling {} of {} intervals of job {}",
            roots.len(),
            intervals.len(),
            job.name
        );
    }
    run_to_end(
        project.clone(),
        store.clone(),
        roots.clone(),
        args.concurrency.max(1),
    )
    .await?;
    let mut ok = !kept_failed;
    let mut runs = Vec::new();
    for root in &roots {
        if let Some(run) = store.run(root).await? {
            ok &= run.state == RunState::Succeeded;
            if !json {
                println!(
                    "{}: run {} {}{}",
                    run.interval
                        .start
                        .with_timezone(&tz)
                        .format("%Y-%m-%d %H:%M"),
                    run.run_id,
                    run.state.as_str(),
                    run.error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
            }
            runs.push(run);
        }
    }
    if json {
        print_json(&json!({ "job": job.name, "ok": ok, "intervals": report, "runs": runs }));
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn pause(
    project: &Project,
    store: &Store,
    json: bool,
    name: &str,
    paused: bool,
) -> Result<ExitCode> {
    let job = project.job(name)?;
    store.set_paused(&job.name, paused).await?;
    if json {
        print_json(&json!({ "job": job.name, "paused": paused }));
    } else {
        println!(
            "{} {}",
            job.name,
            if paused { "paused" } else { "unpaused" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn run_row(run: &JobRun) -> Vec<String> {
    let took = run
        .started_at
        .map(|start| {
            human_duration(
                (run.ended_at.unwrap_or_else(Utc::now) - start)
                    .to_std()
                    .unwrap_or_default(),
            )
        })
        .unwrap_or_else(|| "-".into());
    vec![
        run.run_id.clone(),
        run.state.as_str().into(),
        run.trigger.as_str().to_string(),
        run.interval.start.to_rfc3339(),
        took,
        run.error.clone().unwrap_or_default(),
    ]
}

async fn runs(project: &Project, store: &Store, json: bool, args: RunsArgs) -> Result<ExitCode> {
    let job = project.job(&args.job)?;
    let runs = store.runs(Some(&job.name), args.limit).await?;
    if json {
        print_json(&json!({ "job": job.name, "runs": runs }));
    } else if runs.is_empty() {
        println!("job {} has not run yet", job.name);
    } else {
        let rows: Vec<Vec<String>> = runs.iter().map(run_row).collect();
        println!(
            "{}",
            text_table(
                &["run", "state", "trigger", "interval start", "took", "error"],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn show(store: &Store, json: bool, run_id: &str) -> Result<ExitCode> {
    report_run(store, json, run_id).await?;
    Ok(ExitCode::SUCCESS)
}

async fn logs(store: &Store, json: bool, args: LogsArgs) -> Result<ExitCode> {
    let run = store.run(&args.run).await?.ok_or_else(|| {
        Error::Config(format!(
            "no run {} (see `flowline jobs runs JOB`)",
            args.run
        ))
    })?;
    // Lines are read by time; those of the same millisecond as the last
    // one read are read again and skipped by their key.
    let mut after = 0;
    let mut seen = std::collections::HashSet::new();
    loop {
        let lines = store
            .logs(&run.run_id, args.step.as_deref(), after - 1)
            .await?;
        let mut new = 0;
        for (step, attempt, line) in &lines {
            if !seen.insert((step.clone(), *attempt, line.seq)) {
                continue;
            }
            new += 1;
            after = after.max(line.at);
            if json {
                println!(
                    "{}",
                    json!({ "step": step, "attempt": attempt, "seq": line.seq, "at": line.at,
                            "stream": line.stream, "line": line.text })
                );
            } else {
                println!("[{step}#{attempt} {}] {}", line.stream, line.text);
            }
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        let done = store
            .run(&run.run_id)
            .await?
            .is_none_or(|r| r.state.is_done());
        if done && new == 0 {
            return Ok(ExitCode::SUCCESS);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}
