//! `jobs/<name>.toml`: a DAG of steps, its schedule and its run settings.
//!
//! Each `[[step]]` has a name, its dependencies (`after`), run settings
//! (retries, timeout, pool, trigger rule) and exactly one kind key
//! (`pipeline = "orders"`, `command = [...]`, `sensor = {...}`, ...). The
//! kinds are listed once, in [`crate::jobs::steps::kinds`]; this
//! file reads the common part and hands the kind's value to its module.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;
use toml::de::DeValue;

use super::ConfigFile;
use crate::core::diagnostic::did_you_mean;
use crate::core::error::Result;
pub use crate::jobs::TriggerRule;
use crate::jobs::schedule::{Schedule, parse_duration, parse_start};
use crate::jobs::steps::{self, StepAction};

/// Folder of job files.
pub const JOBS_DIR: &str = "jobs";

/// One job file, parsed.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// The file's top-level settings.
    pub settings: JobSettings,
    /// `[[step]]`, in file order.
    pub steps: Vec<StepConfig>,
}

/// The top level of a job file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobSettings {
    /// What the job is for, shown by `flowline jobs list`.
    #[serde(default)]
    pub description: Option<String>,
    /// When runs start: cron with 5 fields (or 6, seconds first), a macro
    /// (`@hourly`, `@daily`, `@weekly`, `@monthly`, `@yearly`), or `every
    /// 15m`. Without it the job runs only when triggered.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub schedule: Option<Spanned<String>>,
    /// The IANA time zone the schedule is read in (`Europe/Amsterdam`);
    /// runs follow daylight-saving changes. Default UTC.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// The start of the first data interval: a date (midnight in
    /// `timezone`) or a date-time. Default: when the scheduler first sees
    /// the job.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub start: Option<Spanned<StartValue>>,
    /// `true`: one run per interval missed since `start` (or since the last
    /// scheduled run). `false` (the default): only the latest one.
    #[serde(default)]
    pub catchup: bool,
    /// Runs of this job at once, at most. Default 1; later runs wait.
    #[serde(default = "one")]
    pub max_active_runs: u32,
    /// Values steps read as `{{ params.name }}`; `--param name=value`
    /// overrides one for a triggered run.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: BTreeMap<String, toml::Value>,
    /// What to do when a run fails.
    #[serde(default)]
    pub on_failure: Option<OnFailure>,
}

fn one() -> u32 {
    1
}

/// `start`, as TOML date or date-time, or the same as a string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StartValue {
    /// `2026-01-01` or `2026-01-01T06:00:00`.
    Datetime(toml::value::Datetime),
    /// `"2026-01-01"`.
    Text(String),
}

impl std::fmt::Display for StartValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartValue::Datetime(d) => write!(f, "{d}"),
            StartValue::Text(t) => f.write_str(t),
        }
    }
}

/// `on_failure = { webhook = "..." }`: where a failed run is reported.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnFailure {
    /// A URL that receives a JSON POST with job, run, step, error and log URL.
    pub webhook: String,
}

/// The settings every `[[step]]` has besides its kind.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StepSettings {
    /// Unique in the job; what `after`, logs and the API call it.
    pub name: String,
    /// Steps that must end first (see `trigger_rule`).
    #[serde(default)]
    pub after: Vec<String>,
    /// Attempts after the first when it fails. Default 0.
    #[serde(default)]
    pub retries: u32,
    /// Wait before the first retry (`"10s"`); doubles each time, with
    /// jitter, up to `max_retry_backoff`. Default `10s`.
    #[serde(default = "default_backoff")]
    #[schemars(with = "String")]
    pub retry_backoff: String,
    /// The longest wait between retries. Default `10m`.
    #[serde(default = "default_max_backoff")]
    #[schemars(with = "String")]
    pub max_retry_backoff: String,
    /// Longest an attempt may run (`"10m"`); a command's whole process
    /// group is killed then. Default: no limit.
    #[serde(default)]
    pub timeout: Option<String>,
    /// A pool of `[pools]` in flowline.toml that limits how many steps in
    /// it run at once.
    #[serde(default)]
    pub pool: Option<String>,
    /// `all_success` (default), `all_done`, `one_failed` or `one_success`.
    #[serde(default)]
    pub trigger_rule: TriggerRule,
}

