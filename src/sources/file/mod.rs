//! `kind = "file"`: CSV, NDJSON, JSON documents and Parquet from local paths
//! or globs, loaded incrementally: a re-run reads only files that are new or
//! changed since the last committed run.

mod csv;
mod json;
mod parquet;
mod quotes;

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use serde::{Deserialize, Serialize};

use super::{BatchSender, DeadLetter, Source, SourceBatch, SourceContext};
use crate::core::error::{Error, Result};
use crate::core::{Mode, ScanOffer, Workspace};
use crate::data::types::parse_type;
use crate::sources::SourceConnector;

/// `[source] kind = "file"`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FileSourceConfig {
    /// A file path or glob, relative to the project (`data/orders/*.csv`).
    /// Matching files are read in name order. `.gz` files are decompressed.
    pub path: String,
    /// The file format: `csv`, `ndjson`, `json` or `parquet`. Without it,
    /// the extension decides (after `.gz` is stripped): `.csv`, `.tsv` and
    /// `.txt` are CSV; `.ndjson` and `.jsonl` are NDJSON; `.json` is a JSON
    /// document; `.parquet` and `.pq` are Parquet. Any other extension is an
    /// error. Default: from the extension.
    #[serde(default)]
    pub format: Option<FileFormat>,
    /// JSON documents: the dotted path to the array of records
    /// (`data.items`; array positions are numbers, as in `pages.0.rows`).
    /// Default: the whole document, which may be an array of records or
    /// one object.
    #[serde(default)]
    pub records: Option<String>,
    /// CSV: the field separator, one ASCII character. Default `","`
    /// (`"\t"` for `.tsv`).
    #[serde(default)]
    pub delimiter: Option<String>,
    /// CSV: the quote character, one ASCII character.
    #[serde(default = "default_quote")]
    pub quote: String,
    /// CSV: whether the first line names the columns. Without a header the
    /// columns are `column_1`, `column_2`, and so on. Blank header names
    /// become `column_N`, and repeated ones get `_2`, `_3`.
    #[serde(default = "default_true")]
    pub header: bool,
    /// CSV: the values read as NULL, in every column (matched exactly, case
    /// included). A list replaces the default; `[]` keeps every value,
    /// empty strings included. Inference leaves them out.
    #[serde(default = "default_null_values")]
    pub null_values: Vec<String>,
    /// CSV: the values read as NULL in one column, replacing `null_values`
    /// there: `{ score = ["-1"], code = [] }` (`[]` keeps every value of
    /// that column).
    #[serde(default)]
    pub column_null_values: BTreeMap<String, Vec<String>>,
    /// CSV: how many rows of each file are sampled to infer column types. A
    /// later value that does not fit an inferred type widens the column for
    /// the rest of the file (integer to double when the double is exact,
    /// else to text; booleans, dates and timestamps to text), so no value
    /// changes and no row is lost. Only a type declared in `columns` sends
    /// the row to the dead-letter table instead. JSON types are inferred
    /// from the records as they are read.
    #[serde(default = "default_infer_rows")]
    pub infer_schema_rows: usize,
    /// Column types that override inference, for every format:
    /// `{ amount = "decimal(10,2)", at = "timestamp" }`. A value the type
    /// cannot hold exactly sends its row to the dead-letter table.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Rows per Arrow batch (at least 1). Memory use depends on this, not on
    /// the file size.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Load only the files that are new or changed since the last run.
    /// `false` reads every matching file on every run.
    #[serde(default = "default_true")]
    pub incremental: bool,
    /// How many files a run may skip because they cannot be read as a
    /// whole (a corrupt Parquet file, a JSON document that does not parse,
    /// a CSV with no header). Each is recorded in the dead-letter table
    /// (origin = its path, reason = the error). A skipped file counts as
    /// loaded and is not read again until it changes. With more bad files
    /// than this, the run loads the other files and then fails naming the
    /// bad ones, which are read again by the next run; with the default,
    /// 0, any bad file fails the run. A file that fails after some of its
    /// rows were read (a Parquet file corrupt in a later row group) cannot
    /// be skipped: the run fails at once, loading nothing of it.
    #[serde(default)]
    pub max_bad_files: usize,
    /// CSV and NDJSON into DuckDB: let the warehouse read each file
    /// itself, in parallel and without handing it over in batches, when
    /// nothing in flight needs the batches (no `[[transform]]`,
    /// `write = "append"`).
    /// Every value is still converted by flowline's rules, and a file the
    /// warehouse cannot load exactly as flowline would (a value that widens
    /// its column, a malformed line, a table whose columns differ) is read
    /// by flowline instead, so the result is the same either way; `false`
    /// always reads files in flowline. Default `true`.
    #[serde(default = "default_true")]
    pub read_in_warehouse: bool,
}

