//! Job step kinds. Each kind is one module: its config type (what follows
//! its key in a `[[step]]`, e.g. `command = [...]`) implements
//! [`StepKind`], and [`kinds`] is the one list of them. Nothing else in the
//! tree names a kind.
//!
//! A step runs once per attempt and answers [`Outcome::Done`] or an error
//! message; retries, timeouts, pools and logs are the runner's. A sensor
//! answers [`Outcome::NotYet`] while its condition is unmet: the step is
//! put back in the queue until its next poke, holding no worker slot.

mod command;
mod http;
mod job;
mod models;
mod pipeline;
mod sensor;
mod spark;
mod sql;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use super::log::Log;
use super::template::Vars;
use super::{ProjectRefs, StepHost};
use crate::core::diagnostic::SpannedError;

/// Every step kind, in the order listings show them. Adding a kind is one
/// module and one line here.
pub fn kinds() -> Vec<Registration> {
    vec![
        Registration::of::<pipeline::PipelineStep>(),
        Registration::of::<command::CommandStep>(),
        Registration::of::<sql::SqlStep>(),
        Registration::of::<http::HttpStep>(),
        Registration::of::<sensor::SensorStep>(),
        Registration::of::<job::JobStep>(),
        Registration::of::<models::ModelsStep>(),
        Registration::of::<spark::SparkStep>(),
    ]
}

/// How one attempt of a step ended, when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It did its work.
    Done,
    /// A sensor whose condition is not met yet: poke again later.
    NotYet,
}

/// How long a sensor waits between pokes, and in all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poke {
    /// Between two checks.
    pub every: Duration,
    /// From the first check until the step fails; `None`: no limit.
    pub timeout: Option<Duration>,
}

/// Everything an attempt can use.
pub struct StepContext {
    /// The project folder: commands run there, file sensors look there.
    pub dir: std::path::PathBuf,
    /// The warehouse, pipelines and other jobs, as this process reaches them.
    pub host: Arc<dyn StepHost>,
    /// The template variables of the run.
    pub vars: Vars,
    /// Where the step's output goes.
    pub log: Log,
    /// The run's id and the step's name, for steps that start runs of
    /// their own.
    pub run_id: String,
    /// The step's name.
    pub step: String,
}

impl StepContext {
    /// `text` rendered with the run's variables.
    pub fn render(&self, text: &str) -> Result<String, String> {
        super::template::render(text, &self.vars)
    }
}

/// One step kind's behaviour, on its parsed config.
#[async_trait::async_trait]
pub trait StepAction: fmt::Debug + Send + Sync {
    /// The key that selects the kind.
    fn kind(&self) -> &'static str;

    /// A short description for listings: `pipeline orders`.
    fn describe(&self) -> String;

    /// Checks what the config names against the project (a pipeline or job
    /// that exists, well-formed templates), without running anything.
    fn check(&self, project: &ProjectRefs) -> Result<(), String> {
        let _ = project;
        Ok(())
    }

    /// For a sensor, how it pokes.
    fn poke(&self) -> Option<Poke> {
        None
    }

    /// Runs one attempt.
    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String>;
}

/// What a step kind is: implemented by its config type.
pub trait StepKind: StepAction + DeserializeOwned + 'static {
    /// The `[[step]]` key that selects it (`command`).
    const KEY: &'static str;
    /// What it does, in a few words.
    const SUMMARY: &'static str;
}

/// Parses a kind's value into its action.
type Parse = for<'a> fn(Spanned<DeValue<'a>>) -> Result<Arc<dyn StepAction>, SpannedError>;

/// One entry of [`kinds`].
pub struct Registration {
    /// The `[[step]]` key that selects it.
    pub key: &'static str,
    /// What it does, in a few words.
    pub summary: &'static str,
    /// Reads its value.
    pub parse: Parse,
}

impl Registration {
    /// The registration of kind `T`.
    pub fn of<T: StepKind>() -> Registration {
        fn parse<T: StepKind>(
            value: Spanned<DeValue<'_>>,
        ) -> Result<Arc<dyn StepAction>, SpannedError> {
            let parsed = T::deserialize(ValueDeserializer::from(value))?;
            Ok(Arc::new(parsed))
        }
        Registration {
            key: T::KEY,
            summary: T::SUMMARY,
            parse: parse::<T>,
        }
    }
}

/// `text`'s templates checked, the error naming the step key.
fn check_template(key: &str, text: &str) -> Result<(), String> {
    super::template::check(text).map_err(|e| format!("{key}: {e}"))
}
