//! Arrow helpers shared by every connector: type names, schema inference,
//! schema evolution and converting text columns with row-level errors.

pub mod builders;
pub mod conform;
pub mod convert;
pub mod duckdb;
pub mod evolve;
pub mod infer;
pub mod json;
pub mod json_record;
pub mod numbers;
pub mod types;
