//! Text columns to typed columns, one bad value costing one row, not a
//! batch, and no value changed on the way.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, StringArray, TimestampMicrosecondArray,
};
use arrow::compute::kernels::cast_utils::{Parser, string_to_datetime};
use arrow::compute::{
    CastOptions, cast_single_string_to_boolean_default, cast_with_options, filter,
};
use arrow::datatypes::{
    ArrowTimestampType, DataType, Date32Type, Field, Schema, SchemaRef, TimeUnit,
    TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use chrono::Utc;

use super::infer::Inferred;
use super::numbers;
use super::types::duckdb_type;
use crate::core::error::{Error, Result};

/// A row that could not be converted, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// Index of the row in the input columns.
    pub row: usize,
    /// What failed, naming the column and value.
    pub reason: String,
}

/// Casts text `columns` to the types of `schema`. Rows holding a value that
/// does not parse are left out of the batch and reported as [`BadRow`]s.
pub fn text_to_batch(
    schema: &SchemaRef,
    columns: Vec<StringArray>,
) -> Result<(RecordBatch, Vec<BadRow>)> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut bad: Vec<Option<String>> = vec![None; rows];
    let mut typed: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    for (field, text) in schema.fields().iter().zip(columns) {
        if field.data_type() == &DataType::Utf8 {
            typed.push(Arc::new(text));
            continue;
        }
        let array = cast_with_options(&text, field.data_type(), &options)
            .map_err(|e| Error::arrow(format!("column \"{}\"", field.name()), e))?;
        if array.null_count() != text.null_count() {
            for (row, slot) in bad.iter_mut().enumerate() {
                if array.is_null(row) && !text.is_null(row) && slot.is_none() {
                    *slot = Some(format!(
                        "column \"{}\": cannot convert {:?} to {}",
                        field.name(),
                        text.value(row),
                        duckdb_type(field.data_type())
                    ));
                }
            }
        }
        typed.push(array);
    }
    keep_good_rows(schema.clone(), typed, bad)
}

/// The type a text column is converted to, and who chose it.
#[derive(Debug, Clone, PartialEq)]
pub struct TextTarget {
    /// The column's name.
    pub name: String,
    /// Its type.
    pub data_type: DataType,
    /// Whether the user declared the type: a value it cannot hold exactly
    /// rejects its row. An inferred type widens instead.
    pub declared: bool,
}

/// What [`text_to_typed`] made of a batch of text columns.
#[derive(Debug)]
pub struct Typed {
    /// The rows kept, each column in its target type or a wider one.
    pub batch: RecordBatch,
    /// The rows left out, with why (declared types only).
    pub bad: Vec<BadRow>,
    /// The columns (by index) widened to hold this batch, and their new type.
    pub widened: Vec<(usize, DataType)>,
}

/// Converts text `columns` to `targets`, never changing a value: numbers
/// convert exactly (see [`numbers`]); a value an inferred type cannot hold
/// widens its column (integer -> double when exact -> text; any other type
/// -> text), and one a declared type cannot hold rejects its row.
pub fn text_to_typed(targets: &[TextTarget], columns: Vec<StringArray>) -> Result<Typed> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut bad: Vec<Option<String>> = vec![None; rows];
    let mut fields = Vec::with_capacity(columns.len());
    let mut typed: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    let mut widened = Vec::new();
    for (index, (target, text)) in targets.iter().zip(columns).enumerate() {
        let (data_type, array) = match convert_column(target, &text)? {
            Column::Fits(array) => (target.data_type.clone(), array),
            Column::Widened(data_type, array) => {
                widened.push((index, data_type.clone()));
                (data_type, array)
            }
            Column::Rejects(array, rejected) => {
                for (row, reason) in rejected {
                    bad[row].get_or_insert(reason);
                }
                (target.data_type.clone(), array)
            }
        };
        fields.push(Field::new(&target.name, data_type, true));
        typed.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let (batch, bad) = keep_good_rows(schema, typed, bad)?;
    Ok(Typed {
        batch,
        bad,
        widened,
    })
}

/// One converted column.
enum Column {
    /// Every value fits the target type.
    Fits(ArrayRef),
    /// The column needed a wider (inferred) type.
    Widened(DataType, ArrayRef),
    /// These rows hold values the declared type cannot hold.
    Rejects(ArrayRef, Vec<(usize, String)>),
}

