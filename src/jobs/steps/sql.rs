//! `sql = "..."`: runs a statement in the project's warehouse.

use serde::Deserialize;

use super::{Outcome, StepAction, StepContext, StepKind, check_template};
use crate::jobs::ProjectRefs;

/// `sql = "STATEMENT"`, a template.
#[derive(Debug, Clone, Deserialize)]
#[serde(transparent)]
pub struct SqlStep {
    /// The statement, in the warehouse's dialect.
    pub statement: String,
}

impl StepKind for SqlStep {
    const KEY: &'static str = "sql";
    const SUMMARY: &'static str = "run a SQL statement in the warehouse";
}

#[async_trait::async_trait]
impl StepAction for SqlStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        let first = self.statement.lines().next().unwrap_or_default();
        format!("sql {first}")
    }

    fn check(&self, _project: &ProjectRefs) -> Result<(), String> {
        check_template(Self::KEY, &self.statement)
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        let statement = ctx.render(&self.statement)?;
        ctx.log.flowline(format!("sql: {statement}"));
        let rows = ctx.host.query(&statement).await?;
        ctx.log.flowline(format!("ok, {rows} rows returned"));
        Ok(Outcome::Done)
    }
}
