//! Data tests: queries that return the rows breaking an expectation. A
//! test passes when its query returns none.
//!
//! - generic tests on a model's columns, from `models/**/*.yml` (`tests:`
//!   or `data_tests:`): `not_null`, `unique`, `accepted_values` (`values`,
//!   `quote`), `relationships` (`to`, `field`), each with an optional
//!   `where` and `severity` (`error`, the default, or `warn`), also under
//!   `config:`;
//! - singular tests: `tests/*.sql`, a query (with Jinja) returning the
//!   failing rows; `{{ config(severity='warn') }}` works there.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;

use super::catalog;
use super::jinja::{Render, Renderer};
use super::properties::PropertiesFile;
use super::relation::RelationValue;
use crate::core::error::{Error, Result};
use crate::destinations::Warehouse;

/// The generic tests flowline knows.
const GENERIC: &[&str] = &["not_null", "unique", "accepted_values", "relationships"];

/// What a failing test does to the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// It fails the command.
    Error,
    /// It is reported, and the command still succeeds.
    Warn,
}

/// What a test checks.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// No row has a null in the column.
    NotNull,
    /// No two rows share a non-null value of the column.
    Unique,
    /// Every value of the column is one of these.
    AcceptedValues {
        /// The values.
        values: Vec<Value>,
        /// Whether to quote them as strings (default true).
        quote: bool,
    },
    /// Every non-null value of the column is in `field` of `to`.
    Relationships {
        /// The parent, as Jinja: `ref('customers')` or `source('a', 'b')`.
        to: String,
        /// The parent's column.
        field: String,
    },
    /// A query returning the failing rows (`tests/*.sql`).
    Singular {
        /// Its template.
        text: String,
    },
}

/// One data test.
#[derive(Debug, Clone)]
pub struct DataTest {
    /// Its name: `not_null_orders_id`, or the singular test's file name.
    pub name: String,
    /// The file it is declared in.
    pub file: PathBuf,
    /// The model it tests (generic tests).
    pub model: Option<String>,
    /// The column it tests (generic tests).
    pub column: Option<String>,
    /// What it checks.
    pub check: Check,
    /// What a failure does.
    pub severity: Severity,
    /// `where`: only the rows it keeps are tested.
    pub filter: Option<String>,
    /// The models it reads.
    pub depends_on: Vec<String>,
}

/// The generic tests of one properties file.
pub fn generic_tests(file: &Path, properties: &PropertiesFile) -> Result<Vec<DataTest>> {
    let mut tests = Vec::new();
    for model in &properties.models {
        for entry in model.tests.iter().chain(&model.data_tests) {
            let (name, args) = entry_parts(entry).map_err(|e| {
                Error::Config(format!("{}: model {}: {e}", file.display(), model.name))
            })?;
            let column = args
                .get("column_name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "{}: model {}: test {name} needs column_name (or put it under the column)",
                        file.display(),
                        model.name
                    ))
                })?;
            tests.push(generic(file, &model.name, &column, &name, &args)?);
        }
        for column in &model.columns {
            for entry in column.tests.iter().chain(&column.data_tests) {
                let (name, args) = entry_parts(entry).map_err(|e| {
                    Error::Config(format!(
                        "{}: model {}, column {}: {e}",
                        file.display(),
                        model.name,
                        column.name
                    ))
                })?;
                tests.push(generic(file, &model.name, &column.name, &name, &args)?);
            }
        }
    }
    Ok(tests)
}

/// A test entry's name and arguments: `"unique"` or `{accepted_values: {...}}`.
fn entry_parts(
    entry: &Value,
) -> std::result::Result<(String, serde_json::Map<String, Value>), String> {
    match entry {
        Value::String(name) => Ok((name.clone(), serde_json::Map::new())),
        Value::Object(map) if map.len() == 1 => {
            let (name, args) = map.iter().next().ok_or("an empty test")?;
            match args {
                Value::Object(args) => Ok((name.clone(), args.clone())),
                Value::Null => Ok((name.clone(), serde_json::Map::new())),
                other => Err(format!(
                    "test {name}: expected its arguments as a mapping, got {other}"
                )),
            }
        }
        other => Err(format!(
            "a test is a name (not_null) or a mapping of one name to its arguments, not {other}"
        )),
    }
}

