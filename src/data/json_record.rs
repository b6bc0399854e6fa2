//! One JSON object read straight into the columns of a known schema, value
//! by value, as [`JsonDecoder`](super::json::JsonDecoder) reads a batch of
//! such lines: for readers that write each value where it goes (DuckDB's
//! vectors) without building a batch first.
//!
//! A record is read only when the batch path would load it exactly as read
//! here, into the same schema. Anything else (invalid JSON, a value that
//! is not an object, a key the schema lacks, a nested value, a number its
//! column's type cannot hold exactly) is an error naming it: the batch
//! path would then widen the schema or reject the line, so the caller
//! leaves the file to it.

use std::borrow::Cow;

use arrow::datatypes::DataType;

use super::numbers;

/// The column types a record is read into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `Int64`: numbers (or text) written as integers in range.
    Bigint,
    /// `Float64`: numbers (or text) a double holds exactly.
    Double,
    /// `Boolean`: `true` and `false`.
    Boolean,
    /// `Utf8`: strings as they are, numbers and booleans as written.
    Text,
}

impl Kind {
    /// The kind of a column of `data_type`; `None` for the types read
    /// otherwise (nested, temporal, declared narrower numbers).
    pub fn of(data_type: &DataType) -> Option<Kind> {
        Some(match data_type {
            DataType::Int64 => Kind::Bigint,
            DataType::Float64 => Kind::Double,
            DataType::Boolean => Kind::Boolean,
            DataType::Utf8 => Kind::Text,
            _ => return None,
        })
    }
}

/// One value of a record, converted to its column's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    /// A key the record lacks: NULL in its column.
    Absent,
    /// JSON `null`.
    Null,
    /// A value of a [`Kind::Bigint`] column.
    Bigint(i64),
    /// A value of a [`Kind::Double`] column.
    Double(f64),
    /// A value of a [`Kind::Boolean`] column.
    Boolean(bool),
    /// A value of a [`Kind::Text`] column.
    Text(Cow<'a, str>),
}

/// The columns records are read into, in order.
#[derive(Debug, Clone)]
pub struct RecordColumns {
    names: Vec<String>,
    kinds: Vec<Kind>,
}

impl RecordColumns {
    /// The columns `(name, kind)`, in order.
    pub fn new(columns: impl IntoIterator<Item = (String, Kind)>) -> Self {
        let (names, kinds) = columns.into_iter().unzip();
        RecordColumns { names, kinds }
    }

    /// The columns `(name, data_type)`; `None` if a type is not a [`Kind`].
    pub fn of_types<'n>(
        columns: impl IntoIterator<Item = (&'n String, &'n DataType)>,
    ) -> Option<Self> {
        let columns = columns
            .into_iter()
            .map(|(name, data_type)| Some((name.clone(), Kind::of(data_type)?)))
            .collect::<Option<Vec<_>>>()?;
        Some(Self::new(columns))
    }

    /// The columns' kinds, in order.
    pub fn kinds(&self) -> &[Kind] {
        &self.kinds
    }

    /// The column named `key`, looked for first at `hint` (records tend to
    /// hold their keys in one order).
    fn position(&self, key: &str, hint: usize) -> Option<usize> {
        if self.names.get(hint).is_some_and(|n| n == key) {
            return Some(hint);
        }
        self.names.iter().position(|n| n == key)
    }
}

