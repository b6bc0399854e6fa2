//! The HTTP API of `flowline serve` (axum): jobs, runs, steps, logs (also
//! live, as server-sent events), trigger, pause, backfill, pipelines with
//! their run history and stream numbers, `/healthz` and Prometheus
//! `/metrics`. Its OpenAPI description is served at `/api/openapi.json`.
//!
//! Every request under `/api` and `/metrics` carries `Authorization:
//! Bearer <[server] token>` when a token is set; on any address but
//! loopback the server refuses to start without one.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::orchestrator::store::{NewRun, Trigger, interval_key};
use crate::orchestrator::{Interval, RunState, Store};
use crate::state::StateStore;

/// What the handlers share.
pub struct ApiState {
    /// The project served.
    pub project: Arc<Project>,
    /// The job store.
    pub jobs: Arc<Store>,
    /// The pipelines' run history.
    pub history: Arc<dyn StateStore>,
    /// Wakes this process's step runner after a trigger.
    pub wake: Arc<tokio::sync::Notify>,
    metrics: Mutex<StepDurations>,
}

impl ApiState {
    /// The state of an API over `project`.
    pub fn new(
        project: Arc<Project>,
        jobs: Arc<Store>,
        history: Arc<dyn StateStore>,
        wake: Arc<tokio::sync::Notify>,
    ) -> ApiState {
        ApiState {
            project,
            jobs,
            history,
            wake,
            metrics: Mutex::new(StepDurations::default()),
        }
    }
}

type Shared = Arc<ApiState>;

/// An error answer: a status and `{"error": "..."}`.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match e {
            Error::Config(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError(status, crate::core::secrets::redact(&e.to_string()))
    }
}

type ApiResult<T> = std::result::Result<T, ApiError>;

fn not_found(what: String) -> ApiError {
    ApiError(StatusCode::NOT_FOUND, what)
}

/// Checks `[server]`: a listener off loopback needs a token.
pub fn check_listen(listen: &str, token: Option<&str>) -> Result<SocketAddr> {
    let addr: SocketAddr = listen.parse().map_err(|e| {
        Error::Config(format!(
            "[server] listen = {listen:?} is not an address such as \"127.0.0.1:8080\": {e}"
        ))
    })?;
    if !addr.ip().is_loopback() && token.is_none_or(|t| t.is_empty()) {
        return Err(Error::Config(format!(
            "[server] listen = \"{listen}\" is reachable from other machines, and the API \
             starts runs: set [server] token = \"${{FLOWLINE_TOKEN}}\" (clients send \
             Authorization: Bearer <token>), or listen on 127.0.0.1"
        )));
    }
    Ok(addr)
}

/// The API's routes over `state`.
pub fn router(state: Shared) -> Router {
    let api = Router::new()
        .route("/api/openapi.json", get(openapi))
        .route("/api/jobs", get(list_jobs))
        .route("/api/jobs/{job}", get(get_job))
        .route("/api/jobs/{job}/runs", get(job_runs))
        .route("/api/jobs/{job}/trigger", post(trigger))
        .route("/api/jobs/{job}/pause", post(pause))
        .route("/api/jobs/{job}/unpause", post(unpause))
        .route("/api/jobs/{job}/backfill", post(backfill))
        .route("/api/runs/{run}", get(get_run))
        .route("/api/runs/{run}/logs", get(run_logs))
        .route("/api/runs/{run}/logs/stream", get(stream_logs))
        .route("/api/pipelines", get(list_pipelines))
        .route("/api/pipelines/{pipeline}/runs", get(pipeline_runs))
        .route("/metrics", get(metrics))
        .route_layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .merge(api)
        .with_state(state)
}

/// Serves the API on `listener` until `stop` turns true.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Shared,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|stop| *stop).await;
        })
        .await
        .map_err(|e| Error::Other(format!("the HTTP API stopped: {e}")))
}

async fn authorize(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let Some(token) = state
        .project
        .settings
        .server
        .token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    use subtle::ConstantTimeEq;
    if bool::from(given.as_bytes().ct_eq(token.as_bytes())) {
        next.run(request).await
    } else {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::WWW_AUTHENTICATE,
            "Bearer".parse().expect("static header"),
        );
        (
            StatusCode::UNAUTHORIZED,
            headers,
            Json(json!({ "error": "send Authorization: Bearer <the [server] token>" })),
        )
            .into_response()
    }
}