fn default_backoff() -> String {
    "10s".into()
}

fn default_max_backoff() -> String {
    "10m".into()
}

/// One `[[step]]`.
#[derive(Debug, Clone)]
pub struct StepConfig {
    /// Name, dependencies and run settings.
    pub settings: StepSettings,
    /// What it does: the kind's own config.
    pub action: Arc<dyn StepAction>,
    /// `retry_backoff`, parsed.
    pub retry_backoff: Duration,
    /// `max_retry_backoff`, parsed.
    pub max_retry_backoff: Duration,
    /// `timeout`, parsed.
    pub timeout: Option<Duration>,
    /// Where the step's table is written in the file.
    pub span: Range<usize>,
}

impl StepConfig {
    /// The step's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }
}

impl JobConfig {
    /// The job's schedule, parsed (checked when the file was loaded).
    pub fn schedule(&self) -> Option<Schedule> {
        let expr = self.settings.schedule.as_ref()?;
        Schedule::parse(expr.get_ref(), self.timezone_name()).ok()
    }

    /// The `timezone` as written.
    pub fn timezone_name(&self) -> Option<&str> {
        self.settings
            .timezone
            .as_ref()
            .map(|t| t.get_ref().as_str())
    }

    /// The time zone (UTC when none is set).
    pub fn timezone(&self) -> chrono_tz::Tz {
        self.timezone_name()
            .and_then(|name| name.parse().ok())
            .unwrap_or(chrono_tz::UTC)
    }

    /// `start`, as an instant.
    pub fn start(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        let start = self.settings.start.as_ref()?;
        parse_start(&start.get_ref().to_string(), self.timezone()).ok()
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepConfig> {
        self.steps.iter().find(|s| s.name() == name)
    }

    /// `params` as JSON values.
    pub fn params_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.settings
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::to_value(v).unwrap_or_default()))
            .collect()
    }
}

impl ConfigFile {
    /// Parses a job file: the top level with serde, each `[[step]]` as its
    /// settings plus the one kind key it has.
    pub fn parse_job(&self) -> Result<JobConfig> {
        let root =
            toml::de::DeTable::parse(&self.interpolated.text).map_err(|e| self.toml_error(&e))?;
        let span = root.span();
        let mut table = root.into_inner();
        let steps = table.remove("step");
        let settings = JobSettings::deserialize(toml::de::Deserializer::from(toml::Spanned::new(
            span, table,
        )))
        .map_err(|e| self.located(&super::also_expected(e.message(), &["step"]), e.span()))?;
        let steps = match steps {
            None => Vec::new(),
            Some(value) => {
                let span = value.span();
                let DeValue::Array(items) = value.into_inner() else {
                    return Err(
                        self.error_at(span, "step must be an array of tables: write [[step]]")
                    );
                };
                items
                    .into_iter()
                    .map(|item| self.parse_step(item))
                    .collect::<Result<Vec<_>>>()?
            }
        };
        if steps.is_empty() {
            return Err(self.error_at(
                0..0,
                "a job needs at least one [[step]], e.g. [[step]] name = \"load\" pipeline = \"orders\"",
            ));
        }
        let job = JobConfig { settings, steps };
        self.check_job(&job)?;
        Ok(job)
    }

