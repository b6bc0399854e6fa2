//! DuckDB reading whole files itself (see [`crate::core::scan`]): the
//! `read_csv` query of a CSV file (NDJSON: [`duckdb_ndjson`]), and the
//! functions it converts each value with. They convert each value of the vectors DuckDB hands them by the
//! rules flowline's batch path converts an inferred column with
//! ([`numbers`] and the `inferred_*` functions of [`convert`]), so a value
//! lands exactly as the batch path would land it; a value that would widen
//! its column fails the query, and the file is then read by flowline,
//! which widens.

use std::error::Error as StdError;
use std::marker::PhantomData;

use arrow::datatypes::{DataType, TimeUnit};
use duckdb::core::{DataChunkHandle, LogicalTypeId};
use duckdb::ffi::{duckdb_string_t, duckdb_string_t_data, duckdb_string_t_length};
use duckdb::vscalar::{ScalarFunctionSignature, VScalar};
use duckdb::vtab::arrow::WritableVector;

use super::duckdb_ndjson;
use crate::core::error::{Error, Result};
use crate::core::{FileScan, ScanFormat};
use crate::data::convert;
use crate::data::numbers;
use crate::data::types::{duckdb_type, quote_literal};

/// Registers the conversion functions on the database of `conn`.
pub(super) fn register(conn: &duckdb::Connection) -> Result<()> {
    let register = |result: duckdb::Result<()>| {
        result.map_err(|e| Error::warehouse("registering flowline's conversion functions", e))
    };
    register(conn.register_scalar_function::<Exact<Bigint>>(Bigint::FUNCTION))?;
    register(conn.register_scalar_function::<Exact<Double>>(Double::FUNCTION))?;
    register(conn.register_scalar_function::<Exact<Boolean>>(Boolean::FUNCTION))?;
    register(conn.register_scalar_function::<Exact<Date>>(Date::FUNCTION))?;
    register(conn.register_scalar_function::<Exact<Timestamp>>(Timestamp::FUNCTION))?;
    register(conn.register_scalar_function::<Exact<TimestampTz>>(TimestampTz::FUNCTION))?;
    duckdb_ndjson::register(conn)
}

/// The function converting text to `data_type` exactly; `None` for text
/// (no conversion) and for types without one.
fn function_for(data_type: &DataType) -> Option<&'static str> {
    Some(match data_type {
        DataType::Int64 => Bigint::FUNCTION,
        DataType::Float64 => Double::FUNCTION,
        DataType::Boolean => Boolean::FUNCTION,
        DataType::Date32 => Date::FUNCTION,
        DataType::Timestamp(TimeUnit::Microsecond, None) => Timestamp::FUNCTION,
        DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) if tz.as_ref() == "UTC" => {
            TimestampTz::FUNCTION
        }
        _ => return None,
    })
}

/// The query reading the file `scan`, its columns converted exactly;
/// `None` for a file DuckDB does not read the way flowline does.
pub(super) fn select(scan: &FileScan) -> Option<String> {
    match &scan.format {
        ScanFormat::Csv { .. } => select_csv(scan),
        ScanFormat::Ndjson => duckdb_ndjson::select(scan),
    }
}

/// The `read_csv` query of the CSV file `scan`.
fn select_csv(scan: &FileScan) -> Option<String> {
    let ScanFormat::Csv {
        delimiter,
        quote,
        header,
        null_values,
        max_row_bytes,
    } = &scan.format
    else {
        return None;
    };
    // DuckDB reads an empty field as NULL whatever `nullstr` says.
    if !null_values.iter().any(String::is_empty) || !delimiter.is_ascii() || !quote.is_ascii() {
        return None;
    }
    let mut types = Vec::with_capacity(scan.columns.len());
    let mut values = Vec::with_capacity(scan.columns.len());
    for (i, (_, data_type)) in scan.columns.iter().enumerate() {
        let column = format!("c{i}");
        types.push(format!("'{column}': 'VARCHAR'"));
        values.push(match data_type {
            DataType::Utf8 => column,
            other => format!("{}({column})", function_for(other)?),
        });
    }
    let char_literal = |c: u8| quote_literal(&(c as char).to_string());
    let nulls: Vec<String> = null_values.iter().map(|n| quote_literal(n)).collect();
    Some(format!(
        "SELECT {values} FROM read_csv({path}, auto_detect = false, header = false, \
         skip = {skip}, columns = {{{types}}}, delim = {delim}, quote = {quote}, \
         escape = {quote}, nullstr = [{nulls}], allow_quoted_nulls = true, \
         strict_mode = true, null_padding = false, max_line_size = {max_row_bytes}, \
         buffer_size = {READ_BUFFER}, compression = 'none')",
        values = values.join(", "),
        path = quote_literal(&scan.path.to_string_lossy()),
        skip = usize::from(*header),
        types = types.join(", "),
        delim = char_literal(*delimiter),
        quote = char_literal(*quote),
        nulls = nulls.join(", "),
    ))
}

