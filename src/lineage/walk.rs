//! Questions asked of the column graph: which node a user means by
//! `relation.column`, and what lies upstream and downstream of it.

use std::collections::{BTreeMap, BTreeSet};

use super::graph::{ColumnGraph, Edge, Node};
use crate::core::error::{Error, Result};

/// Which way to walk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Towards the columns a node derives from.
    Upstream,
    /// Towards the columns derived from it.
    Downstream,
}

impl ColumnGraph {
    /// The node `name` means: a node's id (`raw.orders.amount`,
    /// `stg_orders.amount`), or a model's column by its relation
    /// (`main.stg_orders.amount`), or a table's column without its schema
    /// when only one table has that name. An error names the columns
    /// nearby.
    pub fn find(&self, name: &str) -> Result<&Node> {
        if let Some(node) = self
            .nodes
            .values()
            .find(|n| n.column.is_some() && n.id.eq_ignore_ascii_case(name))
        {
            return Ok(node);
        }
        let Some((relation, column)) = name.rsplit_once('.') else {
            return Err(Error::Config(format!(
                "{name:?} is not a column: write relation.column (raw.orders.amount, or a model's \
                 name and column: orders_summary.total)"
            )));
        };
        let candidates: Vec<&Node> = self
            .nodes
            .values()
            .filter(|n| {
                n.column
                    .as_deref()
                    .is_some_and(|c| c.eq_ignore_ascii_case(column))
            })
            .filter(|n| self.relation_answers(n, relation))
            .collect();
        if let [one] = candidates.as_slice() {
            return Ok(one);
        }
        if candidates.len() > 1 {
            let ids: Vec<&str> = candidates.iter().map(|n| n.id.as_str()).collect();
            return Err(Error::Config(format!(
                "{name} could be {}: name one",
                ids.join(" or ")
            )));
        }
        Err(Error::Config(self.not_found(name, relation)))
    }

    /// Whether `text` names `node`'s relation.
    fn relation_answers(&self, node: &Node, text: &str) -> bool {
        node.relation.eq_ignore_ascii_case(text)
            || self
                .model_relations
                .get(&node.relation)
                .is_some_and(|r| r.eq_ignore_ascii_case(text))
            || node
                .relation
                .rsplit_once('.')
                .is_some_and(|(_, table)| table.eq_ignore_ascii_case(text))
    }

    /// Why `name` is not a column, with what is near it.
    fn not_found(&self, name: &str, relation: &str) -> String {
        let columns: Vec<&str> = self
            .nodes
            .values()
            .filter(|n| self.relation_answers(n, relation))
            .filter_map(|n| n.column.as_deref())
            .collect();
        if !columns.is_empty() {
            return format!(
                "no column {name} in the lineage graph; {relation} has: {}",
                columns.join(", ")
            );
        }
        let relations: BTreeSet<&str> = self
            .nodes
            .values()
            .filter(|n| n.column.is_some())
            .map(|n| n.relation.as_str())
            .collect();
        let mut near: Vec<(f64, &str)> = relations
            .iter()
            .map(|r| (strsim::jaro_winkler(relation, r), *r))
            .filter(|(score, _)| *score > 0.7)
            .collect();
        near.sort_by(|a, b| b.0.total_cmp(&a.0));
        let listed: Vec<&str> = if near.is_empty() {
            relations.iter().copied().collect()
        } else {
            near.iter().take(5).map(|(_, r)| *r).collect()
        };
        if listed.is_empty() {
            return format!("no column {name}: the project has no models and no pipelines");
        }
        let label = if near.is_empty() {
            "there are"
        } else {
            "did you mean"
        };
        format!(
            "no relation {relation} in the lineage graph; {label}: {}",
            listed.join(", ")
        )
    }

    /// The edges reached from `start` walking `direction`, each with its
    /// depth (1: next to `start`). Walking upstream from a model's column
    /// also takes the columns that filter the model.
    pub fn walk(&self, start: &str, direction: Direction) -> Vec<(usize, Edge)> {
        let mut into: BTreeMap<&str, Vec<&Edge>> = BTreeMap::new();
        let mut out: BTreeMap<&str, Vec<&Edge>> = BTreeMap::new();
        for edge in &self.edges {
            into.entry(edge.to.as_str()).or_default().push(edge);
            out.entry(edge.from.as_str()).or_default().push(edge);
        }
        let mut seen: BTreeSet<&str> = BTreeSet::from([start]);
        let mut found = Vec::new();
        let mut taken: BTreeSet<&Edge> = BTreeSet::new();
        let mut frontier = vec![start];
        let mut depth = 1;
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for id in frontier {
                let edges: Vec<&Edge> = match direction {
                    Direction::Downstream => out.get(id).cloned().unwrap_or_default(),
                    Direction::Upstream => {
                        let mut edges = into.get(id).cloned().unwrap_or_default();
                        // The model as a whole: its filters.
                        if let Some(node) = self.nodes.get(id)
                            && node.column.is_some()
                            && let Some(whole) = into.get(node.relation.as_str())
                        {
                            edges.extend(whole.iter().copied());
                        }
                        edges
                    }
                };
                for edge in edges {
                    let other = match direction {
                        Direction::Upstream => edge.from.as_str(),
                        Direction::Downstream => edge.to.as_str(),
                    };
                    if taken.insert(edge) {
                        found.push((depth, edge.clone()));
                    }
                    if seen.insert(other) {
                        next.push(other);
                    }
                }
            }
            frontier = next;
            depth += 1;
        }
        found
    }

    /// The part of the graph `edges` touch, with `start`.
    pub fn subgraph(&self, start: &str, edges: &[Edge]) -> ColumnGraph {
        let mut ids: BTreeSet<&str> = BTreeSet::from([start]);
        for edge in edges {
            ids.insert(&edge.from);
            ids.insert(&edge.to);
        }
        ColumnGraph {
            nodes: self
                .nodes
                .iter()
                .filter(|(id, _)| ids.contains(id.as_str()))
                .map(|(id, n)| (id.clone(), n.clone()))
                .collect(),
            edges: edges.iter().cloned().collect(),
            warnings: self.warnings.clone(),
            model_relations: BTreeMap::new(),
            model_columns: BTreeMap::new(),
        }
    }
}
