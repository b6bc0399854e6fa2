//! `flowline validate`: parse every project file and check each pipeline's
//! source and transforms, and the SQL models, without reading data or
//! touching the warehouse.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::destinations::check_destination;
use crate::transforms;

/// Prints problems (or "ok") and fails on any error.
pub fn execute(project_dir: &Path, json: bool) -> Result<ExitCode> {
    let project = match Project::load_reporting(project_dir) {
        Ok(project) => project,
        Err(errors) if json => {
            let report =
                json!({ "ok": false, "pipelines": null, "errors": errors, "warnings": [] });
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            return Ok(ExitCode::FAILURE);
        }
        Err(errors) => return Err(Error::Config(errors.join("\n\n"))),
    };
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    let workspace = project.workspace();
    if let Err(e) = project.settings.warehouse.check(&workspace) {
        errors.push(format!("flowline.toml: {e}"));
    }
    if let Err(e) = project.settings.state.check() {
        errors.push(format!("flowline.toml: {e}"));
    }
    for pipeline in &project.pipelines {
        let file = pipeline.file.display();
        match pipeline.config.source.validate(&workspace, &pipeline.name) {
            Ok(found) => warnings.extend(found.into_iter().map(|w| format!("{file}: {w}"))),
            Err(e) => errors.push(format!("{file}: {e}")),
        }
        if let Err(e) = check_destination(&workspace, &pipeline.config.destination) {
            errors.push(format!("{file}: {e}"));
        }
        match transforms::build(&pipeline.config.transform, &workspace) {
            Ok(mut chain) => {
                for (i, step) in chain.iter_mut().enumerate() {
                    if let Err(e) = step.check() {
                        errors.push(format!("{file}: [[transform]] #{}: {e}", i + 1));
                    }
                }
            }
            Err(e) => errors.push(format!("{file}: {e}")),
        }
    }
    // SQL models: Jinja, configs, refs, sources, tests, no cycle.
    if let Err(e) = crate::models::ModelProject::load(&project) {
        errors.push(e.to_string());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": errors.is_empty(),
                "pipelines": project.pipelines.len(),
                "jobs": project.jobs.len(),
                "errors": errors,
                "warnings": warnings,
            }))
            .unwrap_or_default()
        );
    } else {
        for warning in &warnings {
            eprintln!("warning: {warning}");
        }
    }
    if !errors.is_empty() {
        if json {
            return Ok(ExitCode::FAILURE);
        }
        return Err(Error::Config(errors.join("\n")));
    }
    if !json {
        let mut counted = super::output::plural(project.pipelines.len() as u64, "pipeline");
        if !project.jobs.is_empty() {
            counted += &format!(
                ", {}",
                super::output::plural(project.jobs.len() as u64, "job")
            );
        }
        println!("ok: {} is valid ({counted})", project.settings.project.name);
    }
    Ok(ExitCode::SUCCESS)
}
