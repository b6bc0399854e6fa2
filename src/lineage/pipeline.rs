//! A pipeline's column lineage: from what its source reads, through its
//! `[[transform]]` steps, to its destination table's columns. A column
//! keeps its name through a step unless the step renames it or computes
//! it (`sql`); `filter` and the `WHERE` of a `sql` step decide rows.

use std::collections::BTreeSet;

use super::parse::{self, ColumnRef, Dialect, How};
use super::scope::{Edges, STAR, merge};
use crate::transforms::StepColumns;

/// The table a `sql` step reads.
const INPUT: &str = "input";

/// The columns of an in-flight step's input: unknown by name.
fn no_catalog(_: &str) -> Option<Vec<String>> {
    None
}

/// A pipeline's steps, read for lineage.
#[derive(Debug, Clone)]
pub struct Steps(pub Vec<StepColumns>);

impl Steps {
    /// The source's columns that destination column `column` comes
    /// from, and how.
    pub fn trace(&self, column: &str) -> Edges {
        trace(&self.0, column, How::Copied)
    }

    /// The source's columns that decide which rows are loaded.
    pub fn filters(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for (at, step) in self.0.iter().enumerate() {
            let query = match step {
                StepColumns::Filter(condition) => {
                    format!("select * from {INPUT} where {condition}")
                }
                StepColumns::Query(sql) => sql.clone(),
                _ => continue,
            };
            let Ok(lineage) = parse::lineage(&query, Dialect::DuckDb, &no_catalog) else {
                continue;
            };
            for filter in lineage.filters.iter().filter(|f| f.relation == INPUT) {
                found.extend(
                    trace(&self.0[..at], &filter.column, How::Copied)
                        .into_keys()
                        .map(|c| c.column),
                );
            }
        }
        found
    }

    /// The destination's columns, when the steps say them (a `sql` step
    /// that names its columns); `None` when they depend on the source.
    pub fn columns(&self) -> Option<Vec<String>> {
        let mut columns: Option<Vec<String>> = None;
        for step in &self.0 {
            match step {
                StepColumns::Query(sql) => {
                    columns = parse::lineage(sql, Dialect::DuckDb, &no_catalog)
                        .ok()
                        .map(|l| l.columns.into_iter().map(|c| c.name).collect::<Vec<_>>())
                        .filter(|names| !names.iter().any(|n| n == STAR));
                }
                StepColumns::Rename(map) => {
                    if let Some(list) = &mut columns {
                        for name in list.iter_mut() {
                            if let Some(new) = map.get(name.as_str()) {
                                *name = new.clone();
                            }
                        }
                    }
                }
                StepColumns::Drop(dropped) => {
                    if let Some(list) = &mut columns {
                        list.retain(|n| !dropped.contains(n));
                    }
                }
                StepColumns::Filter(_) | StepColumns::Change(_) => {}
                StepColumns::Program => columns = None,
            }
        }
        columns
    }
}

/// Where `column`, after `steps`, comes from before them (as columns of
/// the relation `""`), each reached at least as `how`.
fn trace(steps: &[StepColumns], column: &str, how: How) -> Edges {
    let Some((last, before)) = steps.split_last() else {
        return Edges::from([(ColumnRef::new("", column), how)]);
    };
    match last {
        StepColumns::Rename(map) => {
            let old = map
                .iter()
                .find(|(_, new)| new.eq_ignore_ascii_case(column))
                .map(|(old, _)| old.as_str())
                .unwrap_or(column);
            trace(before, old, how)
        }
        StepColumns::Program => trace(before, column, how.max(How::Transformed)),
        StepColumns::Change(changed) => {
            let how = if changed.iter().any(|c| c.eq_ignore_ascii_case(column)) {
                how.max(How::Transformed)
            } else {
                how
            };
            trace(before, column, how)
        }
        StepColumns::Drop(_) | StepColumns::Filter(_) => trace(before, column, how),
        StepColumns::Query(sql) => {
            let Ok(lineage) = parse::lineage(sql, Dialect::DuckDb, &no_catalog) else {
                return Edges::new();
            };
            let found = lineage
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(column))
                .or_else(|| lineage.columns.iter().find(|c| c.name == STAR));
            let mut edges = Edges::new();
            for (upstream, h) in found.map(|c| &c.from).into_iter().flatten() {
                if upstream.relation != INPUT {
                    continue;
                }
                let name = if upstream.column == STAR {
                    column
                } else {
                    &upstream.column
                };
                merge(&mut edges, &trace(before, name, how.max(*h)));
            }
            edges
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn traced(steps: &Steps, column: &str) -> Vec<String> {
        steps
            .trace(column)
            .iter()
            .map(|(c, h)| format!("{} {}", c.column, h.as_str()))
            .collect()
    }

    #[test]
    fn columns_keep_their_names_through_steps_that_do_not_compute_them() {
        let steps = Steps(vec![
            StepColumns::Rename(BTreeMap::from([("amount_cents".into(), "cents".into())])),
            StepColumns::Filter("status <> 'test'".into()),
            StepColumns::Query(
                "select id, cents / 100.0 as amount, * exclude (cents) from input".into(),
            ),
            StepColumns::Change(vec!["email".into()]),
        ]);
        assert_eq!(traced(&steps, "id"), ["id copied"]);
        assert_eq!(traced(&steps, "amount"), ["amount_cents transformed"]);
        assert_eq!(traced(&steps, "email"), ["email transformed"]);
        assert_eq!(traced(&steps, "status"), ["status copied"]);
        assert_eq!(steps.filters().into_iter().collect::<Vec<_>>(), ["status"]);
        assert_eq!(steps.columns(), None, "the star leaves them open");
        let named = Steps(vec![
            StepColumns::Query("select id, lower(email) as email from input".into()),
            StepColumns::Rename(BTreeMap::from([("email".into(), "mail".into())])),
        ]);
        assert_eq!(named.columns(), Some(vec!["id".into(), "mail".into()]));
    }

    #[test]
    fn a_program_step_may_change_every_column() {
        let steps = Steps(vec![
            StepColumns::Rename(BTreeMap::from([("amount_cents".into(), "cents".into())])),
            StepColumns::Program,
        ]);
        assert_eq!(traced(&steps, "cents"), ["amount_cents transformed"]);
        assert_eq!(traced(&steps, "id"), ["id transformed"]);
        let named = Steps(vec![
            StepColumns::Query("select id from input".into()),
            StepColumns::Program,
        ]);
        assert_eq!(named.columns(), None, "a program may add or remove columns");
    }
}
