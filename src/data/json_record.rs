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
//!
//! The same scanner reads the types of a batch of flat records off their
//! text ([`infer_flat_schema`]), where the batch path would otherwise
//! parse every line into a value to learn them.

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
    /// Each name as a key is written, quotes included, when it needs no
    /// escapes: what a record's next key is compared with first.
    keys: Vec<Option<Box<[u8]>>>,
}

impl RecordColumns {
    /// The columns `(name, kind)`, in order.
    pub fn new(columns: impl IntoIterator<Item = (String, Kind)>) -> Self {
        let (names, kinds): (Vec<String>, _) = columns.into_iter().unzip();
        let keys = names
            .iter()
            .map(|name| {
                let plain = !name.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
                plain.then(|| format!("\"{name}\"").into_bytes().into_boxed_slice())
            })
            .collect();
        RecordColumns { names, kinds, keys }
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
            let column = match scanner.key(columns, next) {
                Some(column) => column,
                None => {
                    let (key, escaped) = scanner.string()?;
                    let key = &key[1..key.len() - 1];
                    if escaped {
                        return Err(format!("key {key:?} is written with escapes"));
                    }
                    columns
                        .position(key, next)
                        .ok_or_else(|| format!("key {key:?} is not a column"))?
                }
            };
            let key = &columns.names[column];
            if !matches!(cells[column], Cell::Absent) {
                return Err(format!("key {key:?} appears twice"));
            }
            scanner.skip_blanks();
            scanner.expect(b':')?;
            scanner.skip_blanks();
            scanner
                .cell(columns.kinds[column], &mut cells[column])
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

/// The schema arrow's JSON inference gives `text`'s lines (one object
/// each, blank lines skipped) when every line is valid JSON holding only
/// scalar values under keys written without escapes: each key's type from
/// the values it holds (integers that an `i64` holds, other numbers,
/// strings, booleans; `Null` for a key only ever null), the keys in the
/// order arrow meets them (each record's keys sorted, as serde_json's map
/// holds them). `None` for anything else, which the caller infers from
/// parsed values instead; this reads the text several times faster.
pub fn infer_flat_schema(text: &[u8]) -> Option<Vec<FlatColumn>> {
    let text = std::str::from_utf8(text).ok()?;
    let mut keys: Vec<KeyTypes> = Vec::new();
    // The keys of the last record in its order: where the next record's
    // keys are looked for first.
    let mut last: Vec<usize> = Vec::new();
    let mut record: Vec<usize> = Vec::new();
    let lines = text.split('\n').filter(|line| !line.is_empty());
    for (number, line) in lines.enumerate() {
        record.clear();
        let mut scanner = Scanner { text: line, at: 0 };
        scanner.skip_blanks();
        scanner.expect(b'{').ok()?;
        scanner.skip_blanks();
        if !scanner.eat(b'}') {
            loop {
                let hint = last.get(record.len()).copied();
                let key = match hint.filter(|k| scanner.starts_with(&keys[*k].quoted)) {
                    Some(key) => {
                        scanner.at += keys[key].quoted.len();
                        key
                    }
                    None => {
                        let (raw, escaped) = scanner.string().ok()?;
                        if escaped {
                            return None;
                        }
                        let name = &raw[1..raw.len() - 1];
                        match keys.iter().position(|k| k.name == name) {
                            Some(key) => key,
                            None => {
                                keys.push(KeyTypes::new(name));
                                keys.len() - 1
                            }
                        }
                    }
                };
                if keys[key].last_record.replace(number) == Some(number) {
                    return None; // a key twice in one record
                }
                record.push(key);
                scanner.skip_blanks();
                scanner.expect(b':').ok()?;
                scanner.skip_blanks();
                keys[key].seen |= scanner.scalar_type()?;
                scanner.skip_blanks();
                if scanner.eat(b'}') {
                    break;
                }
                scanner.expect(b',').ok()?;
                scanner.skip_blanks();
            }
        }
        scanner.skip_blanks();
        if scanner.at < line.len() {
            return None;
        }
        // Keys new in this record follow the known ones in sorted order.
        let mut new: Vec<usize> = record
            .iter()
            .copied()
            .filter(|k| keys[*k].order.is_none())
            .collect();
        new.sort_by(|a, b| keys[*a].name.cmp(&keys[*b].name));
        let known = keys.len() - new.len();
        for (offset, key) in new.into_iter().enumerate() {
            keys[key].order = Some(known + offset);
        }
        std::mem::swap(&mut last, &mut record);
    }
    let mut columns: Vec<(usize, FlatColumn)> = keys
        .iter()
        .map(|k| {
            let column = FlatColumn {
                name: k.name.clone(),
                data_type: k.data_type(),
                exact_in_double: k.seen & SEEN_INEXACT == 0,
            };
            Some((k.order?, column))
        })
        .collect::<Option<_>>()?;
    columns.sort_by_key(|(order, _)| *order);
    Some(columns.into_iter().map(|(_, column)| column).collect())
}

/// A column of flat records, as [`infer_flat_schema`] reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct FlatColumn {
    pub name: String,
    /// The type arrow infers for it.
    pub data_type: DataType,
    /// Whether a double holds every number it holds exactly (see
    /// [`numbers::exact_f64`]).
    pub exact_in_double: bool,
}

/// A key met by [`infer_flat_schema`] and the kinds of value it held.
struct KeyTypes {
    name: String,
    /// The key as written, quotes included.
    quoted: Box<[u8]>,
    /// The last record (its number among the lines) that held it.
    last_record: Option<usize>,
    /// [`SEEN_BOOLEAN`] and the others, or-ed.
    seen: u8,
    /// Where it comes in the schema, once its record is done.
    order: Option<usize>,
}

const SEEN_NULL: u8 = 1;
const SEEN_BOOLEAN: u8 = 2;
const SEEN_INTEGER: u8 = 4;
const SEEN_FLOAT: u8 = 8;
const SEEN_STRING: u8 = 16;
/// A number a double does not hold exactly: not a type of its own.
const SEEN_INEXACT: u8 = 32;
const SEEN_NUMBER: u8 = SEEN_INTEGER | SEEN_FLOAT;

impl KeyTypes {
    fn new(name: &str) -> Self {
        KeyTypes {
            name: name.to_string(),
            quoted: format!("\"{name}\"").into_bytes().into_boxed_slice(),
            last_record: None,
            seen: 0,
            order: None,
        }
    }

