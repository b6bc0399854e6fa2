//! The models' documentation site: `index.html`, one self-contained page
//! (no external assets; a small inline script filters the models), and
//! `catalog.json` with the same content: each model's description,
//! materialization, columns with their descriptions, tests and upstream
//! columns, compiled SQL and filters; the source tables; the column graph.
//! Everything taken from the user's files is HTML-escaped.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::graph::{ColumnGraph, Edge, Node, NodeKind};
use super::parse::How;
use crate::core::error::{Error, Result};
use crate::models::ModelProject;
use crate::models::compile::Compiler;
use crate::models::datatest::DataTest;
use crate::models::properties;

/// The site's content, as `catalog.json` holds it.
#[derive(Debug, Clone, Serialize)]
pub struct Catalog {
    /// The project's name.
    pub project: String,
    /// The models, in build order.
    pub models: Vec<ModelDoc>,
    /// The source tables models read.
    pub sources: Vec<SourceDoc>,
    /// The column graph.
    pub lineage: Lineage,
}

/// The column graph, as the UI reads it.
#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    /// Every node.
    pub nodes: Vec<Node>,
    /// Every edge.
    pub edges: Vec<Edge>,
    /// Models whose SQL lineage could not read.
    pub warnings: Vec<String>,
}

/// One model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelDoc {
    /// Its name.
    pub name: String,
    /// Its file.
    pub file: String,
    /// Its description (properties file).
    pub description: Option<String>,
    /// `view`, `table`, `incremental` or `ephemeral`.
    pub materialized: String,
    /// Where it is built (`main.orders`).
    pub relation: String,
    /// Its tags.
    pub tags: Vec<String>,
    /// The models and seeds it reads.
    pub refs: Vec<String>,
    /// The sources it reads (`raw.orders`).
    pub sources: Vec<String>,
    /// Its columns: those its SQL gives, then those only its properties name.
    pub columns: Vec<ColumnDoc>,
    /// The columns that decide which rows it has.
    pub filtered_by: Vec<String>,
    /// Its tests that are not on one column (singular tests).
    pub tests: Vec<String>,
    /// Its SQL as it runs (a first run, for incremental models).
    pub compiled_sql: String,
}

/// One column of a model or source.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnDoc {
    /// Its name.
    pub name: String,
    /// Its description.
    pub description: Option<String>,
    /// The names of its data tests.
    pub tests: Vec<String>,
    /// The columns it derives from, and how.
    pub upstream: Vec<Upstream>,
}

/// A column a column derives from.
#[derive(Debug, Clone, Serialize)]
pub struct Upstream {
    /// The upstream node's id.
    pub from: String,
    /// How.
    pub how: How,
}

/// A source table.
#[derive(Debug, Clone, Serialize)]
pub struct SourceDoc {
    /// `source('name', ...)`.
    pub source: String,
    /// `source(..., 'table')`.
    pub table: String,
    /// Where it is (`raw.orders`).
    pub relation: String,
    /// Its description (`sources:` block).
    pub description: Option<String>,
    /// Its columns known to lineage.
    pub columns: Vec<ColumnDoc>,
}

/// What [`write`] wrote.
#[derive(Debug, Clone, Serialize)]
pub struct Written {
    /// `index.html`.
    pub index: PathBuf,
    /// `catalog.json`.
    pub catalog: PathBuf,
}

