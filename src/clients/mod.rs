//! Database clients that sources and warehouses share: connecting, TLS
//! at libpq's levels, and errors phrased by their cause.

pub mod mysql;
pub mod postgres;

use serde::Deserialize;

/// How a database connection uses TLS, as a URL's `sslmode` (libpq's names)
/// or MySQL's `ssl-mode` names it (case-insensitive): the same levels for
/// every database source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// `disable`, `DISABLED`: never TLS.
    Disable,
    /// `prefer`, `PREFERRED` (the default): TLS when the server supports it,
    /// unencrypted otherwise; the certificate is not checked.
    Prefer,
    /// `require`, `REQUIRED`: TLS or no connection; the certificate is not
    /// checked (encryption, not authentication, as libpq's `require`).
    Require,
    /// `verify-ca`, `VERIFY_CA`: TLS, and the certificate must be signed by
    /// a root of `sslrootcert`; its host name is not checked.
    VerifyCa,
    /// `verify-full`, `VERIFY_IDENTITY`: TLS, and the certificate must be
    /// signed by a trusted root and name the host of the URL.
    VerifyFull,
}

impl SslMode {
    /// The mode a URL's value names; `None` for an unknown one.
    pub fn parse(value: &str) -> Option<SslMode> {
        Some(
            match value.to_ascii_lowercase().replace('_', "-").as_str() {
                "disable" | "disabled" => SslMode::Disable,
                "prefer" | "preferred" => SslMode::Prefer,
                "require" | "required" => SslMode::Require,
                "verify-ca" => SslMode::VerifyCa,
                "verify-full" | "verify-identity" => SslMode::VerifyFull,
                _ => return None,
            },
        )
    }
}

/// What to do with columns of unmappable types.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Unsupported {
    /// Fail, naming table, column and type.
    #[default]
    Error,
    /// Load them as text.
    Text,
}