    /// The type arrow gives a key that held these kinds of value.
    fn data_type(&self) -> DataType {
        match self.seen & !(SEEN_NULL | SEEN_INEXACT) {
            0 => DataType::Null,
            SEEN_BOOLEAN => DataType::Boolean,
            SEEN_INTEGER => DataType::Int64,
            SEEN_FLOAT | SEEN_NUMBER => DataType::Float64,
            _ => DataType::Utf8,
        }
    }
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

// The small steps below run for every byte or value of a file: they are
// inlined whatever the build's optimisation level.
impl<'a> Scanner<'a> {
    #[inline(always)]
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    #[inline(always)]
    fn skip_blanks(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    /// Steps over `byte` if it comes next.
    #[inline(always)]
    fn eat(&mut self, byte: u8) -> bool {
        let next = self.peek() == Some(byte);
        self.at += usize::from(next);
        next
    }

    #[inline(always)]
    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.eat(byte) {
            return Ok(());
        }
        Err(self.missing(byte))
    }

    /// Why `byte` was expected here and is not.
    #[cold]
    fn missing(&self, byte: u8) -> String {
        match self.peek() {
            Some(found) => format!(
                "expected '{}' at column {}, found '{}'",
                byte as char,
                self.at + 1,
                found.escape_ascii()
            ),
            None => format!("expected '{}' at the end of the line", byte as char),
        }
    }

