//! `flowline validate`: parse every project file and check each pipeline's
//! source and transforms, without reading data or touching the warehouse.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::config::Project;
use crate::error::{Error, Result};
use crate::sources::SourceContext;
use crate::transforms;

/// Prints problems (or "ok") and fails on any error.
pub fn execute(project_dir: &Path, json: bool) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    for pipeline in &project.pipelines {
        let ctx = SourceContext {
            pipeline: pipeline.name.clone(),
            project_dir: project.dir.clone(),
            state: None,
        };
        let file = pipeline.file.display();
        match pipeline.config.source.build().check(&ctx) {
            Ok(found) => warnings.extend(found.into_iter().map(|w| format!("{file}: {w}"))),
            Err(e) => errors.push(format!("{file}: {e}")),
        }
        if let Err(e) = transforms::build(&pipeline.config.transform) {
            errors.push(format!("{file}: {e}"));
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": errors.is_empty(),
                "pipelines": project.pipelines.len(),
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
        return Err(Error::Config(errors.join("\n")));
    }
    if !json {
        println!(
            "ok: {} is valid ({} pipelines)",
            project.settings.project.name,
            project.pipelines.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
