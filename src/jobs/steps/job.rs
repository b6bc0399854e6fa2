//! `job = "other"`: starts a run of another job of the project and waits
//! for it to end, holding no worker slot while it waits.

use std::time::Duration;

use serde::Deserialize;

use super::{Outcome, Poke, StepAction, StepContext, StepKind};
use crate::jobs::ChildState;
use crate::jobs::ProjectRefs;

/// `job = "NAME"`: a job of `jobs/NAME.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct JobStep {
    /// The job's name.
    pub name: String,
}

impl StepKind for JobStep {
    const KEY: &'static str = "job";
    const SUMMARY: &'static str = "run another job and wait for it";
}

#[async_trait::async_trait]
impl StepAction for JobStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        format!("job {}", self.name)
    }

    fn check(&self, project: &ProjectRefs) -> Result<(), String> {
        project.expect("job", &self.name)
    }

    fn poke(&self) -> Option<Poke> {
        Some(Poke {
            every: Duration::from_secs(1),
            timeout: None,
        })
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        // The child run's key is this step's, so every poke finds the same run.
        let key = format!("{}:{}", ctx.run_id, ctx.step);
        let child = ctx
            .host
            .start_child_run(&self.name, &key, &ctx.vars)
            .await?;
        match child.state {
            ChildState::Succeeded => {
                ctx.log
                    .flowline(format!("job {} run {} succeeded", self.name, child.run_id));
                Ok(Outcome::Done)
            }
            ChildState::Failed => Err(format!("job {} run {} failed", self.name, child.run_id)),
            _ => Ok(Outcome::NotYet),
        }
    }
}