    /// The column whose key comes next, stepped over, when it is the
    /// column after the last one read (records tend to hold their keys in
    /// one order) and its name needs no escapes; `None`, the cursor
    /// unmoved, otherwise.
    #[inline(always)]
    fn key(&mut self, columns: &RecordColumns, next: usize) -> Option<usize> {
        let key = columns.keys.get(next)?.as_deref()?;
        self.starts_with(key).then(|| {
            self.at += key.len();
            next
        })
    }

    /// Whether the text from here starts with `bytes`.
    #[inline(always)]
    fn starts_with(&self, bytes: &[u8]) -> bool {
        self.text.as_bytes()[self.at..].starts_with(bytes)
    }

    /// The kind of the scalar value that starts here, stepped over, as
    /// serde_json reads it (one of the `SEEN_` bits, with [`SEEN_INEXACT`]
    /// for a number a double does not hold exactly); `None` for a nested
    /// value or one serde_json refuses (a number out of a double's range,
    /// a lone surrogate).
    fn scalar_type(&mut self) -> Option<u8> {
        Some(match self.peek()? {
            b'"' => {
                let (raw, escaped) = self.string().ok()?;
                if escaped {
                    serde_json::from_str::<String>(raw).ok()?;
                }
                SEEN_STRING
            }
            b't' | b'f' => {
                self.value().ok()?;
                SEEN_BOOLEAN
            }
            b'n' => {
                self.value().ok()?;
                SEEN_NULL
            }
            _ => {
                let number = self.number().ok()?;
                // serde_json reads `-0` as a float, and integers beyond
                // an i64 too.
                let kind = if number != "-0" && number.parse::<i64>().is_ok() {
                    SEEN_INTEGER
                } else {
                    SEEN_FLOAT
                };
                if numbers::exact_f64(number).is_some() {
                    kind
                } else {
                    // serde_json refuses a float out of a double's range.
                    if kind == SEEN_FLOAT {
                        number.parse::<f64>().ok().filter(|v| v.is_finite())?;
                    }
                    kind | SEEN_INEXACT
                }
            }
        })
    }

    /// The value that starts here, converted to `kind`, into `slot`.
    /// (Written in place: a cell moved out of a result costs more than
    /// reading it, at every value of a file.)
    fn cell(&mut self, kind: Kind, slot: &mut Cell<'a>) -> Result<(), String> {
        *slot = match self.peek() {
            Some(b'"') => {
                let (raw, escaped) = self.string()?;
                if kind == Kind::Text && !escaped {
                    *slot = Cell::Text(Cow::Borrowed(&raw[1..raw.len() - 1]));
                    return Ok(());
                }
                cell(raw, kind)?
            }
            Some(b'-' | b'0'..=b'9') => {
                if self.plain_number(kind, slot) {
                    return Ok(());
                }
                cell(self.number()?, kind)?
            }
            _ => cell(self.value()?, kind)?,
        };
        Ok(())
    }

    /// The text of the scalar value that starts here.
    fn value(&mut self) -> Result<&'a str, String> {
        match self.peek() {
            Some(b'"') => self.string().map(|(raw, _)| raw),
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

    /// A string with its quotes, and whether it holds escapes; its escapes
    /// are checked, not decoded.
    fn string(&mut self) -> Result<(&'a str, bool), String> {
        let start = self.at;
        self.expect(b'"')?;
        let bytes = self.text.as_bytes();
        let mut escaped = false;
        loop {
            // Eight bytes at a time up to a byte that is not plain text.
            while let Some(word) = bytes[self.at..].first_chunk::<8>() {
                let stops = string_stops(u64::from_le_bytes(*word));
                if stops != 0 {
                    self.at += (stops.trailing_zeros() / 8) as usize;
                    break;
                }
                self.at += 8;
            }
            match self.peek() {
                None => return Err(format!("a string at column {} never ends", start + 1)),
                Some(b'"') => {
                    self.at += 1;
                    return Ok((&self.text[start..self.at], escaped));
                }
                Some(b'\\') => {
                    escaped = true;
                    self.at += 1;
                    self.escape()?;
                }
                Some(0..0x20) => {
                    return Err(format!(
                        "a control character in a string at column {}",
                        self.at + 1
                    ));
                }
                Some(_) => self.at += 1,
            }
        }
    }

    /// Steps over the escape after a backslash, checked.
    fn escape(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.at += 1,
            Some(b'u') => {
                let hex = self.text.as_bytes().get(self.at + 1..self.at + 5);
                if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                    return Err(format!("a bad \\u escape at column {}", self.at));
                }
                self.at += 5;
            }
            _ => return Err(format!("a bad escape at column {}", self.at)),
        }
        Ok(())
    }

