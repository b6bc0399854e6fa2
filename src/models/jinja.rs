//! Models as Jinja templates (minijinja), with dbt's functions: `ref()`,
//! `source()`, `config()`, `is_incremental()`, `var()`, `env_var()`, the
//! globals `this` and `target`, and every macro of `macros/*.sql`.
//!
//! A model is rendered twice. Parsing renders it to learn what it refers to
//! and how it is configured; compiling renders it again with the relations
//! it will really read and write. Errors name the model's file and line
//! (or the macro file's, when the error is inside a macro).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use minijinja::value::{Kwargs, Rest, Serde};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};

use super::config::ConfigValues;
use super::layout::Layout;
use super::relation::{Relation, RelationValue};
use crate::core::diagnostic::did_you_mean;
use crate::core::error::{Error, Result};

/// The name the concatenated macro files are loaded under.
const MACROS_TEMPLATE: &str = "__flowline_macros__";

/// Every macro of the project's macro folders, loaded as one template so
/// that macros can call each other.
#[derive(Debug, Clone, Default)]
pub struct Macros {
    source: String,
    /// Each file's first line in `source` (1-based) and its path.
    files: Vec<(usize, PathBuf)>,
    /// The macros' names.
    names: Vec<String>,
}

impl Macros {
    /// Reads every `*.sql` of the macro folders.
    pub fn load(layout: &Layout) -> Result<Macros> {
        let mut macros = Macros::default();
        let mut line = 1;
        for (_, path) in layout.files(&layout.macro_paths, &["sql"])? {
            let full = layout.dir.join(&path);
            let text = std::fs::read_to_string(&full).map_err(|e| Error::io(&full, e))?;
            macros.names.extend(macro_names(&text));
            macros.files.push((line, path));
            line += text.lines().count().max(1);
            macros.source.push_str(text.trim_end_matches('\n'));
            macros.source.push('\n');
        }
        Ok(macros)
    }

    /// The file and line of `line` of the concatenated macros.
    fn locate(&self, line: usize) -> (PathBuf, usize) {
        let (first, file) = self
            .files
            .iter()
            .rev()
            .find(|(first, _)| *first <= line)
            .cloned()
            .unwrap_or((1, PathBuf::from("macros")));
        (file, line + 1 - first)
    }

    /// What a model's template starts with so that it can call the macros:
    /// an import on its first line, which keeps its line numbers.
    fn import_line(&self) -> String {
        if self.names.is_empty() {
            return String::new();
        }
        format!(
            "{{% from \"{MACROS_TEMPLATE}\" import {} %}}",
            self.names.join(", ")
        )
    }
}

