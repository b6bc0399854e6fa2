//! The project's column graph: every column of every model, source table
//! and pipeline source, and the edges between them, from the pipelines
//! (source -> destination table, through their transforms) and the models
//! (their compiled SQL).
//!
//! A node is a column (`raw.orders.amount`, `stg_orders.amount`) or, for
//! the filters of a model, the model as a whole (`stg_orders`): an edge
//! `raw.orders.status -> stg_orders` of kind `filtered` says the column
//! decides which rows the model has.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::parse::{self, ColumnRef, Dialect, How};
use super::pipeline::Steps;
use super::scope::STAR;
use crate::config::Project;
use crate::core::error::Result;
use crate::destinations::Warehouse;
use crate::models::compile::Compiler;
use crate::models::relation::Relation;
use crate::models::{ModelProject, catalog};

/// What a node belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A table in the warehouse that no model builds: a pipeline's
    /// destination, a `sources:` table, a seed.
    Source,
    /// What a pipeline reads: a database table or query, files, an API.
    Pipeline,
    /// A model.
    Model,
}

/// A column, or a whole model (for its filters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `relation.column`, or the model's name for the model as a whole.
    pub id: String,
    /// The model's name, the table (`raw.orders`), or what the pipeline
    /// reads (`shop:public.orders`, `data/orders.csv`).
    pub relation: String,
    /// The column; `None` for a model as a whole.
    pub column: Option<String>,
    /// What it belongs to.
    pub kind: NodeKind,
}

/// One column (or a whole model) derived from another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Edge {
    /// The upstream node's id.
    pub from: String,
    /// The downstream node's id.
    pub to: String,
    /// How.
    pub how: How,
    /// The pipeline that carries it, for edges into a pipeline's table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
}

/// The project's column graph.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ColumnGraph {
    /// Every node, by id.
    pub nodes: BTreeMap<String, Node>,
    /// Every edge.
    pub edges: BTreeSet<Edge>,
    /// Models whose SQL lineage could not read, and why.
    pub warnings: Vec<String>,
    /// Each model's relation in the warehouse (`main.stg_orders`), by name.
    #[serde(skip)]
    pub model_relations: BTreeMap<String, String>,
    /// Each model's output columns, in order, by name.
    #[serde(skip)]
    pub model_columns: BTreeMap<String, Vec<String>>,
}

/// What the graph is built from.
pub struct Inputs<'a> {
    /// The project (its pipelines).
    pub project: &'a Project,
    /// Its models.
    pub models: &'a ModelProject,
    /// The warehouse's default schema.
    pub default_schema: &'a str,
    /// The warehouse, to ask the columns of tables no model builds; `None`
    /// when it cannot be reached (their `*` then stays a star).
    pub warehouse: Option<&'a dyn Warehouse>,
}

/// Builds the project's column graph.
pub fn build(inputs: &Inputs<'_>) -> Result<ColumnGraph> {
    Builder::new(inputs).build()
}

struct Builder<'a> {
    inputs: &'a Inputs<'a>,
    dialect: Dialect,
    graph: ColumnGraph,
    /// Model name by its relation, lowercase.
    model_at: BTreeMap<String, String>,
    /// Each pipeline's destination (`schema.table`, lowercase), name and steps.
    pipelines: Vec<(String, String, Steps)>,
    /// Tables' columns asked of the warehouse.
    asked: RefCell<BTreeMap<String, Option<Vec<String>>>>,
}

