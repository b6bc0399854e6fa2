//! `flowline discover NAME`: schemas, tables, columns and row estimates of a
//! connection, and a pipeline file for a chosen table.

use std::path::Path;
use std::process::ExitCode;

use super::output::text_table;
use crate::config::{PIPELINES_DIR, Project};
use crate::core::error::{Error, Result};
use crate::sources::{TableInfo, connector_for_url};

/// Arguments of `flowline discover`.
#[derive(Debug, clap::Args)]
pub struct DiscoverArgs {
    /// The connection's name in flowline.toml.
    pub name: String,
    /// Write `pipelines/<table>.toml` loading this table (`schema.table`).
    #[arg(long, value_name = "TABLE")]
    pub write_pipeline: Option<String>,
}

/// Column names that usually mark the last change of a row.
const CURSOR_NAMES: &[&str] = &[
    "updated_at",
    "modified_at",
    "last_modified",
    "updated",
    "modified",
    "changed_at",
];

fn pipeline_file(connection: &str, kind: &str, info: &TableInfo) -> String {
    let cursor = info
        .columns
        .iter()
        .find(|(name, _)| CURSOR_NAMES.contains(&name.to_ascii_lowercase().as_str()))
        .map(|(name, _)| name.clone());
    let mut text = format!(
        "# Written by `flowline discover {connection}`: loads {schema}.{table}.\n\n[source]\nkind = \"{kind}\"\nconnection = \"{connection}\"\ntable = \"{schema}.{table}\"\n",
        schema = info.schema,
        table = info.table,
    );
    if let Some(cursor) = &cursor {
        text.push_str(&format!("incremental = {{ cursor = \"{cursor}\" }}\n"));
    }
    text.push_str(&format!(
        "\n[destination]\ntable = \"raw.{}\"\n",
        info.table
    ));
    if info.primary_key.is_empty() {
        text.push_str(if cursor.is_some() {
            "write = \"append\"\n"
        } else {
            "write = \"replace\"\n"
        });
    } else {
        let keys: Vec<String> = info
            .primary_key
            .iter()
            .map(|k| format!("\"{k}\""))
            .collect();
        text.push_str(&format!(
            "write = \"merge\"\nprimary_key = [{}]\n",
            keys.join(", ")
        ));
    }
    text
}

/// Lists the tables, or writes a pipeline for one.
pub async fn execute(project_dir: &Path, json: bool, args: DiscoverArgs) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    let url = project.settings.connections.url(&args.name)?;
    let connector = connector_for_url(&url)?;
    let kind = connector.kind;
    let tables = connector
        .discover(&url, &project.workspace())
        .await
        .map_err(|e| Error::Other(format!("connection {}: {e}", args.name)))?;
    if let Some(wanted) = &args.write_pipeline {
        let info = tables
            .iter()
            .find(|t| format!("{}.{}", t.schema, t.table) == *wanted || t.table == *wanted)
            .ok_or_else(|| {
                Error::Other(format!("no table {wanted} behind connection {}", args.name))
            })?;
        let path = project
            .dir
            .join(PIPELINES_DIR)
            .join(format!("{}.toml", info.table));
        if path.exists() {
            return Err(Error::Other(format!(
                "{} exists; not overwriting it",
                path.display()
            )));
        }
        std::fs::create_dir_all(project.dir.join(PIPELINES_DIR))
            .map_err(|e| Error::io(&path, e))?;
        std::fs::write(&path, pipeline_file(&args.name, kind, info))
            .map_err(|e| Error::io(&path, e))?;
        println!("wrote {}", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&tables).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = tables
        .iter()
        .map(|t| {
            vec![
                t.schema.clone(),
                t.table.clone(),
                t.rows.map_or("?".into(), |r| format!("~{r}")),
                t.primary_key.join(", "),
                t.columns
                    .iter()
                    .map(|(n, ty)| format!("{n} {ty}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    println!(
        "{}",
        text_table(&["SCHEMA", "TABLE", "ROWS", "KEY", "COLUMNS"], &rows)
    );
    Ok(ExitCode::SUCCESS)
}
