//! One TOML table read into several config structs: shared pieces (a stream
//! source's endpoint and payload keys, the HTTP client settings) take their
//! keys, the connector's own struct the rest. Every struct keeps
//! `deny_unknown_fields` and every error its exact position, which serde's
//! `flatten` would lose.

use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostic::SpannedError;

/// A table being split between config structs.
pub struct SplitTable<'a> {
    span: Range<usize>,
    table: DeTable<'a>,
    /// Keys taken by shared pieces so far, for "expected one of" messages.
    taken: Vec<&'static str>,
}

impl<'a> SplitTable<'a> {
    /// Starts splitting `value`, which must be a table.
    pub fn new(value: Spanned<DeValue<'a>>, what: &str) -> Result<Self, SpannedError> {
        let span = value.span();
        match value.into_inner() {
            DeValue::Table(table) => Ok(SplitTable {
                span,
                table,
                taken: Vec::new(),
            }),
            _ => Err(SpannedError {
                message: format!("{what} must be a table"),
                span: Some(span),
            }),
        }
    }

    /// Reads `T` from the keys among `keys` that the table has, taking
    /// them out of it.
    pub fn take<T: DeserializeOwned>(
        &mut self,
        keys: &'static [&'static str],
    ) -> Result<T, SpannedError> {
        let mut part = DeTable::new();
        for key in keys {
            if let Some((k, v)) = self.table.remove_entry(*key) {
                part.insert(k, v);
            }
        }
        self.taken.extend_from_slice(keys);
        Ok(T::deserialize(ValueDeserializer::from(Spanned::new(
            self.span.clone(),
            DeValue::Table(part),
        )))?)
    }

    /// Reads `T` from the keys left. An unknown key's message also lists
    /// the shared keys, so "did you mean" finds those too.
    pub fn rest<T: DeserializeOwned>(self) -> Result<T, SpannedError> {
        let taken = self.taken;
        T::deserialize(ValueDeserializer::from(Spanned::new(
            self.span,
            DeValue::Table(self.table),
        )))
        .map_err(|e| {
            let mut error = SpannedError::from(e);
            if error.message.starts_with("unknown field") && !taken.is_empty() {
                let shared: Vec<String> = taken.iter().map(|k| format!("`{k}`")).collect();
                error.message = format!("{}, {}", error.message.trim_end(), shared.join(", "));
            }
            error
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Shared {
        #[serde(default)]
        url: Option<String>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        queue: String,
    }

    fn split(text: &str) -> SplitTable<'_> {
        let doc = DeTable::parse(text).expect("toml");
        let span = doc.span();
        SplitTable::new(Spanned::new(span, DeValue::Table(doc.into_inner())), "t").expect("table")
    }

    #[test]
    fn shared_keys_and_own_keys_land_in_their_structs() {
        let mut table = split("url = \"amqp://h\"\nqueue = \"q\"\n");
        let shared: Shared = table.take(&["url"]).expect("shared");
        let own: Own = table.rest().expect("own");
        assert_eq!(shared.url.as_deref(), Some("amqp://h"));
        assert_eq!(own.queue, "q");
    }

    #[test]
    fn an_unknown_key_keeps_its_position_and_lists_the_shared_keys() {
        let text = "queue = \"q\"\nurll = \"x\"\n";
        let mut table = split(text);
        let _: Shared = table.take(&["url"]).expect("shared");
        let e = table.rest::<Own>().expect_err("unknown");
        assert!(e.message.contains("`url`"), "{}", e.message);
        let at = e.span.as_ref().map(|s| s.start);
        assert!(at.is_none() || at == text.find("urll"), "{:?}", e.span);
    }
}
