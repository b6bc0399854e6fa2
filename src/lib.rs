//! flowline: a data-pipeline platform in one binary.
//!
//! Data flows left to right: [`sources`] yield Arrow batches with
//! checkpoints, [`transforms`] reshape them in flight, [`destinations`] load
//! them and commit the checkpoint atomically with the data. The [`engine`]
//! drives that flow for one pipeline; [`config`] turns project files into
//! typed structs; [`state`] keeps run history; [`cli`] is the command line.

pub mod cli;
pub mod config;
pub mod data;
pub mod destinations;
pub mod engine;
pub mod error;
pub mod server;
pub mod sources;
pub mod state;
pub mod transforms;

pub use error::{Error, Result};
