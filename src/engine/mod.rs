//! The engine moves batches: source -> transforms -> destination, committing
//! the source's checkpoints with the data. It knows no connector by name.

mod batch;
pub mod progress;
mod run;
pub mod stream;

pub use batch::{RunOptions, run_pipeline};
pub use run::{pipeline_failure, refused, run_one};