fn convert_column(target: &TextTarget, text: &StringArray) -> Result<Column> {
    let data_type = &target.data_type;
    if data_type == &DataType::Utf8 {
        return Ok(Column::Fits(Arc::new(text.clone())));
    }
    let cannot = |row: usize| {
        format!(
            "column \"{}\": cannot convert {:?} to {}",
            target.name,
            text.value(row),
            duckdb_type(data_type)
        )
    };
    if is_number(data_type) {
        return Ok(match numbers::exact(text, data_type) {
            numbers::Exact::Fits(array) => Column::Fits(array),
            numbers::Exact::Misfits(rows) if target.declared => Column::Rejects(
                numbers::exact_or_null(text, data_type)?,
                rows.into_iter().map(|row| (row, cannot(row))).collect(),
            ),
            numbers::Exact::Misfits(_) => {
                let (wider, array) = numbers::widest(text)?;
                Column::Widened(wider, array)
            }
        });
    }
    let as_text = || Column::Widened(DataType::Utf8, Arc::new(text.clone()));
    if !target.declared
        && let Some(converted) = convert_by_value(data_type, text)
    {
        return Ok(converted.map_or_else(as_text, Column::Fits));
    }
    if !target.declared && !holds_all(data_type, text) {
        return Ok(as_text());
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let array = cast_with_options(text, data_type, &options)
        .map_err(|e| Error::arrow(format!("column \"{}\"", target.name), e))?;
    let rounded = rounded_decimals(text, &array)?;
    if array.null_count() == text.null_count() && rounded.is_empty() {
        return Ok(Column::Fits(array));
    }
    if !target.declared {
        return Ok(as_text());
    }
    let mut rejected: Vec<(usize, String)> = (0..text.len())
        .filter(|&row| array.is_null(row) && !text.is_null(row))
        .map(|row| (row, cannot(row)))
        .collect();
    rejected.extend(
        rounded
            .into_iter()
            .map(|row| (row, format!("{} without rounding", cannot(row)))),
    );
    Ok(Column::Rejects(array, rejected))
}

/// The rows of a decimal column converted from `text` whose value is not
/// the number written (arrow rounds `1.255` to `1.26` in `DECIMAL(10,2)`).
fn rounded_decimals(text: &StringArray, array: &ArrayRef) -> Result<Vec<usize>> {
    if !matches!(
        array.data_type(),
        DataType::Decimal128(..) | DataType::Decimal256(..)
    ) {
        return Ok(Vec::new());
    }
    let back = cast_with_options(array, &DataType::Utf8, &CastOptions::default())
        .map_err(|e| Error::arrow("reading decimals back", e))?;
    let back = back
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| Error::Other("a decimal cast to text is not text".into()))?;
    Ok((0..text.len())
        .filter(|&row| {
            array.is_valid(row) && plain_number(text.value(row)) != plain_number(back.value(row))
        })
        .collect())
}

/// A decimal number's text without sign noise or padding zeros:
/// `+001.50` -> `1.5`, `-0.0` -> `0`.
fn plain_number(text: &str) -> String {
    let text = text.trim();
    let (negative, text) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let whole = whole.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let body = match (whole.is_empty(), fraction.is_empty()) {
        (true, true) => return "0".into(),
        (_, true) => whole.to_string(),
        (true, false) => format!("0.{fraction}"),
        (false, false) => format!("{whole}.{fraction}"),
    };
    if negative { format!("-{body}") } else { body }
}

/// Whether every value of `text` is of the kind inference gives
/// `data_type` (so `1` is no boolean and a timestamp no date).
fn holds_all(data_type: &DataType, text: &StringArray) -> bool {
    let Some(kind) = Inferred::of_type(data_type) else {
        return true;
    };
    text.iter().flatten().all(|value| kind.holds(value))
}

/// One value of an inferred BOOLEAN column as [`text_to_typed`] converts
/// it; `None` where the column would widen to text.
pub fn inferred_boolean(text: &str) -> Option<bool> {
    Inferred::Boolean
        .holds(text)
        .then(|| cast_single_string_to_boolean_default(text))
        .flatten()
}

/// One value of an inferred DATE column (days since 1970-01-01) as
/// [`text_to_typed`] converts it; `None` where the column would widen.
pub fn inferred_date(text: &str) -> Option<i32> {
    Inferred::Date
        .holds(text)
        .then(|| Date32Type::parse(text))
        .flatten()
}

/// One value of an inferred TIMESTAMP column, or TIMESTAMPTZ with
/// `with_zone` (microseconds since 1970-01-01 UTC), as [`text_to_typed`]
/// converts it; `None` where the column would widen.
pub fn inferred_timestamp(text: &str, with_zone: bool) -> Option<i64> {
    let kind = if with_zone {
        Inferred::TimestampTz
    } else {
        Inferred::Timestamp
    };
    if !kind.holds(text) {
        return None;
    }
    let utc = string_to_datetime(&Utc, text).ok()?.naive_utc();
    TimestampMicrosecondType::from_naive_datetime(utc, None)
}