fn generic(
    file: &Path,
    model: &str,
    column: &str,
    name: &str,
    args: &serde_json::Map<String, Value>,
) -> Result<DataTest> {
    let place = format!(
        "{}: model {model}, column {column}, test {name}",
        file.display()
    );
    let config = args.get("config").and_then(Value::as_object);
    let setting = |key: &str| {
        args.get(key)
            .or_else(|| config.and_then(|c| c.get(key)))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let severity = match setting("severity")
        .map(|s| s.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("error") => Severity::Error,
        Some("warn") => Severity::Warn,
        Some(other) => {
            return Err(Error::Config(format!(
                "{place}: severity '{other}': expected 'error' or 'warn'"
            )));
        }
    };
    let mut depends_on = vec![model.to_string()];
    let check = match name {
        "not_null" => Check::NotNull,
        "unique" => Check::Unique,
        "accepted_values" => {
            let values = args
                .get("values")
                .and_then(Value::as_array)
                .cloned()
                .ok_or_else(|| Error::Config(format!("{place}: needs values: [...]")))?;
            let quote = args.get("quote").and_then(Value::as_bool).unwrap_or(true);
            Check::AcceptedValues { values, quote }
        }
        "relationships" => {
            let to = args
                .get("to")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Config(format!("{place}: needs to: ref('model')")))?;
            let field = args
                .get("field")
                .and_then(Value::as_str)
                .ok_or_else(|| Error::Config(format!("{place}: needs field: column")))?;
            if let Some(parent) = referenced_model(to) {
                depends_on.push(parent);
            }
            Check::Relationships {
                to: to.to_string(),
                field: field.to_string(),
            }
        }
        other => {
            return Err(Error::Config(format!(
                "{place}: unknown test {other} (flowline runs {})",
                GENERIC.join(", ")
            )));
        }
    };
    let custom = args.get("name").and_then(Value::as_str).map(str::to_string);
    Ok(DataTest {
        name: custom.unwrap_or_else(|| format!("{name}_{model}_{column}")),
        file: file.to_path_buf(),
        model: Some(model.to_string()),
        column: Some(column.to_string()),
        check,
        severity,
        filter: setting("where"),
        depends_on,
    })
}

/// The model `ref('name')` names.
fn referenced_model(expression: &str) -> Option<String> {
    let inner = expression.trim().strip_prefix("ref(")?.strip_suffix(')')?;
    let last = inner.rsplit(',').next()?.trim();
    Some(last.trim_matches(|c| c == '\'' || c == '"').to_string())
}

/// A singular test: `tests/<name>.sql`, whose refs and config parsing found.
pub fn singular(file: &Path, text: &str, depends_on: Vec<String>, warn: bool) -> DataTest {
    DataTest {
        name: file
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default(),
        file: file.to_path_buf(),
        model: None,
        column: None,
        check: Check::Singular {
            text: text.to_string(),
        },
        severity: if warn {
            Severity::Warn
        } else {
            Severity::Error
        },
        filter: None,
        depends_on,
    }
}

impl DataTest {
    /// The test's query as a template: it returns the failing rows.
    pub fn template(&self) -> String {
        let model = self.model.as_deref().unwrap_or_default();
        let column = self.column.as_deref().unwrap_or_default();
        let relation = match &self.filter {
            Some(filter) => {
                format!("(select * from {{{{ ref('{model}') }}}} where {filter}) as dbt_subquery")
            }
            None => format!("{{{{ ref('{model}') }}}}"),
        };
        match &self.check {
            Check::NotNull => format!("select * from {relation} where {column} is null"),
            Check::Unique => format!(
                "select {column} as unique_field, count(*) as n_records from {relation} \
                 where {column} is not null group by {column} having count(*) > 1"
            ),
            Check::AcceptedValues { values, quote } => {
                let list: Vec<String> = values
                    .iter()
                    .map(|v| match (v, quote) {
                        (Value::String(s), true) => super::relation::literal(s),
                        (Value::String(s), false) => s.clone(),
                        (other, true) => super::relation::literal(&other.to_string()),
                        (other, false) => other.to_string(),
                    })
                    .collect();
                format!(
                    "select * from (select {column} as value_field, count(*) as n_records \
                     from {relation} group by {column}) as all_values \
                     where value_field not in ({})",
                    list.join(", ")
                )
            }
            Check::Relationships { to, field } => format!(
                "select child.{column} as from_field from {relation} as child \
                 left join {{{{ {to} }}}} as parent on child.{column} = parent.{field} \
                 where child.{column} is not null and parent.{field} is null"
            ),
            Check::Singular { text } => text.clone(),
        }
    }
}

/// How a test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestStatus {
    /// No failing row.
    Pass,
    /// Failing rows, severity error.
    Fail,
    /// Failing rows, severity warn.
    Warn,
    /// The query itself failed.
    Error,
    /// Not run, because a model it tests failed or was skipped.
    Skipped,
}

