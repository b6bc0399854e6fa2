//! `pipeline = "orders"`: runs a batch pipeline of the project once.

use serde::Deserialize;

use super::{Outcome, StepAction, StepContext, StepKind};
use crate::jobs::ProjectRefs;

/// `pipeline = "NAME"`: a pipeline of `pipelines/NAME.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct PipelineStep {
    /// The pipeline's name.
    pub name: String,
}

impl StepKind for PipelineStep {
    const KEY: &'static str = "pipeline";
    const SUMMARY: &'static str = "run a batch pipeline of this project";
}

#[async_trait::async_trait]
impl StepAction for PipelineStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        format!("pipeline {}", self.name)
    }

    fn check(&self, project: &ProjectRefs) -> Result<(), String> {
        project.expect("pipeline", &self.name)?;
        if project.pipelines.get(&self.name) == Some(&true) {
            return Err(format!(
                "pipeline {} is a stream pipeline: it runs continuously under `flowline stream` \
                 or `flowline serve`, not as a step",
                self.name
            ));
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        ctx.log.flowline(format!("running pipeline {}", self.name));
        let record = ctx.host.run_pipeline(&self.name).await?;
        match record.succeeded {
            true => {
                ctx.log.flowline(format!(
                    "pipeline {}: {} rows loaded, {} rows to the dead-letter table, run {}",
                    self.name, record.rows, record.bad_rows, record.run_id
                ));
                Ok(Outcome::Done)
            }
            false => Err(format!(
                "pipeline {} failed (run {}): {}",
                self.name,
                record.run_id,
                record.error.as_deref().unwrap_or("unknown error")
            )),
        }
    }
}
