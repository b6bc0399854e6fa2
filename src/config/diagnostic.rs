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

/// The longest value a message quotes whole; longer ones are cut.
const MAX_QUOTED: usize = 60;

/// Serde's names for Rust types, and what a config file's reader calls
/// them.
const PLAIN_TYPES: &[(&str, &str)] = &[
    ("u8", "a whole number from 0 to 255"),
    ("u16", "a whole number from 0 to 65535"),
    ("u32", "a whole number from 0 to 4294967295"),
    ("u64", "a whole number, 0 or more"),
    ("u128", "a whole number, 0 or more"),
    ("usize", "a whole number, 0 or more"),
    ("i8", "a whole number"),
    ("i16", "a whole number"),
    ("i32", "a whole number"),
    ("i64", "a whole number"),
    ("i128", "a whole number"),
    ("isize", "a whole number"),
    ("f32", "a number"),
    ("f64", "a number"),
];

/// `message` with serde's Rust vocabulary (`u16`, `struct X`, `internally
/// tagged enum Y`, `a duration`) in a config file's words.
fn plain_words(message: &str) -> String {
    let mut out = message.to_string();
    for (pattern, plain) in [
        (
            r"internally tagged enum \w+",
            "a table with a \"kind\" key, such as { kind = \"...\" }",
        ),
        (r"\bstruct \w+", "a table"),
        (r"\benum \w+", "one of the allowed values"),
        (
            r"^wanted string or table$",
            "expected a string naming one of the allowed values",
        ),
        (
            r"\ba duration\b",
            "a duration such as \"30s\", \"500ms\" or \"2m\"",
        ),
    ] {
        if let Ok(re) = regex::Regex::new(pattern) {
            out = re.replace_all(&out, plain).into_owned();
        }
    }
    for (rust, plain) in PLAIN_TYPES {
        let expected = format!("expected {rust}");
        if let Some(at) = out.find(&expected) {
            let end = at + expected.len();
            let word_ends = out[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric());
            if word_ends {
                out.replace_range(at..end, &format!("expected {plain}"));
            }
        }
    }
    out
}

/// `message` with every quoted value (in backticks or double quotes)
/// longer than [`MAX_QUOTED`] characters cut, saying how long it was.
fn cut_long_values(message: &str) -> String {
    let mut out = message.to_string();
    for pattern in [r"`([^`]{61,})`", r#""((?:[^"\\]|\\.){61,})""#] {
        let Ok(re) = regex::Regex::new(pattern) else {
            continue;
        };
        out = re
            .replace_all(&out, |caps: &regex::Captures| {
                let whole = &caps[0];
                let quote = &whole[..1];
                let value = &caps[1];
                let head: String = value.chars().take(MAX_QUOTED).collect();
                format!(
                    "{quote}{head}...{quote} ({} characters)",
                    value.chars().count()
                )
            })
            .into_owned();
    }
    out
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
    let raw = cut_long_values(message.trim_end());
    let mut message = plain_words(&raw).replace('`', "\"");
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
    fn rust_type_names_become_plain_words() {
        assert_eq!(
            plain_words(
                "invalid type: string \"x\", expected internally tagged enum PaginateConfig"
            ),
            "invalid type: string \"x\", expected a table with a \"kind\" key, such as { kind = \"...\" }"
        );
        assert_eq!(
            plain_words("invalid type: string \"x\", expected struct ConnectionConfig"),
            "invalid type: string \"x\", expected a table"
        );
        assert_eq!(
            plain_words("invalid value: integer `70000`, expected u16"),
            "invalid value: integer `70000`, expected a whole number from 0 to 65535"
        );
        assert_eq!(
            plain_words("invalid type: integer `30`, expected a duration"),
            "invalid type: integer `30`, expected a duration such as \"30s\", \"500ms\" or \"2m\""
        );
        assert_eq!(plain_words("expected u64s"), "expected u64s");
    }

    #[test]
    fn long_values_are_cut() {
        let long = "y".repeat(500);
        let cut = cut_long_values(&format!(
            "invalid type: string \"{long}\", expected `{long}`"
        ));
        assert_eq!(cut.matches("(500 characters)").count(), 2, "{cut}");
        assert!(cut.len() < 250, "{cut}");
        assert_eq!(cut_long_values("unknown field `x`"), "unknown field `x`");
    }

    #[test]
    fn finds_a_key_inside_a_table() {
        let text = "[destination]\ntable = \"x\"\nprimary_keys = [\"id\"]\n";
        let at = find_key(text, 0..text.len(), "primary_keys").expect("found");
        assert_eq!(line_col(text, at), (3, 1));
    }
}