/// An inferred column of `data_type` converted value by value by the
/// `inferred_*` rules (the ones DuckDB's reads of whole files use too):
/// the array, or `Some(None)` when a value would widen the column; `None`
/// for a type without such a rule.
fn convert_by_value(data_type: &DataType, text: &StringArray) -> Option<Option<ArrayRef>> {
    /// The array of `text` converted by `rule`, nulls kept; `None` at the
    /// first value the rule does not take.
    fn by<A: Array + FromIterator<Option<N>> + 'static, N>(
        text: &StringArray,
        rule: impl Fn(&str) -> Option<N>,
    ) -> Option<A> {
        text.iter()
            .map(|value| value.map_or(Some(None), |v| rule(v).map(Some)))
            .collect()
    }
    let array: Option<ArrayRef> = match data_type {
        DataType::Boolean => {
            by::<BooleanArray, _>(text, inferred_boolean).map(|a| Arc::new(a) as _)
        }
        DataType::Date32 => by::<Date32Array, _>(text, inferred_date).map(|a| Arc::new(a) as _),
        DataType::Timestamp(TimeUnit::Microsecond, None) => {
            by::<TimestampMicrosecondArray, _>(text, |v| inferred_timestamp(v, false))
                .map(|a| Arc::new(a) as _)
        }
        DataType::Timestamp(TimeUnit::Microsecond, Some(zone)) if zone.as_ref() == "UTC" => {
            by::<TimestampMicrosecondArray, _>(text, |v| inferred_timestamp(v, true))
                .map(|a| Arc::new(a.with_timezone(zone.clone())) as _)
        }
        _ => return None,
    };
    Some(array)
}

/// Whether text is converted to this type by [`numbers::exact`].
fn is_number(data_type: &DataType) -> bool {
    data_type.is_integer() || matches!(data_type, DataType::Float64 | DataType::Float32)
}

/// The batch of `columns` without the rows that have a reason in `bad`.
fn keep_good_rows(
    schema: SchemaRef,
    mut columns: Vec<ArrayRef>,
    bad: Vec<Option<String>>,
) -> Result<(RecordBatch, Vec<BadRow>)> {
    let bad_rows: Vec<BadRow> = bad
        .iter()
        .enumerate()
        .filter_map(|(row, reason)| reason.clone().map(|reason| BadRow { row, reason }))
        .collect();
    if !bad_rows.is_empty() {
        let keep = BooleanArray::from(bad.iter().map(|b| b.is_none()).collect::<Vec<bool>>());
        columns = columns
            .iter()
            .map(|col| filter(col, &keep))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::arrow("dropping bad rows", e))?;
    }
    let batch =
        RecordBatch::try_new(schema, columns).map_err(|e| Error::arrow("building a batch", e))?;
    Ok((batch, bad_rows))
}

