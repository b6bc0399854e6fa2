//! Materializations: the statements that make a model's relation hold its
//! query's result, each run in one transaction so that a failure leaves
//! the previous version in place.
//!
//! - view: dropped and created again;
//! - table: built under a temporary name, then the old one dropped and the
//!   new one renamed into its place;
//! - incremental: on the first run (or `--full-refresh`) a table; later,
//!   the query's rows are staged in a table beside it, the schema change
//!   handled, and the rows appended, merged or deleted and inserted;
//! - snapshot: the query's rows recorded as versions ([`super::snapshot`]).
//!
//! The SQL is what DuckDB and Postgres both run.

use super::catalog::{self, Column, RelationKind};
use super::config::{Materialized, ModelConfig, OnSchemaChange, Strategy};
use super::relation::{Relation, quote};
use super::snapshot::{self, Snapshot};
use crate::core::error::{Error, Result};
use crate::destinations::Warehouse;

/// The suffix of the table a model's new version is built under.
const BUILD_SUFFIX: &str = "__flowline_tmp";

/// The suffix of the table an incremental run stages its rows in.
const STAGE_SUFFIX: &str = "__flowline_new";

/// One model to build.
pub struct Build<'a> {
    /// Its config.
    pub config: &'a ModelConfig,
    /// Where it goes.
    pub relation: &'a Relation,
    /// Its compiled query.
    pub sql: &'a str,
    /// What is there now.
    pub existing: Option<RelationKind>,
    /// Rebuild incremental models from scratch.
    pub full_refresh: bool,
}

impl Build<'_> {
    /// Whether this build adds to the existing table (`is_incremental()`).
    pub fn is_incremental(&self) -> bool {
        incremental_run(self.config, self.existing, self.full_refresh)
    }
}

/// Whether a model with `config` adds to what `existing` holds.
pub fn incremental_run(
    config: &ModelConfig,
    existing: Option<RelationKind>,
    full_refresh: bool,
) -> bool {
    config.materialized == Materialized::Incremental
        && existing == Some(RelationKind::Table)
        && !full_refresh
}

/// Builds the model, whose schema exists ([`create_schema`]); returns what
/// was done, in a few words.
pub fn build(warehouse: &dyn Warehouse, build: &Build<'_>) -> Result<String> {
    match build.config.materialized {
        Materialized::Ephemeral => Ok("ephemeral: inlined where it is used".into()),
        Materialized::View => {
            warehouse.execute(&view(build))?;
            Ok(format!("created view {}", build.relation))
        }
        Materialized::Table => {
            warehouse.execute(&table(build))?;
            Ok(format!("created table {}", build.relation))
        }
        Materialized::Incremental if !build.is_incremental() => {
            warehouse.execute(&table(build))?;
            Ok(format!("created table {}", build.relation))
        }
        Materialized::Incremental => incremental(warehouse, build),
        Materialized::Snapshot => {
            let config = build
                .config
                .snapshot
                .as_ref()
                .ok_or_else(|| Error::Other("a snapshot without its strategy config".into()))?;
            snapshot::build(
                warehouse,
                &Snapshot {
                    relation: build.relation,
                    sql: build.sql,
                    unique_key: &build.config.unique_key,
                    config,
                    existing: build.existing,
                },
            )
        }
    }
}

/// The statement that creates `relation`'s schema when it is missing. The
/// run creates every schema up front, in one transaction: DuckDB refuses
/// two transactions that create the same schema at once.
pub fn create_schema(relation: &Relation) -> String {
    format!("CREATE SCHEMA IF NOT EXISTS {}", relation.quoted_schema())
}

/// Drops what `existing` says is there. `IF EXISTS`: the run read the
/// catalog when it started, and a view may have gone since, dropped with
/// a table it reads (Postgres's `CASCADE`).
fn drop_existing(relation: &Relation, existing: Option<RelationKind>) -> Option<String> {
    match existing {
        Some(RelationKind::View) => Some(format!("DROP VIEW IF EXISTS {relation} CASCADE")),
        Some(RelationKind::Table) => Some(format!("DROP TABLE IF EXISTS {relation} CASCADE")),
        None => None,
    }
}

/// A view, replaced in one transaction.
fn view(build: &Build<'_>) -> Vec<String> {
    let mut statements: Vec<String> = drop_existing(build.relation, build.existing)
        .into_iter()
        .collect();
    statements.push(format!("CREATE VIEW {} AS\n{}", build.relation, build.sql));
    statements
}

/// A table built beside the old one and swapped in, in one transaction.
fn table(build: &Build<'_>) -> Vec<String> {
    let building = build.relation.beside(BUILD_SUFFIX);
    let mut statements = vec![
        format!("DROP TABLE IF EXISTS {building}"),
        format!("CREATE TABLE {building} AS\n{}", build.sql),
    ];
    statements.extend(drop_existing(build.relation, build.existing));
    statements.push(format!(
        "ALTER TABLE {building} RENAME TO {}",
        build.relation.quoted_identifier()
    ));
    statements
}