    /// The number that starts here read straight into `kind`, when it is
    /// a plain one: an integer of up to 18 digits for a BIGINT column, or
    /// up to 15 digits with a fraction and no exponent for a DOUBLE, which
    /// a double holds as written. The values are those of
    /// [`numbers::exact_i64`] and [`numbers::exact_f64`], written into
    /// `slot`. False, the cursor unmoved, for any other number, left to
    /// [`Self::number`] and [`cell`].
    fn plain_number(&mut self, kind: Kind, slot: &mut Cell<'a>) -> bool {
        /// Powers of ten up to the 15th, each a double exactly.
        const POWERS: [f64; 16] = [
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        ];
        let most_digits = match kind {
            Kind::Bigint => 18,
            Kind::Double => 15,
            Kind::Boolean | Kind::Text => return false,
        };
        let bytes = self.text.as_bytes();
        let mut at = self.at;
        let negative = bytes.get(at) == Some(&b'-');
        at += usize::from(negative);
        let mut mantissa: u64 = 0;
        let mut digits = 0;
        let mut fraction = None;
        loop {
            match bytes.get(at) {
                Some(b @ b'0'..=b'9') if digits < most_digits => {
                    // At most 18 digits: no overflow to check.
                    mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
                    digits += 1;
                }
                Some(b'.') if kind == Kind::Double && fraction.is_none() => fraction = Some(digits),
                Some(b'0'..=b'9' | b'.' | b'e' | b'E') => return false,
                _ => break,
            }
            at += 1;
        }
        let whole = fraction.unwrap_or(digits);
        let leading_zero = whole > 1 && bytes[self.at + usize::from(negative)] == b'0';
        if whole == 0 || fraction == Some(digits) || leading_zero {
            return false;
        }
        self.at = at;
        // `mantissa` has at most 18 digits: it fits an i64, and with at
        // most 15 a double holds it, and a power of ten up to 1e15, exactly,
        // so one division rounds as parsing the text does.
        let signed = if negative {
            -(mantissa as i64)
        } else {
            mantissa as i64
        };
        *slot = match (kind, fraction) {
            (Kind::Bigint, _) => Cell::Bigint(signed),
            (_, None) => Cell::Double(signed as f64),
            (_, Some(whole)) => {
                let value = mantissa as f64 / POWERS[digits - whole];
                Cell::Double(if negative { -value } else { value })
            }
        };
        true
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

/// The bytes of `word` (eight of a line, the first lowest) at which a
/// string's plain text stops: a quote, a backslash, a control character.
/// The lowest one set is exact; bytes above it may be set spuriously.
fn string_stops(word: u64) -> u64 {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let below = |word: u64, byte: u8| word.wrapping_sub(ONES * u64::from(byte)) & !word & HIGHS;
    below(word ^ (ONES * u64::from(b'"')), 1)
        | below(word ^ (ONES * u64::from(b'\\')), 1)
        | below(word, 0x20)
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

    impl<'a> Scanner<'a> {
        fn plain_number_cell(&mut self, kind: Kind) -> Option<Cell<'a>> {
            let mut cell = Cell::Absent;
            self.plain_number(kind, &mut cell).then_some(cell)
        }
    }

    /// The schema arrow infers from `text`'s lines parsed as values, as
    /// `(name, type)` pairs; `None` if a line is not JSON.
    fn arrow_inferred(text: &str) -> Option<Vec<(String, DataType)>> {
        let values = text
            .split('\n')
            .filter(|l| !l.is_empty())
            .map(serde_json::from_str::<serde_json::Value>)
            .collect::<Result<Vec<_>, _>>()
            .ok()?;
        let schema =
            arrow::json::reader::infer_json_schema_from_iterator(values.iter().map(Ok)).ok()?;
        Some(
            schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect(),
        )
    }

    #[test]
    fn flat_records_infer_the_types_arrow_infers() {
        let text = concat!(
            "{\"z\": 1, \"a\": -0, \"n\": null, \"big\": 9223372036854775808}\n",
            "\n",
            "{\"m\": true, \"z\": 2.5, \"b\": \"x\", \"low\": -9223372036854775808}\n",
            "{\"m\": 1, \"a\": -1}\n",
        );
        let inferred = infer_flat_schema(text.as_bytes()).expect("flat");
        let exact: Vec<bool> = inferred.iter().map(|c| c.exact_in_double).collect();
        assert_eq!(
            exact,
            [true, false, true, true, true, false, true],
            "2^63 and -2^63 are no doubles exactly"
        );
        let inferred: Vec<(String, DataType)> = inferred
            .into_iter()
            .map(|c| (c.name, c.data_type))
            .collect();
        let expected = [
            ("a", DataType::Float64),
            ("big", DataType::Float64),
            ("n", DataType::Null),
            ("z", DataType::Float64),
            ("b", DataType::Utf8),
            ("low", DataType::Int64),
            ("m", DataType::Utf8),
        ]
        .map(|(name, data_type)| (name.to_string(), data_type));
        assert_eq!(inferred, expected);
        assert_eq!(arrow_inferred(text), Some(expected.to_vec()));
        for text in [
            "{\"a\": 1e400}",
            "{\"a\": \"\\ud800\"}",
            "{\"a\": [1]}",
            "{\"a\": 1, \"a\": 2}",
            "{\"\\u0061\": 1}",
            "   ",
            "{\"a\": 1} 2",
        ] {
            assert_eq!(infer_flat_schema(text.as_bytes()), None, "{text}");
        }
        assert_eq!(infer_flat_schema(b"{\"a\": \"\xff\"}"), None, "not UTF-8");
    }

    /// A number as a file might write one, valid or not.
    fn number_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,20})?([eE][+-]?[0-9]{1,3})?",
            "-?[0-9.eE+-]{1,8}",
        ]
    }

    /// A JSON string's content as a file might write it: plain text,
    /// escapes good and bad, quotes, control characters, long runs.
    fn string_content() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just("a"),
                Just("é"),
                Just("plain text, longer than a word"),
                Just("\""),
                Just("\\"),
                Just("\\\\"),
                Just("\\\""),
                Just("\\n"),
                Just("\\u00e9"),
                Just("\\ud800"),
                Just("\\x"),
                Just("\t"),
                Just("\u{1f}"),
                Just("\u{7f}"),
            ],
            0..8,
        )
        .prop_map(|pieces| pieces.concat())
    }

    #[test]
    fn plain_numbers_read_as_the_text_converts() {
        for (text, kind, cell) in [
            ("-0", Kind::Double, Some(Cell::Double(0.0))),
            ("-0.0", Kind::Double, Some(Cell::Double(-0.0))),
            ("0.1", Kind::Double, Some(Cell::Double(0.1))),
            (
                "123456789012345",
                Kind::Double,
                Some(Cell::Double(123_456_789_012_345.0)),
            ),
            ("1234567890123456", Kind::Double, None),
            ("0.000000000000001", Kind::Double, None),
            (
                "999999999999999999",
                Kind::Bigint,
                Some(Cell::Bigint(999_999_999_999_999_999)),
            ),
            ("-9999999999999999999", Kind::Bigint, None),
            ("1.5", Kind::Bigint, None),
            ("1e3", Kind::Double, None),
            ("01", Kind::Bigint, None),
            ("1.", Kind::Double, None),
            ("-", Kind::Double, None),
            ("7", Kind::Text, None),
        ] {
            let mut scanner = Scanner { text, at: 0 };
            let read = scanner.plain_number_cell(kind);
            assert_eq!(read, cell, "{text}");
            if let Some(Cell::Double(value)) = read {
                assert_eq!(
                    value.to_bits(),
                    numbers::exact_f64(text).map(f64::to_bits).expect("exact"),
                    "{text}"
                );
            }
            assert_eq!(
                scanner.at,
                if read.is_some() { text.len() } else { 0 },
                "{text}"
            );
        }
    }

    /// A record of scalar values under keys that sort in several ways.
    fn flat_record() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("-0".to_string()),
            "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{1,3})?([eE][+-]?[0-9]{1,3})?",
            "\"[a-z ]{0,12}\"",
        ];
        let key = prop_oneof![Just("a"), Just("B"), Just("é"), Just("a b"), Just("z")];
        proptest::collection::vec((key, scalar), 0..6).prop_map(|entries| {
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

        /// A plain number read straight into its column is the text the
        /// scanner reads as a number, converted: the same value to the bit.
        #[test]
        fn plain_numbers_are_the_values_their_text_converts_to(
            text in number_text(),
            double in any::<bool>(),
        ) {
            let kind = if double { Kind::Double } else { Kind::Bigint };
            let line = format!("{text},");
            let mut scanner = Scanner { text: &line, at: 0 };
            if let Some(read) = scanner.plain_number_cell(kind) {
                let mut generic = Scanner { text: &line, at: 0 };
                let raw = generic.number().expect("a number");
                prop_assert_eq!(scanner.at, generic.at, "the same text read");
                let converted = cell(raw, kind).expect("converts");
                let bits = |cell: &Cell<'_>| match cell {
                    Cell::Double(value) => Some(value.to_bits()),
                    _ => None,
                };
                prop_assert_eq!(bits(&read), bits(&converted));
                prop_assert_eq!(read, converted);
            }
        }

        /// A string value reads as serde_json reads it, or not at all
        /// where serde_json refuses it.
        #[test]
        fn strings_read_as_serde_json_reads_them(content in string_content()) {
            let line = format!("{{\"s\": \"{content}\"}}");
            let columns = RecordColumns::new([("s".to_string(), Kind::Text)]);
            let mut cells = Vec::new();
            let read = read_record(&line, &columns, &mut cells).map(|()| cells);
            let parsed = serde_json::from_str::<std::collections::HashMap<String, String>>(&line);
            match parsed {
                Ok(mut values) => {
                    let expected = values.remove("s").expect("s");
                    prop_assert_eq!(read, Ok(vec![Cell::Text(expected.into())]));
                }
                Err(_) => prop_assert!(read.is_err(), "{line} read as {read:?}"),
            }
        }

        /// Whenever the lines' text gives a schema, it is the one arrow
        /// infers from the lines parsed, and every line parses.
        #[test]
        fn flat_schemas_are_the_ones_arrow_infers(
            lines in proptest::collection::vec(prop_oneof![9 => flat_record(), 1 => record()], 1..8),
        ) {
            let text = lines.join("\n");
            if let Some(inferred) = infer_flat_schema(text.as_bytes()) {
                let inferred = inferred.into_iter().map(|c| (c.name, c.data_type)).collect();
                prop_assert_eq!(Some(inferred), arrow_inferred(&text));
            }
        }

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
