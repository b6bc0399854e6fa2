//! Snapshots, dbt's slowly changing dimensions of type 2: a
//! `{% snapshot name %} select ... {% endsnapshot %}` block in
//! `snapshots/*.sql` whose rows are kept as versions. Each run compares
//! the query's rows with the current versions (by `unique_key`): a changed
//! row closes its current version (`dbt_valid_to`) and gets a new one; a
//! new key gets its first; with `hard_deletes = 'invalidate'`, a key gone
//! from the query has its current version closed.
//!
//! Two strategies tell a change: `timestamp` (the `updated_at` column grew)
//! and `check` (one of `check_cols`, or any column, differs). The table has
//! the query's columns and dbt's four: `dbt_scd_id`, `dbt_updated_at`,
//! `dbt_valid_from`, `dbt_valid_to` (null on the current version).
//!
//! A run is one transaction, so a failed run leaves the history as it was.

use std::path::Path;

use serde_json::Value;

use super::catalog::{self, Column, RelationKind};
use super::config::ConfigValues;
use super::materialize::staged;
use super::relation::{Relation, quote};
use crate::core::error::{Error, Result};
use crate::destinations::{QueryResult, Warehouse};

/// The suffix of the table a run stages the query's rows in.
const STAGE_SUFFIX: &str = "__flowline_snapshot";

/// The columns a snapshot adds to the query's.
pub const META_COLUMNS: [&str; 4] = [
    "dbt_scd_id",
    "dbt_updated_at",
    "dbt_valid_from",
    "dbt_valid_to",
];

/// The snapshot time of a `check` run: the transaction's start, the same
/// for every row, as a timestamp without time zone (dbt's).
const NOW: &str = "CAST(current_timestamp AS TIMESTAMP)";

/// One `{% snapshot name %}` block of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The snapshot's name.
    pub name: String,
    /// The block's body, after as many newlines as come before it in the
    /// file, so that errors give the file's line numbers.
    pub body: String,
}

/// The snapshot blocks of `text`, read from `file`.
pub fn blocks(file: &Path, text: &str) -> Result<Vec<Block>> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some((tag_start, tag_end, name)) = next_tag(text, from, "snapshot") {
        let name = name.ok_or_else(|| {
            Error::Config(format!(
                "{}:{}: {{% snapshot %}} needs a name: {{% snapshot orders_snapshot %}}",
                file.display(),
                line_at(text, tag_start)
            ))
        })?;
        let Some((end_start, end_end, _)) = next_tag(text, tag_end, "endsnapshot") else {
            return Err(Error::Config(format!(
                "{}:{}: {{% snapshot {name} %}} has no {{% endsnapshot %}}",
                file.display(),
                line_at(text, tag_start)
            )));
        };
        let before = text[..tag_end].matches('\n').count();
        found.push(Block {
            name,
            body: format!("{}{}", "\n".repeat(before), &text[tag_end..end_start]),
        });
        from = end_end;
    }
    Ok(found)
}

/// The next `{% word ... %}` tag at or after `from`: its start, its end,
/// and the name after the word, if any.
fn next_tag(text: &str, from: usize, word: &str) -> Option<(usize, usize, Option<String>)> {
    let mut at = from;
    while let Some(open) = text[at..].find("{%").map(|i| at + i) {
        let close = text[open..].find("%}").map(|i| open + i + 2)?;
        let inner = text[open + 2..close - 2]
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        let mut parts = inner.split_whitespace();
        if parts.next() == Some(word) {
            return Some((open, close, parts.next().map(str::to_string)));
        }
        at = close;
    }
    None
}

/// The 1-based line of byte `at` of `text`.
fn line_at(text: &str, at: usize) -> usize {
    text[..at].matches('\n').count() + 1
}

/// How a snapshot tells that a row changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    /// The row's `updated_at` column is later than its current version's.
    Timestamp {
        /// The column.
        updated_at: String,
    },
    /// One of these columns differs from the current version's; all of the
    /// query's columns when `None` (`check_cols = 'all'`).
    Check {
        /// The columns compared.
        columns: Option<Vec<String>>,
    },
}

/// A snapshot's config, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// How a change is told.
    pub strategy: Strategy,
    /// Close the current version of keys gone from the query.
    pub invalidate_hard_deletes: bool,
}