fn default_quote() -> String {
    "\"".into()
}
fn default_true() -> bool {
    true
}
/// The null markers of pandas, R and Polars users, and of database exports.
fn default_null_values() -> Vec<String> {
    ["", "NA", "N/A", "NULL", "null", "NaN", "#N/A", "\\N"]
        .into_iter()
        .map(String::from)
        .collect()
}
fn default_infer_rows() -> usize {
    1000
}
fn default_batch_size() -> usize {
    65_536
}

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    /// Comma- (or otherwise) separated values.
    Csv,
    /// One JSON object per line (also `.jsonl`).
    Ndjson,
    /// A JSON document; `records` selects the array of records.
    Json,
    /// Apache Parquet.
    Parquet,
}

/// A file's identity for incremental loads: a changed size or modification
/// time means the file is loaded again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Fingerprint {
    size: u64,
    modified_ns: i128,
}

/// The progress a file source commits: every file loaded so far.
#[derive(Debug, Default, Serialize, Deserialize)]
struct FileState {
    files: BTreeMap<String, Fingerprint>,
}

/// One file to read, with the name it is known by in state and messages.
struct FileToRead {
    path: PathBuf,
    name: String,
    fingerprint: Fingerprint,
}

/// Options every format reader needs, resolved from the config.
#[derive(Debug, Clone)]
pub(crate) struct ReadOptions {
    pub batch_size: usize,
    pub infer_rows: usize,
    pub overrides: HashMap<String, DataType>,
    pub delimiter: u8,
    pub quote: u8,
    pub header: bool,
    pub null_values: Vec<String>,
    pub column_null_values: HashMap<String, Vec<String>>,
    pub records: Option<String>,
}

impl ReadOptions {
    /// The values read as NULL in `column`.
    pub fn null_values_of(&self, column: &str) -> &[String] {
        self.column_null_values
            .get(column)
            .unwrap_or(&self.null_values)
    }
}

/// A batch decoded from a file, before it gets a checkpoint.
pub(crate) struct Chunk {
    pub batch: RecordBatch,
    pub bytes: u64,
    pub dead_letters: Vec<DeadLetter>,
}

type Chunks = Box<dyn Iterator<Item = Result<Chunk>> + Send>;

/// Reads files matching a path or glob.
pub struct FileSource {
    config: FileSourceConfig,
}

impl FileSource {
    /// A file source for `config`.
    pub fn new(config: FileSourceConfig) -> Self {
        FileSource { config }
    }

    fn options(&self) -> Result<ReadOptions> {
        let c = &self.config;
        let mut overrides = HashMap::new();
        for (column, type_name) in &c.columns {
            let dt = parse_type(type_name)
                .map_err(|e| Error::Config(format!("[source] columns.{column}: {e}")))?;
            overrides.insert(column.clone(), dt);
        }
        let single_byte = |key: &str, value: &str| -> Result<u8> {
            let value = if value == "\\t" { "\t" } else { value };
            match value.as_bytes() {
                [b] => Ok(*b),
                _ => Err(Error::Config(format!(
                    "[source] {key} must be a single ASCII character, got {value:?}"
                ))),
            }
        };
        let default_delimiter = if c.path.ends_with(".tsv") || c.path.ends_with(".tsv.gz") {
            "\t"
        } else {
            ","
        };
        if c.batch_size == 0 {
            return Err(Error::Config(
                "[source] batch_size must be at least 1".into(),
            ));
        }
        Ok(ReadOptions {
            batch_size: c.batch_size,
            infer_rows: c.infer_schema_rows.max(1),
            overrides,
            delimiter: single_byte(
                "delimiter",
                c.delimiter.as_deref().unwrap_or(default_delimiter),
            )?,
            quote: single_byte("quote", &c.quote)?,
            header: c.header,
            null_values: c.null_values.clone(),
            column_null_values: c
                .column_null_values
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            records: c.records.clone(),
        })
    }

