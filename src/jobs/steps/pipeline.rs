//! `pipeline = "orders"`: runs a batch pipeline of the project once.
//! `pipeline = { name = "events", until_idle = "5s" }` runs a stream
//! pipeline until its source has been quiet that long: a queue emptied by
//! a scheduled job, its messages committed before they are acknowledged.

use serde::Deserialize;

use super::{Outcome, StepAction, StepContext, StepKind};
use crate::jobs::ProjectRefs;
use crate::jobs::schedule::parse_duration;

/// `pipeline = "NAME"` (a pipeline of `pipelines/NAME.toml`), or a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PipelineStep {
    /// A batch pipeline by name.
    Name(String),
    /// `{ name = "events", until_idle = "5s" }`.
    Options(PipelineOptions),
}

/// The table form of a pipeline step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineOptions {
    /// The pipeline's name.
    pub name: String,
    /// For a stream pipeline: stop once no message has arrived for this
    /// long (`"5s"`). Required for stream pipelines, refused for batch ones.
    #[serde(default)]
    pub until_idle: Option<String>,
}

impl StepKind for PipelineStep {
    const KEY: &'static str = "pipeline";
    const SUMMARY: &'static str =
        "run a batch pipeline, or drain a stream pipeline (until_idle), of this project";
}

impl PipelineStep {
    fn name(&self) -> &str {
        match self {
            PipelineStep::Name(name) => name,
            PipelineStep::Options(options) => &options.name,
        }
    }

    fn until_idle(&self) -> Option<&str> {
        match self {
            PipelineStep::Name(_) => None,
            PipelineStep::Options(options) => options.until_idle.as_deref(),
        }
    }
}

#[async_trait::async_trait]
impl StepAction for PipelineStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        match self.until_idle() {
            Some(idle) => format!("pipeline {} until idle {idle}", self.name()),
            None => format!("pipeline {}", self.name()),
        }
    }

    fn check(&self, project: &ProjectRefs) -> Result<(), String> {
        let name = self.name();
        project.expect("pipeline", name)?;
        let stream = project.pipelines.get(name) == Some(&true);
        match (stream, self.until_idle()) {
            (true, None) => Err(format!(
                "pipeline {name} is a stream pipeline: it runs continuously under `flowline stream` \
                 or `flowline serve`; as a step, drain it with \
                 pipeline = {{ name = \"{name}\", until_idle = \"5s\" }}"
            )),
            (false, Some(_)) => Err(format!(
                "pipeline {name} is a batch pipeline, which ends by itself: until_idle is for \
                 stream pipelines"
            )),
            (true, Some(idle)) => parse_duration(idle)
                .map(|_| ())
                .map_err(|e| format!("pipeline {name}: until_idle: {e}")),
            (false, None) => Ok(()),
        }
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        let name = self.name();
        let record = match self.until_idle() {
            Some(idle) => {
                let idle = parse_duration(idle).map_err(|e| format!("until_idle: {e}"))?;
                ctx.log.flowline(format!(
                    "draining stream pipeline {name} until no message arrives for {}",
                    humantime::format_duration(idle)
                ));
                ctx.host.drain_stream(name, idle).await?
            }
            None => {
                ctx.log.flowline(format!("running pipeline {name}"));
                ctx.host.run_pipeline(name).await?
            }
        };
        match record.succeeded {
            true => {
                ctx.log.flowline(format!(
                    "pipeline {name}: {} rows loaded, {} rows to the dead-letter table, run {}",
                    record.rows, record.bad_rows, record.run_id
                ));
                Ok(Outcome::Done)
            }
            false => Err(format!(
                "pipeline {name} failed (run {}): {}",
                record.run_id,
                record.error.as_deref().unwrap_or("unknown error")
            )),
        }
    }
}