impl SnapshotConfig {
    /// Reads the snapshot configs of `values`; `unique_key` must be set.
    pub fn from_values(
        values: &ConfigValues,
        unique_key: &[String],
    ) -> std::result::Result<SnapshotConfig, String> {
        if unique_key.is_empty() {
            return Err("a snapshot needs unique_key = 'column' (or a list)".into());
        }
        let text = |name: &str| values.get(name).and_then(Value::as_str);
        let strategy = match text("strategy") {
            Some("timestamp") => Strategy::Timestamp {
                updated_at: text("updated_at")
                    .ok_or("strategy = 'timestamp' needs updated_at = 'column'")?
                    .to_string(),
            },
            Some("check") => Strategy::Check {
                columns: match values.get("check_cols") {
                    Some(Value::String(all)) if all == "all" => None,
                    Some(Value::String(one)) => Some(vec![one.clone()]),
                    Some(Value::Array(items)) if !items.is_empty() => Some(
                        items
                            .iter()
                            .map(|v| v.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                            .ok_or("check_cols: expected a list of column names")?,
                    ),
                    _ => {
                        return Err(
                            "strategy = 'check' needs check_cols = ['column', ...] or 'all'".into(),
                        );
                    }
                },
            },
            Some(other) => {
                return Err(format!(
                    "config strategy = '{other}': expected 'timestamp' or 'check'"
                ));
            }
            None => {
                return Err(
                    "a snapshot needs strategy = 'timestamp' (with updated_at) or 'check' \
                     (with check_cols)"
                        .into(),
                );
            }
        };
        let invalidate_hard_deletes =
            match (text("hard_deletes"), values.get("invalidate_hard_deletes")) {
                (Some("invalidate"), _) => true,
                (Some("ignore"), _) => false,
                (Some(other), _) => {
                    return Err(format!(
                        "config hard_deletes = '{other}': expected 'ignore' or 'invalidate'"
                    ));
                }
                (None, Some(Value::Bool(b))) => *b,
                (None, None | Some(Value::Null)) => false,
                (None, Some(other)) => {
                    return Err(format!(
                        "config invalidate_hard_deletes: expected true or false, got {other}"
                    ));
                }
            };
        Ok(SnapshotConfig {
            strategy,
            invalidate_hard_deletes,
        })
    }
}

/// One snapshot run.
pub struct Snapshot<'a> {
    /// The table holding the versions.
    pub relation: &'a Relation,
    /// The compiled query.
    pub sql: &'a str,
    /// The columns that identify a row.
    pub unique_key: &'a [String],
    /// How changes are told.
    pub config: &'a SnapshotConfig,
    /// What is there now.
    pub existing: Option<RelationKind>,
}

/// Runs a snapshot, whose schema exists; returns what was done.
pub fn build(warehouse: &dyn Warehouse, snapshot: &Snapshot<'_>) -> Result<String> {
    if snapshot.existing == Some(RelationKind::View) {
        return Err(Error::Other(format!(
            "{} is a view; a snapshot keeps its versions in a table: drop the view first",
            snapshot.relation
        )));
    }
    let stage = snapshot.relation.beside(STAGE_SUFFIX);
    staged(warehouse, &stage, snapshot.sql, |stage| {
        record(warehouse, snapshot, stage)
    })
}