fn job_json(state: &ApiState, job: &crate::config::Job, paused: &[String]) -> Value {
    let now = chrono::Utc::now();
    let next = job
        .config
        .schedule()
        .and_then(|s| s.next_after(now, job.config.start().unwrap_or(now)));
    json!({
        "job": job.name,
        "file": job.file,
        "description": job.config.settings.description,
        "schedule": job.config.settings.schedule.as_ref().map(|s| s.get_ref()),
        "timezone": job.config.timezone().name(),
        "paused": paused.contains(&job.name),
        "next_run": next,
        "max_active_runs": job.config.settings.max_active_runs,
        "steps": job.config.steps.iter().map(|s| json!({
            "name": s.name(),
            "kind": s.action.kind(),
            "does": s.action.describe(),
            "after": s.settings.after,
            "trigger_rule": s.settings.trigger_rule,
            "retries": s.settings.retries,
            "pool": s.settings.pool,
        })).collect::<Vec<_>>(),
        "project": state.project.settings.project.name,
    })
}

async fn list_jobs(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let paused = state.jobs.paused().await?;
    let jobs: Vec<Value> = state
        .project
        .jobs
        .iter()
        .map(|job| job_json(&state, job, &paused))
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

fn find_job<'a>(state: &'a ApiState, name: &str) -> ApiResult<&'a crate::config::Job> {
    state
        .project
        .job(name)
        .map_err(|e| not_found(e.to_string()))
}

async fn get_job(State(state): State<Shared>, Path(job): Path<String>) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &job)?;
    let paused = state.jobs.paused().await?;
    Ok(Json(job_json(&state, job, &paused)))
}

#[derive(Deserialize)]
struct Limit {
    limit: Option<usize>,
}

async fn job_runs(
    State(state): State<Shared>,
    Path(job): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &job)?;
    let runs = state
        .jobs
        .runs(Some(&job.name), limit.limit.unwrap_or(50))
        .await?;
    Ok(Json(json!({ "job": job.name, "runs": runs })))
}

#[derive(Deserialize, Default)]
struct TriggerBody {
    #[serde(default)]
    params: serde_json::Map<String, Value>,
    /// The project the caller means; a server of another project refuses.
    #[serde(default)]
    project: Option<String>,
}

async fn trigger(
    State(state): State<Shared>,
    Path(job): Path<String>,
    body: Option<Json<TriggerBody>>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body = body.map(|b| b.0);
    let served = &state.project.settings.project.name;
    if let Some(meant) = body.as_ref().and_then(|b| b.project.as_ref())
        && meant != served
    {
        return Err(ApiError(
            StatusCode::CONFLICT,
            format!("this server serves project {served}, not {meant}"),
        ));
    }
    let job = find_job(&state, &job)?;
    let mut params = job.config.params_json();
    params.extend(body.map(|b| b.params).unwrap_or_default());
    let now = chrono::Utc::now();
    let interval = job
        .config
        .schedule()
        .and_then(|s| s.interval_before(now, job.config.start().unwrap_or(now)))
        .unwrap_or(Interval {
            start: now,
            end: now,
        });
    let run_id = state
        .jobs
        .create_run(NewRun {
            job: &job.name,
            config: &job.config,
            key: format!("manual:{}", uuid::Uuid::now_v7()),
            trigger: Trigger::Manual,
            interval,
            params,
            parent: None,
        })
        .await?
        .ok_or_else(|| ApiError(StatusCode::CONFLICT, "the run exists already".into()))?;
    state.wake.notify_one();
    Ok((
        StatusCode::CREATED,
        Json(json!({ "run_id": run_id, "job": job.name })),
    ))
}

async fn pause(State(state): State<Shared>, Path(job): Path<String>) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &job)?;
    state.jobs.set_paused(&job.name, true).await?;
    Ok(Json(json!({ "job": job.name, "paused": true })))
}

async fn unpause(State(state): State<Shared>, Path(job): Path<String>) -> ApiResult<Json<Value>> {
    let job = find_job(&state, &job)?;
    state.jobs.set_paused(&job.name, false).await?;
    Ok(Json(json!({ "job": job.name, "paused": false })))
}

#[derive(Deserialize)]
struct BackfillBody {
    from: String,
    to: String,
    #[serde(default)]
    reprocess_failed: bool,
}