/// An incremental run: stage, reconcile the columns, add the rows.
fn incremental(warehouse: &dyn Warehouse, build: &Build<'_>) -> Result<String> {
    let stage = build.relation.beside(STAGE_SUFFIX);
    staged(warehouse, &stage, build.sql, |stage| {
        add_rows(warehouse, build, stage)
    })
}

/// Stores the result of `sql` in the table `stage`, then runs `apply`,
/// which reads it (and drops it in its own transaction when it succeeds).
/// When `apply` fails, the target is as it was and the stage is dropped.
pub fn staged(
    warehouse: &dyn Warehouse,
    stage: &Relation,
    sql: &str,
    apply: impl FnOnce(&Relation) -> Result<String>,
) -> Result<String> {
    warehouse.execute(&[
        format!("DROP TABLE IF EXISTS {stage}"),
        format!("CREATE TABLE {stage} AS\n{sql}"),
    ])?;
    let done = apply(stage);
    if done.is_err() {
        let _ = warehouse.execute(&[format!("DROP TABLE IF EXISTS {stage}")]);
    }
    done
}

fn add_rows(warehouse: &dyn Warehouse, build: &Build<'_>, stage: &Relation) -> Result<String> {
    let config = build.config;
    let target = build.relation;
    let new_columns = catalog::columns(warehouse, stage)?;
    let old_columns = catalog::columns(warehouse, target)?;
    let has = |list: &[Column], name: &str| list.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    let added: Vec<&Column> = new_columns
        .iter()
        .filter(|c| !has(&old_columns, &c.name))
        .collect();
    let removed: Vec<&Column> = old_columns
        .iter()
        .filter(|c| !has(&new_columns, &c.name))
        .collect();
    let mut statements = Vec::new();
    if !added.is_empty() || !removed.is_empty() {
        match config.on_schema_change {
            OnSchemaChange::Fail => {
                let names = |list: &[&Column]| {
                    list.iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                return Err(Error::Other(format!(
                    "the query's columns differ from {target}'s (new: {}; gone: {}) and \
                     on_schema_change is 'fail'; set on_schema_change = 'append_new_columns', \
                     or rebuild it with --full-refresh",
                    or_none(&names(&added)),
                    or_none(&names(&removed)),
                )));
            }
            OnSchemaChange::AppendNewColumns => {
                for column in &added {
                    statements.push(format!(
                        "ALTER TABLE {target} ADD COLUMN {} {}",
                        quote(&column.name),
                        column.data_type
                    ));
                }
            }
            OnSchemaChange::Ignore => {}
        }
    }
    let loaded: Vec<String> = new_columns
        .iter()
        .filter(|c| {
            has(&old_columns, &c.name)
                || config.on_schema_change == OnSchemaChange::AppendNewColumns
        })
        .map(|c| quote(&c.name))
        .collect();
    if loaded.is_empty() {
        return Err(Error::Other(format!(
            "the query has no column in common with {target}; rebuild it with --full-refresh"
        )));
    }
    for key in &config.unique_key {
        if !has(&new_columns, key) || !has(&old_columns, key) {
            return Err(Error::Other(format!(
                "unique_key column {key} is not in both the query and {target}"
            )));
        }
    }
    let list = loaded.join(", ");
    let matches = |a: &str, b: &str| {
        config
            .unique_key
            .iter()
            .map(|k| format!("{a}.{k} = {b}.{k}", k = quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let insert_all = format!("INSERT INTO {target} ({list}) SELECT {list} FROM {stage}");
    let done = match config.incremental_strategy {
        Strategy::Append => {
            statements.push(insert_all);
            "appended to"
        }
        Strategy::DeleteInsert => {
            statements.push(format!(
                "DELETE FROM {target} AS t WHERE EXISTS (SELECT 1 FROM {stage} AS s WHERE {})",
                matches("s", "t")
            ));
            statements.push(insert_all);
            "deleted and inserted into"
        }
        Strategy::Merge => {
            let keys: Vec<String> = config.unique_key.iter().map(|k| quote(k)).collect();
            let updates: Vec<String> = loaded
                .iter()
                .filter(|c| !keys.iter().any(|k| k.eq_ignore_ascii_case(c)))
                .map(|c| format!("{c} = s.{c}"))
                .collect();
            if !updates.is_empty() {
                statements.push(format!(
                    "UPDATE {target} AS t SET {} FROM {stage} AS s WHERE {}",
                    updates.join(", "),
                    matches("s", "t")
                ));
            }
            let selected: Vec<String> = loaded.iter().map(|c| format!("s.{c}")).collect();
            statements.push(format!(
                "INSERT INTO {target} ({list}) SELECT {} FROM {stage} AS s \
                 WHERE NOT EXISTS (SELECT 1 FROM {target} AS t WHERE {})",
                selected.join(", "),
                matches("t", "s")
            ));
            "merged into"
        }
    };
    statements.push(format!("DROP TABLE {stage}"));
    warehouse.execute(&statements)?;
    Ok(format!("{done} {target} ({})", config.incremental_strategy))
}

fn or_none(text: &str) -> &str {
    if text.is_empty() { "none" } else { text }
}
