//! `models = "+marts"`: builds the project's SQL models that a dbt
//! selection picks and runs their data tests, each model's and each test's
//! result a line of the step's log.
//!
//! The step runs `flowline models build` (this very binary) from the
//! project folder, as a command step would: that command reaches the
//! warehouse the way every flowline command does, through the process that
//! owns it when one runs (`flowline serve`, or this job's own process once
//! a step opened the warehouse), and it fails when a model or a test
//! (of severity error) fails.

use serde::Deserialize;

use super::command::run_program;
use super::{Outcome, StepAction, StepContext, StepKind};
use crate::jobs::ProjectRefs;

/// `models = "SELECTION"`, or a table with the run's options.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ModelsStep {
    /// The selection alone: `models = "+marts tag:daily"`.
    Select(String),
    /// `models = { select = "+marts", exclude = "tag:slow", full_refresh = false, threads = 4, load_upstream = false }`.
    Options(ModelsOptions),
}

/// The table form of a models step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelsOptions {
    /// Which models, in dbt's selection syntax. Default: all.
    #[serde(default)]
    pub select: Option<String>,
    /// Models left out, in the same syntax.
    #[serde(default)]
    pub exclude: Option<String>,
    /// Rebuild incremental models from scratch.
    #[serde(default)]
    pub full_refresh: bool,
    /// How many independent models are built at once. Default 4.
    #[serde(default)]
    pub threads: Option<usize>,
    /// First run the pipelines that load the sources the models read.
    #[serde(default)]
    pub load_upstream: bool,
}

impl StepKind for ModelsStep {
    const KEY: &'static str = "models";
    const SUMMARY: &'static str = "build the SQL models a dbt selection picks and test them";
}

impl ModelsStep {
    fn options(&self) -> ModelsOptions {
        match self {
            ModelsStep::Select(select) => ModelsOptions {
                select: Some(select.clone()),
                exclude: None,
                full_refresh: false,
                threads: None,
                load_upstream: false,
            },
            ModelsStep::Options(options) => options.clone(),
        }
    }

    /// The `flowline models build` arguments for this step.
    fn arguments(&self) -> Vec<String> {
        let options = self.options();
        let mut args = vec!["models".to_string(), "build".to_string()];
        let words = |text: &Option<String>| -> Vec<String> {
            text.iter()
                .flat_map(|t| t.split_whitespace().map(str::to_string))
                .collect()
        };
        let select = words(&options.select);
        if !select.is_empty() {
            args.push("--select".into());
            args.extend(select);
        }
        let exclude = words(&options.exclude);
        if !exclude.is_empty() {
            args.push("--exclude".into());
            args.extend(exclude);
        }
        if options.full_refresh {
            args.push("--full-refresh".into());
        }
        if options.load_upstream {
            args.push("--load-upstream".into());
        }
        if let Some(threads) = options.threads {
            args.push("--threads".into());
            args.push(threads.to_string());
        }
        args
    }
}

#[async_trait::async_trait]
impl StepAction for ModelsStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        match self.options().select {
            Some(select) => format!("models {select}"),
            None => "models (all)".into(),
        }
    }

    fn check(&self, _project: &ProjectRefs) -> Result<(), String> {
        if let ModelsStep::Options(options) = self
            && options.threads == Some(0)
        {
            return Err("models: threads must be at least 1".into());
        }
        Ok(())
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        let flowline = std::env::current_exe()
            .map_err(|e| format!("models: cannot find the flowline binary: {e}"))?;
        let args = self.arguments();
        ctx.log.flowline(format!("flowline {}", args.join(" ")));
        let mut argv = vec![
            flowline.to_string_lossy().to_string(),
            "--project".to_string(),
            ctx.dir.to_string_lossy().to_string(),
        ];
        argv.extend(args);
        run_program(ctx, &argv)
            .await
            .map_err(|e| format!("models: {e}; each model's and test's result is in the log above"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_becomes_the_arguments_of_models_build() {
        let step = ModelsStep::Select("+marts tag:daily".into());
        assert_eq!(
            step.arguments(),
            ["models", "build", "--select", "+marts", "tag:daily"]
        );
        let step: ModelsStep = toml::from_str::<toml::Table>(
            "models = { select = \"orders+\", exclude = \"tag:slow\", full_refresh = true, threads = 2 }",
        )
        .ok()
        .and_then(|t| t.get("models").cloned())
        .and_then(|v| v.try_into().ok())
        .expect("parses");
        assert_eq!(
            step.arguments(),
            [
                "models",
                "build",
                "--select",
                "orders+",
                "--exclude",
                "tag:slow",
                "--full-refresh",
                "--threads",
                "2"
            ]
        );
    }
}
