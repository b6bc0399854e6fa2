//! Unterminated quotes in CSV. [`QuoteGuard`] sits between a file and the
//! CSV parser and follows the quoting line by line. A quoted value may
//! hold line breaks, but when one never ends (it runs to the end of the
//! file, or past [`MAX_RECORD_LINES`] lines or [`MAX_RECORD_BYTES`] bytes),
//! or ends in a way that leaves its row malformed, the line it started on
//! becomes a dead letter and reading resumes at the next line, as DuckDB's
//! and pandas' readers can. The parser gets an empty line in place of the
//! dropped one, so its line numbers stay those of the file.
//!
//! Memory is bounded: only the lines of one row are held while its quote
//! is open.

use std::collections::VecDeque;
use std::io::{self, BufRead, Read};
use std::sync::mpsc;

use crate::core::DeadLetter;

/// The most lines one row (a quoted value with line breaks) may span.
pub(crate) const MAX_RECORD_LINES: usize = 10_000;

/// The most bytes one row may hold while a quote is open.
pub(crate) const MAX_RECORD_BYTES: usize = 16 << 20;

/// How much the guard hands the parser at a time, at least.
const OUTPUT_CHUNK: usize = 64 << 10;

/// Where the scanner is within a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    FieldStart,
    /// In a field that did not start with a quote (a quote is data here).
    Unquoted,
    /// In a quoted field.
    Quoted,
    /// Just after a quote in a quoted field: an escaped quote or the end.
    QuoteInQuoted,
}

/// Follows one record's quoting across its lines, as the `csv` crate
/// parses it (doubled quotes escape, a quote inside an unquoted field is
/// data).
#[derive(Debug, Clone, Copy)]
struct Scan {
    state: State,
    fields: usize,
    /// A closing quote was followed by something other than a delimiter or
    /// the end of the line (`"ab"cd`).
    unclean: bool,
}

impl Scan {
    fn new() -> Self {
        Scan {
            state: State::FieldStart,
            fields: 1,
            unclean: false,
        }
    }

    /// Scans one line, its line break included if it has one.
    fn line(&mut self, bytes: &[u8], delimiter: u8, quote: u8) {
        for &b in bytes {
            self.state = match (self.state, b) {
                (State::Quoted, b) if b == quote => State::QuoteInQuoted,
                (State::Quoted, _) => State::Quoted,
                (State::QuoteInQuoted, b) if b == quote => State::Quoted,
                (_, b) if b == delimiter => {
                    self.fields += 1;
                    State::FieldStart
                }
                (State::FieldStart, b) if b == quote => State::Quoted,
                (_, b'\r' | b'\n') => State::FieldStart,
                (State::QuoteInQuoted, _) => {
                    self.unclean = true;
                    State::Unquoted
                }
                _ => State::Unquoted,
            };
        }
    }

    /// Whether a quoted value is still open at the end of what was scanned.
    fn open(&self) -> bool {
        self.state == State::Quoted
    }
}

/// Whether `line`, read from the start of a record, ends inside a quoted
/// value. The quick form of [`Scan`] for the common case, jumping from
/// quote to quote: a quote opens a value only at the start of a field.
fn leaves_quote_open(line: &[u8], delimiter: u8, quote: u8) -> bool {
    let mut open = false;
    let mut from = 0;
    while let Some(found) = line[from..].iter().position(|&b| b == quote) {
        let at = from + found;
        from = at + 1;
        if !open {
            open = at == 0 || line[at - 1] == delimiter;
        } else if line.get(at + 1) == Some(&quote) {
            from = at + 2;
        } else {
            open = false;
        }
    }
    open
}

/// One line of the file, with its number (1 = the first).
struct Line {
    number: u64,
    bytes: Vec<u8>,
}

impl Line {
    fn text(&self) -> String {
        let bytes = self.bytes.strip_suffix(b"\n").unwrap_or(&self.bytes);
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        String::from_utf8_lossy(bytes).into_owned()
    }

    fn is_blank(&self) -> bool {
        self.bytes.iter().all(|b| matches!(b, b'\r' | b'\n'))
    }
}

