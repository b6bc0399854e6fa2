//! Whole files a warehouse may read itself. A file source that has inferred
//! a file's columns offers the file to the loader before decoding it; a
//! warehouse that reads the format natively (DuckDB's parallel CSV reader)
//! loads it in one statement, checking every value by flowline's own
//! conversion rules. When it cannot (a transform needs the batches, the
//! table does not fit, a value would widen its column or the file is
//! malformed), the offer is declined and the source reads the file as
//! usual, so the result is the same either way.

use std::path::PathBuf;
use std::sync::mpsc;

use arrow::datatypes::DataType;

/// A file described for a warehouse to read.
#[derive(Debug, Clone, PartialEq)]
pub struct FileScan {
    /// The file on disk.
    pub path: PathBuf,
    /// The name it is known by in state and messages.
    pub name: String,
    /// How to read it.
    pub format: ScanFormat,
    /// Its columns in order, with the types every value must convert to
    /// exactly, by the rules flowline's own readers convert text with.
    pub columns: Vec<(String, DataType)>,
}

/// A file format a warehouse may read.
#[derive(Debug, Clone, PartialEq)]
pub enum ScanFormat {
    /// Delimited text; quotes are escaped by doubling them.
    Csv {
        /// The field separator.
        delimiter: u8,
        /// The quote character.
        quote: u8,
        /// Whether the first line (a line of its own) names the columns.
        header: bool,
        /// The values read as NULL in every column, quoted or not.
        null_values: Vec<String>,
        /// The longest row (in bytes) the warehouse may read: a longer one
        /// could span more lines than flowline reads in one row.
        max_row_bytes: usize,
    },
    /// One JSON object per line.
    Ndjson,
}

/// A file offered to the loader, with the source's progress once it is
/// loaded. The loader answers whether it loaded the file; an offer dropped
/// unanswered counts as declined.
#[derive(Debug, Clone)]
pub struct ScanOffer {
    /// The file.
    pub scan: FileScan,
    /// Bytes the file holds.
    pub bytes: u64,
    /// The source's state once the file is loaded.
    pub checkpoint: serde_json::Value,
    reply: mpsc::SyncSender<bool>,
}

impl ScanOffer {
    /// An offer of `scan`, and the receiver of its answer.
    pub fn new(
        scan: FileScan,
        bytes: u64,
        checkpoint: serde_json::Value,
    ) -> (ScanOffer, mpsc::Receiver<bool>) {
        let (reply, answer) = mpsc::sync_channel(1);
        let offer = ScanOffer {
            scan,
            bytes,
            checkpoint,
            reply,
        };
        (offer, answer)
    }

    /// Tells the source whether the file was loaded (and committed).
    pub fn answer(&self, loaded: bool) {
        // A source that stopped waiting has nothing left to do with it.
        let _ = self.reply.send(loaded);
    }
}