/// The bytes each of DuckDB's threads reads at a time: several of them fit
/// the default `load_memory_limit` (DuckDB's default, 32 MB, does not).
const READ_BUFFER: usize = 4 << 20;

/// A type the conversion functions convert to.
trait Target: 'static {
    /// The SQL function's name.
    const FUNCTION: &'static str;
    /// How DuckDB's vectors of the type store a value.
    type Native: Copy;
    /// DuckDB's type of the result.
    fn logical_type() -> LogicalTypeId;
    /// The Arrow type [`convert::text_to_typed`] converts to.
    fn data_type() -> DataType;
    /// One value converted as [`convert::text_to_typed`] converts it in an inferred
    /// column of the type; `None` where the column would widen.
    fn exact(text: &str) -> Option<Self::Native>;
}

macro_rules! target {
    ($name:ident, $function:literal, $native:ty, $logical:ident, $data_type:expr, $exact:expr) => {
        #[doc = concat!("`", $function, "(text)`.")]
        struct $name;

        impl Target for $name {
            const FUNCTION: &'static str = $function;
            type Native = $native;
            fn logical_type() -> LogicalTypeId {
                LogicalTypeId::$logical
            }
            fn data_type() -> DataType {
                $data_type
            }
            fn exact(text: &str) -> Option<$native> {
                $exact(text)
            }
        }
    };
}

// DuckDB stores BIGINT as i64, DOUBLE as f64, BOOLEAN as one byte, DATE as
// days since 1970-01-01 (i32), TIMESTAMP and TIMESTAMPTZ as microseconds
// since 1970-01-01 UTC (i64): the values the conversions give.
target!(
    Bigint,
    "flowline_exact_bigint",
    i64,
    Bigint,
    DataType::Int64,
    numbers::exact_i64
);
target!(
    Double,
    "flowline_exact_double",
    f64,
    Double,
    DataType::Float64,
    numbers::exact_f64
);
target!(
    Boolean,
    "flowline_exact_boolean",
    bool,
    Boolean,
    DataType::Boolean,
    convert::inferred_boolean
);
target!(
    Date,
    "flowline_exact_date",
    i32,
    Date,
    DataType::Date32,
    convert::inferred_date
);
target!(
    Timestamp,
    "flowline_exact_timestamp",
    i64,
    Timestamp,
    DataType::Timestamp(TimeUnit::Microsecond, None),
    |text| convert::inferred_timestamp(text, false)
);
target!(
    TimestampTz,
    "flowline_exact_timestamptz",
    i64,
    TimestampTZ,
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
    |text| convert::inferred_timestamp(text, true)
);

/// Text converted to `T` as [`convert::text_to_typed`] converts an inferred
/// column's values: the query fails on a value that does not fit `T`
/// exactly.
struct Exact<T>(PhantomData<T>);

impl<T: Target> VScalar for Exact<T> {
    type State = ();

    fn invoke(
        _: &Self::State,
        input: &mut DataChunkHandle,
        output: &mut dyn WritableVector,
    ) -> std::result::Result<(), Box<dyn StdError>> {
        let rows = input.len();
        let text = input.flat_vector(0);
        // SAFETY: the one parameter is VARCHAR, whose vectors hold
        // `duckdb_string_t`, and DuckDB flattens the input of C API
        // functions; the slice is read only while `input` lives.
        let strings = unsafe { text.as_slice_with_len::<duckdb_string_t>(rows) };
        let mut result = output.flat_vector();
        let mut nulls = Vec::new();
        {
            // SAFETY: `T::Native` is how the result type stores a value,
            // and DuckDB sizes the output for the input's rows.
            let slots = unsafe { result.as_mut_slice_with_len::<T::Native>(rows) };
            for (row, (string, slot)) in strings.iter().zip(slots.iter_mut()).enumerate() {
                if text.row_is_null(row as u64) {
                    nulls.push(row);
                    continue;
                }
                // SAFETY: DuckDB's VARCHAR values are valid UTF-8 (its CSV
                // reader checks the file's text as it reads it).
                let value = unsafe { std::str::from_utf8_unchecked(string_bytes(string)) };
                *slot = T::exact(value).ok_or_else(|| {
                    format!(
                        "a value does not convert to {} exactly",
                        duckdb_type(&T::data_type())
                    )
                })?;
            }
        }
        for row in nulls {
            result.set_null(row);
        }
        Ok(())
    }