    /// Every file matching `path`, sorted, with its fingerprint.
    fn list_files(&self, project_dir: &Path) -> Result<Vec<FileToRead>> {
        let pattern = project_dir.join(&self.config.path);
        let pattern_text = pattern.to_string_lossy().to_string();
        let paths = glob::glob(&pattern_text)
            .map_err(|e| Error::Config(format!("[source] path {:?}: {e}", self.config.path)))?;
        let mut files = Vec::new();
        for entry in paths {
            let path = entry.map_err(|e| Error::io(e.path().to_path_buf(), e.into()))?;
            if !path.is_file() {
                continue;
            }
            let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
            let modified_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos() as i128);
            let name = path
                .strip_prefix(project_dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .to_string();
            files.push(FileToRead {
                path,
                name,
                fingerprint: Fingerprint {
                    size: meta.len(),
                    modified_ns,
                },
            });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(files)
    }

    fn format_of(&self, path: &Path) -> Result<FileFormat> {
        if let Some(format) = self.config.format {
            return Ok(format);
        }
        let name = path.to_string_lossy().to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        let ext = name.rsplit('.').next().unwrap_or("");
        match ext {
            "csv" | "tsv" | "txt" => Ok(FileFormat::Csv),
            "ndjson" | "jsonl" => Ok(FileFormat::Ndjson),
            "json" => Ok(FileFormat::Json),
            "parquet" | "pq" => Ok(FileFormat::Parquet),
            _ => Err(Error::Config(format!(
                "{}: cannot tell the format from the extension; set format = \"csv\", \"ndjson\", \"json\" or \"parquet\" in [source]",
                path.display()
            ))),
        }
    }

    fn chunks(&self, file: &FileToRead, options: &ReadOptions) -> Result<Chunks> {
        match self.format_of(&file.path)? {
            FileFormat::Csv => csv::read(&file.path, &file.name, options),
            FileFormat::Ndjson => json::read_lines(&file.path, &file.name, options),
            FileFormat::Json => json::read_document(&file.path, &file.name, options),
            FileFormat::Parquet => parquet::read(&file.path, &file.name, options),
        }
    }

    fn read_blocking(&self, ctx: SourceContext, out: BatchSender) -> Result<()> {
        let options = self.options()?;
        let mut state: FileState = match (&ctx.state, self.config.incremental) {
            (Some(value), true) => {
                serde_json::from_value(value.clone()).map_err(|e| Error::StateUnreadable {
                    what: format!("saved state of {}", ctx.pipeline),
                    message: e.to_string(),
                })?
            }
            _ => FileState::default(),
        };
        let files = self.list_files(&ctx.project_dir)?;
        if files.is_empty() {
            tracing::warn!(pipeline = %ctx.pipeline, "no files match {:?}", self.config.path);
        }
        let mut bad_files: Vec<(String, Error)> = Vec::new();
        for file in files {
            if state.files.get(&file.name) == Some(&file.fingerprint) {
                tracing::debug!(pipeline = %ctx.pipeline, file = %file.name, "unchanged, skipped");
                continue;
            }
            match self.offer_file(ctx.takes_files, &file, &options, &state, &out)? {
                Offer::Loaded => {
                    state.files.insert(file.name.clone(), file.fingerprint);
                    continue;
                }
                Offer::Declined => {}
                Offer::Stopped => return Ok(()),
            }
            let last = match self.send_file(&file, &options, &out) {
                Ok(Sent::Stopped) => return Ok(()),
                Ok(Sent::Nothing) => {
                    // Recorded with the next file that loads something: a
                    // checkpoint of its own would save state for a table
                    // that was never created.
                    state.files.insert(file.name.clone(), file.fingerprint);
                    continue;
                }
                Ok(Sent::AllBut(last)) => last,
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Unreadable(e)) => {
                    let skip = bad_files.len() < self.config.max_bad_files;
                    let mut batch = SourceBatch::empty();
                    batch.dead_letters.push(DeadLetter {
                        origin: file.name.clone(),
                        reason: reason_of(&file.name, &e),
                        raw: String::new(),
                    });
                    if skip {
                        tracing::warn!(pipeline = %ctx.pipeline, "skipped under max_bad_files: {e}");
                        state.files.insert(file.name.clone(), file.fingerprint);
                        batch.checkpoint = Some(checkpoint(&state)?);
                    }
                    bad_files.push((file.name.clone(), e));
                    if out.blocking_send(batch).is_err() {
                        return Ok(());
                    }
                    continue;
                }
            };
            state.files.insert(file.name.clone(), file.fingerprint);
            let mut last = last;
            last.checkpoint = Some(checkpoint(&state)?);
            if out.blocking_send(last).is_err() {
                return Ok(());
            }
        }
        if bad_files.len() > self.config.max_bad_files {
            return Err(self.too_many_bad_files(&bad_files));
        }
        Ok(())
    }