impl TestStatus {
    /// Whether the test stops what depends on its models: a failure or an
    /// error of severity error.
    pub fn blocks(self) -> bool {
        matches!(self, TestStatus::Fail | TestStatus::Error)
    }
}

/// One test's result.
#[derive(Debug, Clone, Serialize)]
pub struct TestResult {
    /// The test.
    pub test: String,
    /// Its file.
    pub file: String,
    /// How it ended.
    pub status: TestStatus,
    /// How many rows failed it.
    pub failures: u64,
    /// Why it could not run, if it could not.
    pub message: Option<String>,
    /// How long it took, in seconds.
    pub seconds: f64,
}

impl TestResult {
    /// The result of `test` when it was not run, and why.
    pub fn skipped(test: &DataTest, why: &str) -> TestResult {
        TestResult {
            test: test.name.clone(),
            file: test.file.display().to_string(),
            status: TestStatus::Skipped,
            failures: 0,
            message: Some(why.to_string()),
            seconds: 0.0,
        }
    }
}

/// Runs `test` in `warehouse`, rendered with `renderer`.
pub fn run(test: &DataTest, renderer: &Renderer, warehouse: &dyn Warehouse) -> TestResult {
    let started = Instant::now();
    let counted = (|| -> Result<u64> {
        let template = test.template();
        let this = match &test.model {
            Some(model) => renderer
                .resolver()
                .models
                .get(model)
                .cloned()
                .ok_or_else(|| {
                    Error::Config(format!("{}: no model named {model}", test.file.display()))
                })?,
            None => RelationValue::Cte(test.name.clone()),
        };
        let sql = renderer
            .render(Render {
                file: &test.file,
                text: &template,
                this,
                is_incremental: false,
            })?
            .sql;
        let result = warehouse
            .query(&format!(
                "select count(*) as failures from (\n{sql}\n) as dbt_test"
            ))
            .map_err(|e| {
                Error::Other(format!("{}: test {}: {e}", test.file.display(), test.name))
            })?;
        let text = catalog::strings(&result, 0)?.into_iter().flatten().next();
        Ok(text.and_then(|t| t.parse().ok()).unwrap_or(0))
    })();
    let (status, failures, message) = match counted {
        Ok(0) => (TestStatus::Pass, 0, None),
        Ok(n) if test.severity == Severity::Warn => (TestStatus::Warn, n, None),
        Ok(n) => (TestStatus::Fail, n, None),
        Err(e) => (TestStatus::Error, 0, Some(e.to_string())),
    };
    TestResult {
        test: test.name.clone(),
        file: test.file.display().to_string(),
        status,
        failures,
        message,
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tests_of(yaml: &str) -> Result<Vec<DataTest>> {
        let parsed: PropertiesFile = serde_yaml_ng::from_str(yaml).expect("yaml");
        generic_tests(Path::new("models/schema.yml"), &parsed)
    }

    #[test]
    fn generic_tests_read_with_their_arguments_where_and_severity() {
        let tests = tests_of(
            "models:\n  - name: orders\n    columns:\n      - name: id\n        data_tests: [not_null, unique]\n      - name: status\n        tests:\n          - accepted_values:\n              values: ['paid', 'open']\n              config:\n                severity: warn\n                where: \"id > 1\"\n      - name: customer_id\n        tests:\n          - relationships:\n              to: ref('customers')\n              field: id\n",
        )
        .expect("valid");
        let names: Vec<&str> = tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "not_null_orders_id",
                "unique_orders_id",
                "accepted_values_orders_status",
                "relationships_orders_customer_id"
            ]
        );
        assert_eq!(tests[2].severity, Severity::Warn);
        assert_eq!(tests[2].filter.as_deref(), Some("id > 1"));
        assert_eq!(tests[3].depends_on, ["orders", "customers"]);
        assert!(
            tests[2]
                .template()
                .contains("from (select * from {{ ref('orders') }} where id > 1) as dbt_subquery"),
            "{}",
            tests[2].template()
        );
        assert!(tests[2].template().ends_with("not in ('paid', 'open')"));
    }

    #[test]
    fn an_unknown_test_is_named_with_the_known_ones() {
        let e = tests_of(
            "models:\n  - name: orders\n    columns:\n      - name: id\n        tests: [is_even]\n",
        )
        .expect_err("unknown");
        assert!(e.to_string().contains("unknown test is_even"), "{e}");
        assert!(e.to_string().contains("accepted_values"), "{e}");
    }
}