/// Each row of `batch` as one line of JSON, for dead letters.
pub fn rows_as_json(batch: &RecordBatch) -> Result<Vec<String>> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer
        .write(batch)
        .map_err(|e| Error::arrow("writing rows as JSON", e))?;
    writer
        .finish()
        .map_err(|e| Error::arrow("writing rows as JSON", e))?;
    let text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
    Ok(text.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{Field, Schema};
    use proptest::prelude::*;

    fn target(name: &str, data_type: DataType, declared: bool) -> TextTarget {
        TextTarget {
            name: name.into(),
            data_type,
            declared,
        }
    }

    #[test]
    fn inferred_columns_widen_and_declared_ones_reject_rows() {
        let targets = [
            target("i", DataType::Int64, false),
            target("big", DataType::Int64, false),
            target("b", DataType::Boolean, false),
            target("d", DataType::Int64, true),
        ];
        let columns = vec![
            StringArray::from(vec![Some("1"), Some("2.5"), None]),
            StringArray::from(vec![Some("1"), Some("9007199254740993"), Some("0.5")]),
            StringArray::from(vec![Some("true"), Some("1"), Some("false")]),
            StringArray::from(vec![Some("1"), Some("2"), Some("x")]),
        ];
        let typed = text_to_typed(&targets, columns).expect("converts");
        assert_eq!(
            typed.widened,
            [
                (0, DataType::Float64),
                (1, DataType::Utf8),
                (2, DataType::Utf8)
            ]
        );
        assert_eq!(typed.batch.num_rows(), 2);
        assert_eq!(typed.bad.len(), 1);
        assert_eq!(typed.bad[0].row, 2);
        assert!(
            typed.bad[0]
                .reason
                .contains("cannot convert \"x\" to BIGINT"),
            "{}",
            typed.bad[0].reason
        );
        let big = typed
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(big.value(1), "9007199254740993", "kept as written");
    }

    #[test]
    fn a_date_that_is_no_day_widens_an_inferred_date_column() {
        let targets = [target("d", DataType::Date32, false)];
        let columns = vec![StringArray::from(vec![
            Some("2024-02-29"),
            Some("2024-02-30"),
        ])];
        let typed = text_to_typed(&targets, columns).expect("converts");
        assert_eq!(typed.widened, [(0, DataType::Utf8)]);
        assert!(typed.bad.is_empty());
    }

    #[test]
    fn a_declared_decimal_rejects_values_it_would_round() {
        let targets = [target("d", DataType::Decimal128(10, 2), true)];
        let columns = vec![StringArray::from(vec![
            Some("1.5"),
            Some("1.255"),
            Some("-0.10"),
            Some("+003"),
        ])];
        let typed = text_to_typed(&targets, columns).expect("converts");
        assert_eq!(typed.batch.num_rows(), 3);
        assert_eq!(typed.bad.len(), 1);
        assert_eq!(typed.bad[0].row, 1);
        assert!(
            typed.bad[0].reason.contains("without rounding"),
            "{}",
            typed.bad[0].reason
        );
    }

    #[test]
    fn bad_values_cost_one_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let ids = StringArray::from(vec![Some("1"), Some("two"), None]);
        let names = StringArray::from(vec![Some("a"), Some("b"), Some("c")]);
        let (batch, bad) = text_to_batch(&schema, vec![ids, names]).expect("converts");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].row, 1);
        assert!(bad[0].reason.contains("\"two\""), "{}", bad[0].reason);
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int");
        assert_eq!(col.value(0), 1);
        assert!(col.is_null(1));
    }

    /// What [`text_to_typed`] makes of `value` in an inferred column of
    /// `data_type`: the array holding it, or `None` where the column widens.
    fn converted(value: &str, data_type: DataType) -> Option<ArrayRef> {
        let typed = text_to_typed(
            &[target("v", data_type, false)],
            vec![StringArray::from(vec![value])],
        )
        .expect("converts");
        typed
            .widened
            .is_empty()
            .then(|| typed.batch.column(0).clone())
    }

    /// The per-value conversions agree with the column's on `value`.
    fn agree(value: &str) {
        let boolean = converted(value, DataType::Boolean).map(|a| a.as_boolean().value(0));
        assert_eq!(inferred_boolean(value), boolean, "{value:?} as BOOLEAN");
        let date =
            converted(value, DataType::Date32).map(|a| a.as_primitive::<Date32Type>().value(0));
        assert_eq!(inferred_date(value), date, "{value:?} as DATE");
        for with_zone in [false, true] {
            let zone = with_zone.then(|| "UTC".into());
            let timestamp = converted(value, DataType::Timestamp(TimeUnit::Microsecond, zone))
                .map(|a| a.as_primitive::<TimestampMicrosecondType>().value(0));
            assert_eq!(
                inferred_timestamp(value, with_zone),
                timestamp,
                "{value:?} as a timestamp (zone: {with_zone})"
            );
        }
    }

    #[test]
    fn one_value_converts_as_its_column_converts_it() {
        for value in [
            "true",
            " TRUE ",
            "False",
            "t",
            "1",
            "yes",
            "",
            "x",
            "2024-02-29",
            "2024-02-30",
            "2024-2-29",
            " 2024-02-29",
            "2024-02-29 ",
            "+2024-02-29",
            "0001-01-01",
            "9999-12-31",
            "2024-02-29T10:11:12",
            "2024-02-29 10:11:12.123456",
            "2024-02-29T10:11:12.1234567",
            "2024-02-29T10:11:12Z",
            "2024-02-29T10:11:12+02:00",
            "2024-02-29 10:11:12.5-0700",
            "2024-02-29T10:11",
            "2024-02-29T24:00:00",
            "1969-12-31T23:59:59.999999",
            "2024-02-29T10:11:12 +02:00",
        ] {
            agree(value);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random dates, times, zones and padding convert one by one as
        /// their column converts them.
        #[test]
        fn random_values_convert_as_their_column_converts_them(
            value in "[ ]?[+-]?[0-9]{1,5}-[0-9]{1,2}-[0-9]{1,2}([T ][0-9]{1,2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,8})?)?)?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?[ ]?"
        ) {
            agree(&value);
        }
    }
}