    /// The error that fails a run with more unreadable files than
    /// `max_bad_files`.
    fn too_many_bad_files(&self, bad: &[(String, Error)]) -> Error {
        let listed: Vec<String> = bad
            .iter()
            .take(5)
            .map(|(name, e)| format!("{name} ({})", reason_of(name, e)))
            .collect();
        let more = match bad.len() {
            n if n > 5 => format!(" and {} more", n - 5),
            _ => String::new(),
        };
        let (count, them) = match bad.len() {
            1 => ("1 file".to_string(), "it"),
            n => (format!("{n} files"), "them"),
        };
        Error::source_data(
            &self.config.path,
            format!(
                "{count} cannot be read, more than max_bad_files = {max}: {}{more}. The other \
                 files were loaded, and the run fails so that nothing is lost silently: the \
                 unreadable files are in the _flowline_dead_letter table and are read again \
                 by the next run. Fix or remove {them}, or raise max_bad_files in [source] \
                 to skip {them}",
                listed.join("; "),
                max = self.config.max_bad_files,
            ),
        )
    }

    /// Offers `file` for the warehouse to read itself (see
    /// [`crate::core::scan`]), when its format allows and it holds rows,
    /// and waits for the answer. A file that cannot be planned (no header,
    /// not text) is left to [`FileSource::send_file`], which reports it.
    fn offer_file(
        &self,
        takes_files: bool,
        file: &FileToRead,
        options: &ReadOptions,
        state: &FileState,
        out: &BatchSender,
    ) -> Result<Offer> {
        if !self.config.read_in_warehouse || !takes_files {
            return Ok(Offer::Declined);
        }
        let scan = match self.format_of(&file.path) {
            Ok(FileFormat::Csv) => csv::scan(&file.path, &file.name, options),
            Ok(FileFormat::Ndjson) => json::scan(&file.path, &file.name, options),
            _ => Ok(None),
        };
        let Ok(Some(scan)) = scan else {
            return Ok(Offer::Declined);
        };
        let mut loaded = FileState {
            files: state.files.clone(),
        };
        loaded.files.insert(file.name.clone(), file.fingerprint);
        let (offer, answer) = ScanOffer::new(scan, file.fingerprint.size, checkpoint(&loaded)?);
        let mut batch = SourceBatch::empty();
        batch.offer = Some(Box::new(offer));
        if out.blocking_send(batch).is_err() {
            return Ok(Offer::Stopped);
        }
        Ok(match answer.recv() {
            Ok(true) => Offer::Loaded,
            Ok(false) => Offer::Declined,
            Err(_) => Offer::Stopped,
        })
    }

    /// Reads `file` and sends its batches but the last, which the caller
    /// sends with the checkpoint. A file that fails before any of its rows
    /// were sent is [`Failure::Unreadable`]: nothing of it reached the
    /// loader.
    fn send_file(
        &self,
        file: &FileToRead,
        options: &ReadOptions,
        out: &BatchSender,
    ) -> std::result::Result<Sent, Failure> {
        let chunks = self.chunks(file, options).map_err(Failure::of)?;
        let mut held: Option<SourceBatch> = None;
        let mut rows_sent = 0;
        for chunk in chunks {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) if rows_sent == 0 => return Err(Failure::of(e)),
                Err(e) => return Err(Failure::after_rows(&file.name, rows_sent, e)),
            };
            let batch = SourceBatch {
                batch: chunk.batch,
                bytes: chunk.bytes,
                dead_letters: chunk.dead_letters,
                checkpoint: None,
                table: None,
                offer: None,
            };
            if let Some(previous) = held.replace(batch) {
                rows_sent += previous.batch.num_rows();
                if out.blocking_send(previous).is_err() {
                    return Ok(Sent::Stopped);
                }
            }
        }
        Ok(match held {
            Some(last) => Sent::AllBut(last),
            None => Sent::Nothing,
        })
    }
}

