//! Compiling a model: rendering it with the relations it really reads and
//! writes, inlining the ephemeral models it refers to as CTEs, and writing
//! the result under `.flowline/compiled/` so users can read what ran.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::config::Materialized;
use super::jinja::{Render, Renderer};
use super::project::{CTE_PREFIX, ModelProject};
use crate::core::error::{Error, Result};

/// The folder compiled SQL is written to, under the project.
pub const COMPILED_DIR: &str = ".flowline/compiled";

/// Compiles a project's models against one warehouse.
pub struct Compiler<'a> {
    project: &'a ModelProject,
    renderer: Renderer,
    default_schema: String,
    /// The rendered SQL of each ephemeral model (without its own CTEs).
    ephemerals: BTreeMap<usize, String>,
}

impl<'a> Compiler<'a> {
    /// A compiler for `project` in a warehouse whose default schema is
    /// `default_schema`; renders the ephemeral models once, up front.
    pub fn new(project: &'a ModelProject, default_schema: &str) -> Result<Compiler<'a>> {
        let renderer = project.renderer(default_schema);
        let mut compiler = Compiler {
            project,
            renderer,
            default_schema: default_schema.to_string(),
            ephemerals: BTreeMap::new(),
        };
        for &i in &project.order {
            let model = &project.models[i];
            if model.config.materialized == Materialized::Ephemeral {
                let sql = compiler.render(i, false)?;
                compiler.ephemerals.insert(i, sql);
            }
        }
        Ok(compiler)
    }

    /// The warehouse's default schema.
    pub fn default_schema(&self) -> &str {
        &self.default_schema
    }

    fn render(&self, i: usize, is_incremental: bool) -> Result<String> {
        let model = &self.project.models[i];
        Ok(self
            .renderer
            .render(Render {
                file: &model.file,
                text: &model.text,
                this: model.reference(&self.default_schema),
                is_incremental,
            })?
            .sql)
    }

    /// Model `i`'s SQL as it runs, ephemeral parents inlined.
    pub fn compile(&self, i: usize, is_incremental: bool) -> Result<String> {
        if let Some(sql) = self.ephemerals.get(&i) {
            return Ok(with_ctes(&self.ctes(i), sql));
        }
        let sql = self.render(i, is_incremental)?;
        Ok(with_ctes(&self.ctes(i), &sql))
    }

    /// The CTEs model `i` needs: its ephemeral parents, theirs first.
    fn ctes(&self, i: usize) -> Vec<String> {
        let mut needed = Vec::new();
        self.collect_ephemerals(i, &mut needed);
        needed
            .into_iter()
            .filter_map(|e| {
                let sql = self.ephemerals.get(&e)?;
                Some(format!(
                    "{CTE_PREFIX}{} as (\n{sql}\n)",
                    self.project.models[e].name
                ))
            })
            .collect()
    }

    fn collect_ephemerals(&self, i: usize, needed: &mut Vec<usize>) {
        for &parent in self.project.graph.parents(i) {
            if self.ephemerals.contains_key(&parent) && !needed.contains(&parent) {
                self.collect_ephemerals(parent, needed);
                if !needed.contains(&parent) {
                    needed.push(parent);
                }
            }
        }
    }

    /// Writes model `i`'s compiled SQL; returns the file written.
    pub fn write(&self, i: usize, sql: &str) -> Result<PathBuf> {
        let model = &self.project.models[i];
        let path = compiled_path(&self.project.layout.dir, &model.file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        std::fs::write(&path, format!("{sql}\n")).map_err(|e| Error::io(&path, e))?;
        Ok(path)
    }
}

/// Where the compiled SQL of the model in `file` goes.
pub fn compiled_path(project_dir: &Path, file: &Path) -> PathBuf {
    project_dir.join(COMPILED_DIR).join(file)
}

/// `sql` with `ctes` in front, merged into its own `WITH` when it has one.
pub fn with_ctes(ctes: &[String], sql: &str) -> String {
    if ctes.is_empty() {
        return sql.to_string();
    }
    let list = ctes.join(",\n");
    let start = skip_comments(sql);
    let (head, rest) = sql.split_at(start);
    if let Some(after) = keyword(rest, "with") {
        if let Some(after_recursive) = keyword(after, "recursive") {
            return format!("{head}with recursive {list},\n{after_recursive}");
        }
        return format!("{head}with {list},\n{after}");
    }
    format!("with {list}\n{sql}")
}

/// `text` after `word` when it starts with it (any case) and a space follows.
fn keyword<'t>(text: &'t str, word: &str) -> Option<&'t str> {
    let head = text.get(..word.len())?;
    let after = &text[word.len()..];
    (head.eq_ignore_ascii_case(word) && after.starts_with(char::is_whitespace))
        .then(|| after.trim_start())
}

/// Where the first token after leading whitespace and comments starts.
fn skip_comments(sql: &str) -> usize {
    let mut at = 0;
    loop {
        let rest = &sql[at..];
        let trimmed = rest.trim_start();
        at += rest.len() - trimmed.len();
        if trimmed.starts_with("--") {
            at += trimmed.find('\n').map(|n| n + 1).unwrap_or(trimmed.len());
        } else if trimmed.starts_with("/*") {
            at += trimmed.find("*/").map(|n| n + 2).unwrap_or(trimmed.len());
        } else {
            return at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctes_go_in_front_or_into_the_models_own_with() {
        let ctes = vec!["a as (\nselect 1\n)".to_string()];
        assert_eq!(
            with_ctes(&ctes, "select * from a"),
            "with a as (\nselect 1\n)\nselect * from a"
        );
        assert_eq!(
            with_ctes(&ctes, "-- note\nWITH b as (select 2) select * from a, b"),
            "-- note\nwith a as (\nselect 1\n),\nb as (select 2) select * from a, b"
        );
        assert_eq!(
            with_ctes(&ctes, "with recursive r as (select 1) select * from r, a"),
            "with recursive a as (\nselect 1\n),\nr as (select 1) select * from r, a"
        );
        assert_eq!(with_ctes(&[], "select 1"), "select 1");
    }

    #[test]
    fn a_column_named_with_something_is_not_a_with() {
        let ctes = vec!["a as (select 1)".to_string()];
        assert_eq!(
            with_ctes(&ctes, "withdrawn as x"),
            "with a as (select 1)\nwithdrawn as x"
        );
    }
}