/// Gathers the site's content.
pub fn catalog(
    name: &str,
    models: &ModelProject,
    graph: &ColumnGraph,
    default_schema: &str,
) -> Result<Catalog> {
    let files = properties::load(&models.layout)?;
    let compiler = Compiler::new(models, default_schema)?;
    let mut docs = Vec::new();
    for &i in &models.order {
        let model = &models.models[i];
        let props = files
            .iter()
            .flat_map(|(_, f)| &f.models)
            .find(|m| m.name == model.name);
        let described: BTreeMap<String, Option<String>> = props
            .map(|p| {
                p.columns
                    .iter()
                    .map(|c| (c.name.to_ascii_lowercase(), c.description.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut names: Vec<String> = graph
            .model_columns
            .get(&model.name)
            .cloned()
            .unwrap_or_default();
        for column in props.iter().flat_map(|p| &p.columns) {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(&column.name)) {
                names.push(column.name.clone());
            }
        }
        let tests: Vec<&DataTest> = models
            .tests
            .iter()
            .filter(|t| t.depends_on.contains(&model.name))
            .collect();
        let columns = names
            .iter()
            .map(|column| ColumnDoc {
                name: column.clone(),
                description: described
                    .get(&column.to_ascii_lowercase())
                    .cloned()
                    .flatten(),
                tests: tests
                    .iter()
                    .filter(|t| {
                        t.model.as_deref() == Some(model.name.as_str())
                            && t.column
                                .as_deref()
                                .is_some_and(|c| c.eq_ignore_ascii_case(column))
                    })
                    .map(|t| t.name.clone())
                    .collect(),
                upstream: upstream(graph, &format!("{}.{column}", model.name)),
            })
            .collect();
        let relation = model.relation(default_schema);
        docs.push(ModelDoc {
            name: model.name.clone(),
            file: model.file.display().to_string(),
            description: props.and_then(|p| p.description.clone()),
            materialized: model.config.materialized.to_string(),
            relation: format!("{}.{}", relation.schema, relation.identifier),
            tags: model.config.tags.clone(),
            refs: model.refs.clone(),
            sources: model
                .sources
                .iter()
                .map(|(s, t)| format!("{s}.{t}"))
                .collect(),
            columns,
            filtered_by: graph
                .edges
                .iter()
                .filter(|e| e.to == model.name && e.how == How::Filtered)
                .map(|e| e.from.clone())
                .collect(),
            tests: tests
                .iter()
                .filter(|t| t.column.is_none())
                .map(|t| t.name.clone())
                .collect(),
            compiled_sql: compiler.compile(i, false)?,
        });
    }
    let mut sources = Vec::new();
    for ((source, table), found) in &models.sources {
        let schema = found.schema.as_deref().unwrap_or(default_schema);
        let relation = format!("{schema}.{}", found.identifier);
        let description = files
            .iter()
            .flat_map(|(_, f)| &f.sources)
            .filter(|b| b.name == *source)
            .flat_map(|b| &b.tables)
            .find(|t| t.name == *table)
            .and_then(|t| t.description.clone());
        let columns = graph
            .nodes
            .values()
            .filter(|n| n.kind == NodeKind::Source && n.relation.eq_ignore_ascii_case(&relation))
            .filter_map(|n| {
                Some(ColumnDoc {
                    name: n.column.clone()?,
                    description: None,
                    tests: Vec::new(),
                    upstream: upstream(graph, &n.id),
                })
            })
            .collect();
        sources.push(SourceDoc {
            source: source.clone(),
            table: table.clone(),
            relation,
            description,
            columns,
        });
    }
    Ok(Catalog {
        project: name.to_string(),
        models: docs,
        sources,
        lineage: Lineage {
            nodes: graph.nodes.values().cloned().collect(),
            edges: graph.edges.iter().cloned().collect(),
            warnings: graph.warnings.clone(),
        },
    })
}

/// The edges into node `id`.
fn upstream(graph: &ColumnGraph, id: &str) -> Vec<Upstream> {
    graph
        .edges
        .iter()
        .filter(|e| e.to == id)
        .map(|e| Upstream {
            from: e.from.clone(),
            how: e.how,
        })
        .collect()
}

/// Writes `index.html` and `catalog.json` of `catalog` into `out`.
pub fn write(catalog: &Catalog, out: &Path) -> Result<Written> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let json = serde_json::to_string_pretty(catalog)
        .map_err(|e| Error::Other(format!("writing catalog.json: {e}")))?;
    let written = Written {
        index: out.join("index.html"),
        catalog: out.join("catalog.json"),
    };
    std::fs::write(&written.catalog, json + "\n").map_err(|e| Error::io(&written.catalog, e))?;
    std::fs::write(&written.index, html(catalog)).map_err(|e| Error::io(&written.index, e))?;
    Ok(written)
}

/// `text` safe inside HTML text and quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;display:flex;color:#222}\
nav{width:16rem;padding:1rem;border-right:1px solid #ddd;height:100vh;overflow:auto;position:sticky;top:0}\
nav input{width:100%;box-sizing:border-box;margin-bottom:.5rem}nav a{display:block;text-decoration:none;color:#0b5394;padding:.1rem 0}\
main{padding:1rem 2rem;flex:1;min-width:0}section{border-bottom:1px solid #eee;padding-bottom:1rem}\
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}\
pre{background:#f6f6f6;padding:.5rem;overflow:auto}.how{color:#777;font-size:.85em}.meta{color:#555}";

const SCRIPT: &str = "document.getElementById('filter').addEventListener('input',function(e){\
var q=e.target.value.toLowerCase();document.querySelectorAll('[data-name]').forEach(function(el){\
el.style.display=el.getAttribute('data-name').indexOf(q)<0?'none':'';});});";

/// The page.
fn html(catalog: &Catalog) -> String {
    let mut page = String::new();
    let title = escape(&catalog.project);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title} models</title><style>{STYLE}</style></head><body>\n<nav><strong>{title}</strong><input id=\"filter\" placeholder=\"filter models\">\n"
    );
    for model in &catalog.models {
        let name = escape(&model.name);
        let _ = writeln!(
            page,
            "<a href=\"#model-{name}\" data-name=\"{}\">{name}</a>",
            escape(&model.name.to_ascii_lowercase())
        );
    }
    page.push_str(
        "<a href=\"#sources\">sources</a><a href=\"#lineage\">lineage</a></nav>\n<main>\n",
    );
    let _ = writeln!(page, "<h1>{title}</h1>");
    for model in &catalog.models {
        model_section(&mut page, model);
    }
    page.push_str("<section id=\"sources\"><h2>Sources</h2>\n");
    for source in &catalog.sources {
        let _ = writeln!(
            page,
            "<h3>{}.{} <span class=\"meta\">{}</span></h3>",
            escape(&source.source),
            escape(&source.table),
            escape(&source.relation)
        );
        if let Some(description) = &source.description {
            let _ = writeln!(page, "<p>{}</p>", escape(description));
        }
        columns_table(&mut page, &source.columns);
    }
    page.push_str("</section>\n<section id=\"lineage\"><h2>Lineage</h2>\n<table><tr><th>from</th><th>how</th><th>to</th><th>pipeline</th></tr>\n");
    for edge in &catalog.lineage.edges {
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td class=\"how\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(&edge.from),
            edge.how.as_str(),
            escape(&edge.to),
            escape(edge.pipeline.as_deref().unwrap_or(""))
        );
    }
    page.push_str("</table>\n");
    for warning in &catalog.lineage.warnings {
        let _ = writeln!(page, "<p class=\"meta\">{}</p>", escape(warning));
    }
    let _ = write!(
        page,
        "</section>\n</main>\n<script>{SCRIPT}</script>\n</body></html>\n"
    );
    page
}

fn model_section(page: &mut String, model: &ModelDoc) {
    let name = escape(&model.name);
    let _ = writeln!(
        page,
        "<section id=\"model-{name}\" data-name=\"{}\"><h2>{name}</h2>",
        escape(&model.name.to_ascii_lowercase())
    );
    if let Some(description) = &model.description {
        let _ = writeln!(page, "<p>{}</p>", escape(description));
    }
    let _ = writeln!(
        page,
        "<p class=\"meta\">{} &middot; {} &middot; {}{}</p>",
        escape(&model.materialized),
        escape(&model.relation),
        escape(&model.file),
        if model.tags.is_empty() {
            String::new()
        } else {
            format!(" &middot; tags: {}", escape(&model.tags.join(", ")))
        }
    );
    let reads: Vec<String> = model.refs.iter().chain(&model.sources).cloned().collect();
    if !reads.is_empty() {
        let _ = writeln!(page, "<p>Reads: {}</p>", escape(&reads.join(", ")));
    }
    columns_table(page, &model.columns);
    if !model.filtered_by.is_empty() {
        let _ = writeln!(
            page,
            "<p>Rows filtered by: {}</p>",
            escape(&model.filtered_by.join(", "))
        );
    }
    if !model.tests.is_empty() {
        let _ = writeln!(page, "<p>Tests: {}</p>", escape(&model.tests.join(", ")));
    }
    let _ = writeln!(
        page,
        "<details><summary>Compiled SQL</summary><pre>{}</pre></details></section>",
        escape(&model.compiled_sql)
    );
}

fn columns_table(page: &mut String, columns: &[ColumnDoc]) {
    if columns.is_empty() {
        return;
    }
    page.push_str(
        "<table><tr><th>column</th><th>description</th><th>tests</th><th>derives from</th></tr>\n",
    );
    for column in columns {
        let upstream: Vec<String> = column
            .upstream
            .iter()
            .map(|u| {
                format!(
                    "{} <span class=\"how\">{}</span>",
                    escape(&u.from),
                    u.how.as_str()
                )
            })
            .collect();
        let _ = writeln!(
            page,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&column.name),
            escape(column.description.as_deref().unwrap_or("")),
            escape(&column.tests.join(", ")),
            upstream.join("<br>")
        );
    }
    page.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_in_user_text_is_escaped() {
        assert_eq!(
            escape(r#"<script>alert("x") & 'y'</script>"#),
            "&lt;script&gt;alert(&quot;x&quot;) &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}
