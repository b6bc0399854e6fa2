//! `${VAR}` interpolation from the environment or the project's `.env` file.
//!
//! Interpolation happens on the file text before parsing, and every
//! substitution is recorded so that a parse error's position can be mapped
//! back to the line and column the user sees in the original file.

use std::collections::HashMap;
use std::path::Path;

use crate::core::diagnostic::render;
use crate::core::error::{Error, Result};
use crate::core::secrets;

/// Where variables come from: the process environment first, then `.env`.
#[derive(Debug, Default, Clone)]
pub struct Variables {
    dotenv: HashMap<String, String>,
}

impl Variables {
    /// Reads `<project>/.env` when it exists.
    pub fn load(project_dir: &Path) -> Result<Self> {
        let path = project_dir.join(".env");
        let mut dotenv = HashMap::new();
        if path.exists() {
            let entries = dotenvy::from_path_iter(&path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            for entry in entries {
                let (key, value) =
                    entry.map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
                dotenv.insert(key, value);
            }
        }
        Ok(Variables { dotenv })
    }

    /// The value of `name`, from the environment or `.env`.
    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name)
            .ok()
            .or_else(|| self.dotenv.get(name).cloned())
    }

    /// Every variable: `.env`'s, with the process environment over them.
    pub fn all(&self) -> std::collections::BTreeMap<String, String> {
        let mut all: std::collections::BTreeMap<String, String> = self
            .dotenv
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.extend(std::env::vars());
        all
    }
}

/// One `${VAR}` replaced in the text.
#[derive(Debug, Clone, Copy)]
struct Substitution {
    original_start: usize,
    original_len: usize,
    new_start: usize,
    new_len: usize,
}

/// A file's text after interpolation, able to map positions back.
#[derive(Debug)]
pub struct Interpolated {
    /// The text with every `${VAR}` replaced.
    pub text: String,
    substitutions: Vec<Substitution>,
}

impl Interpolated {
    /// Maps a byte offset in [`Interpolated::text`] to the original text.
    pub fn original_offset(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for sub in &self.substitutions {
            if offset < sub.new_start {
                break;
            }
            if offset < sub.new_start + sub.new_len {
                return sub.original_start;
            }
            shift += sub.original_len as isize - sub.new_len as isize;
        }
        (offset as isize + shift).max(0) as usize
    }
}

/// Replaces `${VAR}` in `text` (`$${` escapes a literal `${`). Values are
/// escaped for TOML basic strings and registered as secrets.
pub fn interpolate(file: &Path, text: &str, vars: &Variables) -> Result<Interpolated> {
    let mut out = String::with_capacity(text.len());
    let mut substitutions = Vec::new();
    let mut rest = text;
    let mut consumed = 0;
    while let Some(pos) = rest.find("${") {
        if in_comment(text, consumed + pos) {
            out.push_str(&rest[..pos + 2]);
            rest = &rest[pos + 2..];
            consumed += pos + 2;
            continue;
        }
        if pos > 0 && rest.as_bytes()[pos - 1] == b'$' {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            substitutions.push(Substitution {
                original_start: consumed + pos - 1,
                original_len: 3,
                new_start: out.len() - 2,
                new_len: 2,
            });
            rest = &rest[pos + 2..];
            consumed += pos + 2;
            continue;
        }
        let Some(end) = rest[pos..].find('}') else {
            return Err(Error::Config(render(
                file,
                text,
                consumed + pos,
                "unterminated `${`: write `${NAME}`, or `$${` for a literal",
            )));
        };
        let name = &rest[pos + 2..pos + end];
        let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Error::Config(render(
                file,
                text,
                consumed + pos,
                &format!("`${{{name}}}` is not a variable name (letters, digits and `_`)"),
            )));
        }
        let Some(value) = vars.get(name) else {
            return Err(Error::Config(render(
                file,
                text,
                consumed + pos,
                &format!(
                    "environment variable {name} is not set; export it or add `{name}=...` to the project's .env file"
                ),
            )));
        };
        secrets::register(&value);
        out.push_str(&rest[..pos]);
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        substitutions.push(Substitution {
            original_start: consumed + pos,
            original_len: end + 1,
            new_start: out.len(),
            new_len: escaped.len(),
        });
        out.push_str(&escaped);
        rest = &rest[pos + end + 1..];
        consumed += pos + end + 1;
    }
    out.push_str(rest);
    Ok(Interpolated {
        text: out,
        substitutions,
    })
}

/// Whether byte `offset` of `text` sits in a `#` comment: a `#` earlier on
/// its line, outside quotes.
fn in_comment(text: &str, offset: usize) -> bool {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text[line_start..offset].chars() {
        match (quote, c) {
            (Some('"'), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(q), c) if c == q && !escaped => quote = None,
            (None, '"' | '\'') => quote = Some(c),
            (None, '#') => return true,
            _ => {}
        }
        escaped = false;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        Variables {
            dotenv: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn replaces_variables_and_maps_offsets_back() {
        let text = "a = \"${FLOWLINE_T_X}\"\nb = 1";
        let out = interpolate(
            Path::new("f.toml"),
            text,
            &vars(&[("FLOWLINE_T_X", "longer-value")]),
        )
        .expect("interpolates");
        assert_eq!(out.text, "a = \"longer-value\"\nb = 1");
        let b_new = out.text.find('b').expect("b");
        assert_eq!(out.original_offset(b_new), text.find('b').expect("b"));
    }

    #[test]
    fn missing_variable_names_it_with_position() {
        let err = interpolate(
            Path::new("f.toml"),
            "x = 1\nurl = \"${FLOWLINE_T_MISSING}\"",
            &vars(&[]),
        )
        .expect_err("missing");
        let msg = err.to_string();
        assert!(msg.contains("f.toml:2:8"), "{msg}");
        assert!(msg.contains("FLOWLINE_T_MISSING"), "{msg}");
    }

    #[test]
    fn comments_are_not_interpolated() {
        let text = "# url = \"${NOT_SET_ANYWHERE}\"\na = \"#${FLOWLINE_T_Y}\" # ${ALSO_NOT}";
        let out =
            interpolate(Path::new("f.toml"), text, &vars(&[("FLOWLINE_T_Y", "v")])).expect("ok");
        assert_eq!(
            out.text,
            "# url = \"${NOT_SET_ANYWHERE}\"\na = \"#v\" # ${ALSO_NOT}"
        );
    }

    #[test]
    fn double_dollar_escapes() {
        let out = interpolate(Path::new("f.toml"), "a = \"$${X}\"", &vars(&[])).expect("ok");
        assert_eq!(out.text, "a = \"${X}\"");
    }
}