/// A `Read` that passes a CSV file on with every line that opens a quote
/// that never properly closes replaced by an empty line, and sends a dead
/// letter for it.
pub(crate) struct QuoteGuard<R> {
    input: R,
    name: String,
    delimiter: u8,
    quote: u8,
    letters: mpsc::Sender<DeadLetter>,
    /// The number of the next line read from `input`.
    next_number: u64,
    /// Lines read ahead, to scan again after a line was dropped.
    pending: VecDeque<Line>,
    /// The lines of the record whose quote is open.
    record: VecDeque<Line>,
    record_bytes: usize,
    scan: Scan,
    /// Fields per row, from the first record.
    width: Option<usize>,
    scratch: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    at_eof: bool,
}

impl<R: BufRead> QuoteGuard<R> {
    /// Guards `input` (the file `name`); dead letters go to `letters`.
    pub(crate) fn new(
        input: R,
        name: &str,
        delimiter: u8,
        quote: u8,
        letters: mpsc::Sender<DeadLetter>,
    ) -> Self {
        QuoteGuard {
            input,
            name: name.to_string(),
            delimiter,
            quote,
            letters,
            next_number: 1,
            pending: VecDeque::new(),
            record: VecDeque::new(),
            record_bytes: 0,
            scan: Scan::new(),
            width: None,
            scratch: Vec::new(),
            out: Vec::new(),
            out_pos: 0,
            at_eof: false,
        }
    }

    /// Refills `out` with at least one line, unless the file has ended.
    fn fill(&mut self) -> io::Result<()> {
        self.out.clear();
        self.out_pos = 0;
        while self.out.len() < OUTPUT_CHUNK {
            if let Some(line) = self.pending.pop_front() {
                self.accept(line);
                continue;
            }
            if self.at_eof {
                break;
            }
            if self.pass_quoteless_lines()? {
                continue;
            }
            self.scratch.clear();
            if self.input.read_until(b'\n', &mut self.scratch)? == 0 {
                self.at_eof = true;
                if !self.record.is_empty() {
                    self.reject_first("never ends: the file ends inside it");
                }
                continue;
            }
            if self.next_number == 1 && self.scratch.starts_with(b"\xEF\xBB\xBF") {
                self.scratch.drain(..3);
            }
            let number = self.next_number;
            self.next_number += 1;
            if self.is_whole_record() {
                self.out.extend_from_slice(&self.scratch);
            } else {
                let bytes = std::mem::take(&mut self.scratch);
                self.accept(Line { number, bytes });
            }
        }
        Ok(())
    }

    /// Passes on, in one piece, the whole lines of the input's buffer when
    /// no record is open and they hold no quote: each is a record of its
    /// own. Whether any were passed.
    fn pass_quoteless_lines(&mut self) -> io::Result<bool> {
        if !self.record.is_empty() || self.width.is_none() {
            return Ok(false);
        }
        let buffer = self.input.fill_buf()?;
        let Some(last) = memchr::memrchr(b'\n', buffer) else {
            return Ok(false);
        };
        let lines = &buffer[..=last];
        if memchr::memchr(self.quote, lines).is_some() {
            return Ok(false);
        }
        let passed = lines.len();
        self.out.extend_from_slice(lines);
        self.next_number += memchr::memchr_iter(b'\n', lines).count() as u64;
        self.input.consume(passed);
        Ok(true)
    }

    /// Whether the line just read (in `scratch`) is a record of its own,
    /// to pass on as it is: no record is open, and it closes every quote
    /// it opens.
    fn is_whole_record(&self) -> bool {
        if !self.record.is_empty() || self.width.is_none() {
            return false;
        }
        !leaves_quote_open(&self.scratch, self.delimiter, self.quote)
    }

    /// Adds `line` to the record being read, and passes the record on once
    /// it is complete and sound.
    fn accept(&mut self, line: Line) {
        if self.record.is_empty() && line.is_blank() {
            self.out.extend_from_slice(&line.bytes);
            return;
        }
        self.scan.line(&line.bytes, self.delimiter, self.quote);
        self.record_bytes += line.bytes.len();
        self.record.push_back(line);
        if self.scan.open() {
            if self.record.len() > MAX_RECORD_LINES || self.record_bytes > MAX_RECORD_BYTES {
                self.reject_first(&format!(
                    "runs past {MAX_RECORD_LINES} lines or {} MiB",
                    MAX_RECORD_BYTES >> 20
                ));
            }
            return;
        }
        if self.record.len() > 1 {
            let misaligned = self.width.is_some_and(|w| w != self.scan.fields);
            if self.scan.unclean || misaligned {
                let last = self.record.back().map_or(0, |l| l.number);
                self.reject_first(&format!(
                    "does not end where a value can end (it closes on line {last})"
                ));
                return;
            }
        }
        if self.width.is_none() {
            self.width = Some(self.scan.fields);
        }
        for line in self.record.drain(..) {
            self.out.extend_from_slice(&line.bytes);
        }
        self.scan = Scan::new();
        self.record_bytes = 0;
    }

