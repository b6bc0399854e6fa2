//! Config diagnostics: `file:line:column: message`, the offending line with a
//! caret under it, and a "did you mean" for misspelt keys and values.

use std::path::Path;

use super::env::Interpolated;

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

/// `file:line:col: message` followed by the source line and a caret.
pub fn render(file: &Path, text: &str, offset: usize, message: &str) -> String {
    let (line, col) = line_col(text, offset);
    let source_line = text.lines().nth(line - 1).unwrap_or("");
    let gutter = line.to_string();
    format!(
        "{}:{line}:{col}: {message}\n {gutter} | {source_line}\n {pad} | {caret:>col$}",
        file.display(),
        pad = " ".repeat(gutter.len()),
        caret = "^",
    )
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

/// Words quoted in backticks in a serde message: for "unknown field `x`,
/// expected one of `a`, `b`" that is `["x", "a", "b"]`.
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
}

/// An error found while reading a config table, with where it is.
#[derive(Debug, Clone)]
pub struct SpannedError {
    /// A serde-style message (backticks around names).
    pub message: String,
    /// Byte range in the (interpolated) file text, when known.
    pub span: Option<std::ops::Range<usize>>,
}

impl From<toml::de::Error> for SpannedError {
    fn from(e: toml::de::Error) -> Self {
        SpannedError {
            message: e.message().to_string(),
            span: e.span(),
        }
    }
}

/// Turns a serde-style `message` at `span` into a diagnostic against the
/// original file, with a "did you mean" for unknown keys and values.
pub fn from_message(
    file: &Path,
    original: &str,
    interpolated: &Interpolated,
    message: &str,
    span: Option<std::ops::Range<usize>>,
) -> String {
    let raw = message.trim_end().to_string();
    let mut message = raw.replace('`', "\"");
    let mut offset = span.as_ref().map_or(0, |span| span.start);
    let is_unknown = raw.starts_with("unknown field") || raw.starts_with("unknown variant");
    if is_unknown {
        let words = backticked(&raw);
        if let Some((unknown, expected)) = words.split_first() {
            if raw.starts_with("unknown field") {
                // Fields of tagged tables come without a span: search the file.
                // Tables read through a tag may report only their header: search on.
                let text = &interpolated.text;
                let span = span.clone().unwrap_or(0..text.len());
                offset = find_key(text, span.clone(), unknown)
                    .or_else(|| find_key(text, span.start..text.len(), unknown))
                    .unwrap_or(offset);
            } else if span.is_none() {
                let quoted = format!("\"{unknown}\"");
                offset = interpolated.text.find(&quoted).unwrap_or(offset);
            }
            if let Some(best) = did_you_mean(unknown, expected) {
                message.push_str(&format!("; did you mean \"{best}\"?"));
            }
        }
    }
    render(
        file,
        original,
        interpolated.original_offset(offset),
        &message,
    )
}

/// Finds `key = ` (as a bare or quoted key) inside `span` of `text`.
fn find_key(text: &str, span: std::ops::Range<usize>, key: &str) -> Option<usize> {
    let region = text.get(span.clone())?;
    let mut from = 0;
    while let Some(pos) = region[from..].find(key) {
        let start = from + pos;
        let end = start + key.len();
        let before = region[..start].trim_end_matches(['"', '\'']);
        let before_ok = before
            .chars()
            .rev()
            .find(|c| *c != ' ' && *c != '\t')
            .is_none_or(|c| matches!(c, '\n' | '{' | ',' | '.' | '['));
        let after = region[end..].trim_start_matches(['"', '\'']);
        let after_ok = after
            .trim_start_matches([' ', '\t'])
            .starts_with(['=', '.']);
        if before_ok && after_ok {
            return Some(span.start + start);
        }
        from = end;
    }
    None
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
    fn suggests_the_nearest_key() {
        assert_eq!(
            did_you_mean("primary_keys", &["table", "write", "primary_key"]),
            Some("primary_key")
        );
        assert_eq!(did_you_mean("zzz", &["table", "write"]), None);
    }

    #[test]
    fn finds_a_key_inside_a_table() {
        let text = "[destination]\ntable = \"x\"\nprimary_keys = [\"id\"]\n";
        let at = find_key(text, 0..text.len(), "primary_keys").expect("found");
        assert_eq!(line_col(text, at), (3, 1));
    }
}
