//! Printing query results and reports: tables for people, JSON and CSV for machines.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;

use crate::core::error::{Error, Result};

/// Output formats of `flowline sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table.
    Table,
    /// A JSON array of objects.
    Json,
    /// CSV with a header line.
    Csv,
}

/// Renders batches in `format`.
pub fn render(schema: &SchemaRef, batches: &[RecordBatch], format: Format) -> Result<String> {
    match format {
        Format::Table => {
            if batches.iter().all(|b| b.num_rows() == 0) {
                let empty = RecordBatch::new_empty(schema.clone());
                return arrow::util::pretty::pretty_format_batches(&[empty])
                    .map(|t| t.to_string())
                    .map_err(|e| Error::arrow("formatting", e));
            }
            arrow::util::pretty::pretty_format_batches(batches)
                .map(|t| t.to_string())
                .map_err(|e| Error::arrow("formatting", e))
        }
        Format::Json => {
            let mut writer = arrow::json::ArrayWriter::new(Vec::new());
            for batch in batches {
                writer
                    .write(batch)
                    .map_err(|e| Error::arrow("writing JSON", e))?;
            }
            writer
                .finish()
                .map_err(|e| Error::arrow("writing JSON", e))?;
            let mut text = String::from_utf8_lossy(&writer.into_inner()).to_string();
            if text.is_empty() {
                text = "[]".into();
            }
            Ok(text)
        }
        Format::Csv => {
            let mut buffer = Vec::new();
            {
                let mut writer = arrow::csv::WriterBuilder::new()
                    .with_header(true)
                    .build(&mut buffer);
                if batches.is_empty() {
                    writer
                        .write(&RecordBatch::new_empty(schema.clone()))
                        .map_err(|e| Error::arrow("writing CSV", e))?;
                }
                for batch in batches {
                    writer
                        .write(batch)
                        .map_err(|e| Error::arrow("writing CSV", e))?;
                }
            }
            Ok(String::from_utf8_lossy(&buffer).trim_end().to_string())
        }
    }
}

/// A plain text table from rows of strings.
pub fn text_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_string()).collect())];
    for row in rows {
        out.push(line(row.clone()));
    }
    out.join("\n")
}

/// `1 row`, `2 rows`.
pub fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `1.2s`, `340ms`, `2m05s`.
pub fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    }
}
