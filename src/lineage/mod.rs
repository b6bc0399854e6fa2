//! Column-level lineage: which upstream columns each column of the project
//! derives from, and how, across the load and the models.
//!
//! [`parse`] resolves one query's output columns (with [`scope`] and
//! [`expr`]); [`pipeline`] follows a pipeline's columns through its
//! `[[transform]]` steps; [`graph`] builds the project-wide column graph
//! from both; [`walk`] answers what is upstream and downstream of a
//! column; [`docs`] writes the models' documentation site with the
//! graph.

pub mod docs;
pub mod expr;
pub mod graph;
pub mod parse;
pub mod pipeline;
pub mod scope;
pub mod walk;

#[cfg(test)]
mod parse_tests;

pub use graph::{ColumnGraph, Edge, Inputs, Node, NodeKind, build};
pub use parse::{ColumnRef, Dialect, How, QueryLineage, lineage};
pub use walk::Direction;