/// What became of a file offered to the warehouse.
enum Offer {
    /// The warehouse loaded and committed it.
    Loaded,
    /// It is to be read as batches.
    Declined,
    /// The loader stopped listening.
    Stopped,
}

/// How sending a file's batches ended.
enum Sent {
    /// Everything was sent but this last batch.
    AllBut(SourceBatch),
    /// The file held no rows and no rejected ones (0 bytes, a header only).
    Nothing,
    /// The loader stopped listening.
    Stopped,
}

/// Why a file could not be sent.
enum Failure {
    /// The file cannot be read as a whole; nothing of it was sent.
    Unreadable(Error),
    /// The run cannot go on.
    Fatal(Error),
}

impl Failure {
    /// A configuration error stops the run; any other makes the file bad.
    fn of(e: Error) -> Self {
        match e {
            Error::Config(_) => Failure::Fatal(e),
            e => Failure::Unreadable(e),
        }
    }

    /// A file that failed after `rows` of its rows were sent: it cannot be
    /// skipped, as the loader holds part of it; the failed run rolls it back.
    fn after_rows(name: &str, rows: usize, e: Error) -> Self {
        Failure::Fatal(Error::source_data(
            name,
            format!(
                "cannot be read past its first {rows} rows ({e}); the run stops and loads \
                 nothing of the file, which cannot be skipped once read in part: fix or \
                 remove it"
            ),
        ))
    }
}

/// The checkpoint for `state`.
fn checkpoint(state: &FileState) -> Result<serde_json::Value> {
    serde_json::to_value(state).map_err(|e| Error::Other(format!("saving file state: {e}")))
}

/// Why the file `name` failed, without the name that starts the message.
fn reason_of(name: &str, e: &Error) -> String {
    let text = e.to_string();
    match text.strip_prefix(name).and_then(|t| t.strip_prefix(": ")) {
        Some(reason) => reason.to_string(),
        None => text,
    }
}

#[async_trait::async_trait]
impl Source for FileSource {
    async fn read(self: Box<Self>, ctx: SourceContext, out: BatchSender) -> Result<()> {
        tokio::task::spawn_blocking(move || self.read_blocking(ctx, out))
            .await
            .map_err(Error::task("file reader"))?
    }

    fn check(&self, ctx: &SourceContext) -> Result<Vec<String>> {
        self.options()?;
        let files = self.list_files(&ctx.project_dir)?;
        let mut warnings = Vec::new();
        if files.is_empty() {
            warnings.push(format!("no files match {:?} yet", self.config.path));
        }
        for file in &files {
            self.format_of(&file.path)?;
        }
        Ok(warnings)
    }
}

/// Opens `path` for reading, decompressing `.gz`.
pub(crate) fn open(path: &Path) -> Result<Box<dyn Read + Send>> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let reader = BufReader::with_capacity(1 << 20, file);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(
            reader,
        ))))
    } else {
        Ok(Box::new(reader))
    }
}

impl SourceConnector for FileSourceConfig {
    fn kind() -> &'static str {
        "file"
    }

    fn mode() -> Mode {
        Mode::Batch
    }

    fn summary() -> &'static str {
        "Local files: CSV, NDJSON, JSON documents, Parquet"
    }

    fn origin(&self) -> Option<super::Origin> {
        Some(super::Origin {
            name: self.path.clone(),
            query: None,
        })
    }

    fn validate(&self, workspace: &Workspace, pipeline: &str) -> Result<Vec<String>> {
        crate::sources::validate_batch(self, workspace, pipeline)
    }

    fn batch_reader(&self, workspace: &Workspace) -> Result<Box<dyn Source>> {
        let _ = workspace;
        Ok(Box::new(FileSource::new(self.clone())))
    }
}
