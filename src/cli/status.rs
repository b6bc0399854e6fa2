//! `flowline status`: every pipeline with its last run and saved progress.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{Value, json};

use super::output::{human_duration, text_table};
use crate::config::Project;
use crate::core::error::Result;
use crate::server::client::open_warehouse;
use crate::state::open_state_store;

/// Prints the status table (or JSON). Saved progress in the project's
/// warehouse comes from the process that owns it, when one does.
pub fn execute(project_dir: &Path, json: bool) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    let warehouse = open_warehouse(&project)?;
    let store = open_state_store(&project)?;
    let last_runs = store.last_runs()?;

    let mut rows = Vec::new();
    let mut report = Vec::new();
    for pipeline in &project.pipelines {
        let run = last_runs.iter().find(|r| r.pipeline == pipeline.name);
        // One unreachable destination must not hide the others' status.
        let saved = crate::destinations::open_pipeline_warehouse(
            &project.workspace(),
            &pipeline.config.destination,
        )
        .and_then(|own| {
            own.as_deref()
                .unwrap_or(warehouse.as_ref())
                .saved_state(&pipeline.name)
        });
        let (saved, problem) = match saved {
            Ok(saved) => (saved, None),
            Err(e @ crate::core::error::Error::StateUnreadable { .. }) => (
                None,
                Some(format!(
                    "{}; `flowline state reset {}` forgets it",
                    crate::core::secrets::redact(&e.to_string()),
                    pipeline.name
                )),
            ),
            Err(e) => (None, Some(crate::core::secrets::redact(&e.to_string()))),
        };
        let mut progress = match &problem {
            Some(problem) => format!("error: {problem}"),
            None => saved
                .as_ref()
                .map(|s| summarize(&s.state))
                .unwrap_or_else(|| "-".into()),
        };
        if let Some(stats) = run.and_then(|r| r.stream.as_ref()) {
            progress = format!("{}; {progress}", stream_summary(stats));
        }
        rows.push(vec![
            pipeline.name.clone(),
            pipeline.config.destination.table.get_ref().clone(),
            run.map_or("never".into(), |r| {
                r.started_at.format("%Y-%m-%d %H:%M:%S").to_string()
            }),
            run.map_or("-".into(), |r| r.status.as_str().to_string()),
            run.map_or("-".into(), |r| r.rows.to_string()),
            run.map_or("-".into(), |r| human_duration(r.duration())),
            progress.clone(),
        ]);
        report.push(json!({
            "pipeline": pipeline.name,
            "description": pipeline.config.description,
            "table": pipeline.config.destination.table.get_ref(),
            "last_run": run,
            "saved_state": saved.as_ref().map(|s| &s.state),
            "saved_at": saved.as_ref().map(|s| &s.updated_at),
        }));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else if rows.is_empty() {
        println!(
            "no pipelines in {}",
            project.dir.join("pipelines").display()
        );
    } else {
        println!(
            "{}",
            text_table(
                &[
                    "PIPELINE", "TABLE", "LAST RUN", "STATUS", "ROWS", "DURATION", "PROGRESS"
                ],
                &rows
            )
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A stream session's numbers in a few words.
fn stream_summary(stats: &crate::state::StreamStats) -> String {
    let mut text = format!(
        "{:.0} msg/s, batch p99 {} ms",
        stats.messages_per_second, stats.batch_p99_ms
    );
    if stats.end_to_end_p99_ms > 0 {
        text += &format!(
            ", end-to-end p50 {} ms p99 {} ms",
            stats.end_to_end_p50_ms, stats.end_to_end_p99_ms
        );
    }
    if let Some(lag) = stats.lag {
        text += &format!(", lag {lag}");
    }
    text
}

/// A one-line summary of a source's saved state: collections are counted,
/// scalars shown.
fn summarize(state: &Value) -> String {
    match state {
        Value::Object(map) => map
            .iter()
            .map(|(key, value)| match value {
                Value::Object(inner) => format!("{key}: {}", inner.len()),
                Value::Array(items) => format!("{key}: {}", items.len()),
                Value::String(s) => format!("{key}: {s}"),
                other => format!("{key}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_count_collections() {
        let state = json!({"files": {"a.csv": {}, "b.csv": {}}, "cursor": "2024-01-01"});
        assert_eq!(summarize(&state), "cursor: 2024-01-01, files: 2");
    }
}