/// Reads `line`, one JSON object (blanks around it allowed), into `cells`:
/// one per column, [`Cell::Absent`] for the keys it lacks. The error says
/// why the batch path would not load the line as it is.
pub fn read_record<'a>(
    line: &'a str,
    columns: &RecordColumns,
    cells: &mut Vec<Cell<'a>>,
) -> Result<(), String> {
    cells.clear();
    cells.resize(columns.names.len(), Cell::Absent);
    let mut scanner = Scanner { text: line, at: 0 };
    scanner.skip_blanks();
    scanner.expect(b'{')?;
    scanner.skip_blanks();
    let mut next = 0;
    if !scanner.eat(b'}') {
        loop {
            let key = scanner.string()?;
            let key = &key[1..key.len() - 1];
            if key.contains('\\') {
                return Err(format!("key {key:?} is written with escapes"));
            }
            let column = columns
                .position(key, next)
                .ok_or_else(|| format!("key {key:?} is not a column"))?;
            if !matches!(cells[column], Cell::Absent) {
                return Err(format!("key {key:?} appears twice"));
            }
            scanner.skip_blanks();
            scanner.expect(b':')?;
            scanner.skip_blanks();
            let raw = scanner.value()?;
            cells[column] = cell(raw, columns.kinds[column])
                .map_err(|reason| format!("key {key:?}: {reason}"))?;
            next = column + 1;
            scanner.skip_blanks();
            if scanner.eat(b'}') {
                break;
            }
            scanner.expect(b',')?;
            scanner.skip_blanks();
        }
    }
    scanner.skip_blanks();
    if scanner.at < line.len() {
        return Err(format!(
            "text after the object at column {}",
            scanner.at + 1
        ));
    }
    Ok(())
}

/// A cursor over one line, checking it against JSON's grammar as strictly
/// as the batch path's parsers do. Values other than objects' scalars are
/// not read: a nested object or array is refused where it starts.
///
/// serde_json and arrow's JSON reader each read a line several times
/// slower than this, and neither gives a number's text as the file wrote
/// it without building a batch or a value first.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Steps over `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.eat(byte) {
            return Ok(());
        }
        Err(match self.peek() {
            Some(found) => format!(
                "expected '{}' at column {}, found '{}'",
                byte as char,
                self.at + 1,
                found.escape_ascii()
            ),
            None => format!("expected '{}' at the end of the line", byte as char),
        })
    }

    /// The text of the scalar value that starts here.
    fn value(&mut self) -> Result<&'a str, String> {
        match self.peek() {
            Some(b'"') => self.string(),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.word("true"),
            Some(b'f') => self.word("false"),
            Some(b'n') => self.word("null"),
            Some(b'{' | b'[') => Err("a nested value".to_string()),
            _ => Err(format!("expected a value at column {}", self.at + 1)),
        }
    }

    fn word(&mut self, word: &'static str) -> Result<&'a str, String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            return Ok(word);
        }
        Err(format!("expected {word} at column {}", self.at + 1))
    }

    /// A string with its quotes; its escapes are checked, not decoded.
    fn string(&mut self) -> Result<&'a str, String> {
        let start = self.at;
        self.expect(b'"')?;
        let bytes = self.text.as_bytes();
        loop {
            let rest = &bytes[self.at..];
            let Some(stop) = memchr::memchr2(b'"', b'\\', rest) else {
                return Err(format!("a string at column {} never ends", start + 1));
            };
            if let Some(control) = rest[..stop].iter().position(|b| *b < 0x20) {
                return Err(format!(
                    "a control character in a string at column {}",
                    self.at + control + 1
                ));
            }
            self.at += stop + 1;
            if rest[stop] == b'"' {
                return Ok(&self.text[start..self.at]);
            }
            match self.peek() {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
                Some(b'u') => {
                    let hex = bytes.get(self.at + 1..self.at + 5);
                    if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                        return Err(format!("a bad \\u escape at column {}", self.at));
                    }
                    self.at += 5;
                }
                _ => return Err(format!("a bad escape at column {}", self.at)),
            }
        }
    }

    /// A number as JSON writes one: `-`, an integer part without leading
    /// zeros, a fraction, an exponent.
    fn number(&mut self) -> Result<&'a str, String> {
        let start = self.at;
        self.eat(b'-');
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(format!("a bad number at column {}", start + 1)),
        }
        if self.eat(b'.') {
            self.at_least_one_digit(start)?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            self.at_least_one_digit(start)?;
        }
        Ok(&self.text[start..self.at])
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.at += 1;
        }
    }

    fn at_least_one_digit(&mut self, start: usize) -> Result<(), String> {
        let before = self.at;
        self.digits();
        if self.at == before {
            return Err(format!("a bad number at column {}", start + 1));
        }
        Ok(())
    }
}

