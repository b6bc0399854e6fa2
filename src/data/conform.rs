//! Exact casts of a column to another type: each value either survives the
//! cast unchanged (it reads back as the value it was) or its row is named,
//! so the caller can widen the column or reject the row, never round.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray, StringBuilder};
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;

use super::convert::rows_as_json;
use super::numbers;
use crate::core::error::{Error, Result};

/// A column cast to another type.
#[derive(Debug)]
pub struct Cast {
    /// The column in the new type; the misfits' values are null in it.
    pub array: ArrayRef,
    /// Rows whose value the new type cannot hold exactly.
    pub misfits: Vec<usize>,
}

/// Casts `array` to `to`. `None` when the types have no cast, or when the
/// values cannot be compared to check it (nested types).
pub fn cast_exact(array: &ArrayRef, to: &DataType) -> Option<Cast> {
    if array.data_type() == to {
        return Some(Cast {
            array: array.clone(),
            misfits: Vec::new(),
        });
    }
    if to.is_numeric()
        && let Some(text) = array.as_any().downcast_ref::<StringArray>()
    {
        // Numbers written as text: "3" is the double 3 and "1e3" is 1000,
        // which a round trip through text would not recognise.
        let (array, misfits) = numbers::convert_exact(text, to)?;
        return Some(Cast { array, misfits });
    }
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let cast = cast_with_options(array, to, &options).ok()?;
    let back = cast_with_options(&cast, array.data_type(), &options).ok()?;
    let changed = distinct(array, &back).ok()?;
    let misfits: Vec<usize> = (0..array.len()).filter(|&row| changed.value(row)).collect();
    let array = if misfits.is_empty() {
        cast
    } else {
        let mut keep = vec![true; array.len()];
        for &row in &misfits {
            keep[row] = false;
        }
        let keep = arrow::array::BooleanArray::from(keep);
        let nulls = arrow::compute::nullif(&cast, &arrow::compute::not(&keep).ok()?).ok()?;
        Arc::new(nulls) as ArrayRef
    };
    Some(Cast { array, misfits })
}

/// A nested column as JSON text, one document per value (nulls stay null):
/// what a text column holds of an object or a list.
pub fn nested_as_json(array: &ArrayRef) -> Result<ArrayRef> {
    let field = Field::new("v", array.data_type().clone(), true);
    let batch = RecordBatch::try_new(Arc::new(Schema::new(vec![field])), vec![array.clone()])
        .map_err(|e| Error::arrow("writing nested values as JSON", e))?;
    let rows = rows_as_json(&batch)?;
    let mut text = StringBuilder::with_capacity(rows.len(), rows.len() * 16);
    for row in rows {
        let value = serde_json::from_str::<serde_json::Value>(&row)
            .ok()
            .and_then(|mut object| object.get_mut("v").map(serde_json::Value::take));
        match value {
            Some(value) if !value.is_null() => text.append_value(value.to_string()),
            _ => text.append_null(),
        }
    }
    Ok(Arc::new(text.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Float64Array, Int32Array, Int64Array};

    fn misfits(array: ArrayRef, to: DataType) -> Vec<usize> {
        cast_exact(&array, &to).expect("a cast").misfits
    }

    #[test]
    fn floats_fit_integers_only_when_whole() {
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![
            Some(2.0),
            Some(2.5),
            None,
            Some(-7.9),
        ]));
        let cast = cast_exact(&floats, &DataType::Int64).expect("a cast");
        assert_eq!(cast.misfits, [1, 3]);
        let ints = cast
            .array
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("i64");
        assert_eq!(ints.value(0), 2);
        assert!(ints.is_null(1) && ints.is_null(2) && ints.is_null(3));
    }

    #[test]
    fn integers_fit_doubles_only_up_to_two_to_the_53rd() {
        let big: ArrayRef = Arc::new(Int64Array::from(vec![
            9_007_199_254_740_992,
            9_007_199_254_740_993,
        ]));
        assert_eq!(misfits(big, DataType::Float64), [1]);
    }

    #[test]
    fn text_fits_numbers_written_exactly() {
        let text: ArrayRef = Arc::new(StringArray::from(vec![
            Some("3"),
            Some("1e3"),
            Some("x"),
            None,
        ]));
        assert_eq!(misfits(text.clone(), DataType::Float64), [2]);
        assert_eq!(misfits(text, DataType::Int64), [1, 2]);
    }

    #[test]
    fn narrowing_integers_and_booleans_checks_each_value() {
        let wide: ArrayRef = Arc::new(Int64Array::from(vec![1, 3_000_000_000]));
        assert_eq!(misfits(wide, DataType::Int32), [1]);
        let narrow: ArrayRef = Arc::new(Int32Array::from(vec![0, 1, 2]));
        assert_eq!(misfits(narrow, DataType::Boolean), [2]);
        let flags: ArrayRef = Arc::new(BooleanArray::from(vec![true, false]));
        assert!(misfits(flags, DataType::Utf8).is_empty());
    }

    #[test]
    fn nested_values_become_json_text() {
        let items = arrow::array::ListArray::from_iter_primitive::<arrow::datatypes::Int64Type, _, _>(
            vec![Some(vec![Some(1), Some(9_007_199_254_740_993)]), None],
        );
        let text = nested_as_json(&(Arc::new(items) as ArrayRef)).expect("json");
        let text = text.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(text.value(0), "[1,9007199254740993]");
        assert!(text.is_null(1));
    }
}
