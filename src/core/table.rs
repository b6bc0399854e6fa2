//! Table names as pipelines write them: `schema.table`, or `table` in `main`.

/// A `schema.table` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema (`main` when not given).
    pub schema: String,
    /// The table.
    pub table: String,
}

impl TableName {
    /// Parses `schema.table` or `table`.
    pub fn parse(text: &str) -> std::result::Result<TableName, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let valid = |s: &str| !s.trim().is_empty();
        match parts.as_slice() {
            [table] if valid(table) => Ok(TableName {
                schema: "main".into(),
                table: table.to_string(),
            }),
            [schema, table] if valid(schema) && valid(table) => Ok(TableName {
                schema: schema.to_string(),
                table: table.to_string(),
            }),
            _ => Err(format!(
                "table {text:?} is not a table name: write \"schema.table\" or \"table\""
            )),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}