/// The names of the macros `{% macro name(...) %}` defines in `text`.
fn macro_names(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("{%") {
        rest = &rest[at + 2..];
        let tag = rest.trim_start_matches(['-', '+']).trim_start();
        if let Some(after) = tag.strip_prefix("macro")
            && after.starts_with(char::is_whitespace)
        {
            let name: String = after
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// What templates resolve names against.
#[derive(Debug, Clone, Default)]
pub struct Resolver {
    /// Each enabled model's relation (or CTE), by name.
    pub models: BTreeMap<String, RelationValue>,
    /// Each source table's relation, by (source, table).
    pub sources: BTreeMap<(String, String), Relation>,
    /// `vars:` of `dbt_project.yml`.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// dbt's `target`: `name`, `schema`, `type`.
    pub target: serde_json::Value,
}

/// What rendering one model found.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    /// The SQL.
    pub sql: String,
    /// The models it refers to, in order, once each.
    pub refs: Vec<String>,
    /// The source tables it reads, in order, once each.
    pub sources: Vec<(String, String)>,
    /// Its `config(...)` values.
    pub config: ConfigValues,
}

/// How one model is rendered.
pub struct Render<'a> {
    /// Its file, relative to the project.
    pub file: &'a Path,
    /// Its text.
    pub text: &'a str,
    /// Where it is built.
    pub this: RelationValue,
    /// Whether `is_incremental()` is true.
    pub is_incremental: bool,
}

/// Renders models against one resolver and the project's macros.
#[derive(Debug, Clone)]
pub struct Renderer {
    resolver: Arc<Resolver>,
    macros: Arc<Macros>,
}

impl Renderer {
    /// A renderer over `resolver` and `macros`.
    pub fn new(resolver: Resolver, macros: Arc<Macros>) -> Renderer {
        Renderer {
            resolver: Arc::new(resolver),
            macros,
        }
    }

    /// What the templates resolve names against.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// Renders a model; the error names its file and line.
    pub fn render(&self, model: Render<'_>) -> Result<Rendered> {
        let found = Arc::new(Mutex::new(Rendered::default()));
        let env = self.environment(&found, model.this, model.is_incremental);
        let name = model.file.to_string_lossy().to_string();
        let source = format!("{}{}", self.macros.import_line(), model.text);
        let mut env = env;
        env.add_template_owned(name.clone(), source)
            .map_err(|e| self.error(&e))?;
        let sql = env
            .get_template(&name)
            .and_then(|t| t.render(()))
            .map_err(|e| self.error(&e))?;
        let mut rendered = found.lock().map(|f| f.clone()).unwrap_or_default();
        rendered.sql = sql.trim().trim_end_matches(';').trim_end().to_string();
        Ok(rendered)
    }

    /// A Jinja error as `file:line: what`.
    fn error(&self, e: &minijinja::Error) -> Error {
        let what = match e.detail() {
            Some(detail) => format!("{}: {detail}", e.kind()),
            None => e.kind().to_string(),
        };
        let place = match (e.name(), e.line()) {
            (Some(MACROS_TEMPLATE), Some(line)) => {
                let (file, line) = self.macros.locate(line);
                format!("{}:{line}", file.display())
            }
            (Some(name), Some(line)) => format!("{name}:{line}"),
            (Some(name), None) => name.to_string(),
            _ => "template".to_string(),
        };
        Error::Config(format!("{place}: {what}"))
    }

    fn environment(
        &self,
        found: &Arc<Mutex<Rendered>>,
        this: RelationValue,
        is_incremental: bool,
    ) -> Environment<'static> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        if !self.macros.source.is_empty() {
            // Checked when a model imports it: its errors point there.
            let _ = env.add_template_owned(MACROS_TEMPLATE, self.macros.source.clone());
        }
        env.add_global("this", this.into_value());
        env.add_global("target", Value::from(Serde(self.resolver.target.clone())));

        let (resolver, refs) = (self.resolver.clone(), found.clone());
        env.add_function("ref", move |args: Rest<String>| {
            let name = args
                .last()
                .ok_or_else(|| invalid("ref() needs a model name: ref('orders')"))?;
            let Some(relation) = resolver.models.get(name) else {
                let known: Vec<&str> = resolver.models.keys().map(String::as_str).collect();
                let hint = did_you_mean(name, &known)
                    .map(|n| format!("; did you mean '{n}'?"))
                    .unwrap_or_default();
                return Err(invalid(format!(
                    "ref('{name}'): no model named {name}{hint}"
                )));
            };
            if let Ok(mut found) = refs.lock()
                && !found.refs.contains(name)
            {
                found.refs.push(name.clone());
            }
            Ok(relation.clone().into_value())
        });

        let (resolver, sources) = (self.resolver.clone(), found.clone());
        env.add_function("source", move |source: String, table: String| {
            let key = (source, table);
            let Some(relation) = resolver.sources.get(&key) else {
                return Err(invalid(format!(
                    "source('{}', '{}'): no such source table; declare it in a sources: block \
                     of a models/*.yml file, or load it with a pipeline whose destination \
                     table is {}.{}",
                    key.0, key.1, key.0, key.1
                )));
            };
            if let Ok(mut found) = sources.lock()
                && !found.sources.contains(&key)
            {
                found.sources.push(key.clone());
            }
            Ok(RelationValue::Relation(relation.clone()).into_value())
        });

        let config = found.clone();
        env.add_function("config", move |kwargs: Kwargs| {
            let mut found = config
                .lock()
                .map_err(|_| invalid("config(): the model's render failed"))?;
            for key in kwargs.args() {
                let value: Value = kwargs.get(key)?;
                let value = serde_json::to_value(&value)
                    .map_err(|e| invalid(format!("config({key}=...): {e}")))?;
                found.config.set(key, value);
            }
            Ok(String::new())
        });

        env.add_function("is_incremental", move || is_incremental);

        let resolver = self.resolver.clone();
        env.add_function("var", move |name: String, default: Option<Value>| {
            match (resolver.vars.get(&name), default) {
                (Some(value), _) => Ok(Value::from(Serde(value.clone()))),
                (None, Some(default)) => Ok(default),
                (None, None) => Err(invalid(format!(
                    "var('{name}'): not set; add it under vars: in dbt_project.yml or give a \
                     default: var('{name}', 'value')"
                ))),
            }
        });

        env.add_function("env_var", |name: String, default: Option<String>| {
            match (std::env::var(&name), default) {
                (Ok(value), _) => Ok(value),
                (Err(_), Some(default)) => Ok(default),
                (Err(_), None) => Err(invalid(format!(
                    "env_var('{name}'): not set in the environment; set it or give a default: \
                     env_var('{name}', 'value')"
                ))),
            }
        });
        env
    }
}