    /// Drops the first line of the open record as a dead letter and puts
    /// the lines after it back to be read again.
    fn reject_first(&mut self, why: &str) {
        self.scan = Scan::new();
        self.record_bytes = 0;
        let Some(first) = self.record.pop_front() else {
            return;
        };
        while let Some(line) = self.record.pop_back() {
            self.pending.push_front(line);
        }
        self.out.push(b'\n');
        let letter = DeadLetter {
            origin: format!("{}:{}", self.name, first.number),
            reason: format!(
                "unterminated quote: the quoted value that starts on line {} {why}; \
                 the line was skipped and reading went on at line {}",
                first.number,
                first.number + 1
            ),
            raw: first.text(),
        };
        // The reader may already be gone (it stopped early): nothing to tell.
        let _ = self.letters.send(letter);
    }
}

impl<R: BufRead> Read for QuoteGuard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.out_pos >= self.out.len() {
            self.fill()?;
        }
        let available = &self.out[self.out_pos..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.out_pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the parser sees of `text`, and the dead letters.
    fn guard(text: &str) -> (String, Vec<DeadLetter>) {
        let (tx, rx) = mpsc::channel();
        let mut guard = QuoteGuard::new(text.as_bytes(), "t.csv", b',', b'"', tx);
        let mut out = String::new();
        guard.read_to_string(&mut out).expect("reads");
        drop(guard);
        (out, rx.try_iter().collect())
    }

    #[test]
    fn an_unterminated_quote_costs_its_line_only() {
        let (out, letters) = guard("id,s,n\n1,a,10\n2,\"unterminated,20\n3,c,30\n4,d,40\n");
        assert_eq!(out, "id,s,n\n1,a,10\n\n3,c,30\n4,d,40\n");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].origin, "t.csv:3");
        assert_eq!(letters[0].raw, "2,\"unterminated,20");
        assert!(
            letters[0].reason.contains("unterminated quote")
                && letters[0].reason.contains("line 3"),
            "{}",
            letters[0].reason
        );
    }

    #[test]
    fn a_quote_closed_by_a_later_rows_quote_is_caught() {
        let (out, letters) = guard("id,s,n\n2,\"bad,20\n3,c,30\n4,\"d\",40\n");
        assert_eq!(out, "id,s,n\n\n3,c,30\n4,\"d\",40\n");
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].origin, "t.csv:2");
    }

    #[test]
    fn quoted_line_breaks_escaped_quotes_and_quotes_in_values_pass() {
        let text = "id,s,n\r\n1,\"two\r\nlines, \"\"quoted\"\"\",10\r\n2,5'10\",20\r\n3,\"\",30";
        let (out, letters) = guard(text);
        assert_eq!(out, text);
        assert!(letters.is_empty());
    }

    #[test]
    fn the_quick_check_agrees_with_the_scan() {
        for line in [
            "1,\"a\",2\n",
            "1,\"a\n",
            "1,5'10\",x\n",
            "\"a\"\"b\",\"\n",
            "\"a\"\"\"\n",
            "\"ab\"cd\",e\n",
            "x,\"\"\n",
            "\"",
        ] {
            let mut scan = Scan::new();
            scan.line(line.as_bytes(), b',', b'"');
            assert_eq!(
                leaves_quote_open(line.as_bytes(), b',', b'"'),
                scan.open(),
                "{line:?}"
            );
        }
    }

    #[test]
    fn a_byte_order_mark_is_dropped() {
        let (out, letters) = guard("\u{feff}\"id\",\"s\"\n1,a\n");
        assert_eq!(out, "\"id\",\"s\"\n1,a\n");
        assert!(letters.is_empty());
    }
}