/// The value written as `raw` (valid JSON) converted to `kind` as the batch
/// path converts it: a string's content, or a number's or boolean's text
/// as written, then for numbers [`numbers::exact_i64`]/[`numbers::exact_f64`].
fn cell(raw: &str, kind: Kind) -> Result<Cell<'_>, String> {
    let text: Cow<'_, str> = match raw.as_bytes().first() {
        Some(b'n') => return Ok(Cell::Null),
        Some(b'{' | b'[') => return Err("a nested value".to_string()),
        Some(b't' | b'f') if kind == Kind::Boolean => return Ok(Cell::Boolean(raw == "true")),
        _ if kind == Kind::Boolean => return Err(format!("{raw} is not a boolean")),
        Some(b'"') => string(raw)?,
        _ => Cow::Borrowed(raw),
    };
    Ok(match kind {
        Kind::Text => Cell::Text(text),
        Kind::Bigint => Cell::Bigint(
            numbers::exact_i64(&text).ok_or_else(|| format!("{raw} is not a BIGINT exactly"))?,
        ),
        Kind::Double => Cell::Double(
            numbers::exact_f64(&text).ok_or_else(|| format!("{raw} is not a DOUBLE exactly"))?,
        ),
        Kind::Boolean => unreachable!("booleans are read above"),
    })
}

