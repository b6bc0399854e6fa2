//! Type names: what users write in config (`decimal(10,2)`, `timestamp`), and
//! the warehouse's SQL name for each Arrow type.

use arrow::datatypes::{DataType, Field, TimeUnit};

/// Parses a user-facing type name into an Arrow type.
///
/// Accepts the usual SQL spellings: `int`/`bigint`, `smallint`, `double`,
/// `float`, `decimal(p,s)`, `bool`, `text`/`varchar`/`string`, `date`,
/// `timestamp`, `timestamptz`, `time`, `blob`, `json`.
pub fn parse_type(name: &str) -> Result<DataType, String> {
    let lower = name.trim().to_ascii_lowercase();
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(args) = compact
        .strip_prefix("decimal(")
        .or_else(|| compact.strip_prefix("numeric("))
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (p, s) = args.split_once(',').unwrap_or((args, "0"));
        let precision: u8 = p
            .parse()
            .map_err(|_| format!("bad precision in \"{name}\""))?;
        let scale: i8 = s.parse().map_err(|_| format!("bad scale in \"{name}\""))?;
        if !(1..=38).contains(&precision) || scale < 0 || scale as u8 > precision {
            return Err(format!(
                "\"{name}\": precision must be 1..=38 and scale 0..=precision"
            ));
        }
        return Ok(DataType::Decimal128(precision, scale));
    }
    let dt = match compact.as_str() {
        "tinyint" | "int8" => DataType::Int8,
        "smallint" | "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int" | "integer" | "bigint" | "int64" | "long" => DataType::Int64,
        "float" | "real" | "float32" => DataType::Float32,
        "double" | "float64" | "doubleprecision" => DataType::Float64,
        "decimal" | "numeric" => DataType::Decimal128(38, 9),
        "bool" | "boolean" => DataType::Boolean,
        "text" | "string" | "varchar" | "json" | "utf8" => DataType::Utf8,
        "date" => DataType::Date32,
        "timestamp" | "datetime" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "timestamptz" | "timestampwithtimezone" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "time" => DataType::Time64(TimeUnit::Microsecond),
        "blob" | "binary" | "bytes" | "bytea" => DataType::Binary,
        _ => {
            return Err(format!(
                "unknown type \"{name}\" (expected one of: int, bigint, smallint, double, float, \
                 decimal(p,s), bool, text, date, timestamp, timestamptz, time, blob)"
            ));
        }
    };
    Ok(dt)
}

