//! Config diagnostics: a serde message at a span of an interpolated file,
//! turned into `file:line:column: message` against what the user wrote.

use std::path::Path;

use super::env::Interpolated;
use crate::core::diagnostic::{did_you_mean, render};

/// Words quoted in backticks in a serde message: for "unknown field `x`,
/// expected one of `a`, `b`" that is `["x", "a", "b"]`.
fn backticked(message: &str) -> Vec<&str> {
    message.split('`').skip(1).step_by(2).collect()
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
    use crate::core::diagnostic::line_col;

    #[test]
    fn finds_a_key_inside_a_table() {
        let text = "[destination]\ntable = \"x\"\nprimary_keys = [\"id\"]\n";
        let at = find_key(text, 0..text.len(), "primary_keys").expect("found");
        assert_eq!(line_col(text, at), (3, 1));
    }
}