async fn backfill(
    State(state): State<Shared>,
    Path(job): Path<String>,
    Json(body): Json<BackfillBody>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let job = find_job(&state, &job)?;
    let bad = |e: String| ApiError(StatusCode::BAD_REQUEST, e);
    let schedule = job
        .config
        .schedule()
        .ok_or_else(|| bad(format!("job {} has no schedule to backfill", job.name)))?;
    let tz = job.config.timezone();
    let from = crate::jobs::schedule::parse_start(&body.from, tz).map_err(bad)?;
    let to = crate::jobs::schedule::parse_start(&body.to, tz).map_err(bad)?;
    let anchor = job.config.start().unwrap_or(from);
    let mut runs = Vec::new();
    for interval in schedule.intervals_between(anchor, from, to) {
        let key = interval_key(&interval);
        let created = state
            .jobs
            .create_run(NewRun {
                job: &job.name,
                config: &job.config,
                key: key.clone(),
                trigger: Trigger::Backfill,
                interval,
                params: job.config.params_json(),
                parent: None,
            })
            .await?;
        match created {
            Some(run_id) => runs.push(
                json!({ "interval_start": interval.start, "run_id": run_id, "action": "run" }),
            ),
            None => {
                if let Some(run) = state.jobs.run_by_key(&job.name, &key).await? {
                    let rerun = body.reprocess_failed && run.state == RunState::Failed;
                    if rerun {
                        state.jobs.rerun_failed(&run.run_id).await?;
                    }
                    runs.push(json!({
                        "interval_start": interval.start,
                        "run_id": run.run_id,
                        "action": if rerun { "rerun" } else { "kept" },
                    }));
                }
            }
        }
    }
    state.wake.notify_one();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "job": job.name, "intervals": runs })),
    ))
}

async fn get_run(State(state): State<Shared>, Path(run): Path<String>) -> ApiResult<Json<Value>> {
    let found = state
        .jobs
        .run(&run)
        .await?
        .ok_or_else(|| not_found(format!("no run {run}")))?;
    let steps = state.jobs.steps(&run).await?;
    let attempts = state.jobs.attempts(&run).await?;
    Ok(Json(
        json!({ "run": found, "steps": steps, "attempts": attempts }),
    ))
}

#[derive(Deserialize)]
struct LogQuery {
    step: Option<String>,
    /// Lines written after this time (Unix ms).
    after: Option<i64>,
}

fn log_json(step: &str, attempt: i64, line: &crate::jobs::log::LogLine) -> Value {
    json!({ "step": step, "attempt": attempt, "seq": line.seq, "at": line.at,
            "stream": line.stream, "line": line.text })
}