/// Checks the staged rows and records their versions, in one transaction.
fn record(warehouse: &dyn Warehouse, snapshot: &Snapshot<'_>, stage: &Relation) -> Result<String> {
    let target = snapshot.relation;
    let columns = catalog::columns(warehouse, stage)?;
    check_columns(snapshot, &columns)?;
    check_unique(warehouse, snapshot, stage)?;
    let names: Vec<String> = columns.iter().map(|c| quote(&c.name)).collect();
    let from = match &snapshot.config.strategy {
        Strategy::Timestamp { updated_at } => format!("s.{}", quote(updated_at)),
        Strategy::Check { .. } => NOW.to_string(),
    };
    let mut key_parts: Vec<String> = snapshot
        .unique_key
        .iter()
        .map(|k| format!("CAST(s.{} AS VARCHAR)", quote(k)))
        .collect();
    key_parts.push(format!("CAST({from} AS VARCHAR)"));
    let versions = format!(
        "SELECT {}, md5(concat_ws('|', {})) AS dbt_scd_id, {from} AS dbt_updated_at, \
         {from} AS dbt_valid_from, NULLIF({from}, {from}) AS dbt_valid_to FROM {stage} AS s",
        names
            .iter()
            .map(|n| format!("s.{n}"))
            .collect::<Vec<_>>()
            .join(", "),
        key_parts.join(", "),
    );
    if snapshot.existing.is_none() {
        warehouse.execute(&[
            format!("CREATE TABLE {target} AS\n{versions}"),
            format!("DROP TABLE {stage}"),
        ])?;
        return Ok(format!("created snapshot {target}"));
    }

    let existing = catalog::columns(warehouse, target)?;
    let has = |list: &[Column], name: &str| list.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    if let Some(missing) = META_COLUMNS.iter().find(|m| !has(&existing, m)) {
        return Err(Error::Other(format!(
            "{target} exists but is not a snapshot (it has no {missing} column); \
             give the snapshot another name or drop the table"
        )));
    }
    let same_key = |a: &str, b: &str| {
        snapshot
            .unique_key
            .iter()
            .map(|k| format!("{a}.{k} = {b}.{k}", k = quote(k)))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let changed = match &snapshot.config.strategy {
        Strategy::Timestamp { updated_at } => {
            format!("t.dbt_updated_at < s.{}", quote(updated_at))
        }
        Strategy::Check { columns: checked } => {
            let compared: Vec<String> = match checked {
                Some(list) => list.iter().map(|c| quote(c)).collect(),
                None => names.clone(),
            };
            format!(
                "({})",
                compared
                    .iter()
                    .map(|c| format!("t.{c} IS DISTINCT FROM s.{c}"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            )
        }
    };
    let current_of = |s: &str| {
        format!(
            "SELECT 1 FROM {target} AS t WHERE {} AND t.dbt_valid_to IS NULL",
            same_key("t", s)
        )
    };
    let counts = warehouse.query(&format!(
        "SELECT \
         (SELECT count(*) FROM {stage} AS s WHERE NOT EXISTS ({})) AS new_rows, \
         (SELECT count(*) FROM {stage} AS s JOIN {target} AS t ON {} \
          WHERE t.dbt_valid_to IS NULL AND {changed}) AS changed_rows, \
         (SELECT count(*) FROM {target} AS t WHERE t.dbt_valid_to IS NULL \
          AND NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE {})) AS gone_rows",
        current_of("s"),
        same_key("t", "s"),
        same_key("s", "t"),
    ))?;
    let (new, updated, gone) = (count(&counts, 0)?, count(&counts, 1)?, count(&counts, 2)?);

    let mut statements = Vec::new();
    for column in columns.iter().filter(|c| !has(&existing, &c.name)) {
        statements.push(format!(
            "ALTER TABLE {target} ADD COLUMN {} {}",
            quote(&column.name),
            column.data_type
        ));
    }
    statements.push(format!(
        "UPDATE {target} AS t SET dbt_valid_to = {from} FROM {stage} AS s \
         WHERE {} AND t.dbt_valid_to IS NULL AND {changed}",
        same_key("s", "t")
    ));
    if snapshot.config.invalidate_hard_deletes {
        statements.push(format!(
            "UPDATE {target} AS t SET dbt_valid_to = {NOW} WHERE t.dbt_valid_to IS NULL \
             AND NOT EXISTS (SELECT 1 FROM {stage} AS s WHERE {})",
            same_key("s", "t")
        ));
    }
    let mut inserted: Vec<String> = names.clone();
    inserted.extend(META_COLUMNS.iter().map(|m| m.to_string()));
    statements.push(format!(
        "INSERT INTO {target} ({}) SELECT * FROM ({versions} WHERE NOT EXISTS ({})) AS v",
        inserted.join(", "),
        current_of("s")
    ));
    statements.push(format!("DROP TABLE {stage}"));
    warehouse.execute(&statements)?;
    let mut done = format!("snapshot {target}: {new} new, {updated} changed");
    if snapshot.config.invalidate_hard_deletes {
        done.push_str(&format!(", {gone} deleted"));
    }
    Ok(done)
}

/// The query must hold the key and the strategy's columns, and none of
/// the snapshot's own.
fn check_columns(snapshot: &Snapshot<'_>, columns: &[Column]) -> Result<()> {
    let has = |name: &str| columns.iter().any(|c| c.name.eq_ignore_ascii_case(name));
    if let Some(own) = columns
        .iter()
        .find(|c| META_COLUMNS.iter().any(|m| c.name.eq_ignore_ascii_case(m)))
    {
        return Err(Error::Other(format!(
            "the snapshot's query has a column {}, which the snapshot adds itself; leave it out",
            own.name
        )));
    }
    let mut needed: Vec<(&str, &str)> = snapshot
        .unique_key
        .iter()
        .map(|k| ("unique_key", k.as_str()))
        .collect();
    match &snapshot.config.strategy {
        Strategy::Timestamp { updated_at } => needed.push(("updated_at", updated_at)),
        Strategy::Check {
            columns: Some(list),
        } => needed.extend(list.iter().map(|c| ("check_cols", c.as_str()))),
        Strategy::Check { columns: None } => {}
    }
    if let Some((config, column)) = needed.iter().find(|(_, c)| !has(c)) {
        let present: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        return Err(Error::Other(format!(
            "{config} column {column} is not in the snapshot's query (it has: {})",
            present.join(", ")
        )));
    }
    Ok(())
}

/// A key that comes twice would give two current versions.
fn check_unique(
    warehouse: &dyn Warehouse,
    snapshot: &Snapshot<'_>,
    stage: &Relation,
) -> Result<()> {
    let keys: Vec<String> = snapshot.unique_key.iter().map(|k| quote(k)).collect();
    let keys = keys.join(", ");
    let result = warehouse.query(&format!(
        "SELECT count(*) FROM (SELECT {keys} FROM {stage} GROUP BY {keys} HAVING count(*) > 1) AS d"
    ))?;
    let twice = count(&result, 0)?;
    if twice > 0 {
        return Err(Error::Other(format!(
            "unique_key ({keys}) is not unique in the snapshot's query: {twice} key(s) come \
             more than once"
        )));
    }
    Ok(())
}

/// The number in column `index` of the first row of `result`.
fn count(result: &QueryResult, index: usize) -> Result<u64> {
    Ok(catalog::strings(result, index)?
        .into_iter()
        .flatten()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_keep_their_names_and_line_numbers() {
        let text = "-- history of orders\n{% snapshot orders_snapshot %}\n{{ config(strategy='check') }}\nselect 1\n{% endsnapshot %}\n\n{%- snapshot b -%}select 2{%- endsnapshot -%}\n";
        let found = blocks(Path::new("snapshots/orders.sql"), text).expect("parses");
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "orders_snapshot");
        assert_eq!(
            found[0].body.lines().nth(2),
            Some("{{ config(strategy='check') }}")
        );
        assert_eq!(found[1].name, "b");
        assert!(found[1].body.ends_with("select 2"));
    }

    #[test]
    fn a_block_without_its_end_names_the_line() {
        let e = blocks(Path::new("s.sql"), "\n{% snapshot x %}\nselect 1\n").expect_err("open");
        assert!(e.to_string().contains("s.sql:2"), "{e}");
        assert!(e.to_string().contains("endsnapshot"), "{e}");
    }

    fn config(pairs: &[(&str, Value)]) -> std::result::Result<SnapshotConfig, String> {
        let mut values = ConfigValues::default();
        for (k, v) in pairs {
            values.set(k, v.clone());
        }
        SnapshotConfig::from_values(&values, &["id".to_string()])
    }

    #[test]
    fn strategies_and_hard_deletes_are_read_as_dbt_writes_them() {
        let c = config(&[
            ("strategy", "timestamp".into()),
            ("updated_at", "updated_at".into()),
            ("invalidate_hard_deletes", true.into()),
        ])
        .expect("valid");
        assert_eq!(
            c.strategy,
            Strategy::Timestamp {
                updated_at: "updated_at".into()
            }
        );
        assert!(c.invalidate_hard_deletes);
        let c = config(&[
            ("strategy", "check".into()),
            ("check_cols", "all".into()),
            ("hard_deletes", "ignore".into()),
        ])
        .expect("valid");
        assert_eq!(c.strategy, Strategy::Check { columns: None });
        assert!(!c.invalidate_hard_deletes);
    }

    #[test]
    fn missing_settings_say_what_to_write() {
        let e = config(&[("strategy", "timestamp".into())]).expect_err("no updated_at");
        assert!(e.contains("updated_at"), "{e}");
        let e = config(&[("strategy", "check".into())]).expect_err("no check_cols");
        assert!(e.contains("check_cols"), "{e}");
        let e = config(&[]).expect_err("no strategy");
        assert!(e.contains("strategy"), "{e}");
        let mut values = ConfigValues::default();
        values.set("strategy", "check".into());
        values.set("check_cols", "all".into());
        let e = SnapshotConfig::from_values(&values, &[]).expect_err("no key");
        assert!(e.contains("unique_key"), "{e}");
    }
}
