//! What a source hands the engine: Arrow batches with their bytes, rejected
//! rows and checkpoint, sent through a bounded channel.

use arrow::record_batch::RecordBatch;
use tokio::sync::mpsc;

use super::scan::ScanOffer;

/// A row that could not be read, kept for the dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Where the row came from, e.g. `data/orders.csv:17`.
    pub origin: String,
    /// Why it was rejected.
    pub reason: String,
    /// The raw row as read.
    pub raw: String,
}

/// A table a source fills besides the pipeline's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildTable {
    /// Its name; the table is `<pipeline table>__<name>`.
    pub name: String,
    /// The columns identifying its rows, for `merge` pipelines; when empty,
    /// a merge pipeline appends to it.
    pub primary_key: Vec<String>,
}

/// One batch from a source, with its place in the source's progress.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows (may be empty when only a checkpoint or dead letters are sent).
    pub batch: RecordBatch,
    /// Bytes read from the source for this batch.
    pub bytes: u64,
    /// Rows rejected while reading this batch.
    pub dead_letters: Vec<DeadLetter>,
    /// The source's progress once this batch is committed, if this batch
    /// ends a unit that can be committed (a file, a page, a cursor value).
    pub checkpoint: Option<serde_json::Value>,
    /// The child table these rows go to (see [`ChildTable`]); `None` for
    /// the pipeline's own table.
    pub table: Option<String>,
    /// A whole file offered for the warehouse to read itself (see
    /// [`super::scan`]); the batch then holds no rows.
    pub offer: Option<Box<ScanOffer>>,
}

impl SourceBatch {
    /// A batch with no rows, to carry a checkpoint.
    pub fn empty() -> Self {
        SourceBatch {
            batch: RecordBatch::new_empty(std::sync::Arc::new(arrow::datatypes::Schema::empty())),
            bytes: 0,
            dead_letters: Vec::new(),
            checkpoint: None,
            table: None,
            offer: None,
        }
    }
}

impl SourceBatch {
    /// The batch that ends a read: the remaining `rows` (or none), their
    /// dead letters and the checkpoint, or `None` when there is none of them.
    pub fn closing(
        rows: Option<RecordBatch>,
        bytes: u64,
        dead_letters: Vec<DeadLetter>,
        checkpoint: Option<serde_json::Value>,
    ) -> Option<SourceBatch> {
        let batch = rows.unwrap_or_else(|| {
            RecordBatch::new_empty(std::sync::Arc::new(arrow::datatypes::Schema::empty()))
        });
        if batch.num_rows() == 0 && dead_letters.is_empty() && checkpoint.is_none() {
            return None;
        }
        Some(SourceBatch {
            batch,
            bytes,
            dead_letters,
            checkpoint,
            table: None,
            offer: None,
        })
    }
}

/// The sending half of the bounded channel a source writes into. A full
/// channel makes the source wait: a slow destination slows the source down
/// instead of growing memory.
pub type BatchSender = mpsc::Sender<SourceBatch>;