fn invalid(message: impl Into<String>) -> minijinja::Error {
    minijinja::Error::new(ErrorKind::InvalidOperation, message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renderer(macros: &str) -> Renderer {
        let mut resolver = Resolver::default();
        resolver.models.insert(
            "stg_orders".into(),
            RelationValue::Relation(Relation::new("main", "stg_orders")),
        );
        resolver.models.insert(
            "eph".into(),
            RelationValue::Cte("__flowline_cte__eph".into()),
        );
        resolver.sources.insert(
            ("raw".into(), "orders".into()),
            Relation::new("raw", "orders"),
        );
        resolver.vars.insert("country".into(), "NL".into());
        let mut m = Macros::default();
        if !macros.is_empty() {
            m.names = macro_names(macros);
            m.files.push((1, PathBuf::from("macros/util.sql")));
            m.source = macros.to_string();
        }
        Renderer::new(resolver, Arc::new(m))
    }

    fn render(r: &Renderer, text: &str, incremental: bool) -> Result<Rendered> {
        r.render(Render {
            file: Path::new("models/orders.sql"),
            text,
            this: RelationValue::Relation(Relation::new("marts", "orders")),
            is_incremental: incremental,
        })
    }

    #[test]
    fn ref_source_this_and_config_render_and_are_recorded() {
        let r = renderer("");
        let out = render(
            &r,
            "{{ config(materialized='incremental', unique_key='id', tags=['daily']) }}\nselect * from {{ ref('stg_orders') }} join {{ source('raw', 'orders') }} using (id)\n{% if is_incremental() %}where id > (select max(id) from {{ this }}){% endif %};\n",
            true,
        )
        .expect("renders");
        assert_eq!(
            out.sql,
            "select * from \"main\".\"stg_orders\" join \"raw\".\"orders\" using (id)\nwhere id > (select max(id) from \"marts\".\"orders\")"
        );
        assert_eq!(out.refs, ["stg_orders"]);
        assert_eq!(out.sources, [("raw".to_string(), "orders".to_string())]);
        assert_eq!(out.config.get("materialized"), Some(&"incremental".into()));
        assert_eq!(out.config.tags(), ["daily"]);
    }

    #[test]
    fn is_incremental_is_false_when_told() {
        let out = render(
            &renderer(""),
            "select 1{% if is_incremental() %} x{% endif %}",
            false,
        )
        .expect("renders");
        assert_eq!(out.sql, "select 1");
    }

    #[test]
    fn ephemeral_refs_render_as_their_cte() {
        let out = render(&renderer(""), "select * from {{ ref('eph') }}", false).expect("ok");
        assert_eq!(out.sql, "select * from __flowline_cte__eph");
    }

    #[test]
    fn var_and_env_var_read_settings_and_defaults() {
        let out = render(
            &renderer(""),
            "{{ var('country') }} {{ var('missing', 'x') }} {{ env_var('FLOWLINE_MODELS_UNSET_VAR', 'd') }}",
            false,
        )
        .expect("renders");
        assert_eq!(out.sql, "NL x d");
        let e = render(&renderer(""), "\n{{ var('nope') }}", false).expect_err("unset");
        assert!(e.to_string().starts_with("models/orders.sql:2: "), "{e}");
        assert!(e.to_string().contains("var('nope')"), "{e}");
    }

    #[test]
    fn an_unknown_ref_names_the_file_line_and_a_near_name() {
        let e = render(
            &renderer(""),
            "select 1\nfrom {{ ref('stg_order') }}",
            false,
        )
        .expect_err("unknown");
        let text = e.to_string();
        assert!(text.starts_with("models/orders.sql:2:"), "{text}");
        assert!(text.contains("did you mean 'stg_orders'"), "{text}");
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let e = render(&renderer(""), "select 1\n\n{% if %}", false).expect_err("syntax");
        assert!(
            e.to_string()
                .starts_with("models/orders.sql:3: syntax error"),
            "{e}"
        );
    }

    #[test]
    fn macros_are_callable_and_call_each_other() {
        let r = renderer(
            "{% macro cents(col) %}({{ col }} / 100.0){% endmacro %}\n{% macro money(col) -%}round({{ cents(col) }}, 2){%- endmacro %}\n",
        );
        let out = render(&r, "select {{ money('amount') }} as amount", false).expect("ok");
        assert_eq!(out.sql, "select round((amount / 100.0), 2) as amount");
    }

    #[test]
    fn an_error_inside_a_macro_names_the_macro_file() {
        let r = renderer("{% macro a() %}\n{{ ref('nope') }}\n{% endmacro %}\n");
        let e = render(&r, "select {{ a() }}", false).expect_err("bad ref");
        assert!(e.to_string().starts_with("macros/util.sql:2:"), "{e}");
    }

    #[test]
    fn macro_names_are_found_with_whitespace_control() {
        assert_eq!(
            macro_names("{%- macro a(x) -%}{%- endmacro %}{% macro b_2() %}{% endmacro %}"),
            ["a", "b_2"]
        );
    }
}
