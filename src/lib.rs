//! flowline: a data-pipeline platform in one binary.
//!
//! Data flows left to right: [`sources`] yield Arrow batches with
//! checkpoints, [`transforms`] reshape them in flight, [`destinations`] load
//! them and commit the checkpoint atomically with the data. The [`engine`]
//! drives that flow for one pipeline; [`config`] turns project files into
//! typed structs; [`state`] keeps run history; [`jobs`] says what a job's
//! steps do and when they run, and the [`orchestrator`] schedules, queues
//! and runs them; [`server`] lets other commands and HTTP clients reach a
//! running process; [`cli`] is the command line.
//!
//! # Module map and import direction
//!
//! Layers, lowest first. A module uses only its own module and the layers
//! below it; the modules of one layer do not use each other
//! (`tests/architecture.rs` fails on any `crate::` path that points up).
//!
//! | layer | modules | owns |
//! |---|---|---|
//! | 0 | [`core`] | the shared vocabulary: errors, batches, dead letters, table names, write modes, load specs, connections, secrets, diagnostics |
//! | 1 | [`data`] | Arrow helpers, type mapping, schema inference and evolution |
//! | 2 | [`clients`] | the Postgres and MySQL clients: connect, TLS, errors by cause, COPY to Arrow |
//! | 3 | [`sources`], [`destinations`], [`transforms`], [`jobs`] | connectors and job step kinds, each listed once in its registry (`sources::connectors`, `destinations::warehouses`, `transforms::steps`, `jobs::steps::kinds`); schedules, templates, trigger rules |
//! | 4 | [`config`] | project and pipeline files to typed structs, `${VAR}`, file:line:column diagnostics |
//! | 5 | [`state`], [`models`] | run history, and the SQL layer (SQLite or PostgreSQL) with versioned migrations; ELT models (Jinja, ref graph, materializations) |
//! | 6 | [`engine`], [`lineage`] | batch and stream runners, checkpoints, `run_one`; column-level lineage of pipelines and models, the models' docs site |
//! | 7 | [`orchestrator`] | job runs and the step queue (leases), the step runner, the scheduler |
//! | 8 | [`server`] | the local socket, warehouse access for steps, the HTTP API and metrics |
//! | 9 | [`cli`] | one file per verb |

pub mod cli;
pub mod clients;
pub mod config;
pub mod core;
pub mod data;
pub mod destinations;
pub mod engine;
pub mod jobs;
pub mod lineage;
pub mod models;
pub mod orchestrator;
pub mod server;
pub mod sources;
pub mod state;
pub mod transforms;

pub use crate::core::error::{Error, Result};
