//! Secret redaction. Every value substituted from `${VAR}` is registered here
//! and replaced by `***` wherever flowline prints text: logs, errors, reports.

use std::sync::{Mutex, OnceLock};

/// Values shorter than this are not treated as secrets: redacting `1` or `on`
/// everywhere would mangle every message.
const MIN_SECRET_LEN: usize = 4;

fn registry() -> &'static Mutex<Vec<String>> {
    static SECRETS: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    SECRETS.get_or_init(|| Mutex::new(Vec::new()))
}

/// Remembers `value` so that [`redact`] hides it from now on.
pub fn register(value: &str) {
    if value.len() < MIN_SECRET_LEN {
        return;
    }
    let mut secrets = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if !secrets.iter().any(|known| known == value) {
        secrets.push(value.to_string());
        // Longest first, so a secret containing another is hidden whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    }
}

/// `text` with every registered secret replaced by `***`.
pub fn redact(text: &str) -> String {
    let secrets = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let mut out = text.to_string();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), "***");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_values_are_redacted_and_short_ones_ignored() {
        register("hunter2-password");
        register("on");
        assert_eq!(
            redact("login with hunter2-password failed, flag on"),
            "login with *** failed, flag on"
        );
    }
}