    fn parse_step(&self, item: Spanned<DeValue<'_>>) -> Result<StepConfig> {
        let span = item.span();
        let DeValue::Table(mut table) = item.into_inner() else {
            return Err(self.error_at(span, "each step must be a table: write [[step]]"));
        };
        let kinds = steps::kinds();
        let keys: Vec<&str> = kinds.iter().map(|k| k.key).collect();
        let present: Vec<_> = kinds
            .iter()
            .filter(|k| table.keys().any(|key| key.get_ref() == k.key))
            .collect();
        let kind = match present.as_slice() {
            [one] => one,
            [] => {
                return Err(self.error_at(
                    span,
                    &format!(
                        "a step needs one of {}: what it does",
                        keys.iter()
                            .map(|k| format!("`{k}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
            [first, second, ..] => {
                let at = table
                    .iter()
                    .find(|(key, _)| key.get_ref() == second.key)
                    .map_or(span.clone(), |(_, v)| v.span());
                return Err(self.error_at(
                    at,
                    &format!(
                        "a step does one thing: it has both `{}` and `{}`; split it into two steps",
                        first.key, second.key
                    ),
                ));
            }
        };
        let value = table
            .remove(kind.key)
            .ok_or_else(|| self.error_at(span.clone(), "step kind vanished"))?;
        let action = (kind.parse)(value).map_err(|e| self.located(&e.message, e.span))?;
        let settings = StepSettings::deserialize(toml::de::Deserializer::from(toml::Spanned::new(
            span.clone(),
            table,
        )))
        .map_err(|e| self.located(&super::also_expected(e.message(), &keys), e.span()))?;
        let duration = |text: &str, key: &str| {
            parse_duration(text).map_err(|e| {
                self.error_at(span.clone(), &format!("step {}: {key}: {e}", settings.name))
            })
        };
        Ok(StepConfig {
            retry_backoff: duration(&settings.retry_backoff, "retry_backoff")?,
            max_retry_backoff: duration(&settings.max_retry_backoff, "max_retry_backoff")?,
            timeout: match &settings.timeout {
                Some(t) => Some(duration(t, "timeout")?),
                None => None,
            },
            settings,
            action,
            span,
        })
    }

    /// What can be checked within the file: the schedule, the time zone,
    /// the start, unique names, known `after` steps, no cycles.
    fn check_job(&self, job: &JobConfig) -> Result<()> {
        let s = &job.settings;
        if let Some(tz) = &s.timezone
            && tz.get_ref().parse::<chrono_tz::Tz>().is_err()
        {
            return Err(self.error_at(
                tz.span(),
                &format!(
                    "unknown time zone \"{}\": use an IANA name such as \"Europe/Amsterdam\" or \"UTC\"",
                    tz.get_ref()
                ),
            ));
        }
        if let Some(expr) = &s.schedule
            && let Err(e) = Schedule::parse(expr.get_ref(), job.timezone_name())
        {
            return Err(self.error_at(expr.span(), &e));
        }
        if let Some(start) = &s.start
            && let Err(e) = parse_start(&start.get_ref().to_string(), job.timezone())
        {
            return Err(self.error_at(start.span(), &e));
        }
        if s.max_active_runs == 0 {
            return Err(self.error_at(0..0, "max_active_runs must be at least 1"));
        }
        let names: Vec<&str> = job.steps.iter().map(|s| s.name()).collect();
        for (i, step) in job.steps.iter().enumerate() {
            if names[..i].contains(&step.name()) {
                return Err(self.error_at(
                    step.span.clone(),
                    &format!(
                        "two steps are named \"{}\": names must be unique",
                        step.name()
                    ),
                ));
            }
            for upstream in &step.settings.after {
                if upstream == step.name() {
                    return Err(self.error_at(
                        step.span.clone(),
                        &format!("step \"{}\" cannot come after itself", step.name()),
                    ));
                }
                if !names.contains(&upstream.as_str()) {
                    let hint = did_you_mean(upstream, &names)
                        .map(|n| format!("; did you mean \"{n}\"?"))
                        .unwrap_or_default();
                    return Err(self.error_at(
                        step.span.clone(),
                        &format!(
                            "step \"{}\" comes after \"{upstream}\", which is not a step of this job{hint}",
                            step.name()
                        ),
                    ));
                }
            }
        }
        let edges = job
            .steps
            .iter()
            .map(|s| (s.name(), s.settings.after.as_slice()));
        if let Some(cycle) = crate::jobs::dag::find_cycle(edges) {
            let first = job.step(&cycle[0]).map_or(0..0, |s| s.span.clone());
            return Err(self.error_at(
                first,
                &format!("the steps form a cycle: {}", cycle.join(" -> ")),
            ));
        }
        Ok(())
    }
}
