//! What models need to know of the warehouse before they run: its default
//! schema, whether a relation exists and is a table or a view, and a
//! table's columns. Asked in SQL both DuckDB and Postgres answer
//! (`information_schema`, `current_schema()`), through the [`Warehouse`]
//! the command reached, so it works the same when another flowline process
//! owns the warehouse.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, StringArray};
use arrow::datatypes::DataType;

use super::relation::{Relation, literal};
use crate::core::error::{Error, Result};
use crate::destinations::{QueryResult, Warehouse};

/// What a relation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelationKind {
    /// A table.
    Table,
    /// A view.
    View,
}

/// A column: its name and the warehouse's name of its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// Its type, as `information_schema` spells it.
    pub data_type: String,
}

/// The schema models are built in when their config names none.
pub fn default_schema(warehouse: &dyn Warehouse) -> Result<String> {
    let result = warehouse.query("SELECT CAST(current_schema() AS VARCHAR) AS s")?;
    strings(&result, 0)?
        .into_iter()
        .flatten()
        .next()
        .ok_or_else(|| Error::Other("the warehouse has no current schema".into()))
}

/// Whether `relation` exists, and as what.
pub fn kind(warehouse: &dyn Warehouse, relation: &Relation) -> Result<Option<RelationKind>> {
    let sql = format!(
        "SELECT CAST(table_type AS VARCHAR) AS t FROM information_schema.tables \
         WHERE table_catalog = current_database() AND table_schema = {} AND table_name = {}",
        literal(&relation.schema),
        literal(&relation.identifier)
    );
    let result = warehouse.query(&sql)?;
    Ok(strings(&result, 0)?.into_iter().flatten().next().map(|t| {
        if t.eq_ignore_ascii_case("VIEW") {
            RelationKind::View
        } else {
            RelationKind::Table
        }
    }))
}

/// What each relation in `schemas` is, asked at once: a run reads this
/// before it builds instead of asking model by model. A model's relation
/// is only changed by its own build, so the answer holds for the run.
pub fn kinds(
    warehouse: &dyn Warehouse,
    schemas: &BTreeSet<String>,
) -> Result<BTreeMap<Relation, RelationKind>> {
    if schemas.is_empty() {
        return Ok(BTreeMap::new());
    }
    let list: Vec<String> = schemas.iter().map(|s| literal(s)).collect();
    let sql = format!(
        "SELECT CAST(table_schema AS VARCHAR) AS s, CAST(table_name AS VARCHAR) AS n, \
         CAST(table_type AS VARCHAR) AS t FROM information_schema.tables \
         WHERE table_catalog = current_database() AND table_schema IN ({})",
        list.join(", ")
    );
    let result = warehouse.query(&sql)?;
    let (schemas, names, types) = (
        strings(&result, 0)?,
        strings(&result, 1)?,
        strings(&result, 2)?,
    );
    Ok(schemas
        .into_iter()
        .zip(names)
        .zip(types)
        .filter_map(|((schema, name), kind)| {
            let kind = if kind?.eq_ignore_ascii_case("VIEW") {
                RelationKind::View
            } else {
                RelationKind::Table
            };
            Some((Relation::new(schema?, name?), kind))
        })
        .collect())
}

/// The columns of `relation`, in order; empty when it does not exist.
pub fn columns(warehouse: &dyn Warehouse, relation: &Relation) -> Result<Vec<Column>> {
    let sql = format!(
        "SELECT CAST(column_name AS VARCHAR) AS c, CAST(data_type AS VARCHAR) AS t \
         FROM information_schema.columns \
         WHERE table_catalog = current_database() AND table_schema = {} AND table_name = {} \
         ORDER BY ordinal_position",
        literal(&relation.schema),
        literal(&relation.identifier)
    );
    let result = warehouse.query(&sql)?;
    let names = strings(&result, 0)?;
    let types = strings(&result, 1)?;
    Ok(names
        .into_iter()
        .zip(types)
        .filter_map(|(name, data_type)| {
            Some(Column {
                name: name?,
                data_type: data_type.unwrap_or_else(|| "VARCHAR".into()),
            })
        })
        .collect())
}

/// Column `index` of every row of `result`, as text.
pub fn strings(result: &QueryResult, index: usize) -> Result<Vec<Option<String>>> {
    let mut values = Vec::new();
    for batch in &result.batches {
        if index >= batch.num_columns() {
            return Err(Error::Other(format!(
                "the warehouse answered {} columns where {} were expected",
                batch.num_columns(),
                index + 1
            )));
        }
        let column = arrow::compute::cast(batch.column(index), &DataType::Utf8)
            .map_err(|e| Error::Other(format!("reading the warehouse's answer: {e}")))?;
        let Some(text) = column.as_any().downcast_ref::<StringArray>() else {
            return Err(Error::Other(
                "reading the warehouse's answer: not text".into(),
            ));
        };
        values
            .extend((0..text.len()).map(|i| (!text.is_null(i)).then(|| text.value(i).to_string())));
    }
    Ok(values)
}
