//! `flowline lineage RELATION.COLUMN`: the columns a column derives from
//! and those derived from it, across pipelines and models, as a tree or
//! (`--json`) as the graph. Works in a flowline project and in a dbt
//! project folder; the warehouse is asked the columns of source tables
//! when it can be opened, and is not needed otherwise. Also `flowline
//! models docs`, which writes the models' documentation site with the
//! same graph.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::config::Project;
use crate::core::error::Result;
use crate::destinations::Warehouse;
use crate::lineage::{self, ColumnGraph, Direction, Edge, Inputs};
use crate::models::{ModelProject, catalog, project_at};
use crate::server::client::open_warehouse;

/// Arguments of `flowline lineage`.
#[derive(Debug, Clone, clap::Args)]
pub struct LineageArgs {
    /// The column: `raw.orders.amount` (a table's), `orders_summary.total`
    /// (a model's, by its name), or what a pipeline reads
    /// (`data/orders.csv.amount`).
    pub column: String,
    /// Show only the columns it derives from.
    #[arg(long, conflicts_with = "downstream")]
    pub upstream: bool,
    /// Show only the columns derived from it.
    #[arg(long)]
    pub downstream: bool,
}

/// A project with its models and column graph.
struct Loaded {
    project: Project,
    models: ModelProject,
    /// The warehouse's default schema (`main`, `public`).
    default_schema: String,
    graph: ColumnGraph,
}

/// Loads the project in `dir` and builds its column graph, asking the
/// warehouse for the columns of source tables when it can be opened.
fn load(dir: &Path) -> Result<Loaded> {
    let project = project_at(dir)?;
    let models = ModelProject::load(&project)?;
    let warehouse: Option<Box<dyn Warehouse>> = match open_warehouse(&project) {
        Ok(warehouse) => Some(warehouse),
        Err(e) => {
            tracing::info!("lineage without the warehouse ({e}): source tables' * stay stars");
            None
        }
    };
    let default_schema = warehouse
        .as_deref()
        .and_then(|w| catalog::default_schema(w).ok())
        .unwrap_or_else(|| match project.settings.warehouse.kind() {
            "postgres" => "public".to_string(),
            _ => "main".to_string(),
        });
    let graph = lineage::build(&Inputs {
        project: &project,
        models: &models,
        default_schema: &default_schema,
        warehouse: warehouse.as_deref(),
    })?;
    Ok(Loaded {
        project,
        models,
        default_schema,
        graph,
    })
}

/// Runs `flowline lineage`.
pub fn execute(project_dir: &Path, json: bool, args: LineageArgs) -> Result<ExitCode> {
    let loaded = load(project_dir)?;
    let graph = &loaded.graph;
    let node = graph.find(&args.column)?;
    let up = !args.downstream;
    let down = !args.upstream;
    let upstream = if up {
        graph.walk(&node.id, Direction::Upstream)
    } else {
        Vec::new()
    };
    let downstream = if down {
        graph.walk(&node.id, Direction::Downstream)
    } else {
        Vec::new()
    };
    if json {
        let edges: Vec<Edge> = upstream
            .iter()
            .chain(&downstream)
            .map(|(_, e)| e.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let part = graph.subgraph(&node.id, &edges);
        let report = json!({
            "column": node.id,
            "nodes": part.nodes.values().collect::<Vec<_>>(),
            "edges": part.edges,
            "warnings": graph.warnings,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    for warning in &graph.warnings {
        eprintln!("warning: {warning}");
    }
    println!("{} ({})", node.id, kind_name(graph, &node.id));
    for (wanted, direction, edges, title) in [
        (up, Direction::Upstream, &upstream, "upstream"),
        (down, Direction::Downstream, &downstream, "downstream"),
    ] {
        if !wanted {
            continue;
        }
        let edges: Vec<&Edge> = edges.iter().map(|(_, e)| e).collect();
        if edges.is_empty() {
            println!("{title}: none");
            continue;
        }
        println!("{title}:");
        let mut shown = BTreeSet::new();
        print_tree(graph, &edges, &node.id, direction, 1, &mut shown);
    }
    Ok(ExitCode::SUCCESS)
}

/// `source`, `pipeline`, `model`, or `model, as a whole`.
fn kind_name(graph: &ColumnGraph, id: &str) -> String {
    let Some(node) = graph.nodes.get(id) else {
        return String::new();
    };
    let kind = serde_json::to_value(node.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    if node.column.is_none() {
        format!("{kind}, as a whole")
    } else {
        kind
    }
}

/// Prints the edges next to `id`, then theirs, indented; a node already
/// shown is named again without its own branches.
fn print_tree<'e>(
    graph: &ColumnGraph,
    edges: &[&'e Edge],
    id: &str,
    direction: Direction,
    depth: usize,
    shown: &mut BTreeSet<&'e str>,
) {
    let relation = graph.nodes.get(id).map(|n| n.relation.as_str());
    let next: Vec<&'e Edge> = edges
        .iter()
        .copied()
        .filter(|e| match direction {
            Direction::Downstream => e.from == id,
            Direction::Upstream => {
                e.to == id
                    || (graph.nodes.get(id).is_some_and(|n| n.column.is_some())
                        && Some(e.to.as_str()) == relation)
            }
        })
        .collect();
    for edge in next {
        let (other, arrow) = match direction {
            Direction::Upstream => (edge.from.as_str(), "<-"),
            Direction::Downstream => (edge.to.as_str(), "->"),
        };
        let via = edge
            .pipeline
            .as_deref()
            .map(|p| format!(", pipeline {p}"))
            .unwrap_or_default();
        let whole = if direction == Direction::Upstream && edge.to != id {
            format!(" (filters {})", edge.to)
        } else {
            String::new()
        };
        let again = shown.contains(other);
        println!(
            "{}{arrow} {other} ({}) {}{via}{whole}{}",
            "  ".repeat(depth),
            kind_name(graph, other),
            edge.how.as_str(),
            if again { " (see above)" } else { "" }
        );
        if !again {
            shown.insert(other);
            print_tree(graph, edges, other, direction, depth + 1, shown);
        }
    }
}

/// Arguments of `flowline models docs`.
#[derive(Debug, Clone, clap::Args)]
pub struct DocsArgs {
    /// The folder to write `index.html` and `catalog.json` to. Default:
    /// `.flowline/docs` in the project.
    #[arg(long)]
    pub out: Option<std::path::PathBuf>,
}

/// Runs `flowline models docs`: writes the models' documentation site.
pub fn docs(project_dir: &Path, json: bool, args: DocsArgs) -> Result<ExitCode> {
    let loaded = load(project_dir)?;
    for warning in &loaded.graph.warnings {
        eprintln!("warning: {warning}");
    }
    let catalog = lineage::docs::catalog(
        &loaded.models.layout.name,
        &loaded.models,
        &loaded.graph,
        &loaded.default_schema,
    )?;
    let out = args
        .out
        .unwrap_or_else(|| loaded.project.dir.join(".flowline/docs"));
    let written = lineage::docs::write(&catalog, &out)?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&written).unwrap_or_default()
        );
    } else {
        println!(
            "wrote {} and {}: {} models, {} column edges",
            written.index.display(),
            written.catalog.display(),
            catalog.models.len(),
            catalog.lineage.edges.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