async fn run_logs(
    State(state): State<Shared>,
    Path(run): Path<String>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Json<Value>> {
    state
        .jobs
        .run(&run)
        .await?
        .ok_or_else(|| not_found(format!("no run {run}")))?;
    let lines = state
        .jobs
        .logs(&run, query.step.as_deref(), query.after.unwrap_or(0))
        .await?;
    let lines: Vec<Value> = lines.iter().map(|(s, a, l)| log_json(s, *a, l)).collect();
    Ok(Json(json!({ "run_id": run, "lines": lines })))
}

/// The run's log as server-sent events (`event: log`), live until the run
/// ends (then `event: end`).
async fn stream_logs(
    State(state): State<Shared>,
    Path(run): Path<String>,
    Query(query): Query<LogQuery>,
) -> ApiResult<Sse<impl futures_util::Stream<Item = std::result::Result<Event, Infallible>>>> {
    state
        .jobs
        .run(&run)
        .await?
        .ok_or_else(|| not_found(format!("no run {run}")))?;
    let start = (state, run, query.step, query.after.unwrap_or(0), false);
    let events =
        futures_util::stream::unfold(start, |(state, run, step, after, ended)| async move {
            if ended {
                return None;
            }
            loop {
                let lines = state
                    .jobs
                    .logs(&run, step.as_deref(), after)
                    .await
                    .unwrap_or_default();
                if let Some(last) = lines.iter().map(|(_, _, l)| l.at).max() {
                    let data: Vec<String> = lines
                        .iter()
                        .map(|(s, a, l)| log_json(s, *a, l).to_string())
                        .collect();
                    let event = Event::default().event("log").data(data.join("\n"));
                    return Some((Ok(event), (state, run, step, last, false)));
                }
                let done = matches!(state.jobs.run(&run).await, Ok(Some(r)) if r.state.is_done())
                    || matches!(state.jobs.run(&run).await, Ok(None));
                if done {
                    let event = Event::default().event("end").data(run.clone());
                    return Some((Ok(event), (state, run, step, after, true)));
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

async fn list_pipelines(State(state): State<Shared>) -> ApiResult<Json<Value>> {
    let last = state.history.last_runs()?;
    let pipelines: Vec<Value> = state
        .project
        .pipelines
        .iter()
        .map(|p| {
            json!({
                "pipeline": p.name,
                "file": p.file,
                "mode": p.config.mode,
                "source": p.config.source.kind(),
                "table": p.config.destination.table.get_ref(),
                "last_run": last.iter().find(|r| r.pipeline == p.name),
            })
        })
        .collect();
    Ok(Json(json!({ "pipelines": pipelines })))
}

async fn pipeline_runs(
    State(state): State<Shared>,
    Path(pipeline): Path<String>,
    Query(limit): Query<Limit>,
) -> ApiResult<Json<Value>> {
    let pipeline = state
        .project
        .pipeline(&pipeline)
        .map_err(|e| not_found(e.to_string()))?;
    let runs = state
        .history
        .runs(&pipeline.name, limit.limit.unwrap_or(50))?;
    Ok(Json(json!({ "pipeline": pipeline.name, "runs": runs })))
}

/// Step durations as cumulative histograms, fed from the attempts that
/// ended since the last scrape.
#[derive(Default)]
struct StepDurations {
    seen_until: i64,
    by_step: BTreeMap<(String, String), Histogram>,
}

/// Upper bounds of the duration buckets, seconds.
const BUCKETS: [f64; 12] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

#[derive(Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

/// A Prometheus label value, escaped.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

async fn metrics(State(state): State<Shared>) -> ApiResult<Response> {
    let counts = state.jobs.counts().await?;
    let since = state
        .metrics
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .seen_until;
    let ended = state.jobs.attempt_durations(since).await?;
    let mut out = String::from(
        "# HELP flowline_job_runs Job runs by state.\n# TYPE flowline_job_runs gauge\n",
    );
    for (s, n) in &counts.runs {
        out.push_str(&format!(
            "flowline_job_runs{{state=\"{}\"}} {n}\n",
            label(s)
        ));
    }
    out.push_str(
        "# HELP flowline_job_steps Steps of job runs by state.\n# TYPE flowline_job_steps gauge\n",
    );
    for (s, n) in &counts.steps {
        out.push_str(&format!(
            "flowline_job_steps{{state=\"{}\"}} {n}\n",
            label(s)
        ));
    }
    out.push_str(&format!(
        "# HELP flowline_queue_depth Steps ready to run and waiting for a worker.\n\
         # TYPE flowline_queue_depth gauge\nflowline_queue_depth {}\n\
         # HELP flowline_lease_expiries_total Attempts whose worker stopped heartbeating.\n\
         # TYPE flowline_lease_expiries_total counter\nflowline_lease_expiries_total {}\n",
        counts.queue_depth, counts.lease_expiries
    ));
    {
        let mut durations = state.metrics.lock().unwrap_or_else(|p| p.into_inner());
        durations.seen_until = crate::state::db::now_ms();
        for (job, step, seconds) in ended {
            durations
                .by_step
                .entry((job, step))
                .or_default()
                .observe(seconds);
        }
        out.push_str(
            "# HELP flowline_step_duration_seconds Duration of step attempts.\n\
             # TYPE flowline_step_duration_seconds histogram\n",
        );
        for ((job, step), h) in &durations.by_step {
            let labels = format!("job=\"{}\",step=\"{}\"", label(job), label(step));
            for (i, bound) in BUCKETS.iter().enumerate() {
                out.push_str(&format!(
                    "flowline_step_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}\n",
                    h.counts[i]
                ));
            }
            out.push_str(&format!(
                "flowline_step_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
                 flowline_step_duration_seconds_sum{{{labels}}} {}\n\
                 flowline_step_duration_seconds_count{{{labels}}} {}\n",
                h.count, h.sum, h.count
            ));
        }
    }
    out.push_str(&pipeline_metrics(state.history.as_ref())?);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        out,
    )
        .into_response())
}

/// Reads one number off a run record.
type Reading = fn(&crate::state::RunRecord) -> Option<f64>;

/// The pipelines' last runs and streams' numbers, as gauges.
fn pipeline_metrics(history: &dyn StateStore) -> Result<String> {
    let runs = history.last_runs()?;
    let mut out = String::new();
    let gauges: [(&str, &str, Reading); 7] = [
        (
            "flowline_pipeline_last_run_rows",
            "Rows the pipeline's last run committed.",
            |r| Some(r.rows as f64),
        ),
        (
            "flowline_pipeline_last_run_bytes",
            "Bytes the pipeline's last run read.",
            |r| Some(r.bytes as f64),
        ),
        (
            "flowline_pipeline_last_run_dead_letters",
            "Rows the pipeline's last run sent to the dead-letter table.",
            |r| Some(r.bad_rows as f64),
        ),
        (
            "flowline_pipeline_last_run_succeeded",
            "1 when the pipeline's last run succeeded.",
            |r| {
                Some(f64::from(u8::from(
                    r.status == crate::state::RunStatus::Succeeded,
                )))
            },
        ),
        (
            "flowline_stream_messages",
            "Messages the stream session committed.",
            |r| r.stream.map(|s| s.messages as f64),
        ),
        (
            "flowline_stream_lag",
            "Messages waiting in the broker, as it last reported.",
            |r| r.stream.and_then(|s| s.lag).map(|l| l as f64),
        ),
        (
            "flowline_stream_batch_p99_seconds",
            "99th percentile from a batch's first message to its commit.",
            |r| r.stream.map(|s| s.batch_p99_ms as f64 / 1000.0),
        ),
    ];
    for (name, help, value) in gauges {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
        for run in &runs {
            if let Some(v) = value(run) {
                out.push_str(&format!(
                    "{name}{{pipeline=\"{}\"}} {v}\n",
                    label(&run.pipeline)
                ));
            }
        }
    }
    Ok(out)
}

async fn openapi() -> Json<Value> {
    let op = |summary: &str| json!({ "summary": summary, "responses": { "200": { "description": "OK" } } });
    let path_param = |name: &str| json!([{ "name": name, "in": "path", "required": true, "schema": { "type": "string" } }]);
    Json(json!({
        "openapi": "3.0.3",
        "info": { "title": "flowline", "version": env!("CARGO_PKG_VERSION"),
                  "description": "Jobs, runs, logs and pipelines of a flowline project." },
        "components": { "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } } },
        "security": [{ "bearer": [] }],
        "paths": {
            "/healthz": { "get": op("Liveness: 200 ok") },
            "/metrics": { "get": op("Prometheus metrics") },
            "/api/jobs": { "get": op("The jobs with schedule, next run and steps") },
            "/api/jobs/{job}": { "parameters": path_param("job"), "get": op("One job") },
            "/api/jobs/{job}/runs": { "parameters": path_param("job"), "get": op("A job's latest runs (?limit=)") },
            "/api/jobs/{job}/trigger": { "parameters": path_param("job"), "post": {
                "summary": "Queue a run; body {\"params\": {...}} overrides params",
                "requestBody": { "required": false, "content": { "application/json": { "schema": {
                    "type": "object", "properties": { "params": { "type": "object" }, "project": { "type": "string", "description": "the project meant; a server of another project answers 409" } } } } } },
                "responses": { "201": { "description": "Created: {\"run_id\": ...}" } } } },
            "/api/jobs/{job}/pause": { "parameters": path_param("job"), "post": op("Stop scheduling the job") },
            "/api/jobs/{job}/unpause": { "parameters": path_param("job"), "post": op("Schedule the job again") },
            "/api/jobs/{job}/backfill": { "parameters": path_param("job"), "post": {
                "summary": "Queue runs for the intervals between two dates",
                "requestBody": { "required": true, "content": { "application/json": { "schema": {
                    "type": "object", "required": ["from", "to"], "properties": {
                        "from": { "type": "string" }, "to": { "type": "string" },
                        "reprocess_failed": { "type": "boolean" } } } } } },
                "responses": { "202": { "description": "Accepted: the intervals and their runs" } } } },
            "/api/runs/{run}": { "parameters": path_param("run"), "get": op("A run with its steps and attempts") },
            "/api/runs/{run}/logs": { "parameters": path_param("run"), "get": op("A run's log lines (?step=, ?after= Unix ms)") },
            "/api/runs/{run}/logs/stream": { "parameters": path_param("run"), "get": op("The same, live, as server-sent events") },
            "/api/pipelines": { "get": op("Pipelines with their last run and stream numbers") },
            "/api/pipelines/{pipeline}/runs": { "parameters": path_param("pipeline"), "get": op("A pipeline's run history (?limit=)") },
        }
    }))
}