impl<'a> Builder<'a> {
    fn new(inputs: &'a Inputs<'a>) -> Builder<'a> {
        let dialect = match inputs.project.settings.warehouse.kind() {
            "postgres" => Dialect::Postgres,
            "duckdb" => Dialect::DuckDb,
            _ => Dialect::Generic,
        };
        let mut graph = ColumnGraph::default();
        let mut model_at = BTreeMap::new();
        for model in &inputs.models.models {
            let relation = relation_text(&model.relation(inputs.default_schema));
            model_at.insert(relation.to_ascii_lowercase(), model.name.clone());
            graph.model_relations.insert(model.name.clone(), relation);
        }
        let pipelines = inputs
            .project
            .pipelines
            .iter()
            .filter(|p| p.config.destination.connection.is_none())
            .map(|p| {
                let table = p.config.destination.table.get_ref();
                let table = if table.contains('.') {
                    table.clone()
                } else {
                    format!("{}.{table}", inputs.default_schema)
                };
                let steps = p.config.transform.iter().map(|t| t.get_ref().columns());
                (
                    table.to_ascii_lowercase(),
                    p.name.clone(),
                    Steps(steps.collect()),
                )
            })
            .collect();
        Builder {
            inputs,
            dialect,
            graph,
            model_at,
            pipelines,
            asked: RefCell::new(BTreeMap::new()),
        }
    }

    fn build(mut self) -> Result<ColumnGraph> {
        let models = self.inputs.models;
        let compiler = Compiler::new(models, self.inputs.default_schema)?;
        for &i in &models.order {
            let model = &models.models[i];
            let sql = compiler.compile(i, false)?;
            let lineage = match parse::lineage(&sql, self.dialect, &|r: &str| self.columns_of(r)) {
                Ok(lineage) => lineage,
                Err(e) => {
                    self.graph
                        .warnings
                        .push(format!("{}: no column lineage: {e}", model.file.display()));
                    continue;
                }
            };
            self.add_model(&model.name, &lineage);
        }
        for at in 0..self.pipelines.len() {
            self.add_pipeline(at);
        }
        Ok(self.graph)
    }

    fn add_model(&mut self, name: &str, lineage: &parse::QueryLineage) {
        let mut names = Vec::new();
        for column in &lineage.columns {
            names.push(column.name.clone());
            let to = self.node(name, Some(&column.name), NodeKind::Model);
            for (upstream, how) in &column.from {
                let from = self.upstream(upstream);
                self.edge(from, to.clone(), *how, None);
            }
        }
        if !lineage.filters.is_empty() {
            let whole = self.node(name, None, NodeKind::Model);
            for upstream in &lineage.filters {
                let from = self.upstream(upstream);
                self.edge(from, whole.clone(), How::Filtered, None);
            }
        }
        self.graph.model_columns.insert(name.to_string(), names);
    }

    /// The edges from what pipeline `at` reads into its table.
    fn add_pipeline(&mut self, at: usize) {
        let (table, name, steps) = self.pipelines[at].clone();
        let pipeline = self
            .inputs
            .project
            .pipelines
            .iter()
            .find(|p| p.name == name);
        let Some(origin) = pipeline.and_then(|p| p.config.source.origin()) else {
            return;
        };
        // The table's columns: the warehouse's, the steps', and those
        // models read.
        let mut columns: BTreeSet<String> = self
            .columns_of(&table)
            .unwrap_or_default()
            .into_iter()
            .collect();
        columns.extend(
            self.graph
                .nodes
                .values()
                .filter(|n| n.kind == NodeKind::Source && n.relation.eq_ignore_ascii_case(&table))
                .filter_map(|n| n.column.clone()),
        );
        let query = origin.query.as_ref().and_then(|(sql, dialect)| {
            let dialect = match *dialect {
                "postgres" => Dialect::Postgres,
                "mysql" => Dialect::MySql,
                "sqlite" => Dialect::Sqlite,
                _ => Dialect::Generic,
            };
            parse::lineage(sql, dialect, &|_: &str| None).ok()
        });
        for column in &columns {
            let to = self.node(&table, Some(column), NodeKind::Source);
            for (read, how) in steps.trace(column) {
                for (origin_relation, origin_column, how) in
                    through_origin(&origin.name, query.as_ref(), &read.column, how)
                {
                    let from =
                        self.node(&origin_relation, Some(&origin_column), NodeKind::Pipeline);
                    self.edge(from, to.clone(), how, Some(&name));
                }
            }
        }
        let filters = steps.filters();
        let query_filters = query.as_ref().map(|q| &q.filters).into_iter().flatten();
        for read in query_filters {
            let whole = self.node(&table, None, NodeKind::Source);
            let relation = format!("{}:{}", origin.name, read.relation);
            let from = self.node(&relation, Some(&read.column), NodeKind::Pipeline);
            self.edge(from, whole, How::Filtered, Some(&name));
        }
        if !filters.is_empty() {
            let whole = self.node(&table, None, NodeKind::Source);
            for column in filters {
                for (origin_relation, origin_column, _) in
                    through_origin(&origin.name, query.as_ref(), &column, How::Copied)
                {
                    let from =
                        self.node(&origin_relation, Some(&origin_column), NodeKind::Pipeline);
                    self.edge(from, whole.clone(), How::Filtered, Some(&name));
                }
            }
        }
    }

    /// The columns of `relation` (as a query names it): a model's own,
    /// the warehouse's, or those a pipeline's steps give it.
    fn columns_of(&self, relation: &str) -> Option<Vec<String>> {
        let relation = self.qualified(relation);
        if let Some(model) = self.model_at.get(&relation) {
            return self.graph.model_columns.get(model).cloned();
        }
        if let Some(found) = self.asked.borrow().get(&relation) {
            return found.clone();
        }
        let mut found = self.inputs.warehouse.and_then(|warehouse| {
            let (schema, table) = relation.split_once('.')?;
            let columns = catalog::columns(warehouse, &Relation::new(schema, table)).ok()?;
            (!columns.is_empty()).then(|| columns.into_iter().map(|c| c.name).collect())
        });
        if found.is_none() {
            found = self
                .pipelines
                .iter()
                .find(|(table, ..)| *table == relation)
                .and_then(|(_, _, steps)| steps.columns());
        }
        self.asked.borrow_mut().insert(relation, found.clone());
        found
    }

    /// `relation` with the default schema when it names none, lowercase.
    fn qualified(&self, relation: &str) -> String {
        let relation = relation.to_ascii_lowercase();
        if relation.contains('.') {
            relation
        } else {
            format!("{}.{relation}", self.inputs.default_schema)
        }
    }

    /// The node of a column a model's SQL reads.
    fn upstream(&mut self, column: &ColumnRef) -> String {
        let relation = self.qualified(&column.relation);
        match self.model_at.get(&relation).cloned() {
            Some(model) => self.node(&model, Some(&column.column), NodeKind::Model),
            None => self.node(&relation, Some(&column.column), NodeKind::Source),
        }
    }

    fn node(&mut self, relation: &str, column: Option<&str>, kind: NodeKind) -> String {
        let id = match column {
            Some(column) => format!("{relation}.{column}"),
            None => relation.to_string(),
        };
        self.graph.nodes.entry(id.clone()).or_insert_with(|| Node {
            id: id.clone(),
            relation: relation.to_string(),
            column: column.map(str::to_string),
            kind,
        });
        id
    }

    fn edge(&mut self, from: String, to: String, how: How, pipeline: Option<&str>) {
        self.graph.edges.insert(Edge {
            from,
            to,
            how,
            pipeline: pipeline.map(str::to_string),
        });
    }
}

/// What pipeline source column `column` is, as (relation, column, how):
/// the origin's column, or, when the origin is a query, the columns of the
/// tables it reads.
fn through_origin(
    origin: &str,
    query: Option<&parse::QueryLineage>,
    column: &str,
    how: How,
) -> Vec<(String, String, How)> {
    let Some(query) = query else {
        return vec![(origin.to_string(), column.to_string(), how)];
    };
    let found = query
        .columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(column))
        .or_else(|| query.columns.iter().find(|c| c.name == STAR));
    found
        .map(|c| {
            c.from
                .iter()
                .map(|(upstream, h)| {
                    let name = if upstream.column == STAR {
                        column
                    } else {
                        &upstream.column
                    };
                    (
                        format!("{origin}:{}", upstream.relation),
                        name.to_string(),
                        how.max(*h),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// `schema.identifier`.
fn relation_text(relation: &Relation) -> String {
    format!("{}.{}", relation.schema, relation.identifier)
}