/// The DuckDB SQL type that stores `dt`, spelt as DuckDB reports it in
/// `information_schema.columns.data_type`.
pub fn duckdb_type(dt: &DataType) -> String {
    match dt {
        DataType::Boolean => "BOOLEAN".into(),
        DataType::Int8 => "TINYINT".into(),
        DataType::Int16 => "SMALLINT".into(),
        DataType::Int32 => "INTEGER".into(),
        DataType::Int64 => "BIGINT".into(),
        DataType::UInt8 => "UTINYINT".into(),
        DataType::UInt16 => "USMALLINT".into(),
        DataType::UInt32 => "UINTEGER".into(),
        DataType::UInt64 => "UBIGINT".into(),
        DataType::Float16 | DataType::Float32 => "FLOAT".into(),
        DataType::Float64 => "DOUBLE".into(),
        DataType::Decimal32(p, s) | DataType::Decimal64(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Decimal128(p, s) => format!("DECIMAL({p},{s})"),
        DataType::Decimal256(..) => "DOUBLE".into(),
        DataType::Date32 | DataType::Date64 => "DATE".into(),
        DataType::Time32(_) | DataType::Time64(_) => "TIME".into(),
        DataType::Timestamp(_, Some(_)) => "TIMESTAMP WITH TIME ZONE".into(),
        DataType::Timestamp(TimeUnit::Second, None) => "TIMESTAMP_S".into(),
        DataType::Timestamp(TimeUnit::Millisecond, None) => "TIMESTAMP_MS".into(),
        DataType::Timestamp(TimeUnit::Microsecond, None) => "TIMESTAMP".into(),
        DataType::Timestamp(TimeUnit::Nanosecond, None) => "TIMESTAMP_NS".into(),
        DataType::Duration(_) | DataType::Interval(_) => "INTERVAL".into(),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => "BLOB".into(),
        DataType::List(f) | DataType::LargeList(f) | DataType::FixedSizeList(f, _) => {
            format!("{}[]", duckdb_type(f.data_type()))
        }
        DataType::Struct(fields) => {
            let inner: Vec<String> = fields.iter().map(|f| struct_member(f)).collect();
            format!("STRUCT({})", inner.join(", "))
        }
        DataType::Dictionary(_, value) => duckdb_type(value),
        _ => "VARCHAR".into(),
    }
}

/// The Arrow type of a scalar column of canonical SQL type `canonical` (as
/// [`duckdb_type`] spells it), or `None` for nested and other types.
pub fn arrow_type(canonical: &str) -> Option<DataType> {
    if let Some(args) = canonical
        .strip_prefix("DECIMAL(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (p, s) = args.split_once(',')?;
        return Some(DataType::Decimal128(
            p.trim().parse().ok()?,
            s.trim().parse().ok()?,
        ));
    }
    Some(match canonical {
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "UTINYINT" => DataType::UInt8,
        "USMALLINT" => DataType::UInt16,
        "UINTEGER" => DataType::UInt32,
        "UBIGINT" => DataType::UInt64,
        "FLOAT" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "DATE" => DataType::Date32,
        "TIME" => DataType::Time64(TimeUnit::Microsecond),
        "TIMESTAMP WITH TIME ZONE" => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        "TIMESTAMP_S" => DataType::Timestamp(TimeUnit::Second, None),
        "TIMESTAMP_MS" => DataType::Timestamp(TimeUnit::Millisecond, None),
        "TIMESTAMP" => DataType::Timestamp(TimeUnit::Microsecond, None),
        "TIMESTAMP_NS" => DataType::Timestamp(TimeUnit::Nanosecond, None),
        "BLOB" => DataType::Binary,
        "VARCHAR" => DataType::Utf8,
        _ => return None,
    })
}

fn struct_member(field: &Field) -> String {
    format!(
        "{} {}",
        quote_ident(field.name()),
        duckdb_type(field.data_type())
    )
}

/// Quotes an SQL identifier: `"na""me"`.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Quotes an SQL string literal: `'it''s'`.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_spellings() {
        assert_eq!(parse_type("BIGINT"), Ok(DataType::Int64));
        assert_eq!(
            parse_type("decimal(10, 2)"),
            Ok(DataType::Decimal128(10, 2))
        );
        assert_eq!(parse_type("text"), Ok(DataType::Utf8));
        assert!(parse_type("decimal(40,2)").is_err());
        assert!(parse_type("wat").is_err());
    }

    #[test]
    fn names_match_duckdb_spelling() {
        assert_eq!(duckdb_type(&DataType::Decimal128(18, 3)), "DECIMAL(18,3)");
        let list = DataType::List(Field::new("item", DataType::Int64, true).into());
        assert_eq!(duckdb_type(&list), "BIGINT[]");
    }

    #[test]
    fn canonical_names_map_back_to_the_types_they_name() {
        for dt in [
            DataType::Boolean,
            DataType::Int8,
            DataType::Int32,
            DataType::UInt64,
            DataType::Float32,
            DataType::Float64,
            DataType::Decimal128(18, 3),
            DataType::Date32,
            DataType::Timestamp(TimeUnit::Microsecond, None),
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            DataType::Utf8,
        ] {
            assert_eq!(arrow_type(&duckdb_type(&dt)), Some(dt));
        }
        assert_eq!(arrow_type("BIGINT[]"), None);
    }
}
