//! Relations (`"schema"."name"`) as models and sources name them, quoted
//! the same way in DuckDB and Postgres, and SQL string literals.

use std::fmt;
use std::sync::Arc;

use minijinja::Value;
use minijinja::value::Object;

/// A table or view in the warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    /// Its schema.
    pub schema: String,
    /// Its name in the schema.
    pub identifier: String,
}

impl Relation {
    /// `schema`.`identifier`.
    pub fn new(schema: impl Into<String>, identifier: impl Into<String>) -> Relation {
        Relation {
            schema: schema.into(),
            identifier: identifier.into(),
        }
    }

    /// A relation beside this one whose name ends with `suffix`: where a
    /// table is built before it is swapped in.
    pub fn beside(&self, suffix: &str) -> Relation {
        Relation::new(self.schema.clone(), format!("{}{suffix}", self.identifier))
    }

    /// The quoted schema.
    pub fn quoted_schema(&self) -> String {
        quote(&self.schema)
    }

    /// The quoted name alone.
    pub fn quoted_identifier(&self) -> String {
        quote(&self.identifier)
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", quote(&self.schema), quote(&self.identifier))
    }
}

/// `name` as a quoted identifier.
pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `text` as a SQL string literal.
pub fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// What `ref()`, `source()` and `this` give a template: renders as the
/// quoted relation (or the CTE of an ephemeral model) and has dbt's
/// attributes `schema`, `identifier`, `name` and `database`.
#[derive(Debug, Clone)]
pub enum RelationValue {
    /// A relation in the warehouse.
    Relation(Relation),
    /// An ephemeral model, inlined as the CTE of this name.
    Cte(String),
}

impl RelationValue {
    /// As a template value.
    pub fn into_value(self) -> Value {
        Value::from_object(self)
    }
}

impl Object for RelationValue {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        match (&**self, key) {
            (RelationValue::Relation(r), "schema") => Some(Value::from(r.schema.clone())),
            (RelationValue::Relation(r), "identifier" | "name" | "table") => {
                Some(Value::from(r.identifier.clone()))
            }
            (RelationValue::Cte(name), "identifier" | "name" | "table") => {
                Some(Value::from(name.clone()))
            }
            (_, "database") => Some(Value::from(())),
            _ => None,
        }
    }

    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &**self {
            RelationValue::Relation(r) => write!(f, "{r}"),
            RelationValue::Cte(name) => f.write_str(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_quoted_and_quotes_doubled() {
        let r = Relation::new("marts", "or\"ders");
        assert_eq!(r.to_string(), "\"marts\".\"or\"\"ders\"");
        assert_eq!(r.beside("__tmp").identifier, "or\"ders__tmp");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
