//! Diagnostics: `file:line:column: message`, the offending line with a
//! caret under it, and a "did you mean" for misspelt keys and values.

use std::path::Path;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = text
        .get(line_start..offset)
        .map_or(1, |s| s.chars().count() + 1);
    (line, col)
}

/// Characters of the source line shown around the caret, at most.
const SHOWN_LINE: usize = 100;

/// `file:line:col: message` followed by the source line (a window of it
/// around the column, when it is long) and a caret.
pub fn render(file: &Path, text: &str, offset: usize, message: &str) -> String {
    let (line, col) = line_col(text, offset);
    let source_line = text.lines().nth(line - 1).unwrap_or("");
    let (shown, caret_col) = window(source_line, col);
    let gutter = line.to_string();
    format!(
        "{}:{line}:{col}: {message}\n {gutter} | {shown}\n {pad} | {caret:>caret_col$}",
        file.display(),
        pad = " ".repeat(gutter.len()),
        caret = "^",
    )
}

/// At most [`SHOWN_LINE`] characters of `line` around column `col`
/// (1-based), with `...` where it is cut, and the caret's column in them.
fn window(line: &str, col: usize) -> (String, usize) {
    let count = line.chars().count();
    if count <= SHOWN_LINE {
        return (line.to_string(), col);
    }
    let start = col.saturating_sub(SHOWN_LINE / 2).min(count - SHOWN_LINE);
    let mut shown: String = line.chars().skip(start).take(SHOWN_LINE).collect();
    let mut caret = col - start;
    if start > 0 {
        shown.insert_str(0, "...");
        caret += 3;
    }
    if start + SHOWN_LINE < count {
        shown.push_str("...");
    }
    (shown, caret)
}

/// The closest of `candidates` to `word`, when it is close enough to be a typo.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(word, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// An error found while reading a config table, with where it is.
#[derive(Debug, Clone)]
pub struct SpannedError {
    /// A serde-style message (backticks around names).
    pub message: String,
    /// Byte range in the (interpolated) file text, when known.
    pub span: Option<std::ops::Range<usize>>,
}

impl std::fmt::Display for SpannedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<toml::de::Error> for SpannedError {
    fn from(e: toml::de::Error) -> Self {
        SpannedError {
            message: e.message().to_string(),
            span: e.span(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let text = "a = 1\nbb = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, text.find("bb").expect("bb") + 1), (2, 2));
    }

    #[test]
    fn long_lines_are_shown_around_the_column() {
        let line = format!("v = \"{}\"", "x".repeat(1000));
        let (shown, caret) = window(&line, 500);
        assert!(
            shown.starts_with("...") && shown.ends_with("..."),
            "{shown}"
        );
        assert_eq!(shown.chars().count(), SHOWN_LINE + 6);
        assert_eq!(caret, 500 - (500 - SHOWN_LINE / 2) + 3);
        assert_eq!(window("a = 1", 5), ("a = 1".to_string(), 5));
    }

    #[test]
    fn suggests_the_nearest_key() {
        assert_eq!(
            did_you_mean("primary_keys", &["table", "write", "primary_key"]),
            Some("primary_key")
        );
        assert_eq!(did_you_mean("zzz", &["table", "write"]), None);
    }
}