/// The content of the JSON string `raw`, borrowed when it has no escapes.
fn string(raw: &str) -> Result<Cow<'_, str>, String> {
    let inner = &raw[1..raw.len() - 1];
    if !inner.contains('\\') {
        return Ok(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw)
        .map(Cow::Owned)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> RecordColumns {
        RecordColumns::new(
            [
                ("id", Kind::Bigint),
                ("v", Kind::Double),
                ("ok", Kind::Boolean),
                ("s", Kind::Text),
            ]
            .map(|(name, kind)| (name.to_string(), kind)),
        )
    }

    fn read(line: &str) -> Result<Vec<Cell<'_>>, String> {
        let mut cells = Vec::new();
        read_record(line, &columns(), &mut cells).map(|()| cells)
    }

    #[test]
    fn reads_values_in_any_key_order_and_absent_keys_as_null() {
        let cells = read(r#" {"s": "a\"b", "id": -3, "v": 2.50} "#).expect("reads");
        assert_eq!(
            cells,
            [
                Cell::Bigint(-3),
                Cell::Double(2.5),
                Cell::Absent,
                Cell::Text("a\"b".into())
            ]
        );
    }

    #[test]
    fn a_text_column_keeps_numbers_and_booleans_as_written() {
        let cells = read(r#"{"s": 1.50e3}"#).expect("reads");
        assert_eq!(cells[3], Cell::Text("1.50e3".into()));
        let cells = read(r#"{"s": true, "id": "12"}"#).expect("reads");
        assert_eq!(cells[3], Cell::Text("true".into()));
        assert_eq!(cells[0], Cell::Bigint(12), "text holding an integer");
    }

    #[test]
    fn refuses_what_the_batch_path_would_widen_or_reject() {
        for line in [
            r#"{"id": 2.5}"#,
            r#"{"id": 9223372036854775808}"#,
            r#"{"v": 9007199254740993}"#,
            r#"{"ok": "true"}"#,
            r#"{"s": {"x": 1}}"#,
            r#"{"new": 1}"#,
            r#"{"id": 1, "id": 2}"#,
            r#"{"i\u0064": 1}"#,
            r#"{"id": 1} x"#,
            r#"{"id": 01}"#,
            "{\"s\": \"a\u{1}\"}",
            r#"{"s": "\ud800"}"#,
            r#"{"id": 1,}"#,
            r#"{"id" 1}"#,
            r#"{"id": tru}"#,
            r#"{"id": -}"#,
            r#"{"id": 1.}"#,
            r#"{"id": 1e}"#,
            r#"{"s": "\x"}"#,
            r#"{"s": "\u12"}"#,
            r#"{"s": "open}"#,
            r#"{"id": 1"#,
            r#"{,}"#,
            "[1]",
            "",
        ] {
            assert!(read(line).is_err(), "{line}");
        }
    }

    /// The batch path's values for `lines` after `first` set the schema,
    /// and whether it kept that schema; `None` if it rejected a line.
    #[allow(clippy::type_complexity)]
    fn batch_path(
        first: &str,
        lines: &[String],
    ) -> Option<(RecordColumns, Option<(bool, Vec<Vec<Cell<'static>>>)>)> {
        use arrow::array::{Array, BooleanArray, Float64Array, Int64Array, StringArray};
        let mut decoder = crate::data::json::JsonDecoder::new(Default::default());
        let origin = |i: usize| format!("#{i}");
        let (first_batch, _) = decoder
            .decode_ndjson(format!("{first}\n").as_bytes(), 1, &origin)
            .expect("decodes");
        let schema = first_batch.schema();
        if schema.fields().is_empty() {
            return None; // the first record was rejected
        }
        // A first record with nested values makes columns read otherwise.
        let columns =
            RecordColumns::of_types(schema.fields().iter().map(|f| (f.name(), f.data_type())))?;
        let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let (batch, bad) = decoder
            .decode_ndjson(text.as_bytes(), lines.len(), &origin)
            .expect("decodes");
        if !bad.is_empty() {
            return Some((columns, None));
        }
        let kept = batch.schema().fields() == schema.fields();
        let rows = (0..batch.num_rows())
            .map(|row| {
                batch
                    .columns()
                    .iter()
                    .map(|column| {
                        let any = column.as_any();
                        if column.is_null(row) {
                            Cell::Null
                        } else if let Some(a) = any.downcast_ref::<Int64Array>() {
                            Cell::Bigint(a.value(row))
                        } else if let Some(a) = any.downcast_ref::<Float64Array>() {
                            Cell::Double(a.value(row))
                        } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
                            Cell::Boolean(a.value(row))
                        } else if let Some(a) = any.downcast_ref::<StringArray>() {
                            Cell::Text(a.value(row).to_string().into())
                        } else {
                            panic!("unexpected column {column:?}")
                        }
                    })
                    .collect()
            })
            .collect();
        Some((columns, Some((kept, rows))))
    }

    /// A JSON value of one of the kinds a record may hold, as a file might
    /// write it.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            "\"[a-z0-9 .:+-]{0,6}\"",
            "\"[\\\\]u00[0-7][0-9a-f]x\"",
            Just("[1, 2]".to_string()),
            Just("{\"x\": 1}".to_string()),
            // Not JSON: lines the batch path rejects.
            prop_oneof![
                Just("tru"),
                Just("1."),
                Just("01"),
                Just("-"),
                Just("1e"),
                Just("+1"),
                Just(".5"),
                Just("\"\\x\""),
                Just("\"a\tb\""),
                Just("\"open"),
                Just("1 2"),
                Just("nul"),
                Just("NaN"),
            ]
            .prop_map(str::to_string),
        ]
    }

    fn record() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            (
                prop_oneof![Just("a"), Just("b"), Just("c"), Just("d")],
                value(),
            ),
            0..5,
        )
        .prop_map(|entries| {
            let entries: Vec<String> = entries
                .iter()
                .map(|(k, v)| format!("\"{k}\": {v}"))
                .collect();
            format!("{{{}}}", entries.join(", "))
        })
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random records read one by one as the batch path reads them:
        /// whenever every line reads, the batch path loads each value the
        /// same and keeps the schema.
        #[test]
        fn random_records_read_as_the_batch_path_reads_them(
            a in value(), b in value(), c in value(), d in value(),
            lines in proptest::collection::vec(record(), 1..6),
        ) {
            let first = format!("{{\"a\": {a}, \"b\": {b}, \"c\": {c}, \"d\": {d}}}");
            let Some((columns, batch)) = batch_path(&first, &lines) else {
                return Ok(());
            };
            let mut cells = Vec::new();
            let read: Option<Vec<Vec<Cell<'_>>>> = lines
                .iter()
                .map(|line| read_record(line, &columns, &mut cells).ok().map(|()| cells.clone()))
                .collect();
            if let Some(mut read) = read {
                // A key a record lacks is NULL in its column, as JSON null is.
                for cell in read.iter_mut().flatten() {
                    if *cell == Cell::Absent {
                        *cell = Cell::Null;
                    }
                }
                let (kept, rows) = batch.expect("the batch path loads every line");
                prop_assert!(kept, "the batch path kept the schema");
                prop_assert_eq!(read, rows);
            }
        }
    }
}
