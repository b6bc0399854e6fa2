//! Schema evolution: can a source column of one SQL type be stored in an
//! existing column of another, and if not, what type would hold both.

/// How a source column relates to the table column it lands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Evolution {
    /// The values fit the table's type as it is (same type or a lossless cast).
    Fits,
    /// The table's column must be widened to this type to hold the values.
    Widen(String),
}

fn int_rank(t: &str) -> Option<u8> {
    Some(match t {
        "TINYINT" => 1,
        "UTINYINT" | "SMALLINT" => 2,
        "USMALLINT" | "INTEGER" => 3,
        "UINTEGER" | "BIGINT" => 4,
        "UBIGINT" | "HUGEINT" => 5,
        _ => return None,
    })
}

fn int_digits(rank: u8) -> u8 {
    match rank {
        1 => 3,
        2 => 5,
        3 => 10,
        4 => 19,
        _ => 39,
    }
}

/// The precision and scale of a `DECIMAL(p,s)` type name.
pub fn decimal(t: &str) -> Option<(u8, u8)> {
    let args = t.strip_prefix("DECIMAL(")?.strip_suffix(')')?;
    let (p, s) = args.split_once(',')?;
    Some((p.trim().parse().ok()?, s.trim().parse().ok()?))
}

fn is_timestamp(t: &str) -> bool {
    t.starts_with("TIMESTAMP")
}

fn is_float(t: &str) -> bool {
    t == "FLOAT" || t == "DOUBLE"
}

/// A type name without identifier quotes: DuckDB spells struct members
/// `STRUCT(id BIGINT)` where flowline writes `STRUCT("id" BIGINT)`.
pub fn unquoted(t: &str) -> String {
    t.replace('"', "")
}

/// Whether values of type `source` fit a column of type `target` as is.
pub fn fits(target: &str, source: &str) -> bool {
    if target == source || target == "VARCHAR" || unquoted(target) == unquoted(source) {
        return true;
    }
    if let Some(s) = int_rank(source) {
        if let Some(t) = int_rank(target) {
            let sign_ok = source.starts_with('U') || !target.starts_with('U');
            return t >= s && sign_ok;
        }
        if target == "DOUBLE" || (target == "FLOAT" && s <= 2) {
            return true;
        }
        if let Some((p, sc)) = decimal(target) {
            return p - sc >= int_digits(s);
        }
        return false;
    }
    match (source, target) {
        ("FLOAT", "DOUBLE") => true,
        ("DATE", t) if is_timestamp(t) => true,
        (s, t) if is_timestamp(s) && is_timestamp(t) => true,
        (s, "DOUBLE") if decimal(s).is_some() => true,
        (s, t) => match (decimal(s), decimal(t)) {
            (Some((p1, s1)), Some((p2, s2))) => s2 >= s1 && p2 - s2 >= p1 - s1,
            _ => false,
        },
    }
}

/// The narrowest type holding both `target` and `source` values.
pub fn supertype(target: &str, source: &str) -> String {
    if fits(target, source) {
        return target.to_string();
    }
    if fits(source, target) {
        return source.to_string();
    }
    let numeric = |t: &str| int_rank(t).is_some() || is_float(t) || decimal(t).is_some();
    if numeric(target) && numeric(source) {
        return "DOUBLE".into();
    }
    "VARCHAR".into()
}

/// A change a table needs before a batch fits it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A column the table lacks.
    Add {
        /// Its name.
        column: String,
        /// Its (canonical) SQL type.
        sql_type: String,
    },
    /// A column whose type must widen.
    Widen {
        /// Its name as in the table.
        column: String,
        /// The type it has.
        from: String,
        /// The type it needs.
        to: String,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Add { column, sql_type } => {
                write!(f, "column \"{column}\" added as {sql_type}")
            }
            Change::Widen { column, from, to } => {
                write!(f, "column \"{column}\" widened from {from} to {to}")
            }
        }
    }
}

/// Plans the changes that make `source` columns fit `table` columns (names
/// match case-insensitively, types are canonical SQL names) and applies them
/// to `table`. Without `allow_widening` a needed widening is an error saying
/// what to do.
pub fn plan(
    table: &mut Vec<(String, String)>,
    source: &[(String, String)],
    allow_widening: bool,
    table_name: &str,
) -> Result<Vec<Change>, String> {
    let mut changes = Vec::new();
    for (name, source_type) in source {
        match table
            .iter_mut()
            .find(|(column, _)| column.eq_ignore_ascii_case(name))
        {
            None => {
                changes.push(Change::Add {
                    column: name.clone(),
                    sql_type: source_type.clone(),
                });
                table.push((name.clone(), source_type.clone()));
            }
            Some((column, table_type)) => match evolve(table_type, source_type) {
                Evolution::Fits => {}
                Evolution::Widen(wider) if allow_widening => {
                    changes.push(Change::Widen {
                        column: column.clone(),
                        from: table_type.clone(),
                        to: wider.clone(),
                    });
                    *table_type = wider;
                }
                Evolution::Widen(wider) => {
                    return Err(format!(
                        "column \"{column}\" is {table_type} in table {table_name} but {source_type} in the source; \
                         set schema = \"evolve\" in [destination] to widen it to {wider}, \
                         or cast it in a [[transform]]"
                    ));
                }
            },
        }
    }
    Ok(changes)
}

/// Decides what storing `source` values in a `target` column needs.
pub fn evolve(target: &str, source: &str) -> Evolution {
    if fits(target, source) {
        Evolution::Fits
    } else {
        Evolution::Widen(supertype(target, source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrow_values_fit_wide_columns() {
        assert!(fits("BIGINT", "INTEGER"));
        assert!(fits("DOUBLE", "BIGINT"));
        assert!(fits("VARCHAR", "DATE"));
        assert!(fits("DECIMAL(22,2)", "BIGINT"));
        assert!(fits("TIMESTAMP", "DATE"));
        assert!(fits("STRUCT(id BIGINT)", "STRUCT(\"id\" BIGINT)"));
        assert!(!fits("INTEGER", "BIGINT"));
        assert!(!fits("BIGINT", "DOUBLE"));
        assert!(!fits("DATE", "VARCHAR"));
    }

    #[test]
    fn widening_picks_the_narrowest_common_type() {
        assert_eq!(
            evolve("INTEGER", "BIGINT"),
            Evolution::Widen("BIGINT".into())
        );
        assert_eq!(
            evolve("BIGINT", "DOUBLE"),
            Evolution::Widen("DOUBLE".into())
        );
        assert_eq!(
            evolve("DATE", "VARCHAR"),
            Evolution::Widen("VARCHAR".into())
        );
        assert_eq!(
            evolve("BOOLEAN", "BIGINT"),
            Evolution::Widen("VARCHAR".into())
        );
        assert_eq!(evolve("DOUBLE", "BIGINT"), Evolution::Fits);
    }
}
