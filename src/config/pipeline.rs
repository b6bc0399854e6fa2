//! `pipelines/<name>.toml`: source -> transforms -> destination.

use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use super::ConfigFile;
use crate::core::error::Result;
use crate::core::{Mode, TableName, WriteMode};
use crate::destinations::DestinationConfig;
use crate::sources::SourceConfig;
use crate::transforms::TransformConfig;

/// One pipeline file.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// What the pipeline is for, shown by `flowline status --json`.
    pub description: Option<String>,
    /// `batch` (the default): a run reads the source to its end and stops.
    pub mode: Mode,
    /// `[source]`: where the data comes from; `kind` picks the connector.
    pub source: SourceConfig,
    /// `[[transform]]`: in-flight steps applied to every batch, in order.
    pub transform: Vec<Spanned<TransformConfig>>,
    /// `[destination]`: the table the data lands in.
    pub destination: DestinationConfig,
    /// Fail the run once more than this many rows went to the dead-letter
    /// table. Unset: no limit.
    pub max_bad_rows: Option<u64>,
    /// `[batch]`: how a stream pipeline cuts its micro-batches.
    pub batch: BatchConfig,
    /// Where `[batch]` is written, if it is.
    pub batch_span: Option<std::ops::Range<usize>>,
}

/// `[batch]`: a stream pipeline commits a batch when it holds `max_rows`
/// messages or its first message has waited `max_wait`, whichever is first.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// Messages per batch, at most (at least 1). Default 10000.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// How long a batch waits for more messages after its first one
    /// (`"500ms"`, `"2s"`). Default `500ms`.
    #[serde(default = "default_max_wait", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub max_wait: std::time::Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: default_max_rows(),
            max_wait: default_max_wait(),
        }
    }
}

fn default_max_rows() -> usize {
    10_000
}
fn default_max_wait() -> std::time::Duration {
    std::time::Duration::from_millis(500)
}

/// Everything of a pipeline file but `[source]` and `[[transform]]`, which
/// are read separately with the config struct their `kind` or step key names
/// (see [`SourceConfig::from_toml`], [`TransformConfig::from_toml`]).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PipelineBody {
    /// What the pipeline is for. Shown by `flowline status --json`.
    #[serde(default)]
    description: Option<String>,
    /// `batch`: a run reads the source to its end and stops (offline
    /// extraction). `stream`: `flowline stream` reads a stream source
    /// continuously, in micro-batches (online extraction). The mode must
    /// match the source's kind.
    #[serde(default)]
    mode: Mode,
    /// `[destination]`: the table the data lands in.
    destination: DestinationConfig,
    /// Fail the run once more than this many rows of the run went to the
    /// dead-letter table. The failed run is rolled back to its last commit;
    /// the rows it rejected stay in the dead-letter table. Default: no limit.
    #[serde(default)]
    max_bad_rows: Option<u64>,
    /// `[batch]`: how a stream pipeline cuts its micro-batches.
    #[serde(default)]
    #[schemars(with = "Option<BatchConfig>")]
    batch: Option<Spanned<BatchConfig>>,
}

impl PipelineBody {
    /// The whole pipeline, with its source.
    pub(super) fn with_source(
        self,
        source: SourceConfig,
        transform: Vec<Spanned<TransformConfig>>,
    ) -> PipelineConfig {
        PipelineConfig {
            description: self.description,
            mode: self.mode,
            source,
            transform,
            destination: self.destination,
            max_bad_rows: self.max_bad_rows,
            batch_span: self.batch.as_ref().map(|b| b.span()),
            batch: self.batch.map(|b| b.into_inner()).unwrap_or_default(),
        }
    }
}

impl PipelineConfig {
    /// Checks what the types alone cannot: rules between keys.
    pub fn check(&self, file: &ConfigFile) -> Result<()> {
        for step in &self.transform {
            step.get_ref()
                .check()
                .map_err(|msg| file.error_at(step.span(), &msg))?;
        }
        match (self.mode, self.source.mode()) {
            (Mode::Batch, Mode::Stream) => {
                return Err(file.error_at(
                    0..0,
                    &format!(
                        "[source] kind = \"{}\" is a stream source: add mode = \"stream\" at the top of the file and run it with `flowline stream`",
                        self.source.kind()
                    ),
                ));
            }
            (Mode::Stream, Mode::Batch) => {
                return Err(file.error_at(
                    0..0,
                    &format!(
                        "mode = \"stream\" needs a stream source ({}); kind = \"{}\" is read in batches",
                        crate::sources::kinds(Some(Mode::Stream)).join(", "),
                        self.source.kind()
                    ),
                ));
            }
            _ => {}
        }
        if self.batch.max_rows == 0 {
            return Err(file.error_at(
                self.batch_span.clone().unwrap_or(0..0),
                "[batch] max_rows must be at least 1",
            ));
        }
        let dest = &self.destination;
        if dest.write_mode() == WriteMode::Merge && dest.primary_key.is_empty() {
            let span = dest.write.as_ref().map_or(0..0, |w| w.span());
            return Err(file.error_at(
                span,
                "write = \"merge\" needs primary_key = [\"column\", ...] in [destination]",
            ));
        }
        if let Err(msg) = TableName::parse(dest.table.get_ref()) {
            return Err(file.error_at(dest.table_span(), &msg));
        }
        Ok(())
    }
}
