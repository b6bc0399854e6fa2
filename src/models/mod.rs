//! ELT in the warehouse, dbt-style: SQL models (`models/**/*.sql`) with
//! Jinja, their ref graph, and their materializations (view, table,
//! incremental, ephemeral) on the project's warehouse, DuckDB or Postgres.
//! A dbt project layout (`dbt_project.yml`) is read as it is.
//!
//! The flow reads top to bottom: [`layout`] finds the files,
//! [`project`] parses every model once ([`jinja`]) into the ref
//! [`graph`], [`select`] picks models with dbt's syntax, and [`run`]
//! compiles ([`compile`]) and builds ([`materialize`]) them in order,
//! asking the warehouse what is there ([`catalog`]); [`datatest`] checks
//! the results; [`seed`] loads CSV files as tables; [`snapshot`] keeps
//! the versions of rows (SCD type 2).
//!
//! Models reach the warehouse through the [`Warehouse`] the command found
//! (its own, or the owning process's over the control socket), so they run
//! while `flowline serve` holds the DuckDB file.
//!
//! [`Warehouse`]: crate::destinations::Warehouse

pub mod catalog;
pub mod compile;
pub mod config;
pub mod datatest;
pub mod graph;
pub mod jinja;
pub mod layout;
pub mod materialize;
pub mod project;
pub mod properties;
pub mod relation;
pub mod run;
pub mod seed;
pub mod select;
pub mod snapshot;

pub use project::{Model, ModelProject, project_at};
pub use run::{ModelResult, RunOptions, Status};
pub use select::Selection;