    fn signatures() -> Vec<ScalarFunctionSignature> {
        vec![ScalarFunctionSignature::exact(
            vec![LogicalTypeId::Varchar.into()],
            T::logical_type().into(),
        )]
    }
}

/// The bytes of `string`, an element of one of DuckDB's vectors: a short
/// string is held in the element itself, a longer one points elsewhere.
fn string_bytes(string: &duckdb_string_t) -> &[u8] {
    // SAFETY: `string` is an initialized element of a VARCHAR vector that
    // lives as long as the borrow; its data is inside it or in the vector's
    // string heap, `length` bytes long.
    unsafe {
        let length = duckdb_string_t_length(*string) as usize;
        let data = duckdb_string_t_data(std::ptr::from_ref(string).cast_mut());
        std::slice::from_raw_parts(data.cast::<u8>(), length)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn connection() -> duckdb::Connection {
        let conn = duckdb::Connection::open_in_memory().expect("in memory");
        register(&conn).expect("registers");
        conn
    }

    fn text(conn: &duckdb::Connection, sql: &str) -> std::result::Result<String, String> {
        conn.query_row(&format!("SELECT ({sql})::VARCHAR"), [], |row| {
            row.get::<_, Option<String>>(0)
        })
        .map(|v| v.unwrap_or_else(|| "NULL".into()))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn values_convert_as_flowline_converts_them() {
        let conn = connection();
        for (sql, expected) in [
            ("flowline_exact_bigint('-12')", "-12"),
            ("flowline_exact_bigint('007')", "7"),
            ("flowline_exact_bigint(NULL)", "NULL"),
            ("flowline_exact_double('2.50')", "2.5"),
            ("flowline_exact_double('1e3')", "1000.0"),
            ("flowline_exact_boolean('TRUE')", "true"),
            ("flowline_exact_date('2024-02-29')", "2024-02-29"),
            (
                "flowline_exact_timestamp('2024-02-29T10:11:12.5')",
                "2024-02-29 10:11:12.5",
            ),
        ] {
            assert_eq!(text(&conn, sql).as_deref(), Ok(expected), "{sql}");
        }
    }

    #[test]
    fn a_value_that_would_widen_its_column_fails_the_query() {
        let conn = connection();
        for sql in [
            "flowline_exact_bigint('2.5')",
            "flowline_exact_bigint('+1')",
            "flowline_exact_bigint(' 1')",
            "flowline_exact_double('9007199254740993')",
            "flowline_exact_double('NaN')",
            "flowline_exact_boolean('1')",
            "flowline_exact_date('2024-02-30')",
            "flowline_exact_date('2024-2-29')",
        ] {
            let error = text(&conn, sql).expect_err(sql);
            assert!(error.contains("exactly"), "{sql}: {error}");
        }
    }

    fn scan(columns: &[(&str, DataType)], null_values: &[&str]) -> FileScan {
        FileScan {
            path: PathBuf::from("/data/it's.csv"),
            name: "it's.csv".into(),
            format: ScanFormat::Csv {
                delimiter: b';',
                quote: b'"',
                header: true,
                null_values: null_values.iter().map(|v| v.to_string()).collect(),
                max_row_bytes: 10_000,
            },
            columns: columns
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        }
    }

    #[test]
    fn the_query_reads_every_column_as_text_and_converts_it() {
        let sql = select(&scan(
            &[("id", DataType::Int64), ("name", DataType::Utf8)],
            &["", "NA"],
        ))
        .expect("a query");
        assert!(
            sql.starts_with("SELECT flowline_exact_bigint(c0), c1 FROM read_csv('/data/it''s.csv'")
        );
        assert!(
            sql.contains("skip = 1, columns = {'c0': 'VARCHAR', 'c1': 'VARCHAR'}, delim = ';'")
        );
        assert!(sql.contains("nullstr = ['', 'NA']"));
    }

    #[test]
    fn files_duckdb_reads_differently_are_left_to_flowline() {
        assert_eq!(
            select(&scan(&[("a", DataType::Utf8)], &["NA"])),
            None,
            "'' kept"
        );
        assert_eq!(
            select(&scan(&[("a", DataType::Decimal128(10, 2))], &[""])),
            None,
            "no exact decimal function"
        );
    }
}
