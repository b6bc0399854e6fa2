//! The MySQL/MariaDB client: connecting with TLS (`sslmode` in libpq's and
//! MySQL's spellings, `sslrootcert`/`ssl-ca`), in UTC, and errors phrased by
//! their cause.

use std::path::{Path, PathBuf};

use mysql_async::prelude::Queryable;
use mysql_async::{DriverError, OptsBuilder, SslOpts};
use rustls::CertificateError;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::SslMode;
use crate::core::error::{ConnectionFailure, Error, Result};

/// A MySQL error phrased by its cause.
pub fn describe_error(e: &mysql_async::Error) -> String {
    classify(e).1
}

/// The kind of a client error and its cause in the user's words.
pub fn classify(e: &mysql_async::Error) -> (ConnectionFailure, String) {
    match e {
        mysql_async::Error::Io(io) if io.to_string().contains("Connection refused") => (
            ConnectionFailure::Refused,
            "connection refused: is the server running and listening there?".to_string(),
        ),
        mysql_async::Error::Io(io) => (ConnectionFailure::Network, format!("network error ({io})")),
        mysql_async::Error::Server(s) => {
            let (failure, what) = match s.code {
                1045 => (ConnectionFailure::Auth, "authentication failed"),
                1049 => (ConnectionFailure::NotFound, "database does not exist"),
                1146 => (ConnectionFailure::NotFound, "table does not exist"),
                _ => (ConnectionFailure::Server, "server error"),
            };
            (failure, format!("{what}: {}", s.message))
        }
        mysql_async::Error::Url(u) => (ConnectionFailure::Server, format!("bad URL: {u}")),
        other => (ConnectionFailure::Server, other.to_string()),
    }
}

/// Turns a client error while doing `context` into flowline's error.
pub fn my_err(context: &str) -> impl Fn(mysql_async::Error) -> Error + '_ {
    move |e| Error::client(format!("mysql: {context}"), describe_error(&e), e)
}

/// URL parameters for the TLS mode, libpq's spelling and MySQL's.
const MODE_KEYS: [&str; 2] = ["sslmode", "ssl-mode"];
/// URL parameters for the root certificates (a PEM file).
const ROOT_CERT_KEYS: [&str; 2] = ["sslrootcert", "ssl-ca"];
/// `mysql_async`'s own TLS parameters, which `sslmode` replaces.
const DRIVER_TLS_KEYS: [&str; 4] = [
    "require_ssl",
    "verify_ca",
    "verify_identity",
    "built_in_roots",
];

/// The server name presented under `verify-ca`. `mysql_async` 0.37 skips a
/// host-name mismatch (`with_danger_skip_domain_validation`) only when the
/// text of rustls's error contains "NotValidForName" (mysql_async issue
/// #404), and rustls 0.23 quotes there the name it expected. Presenting this
/// name puts that text in every mismatch, so the certificate chain is still
/// checked against `sslrootcert` and only the name check is skipped. Should
/// either crate change, `verify-ca` fails closed with a name mismatch, which
/// tests/mysql_tls.rs catches.
const VERIFY_CA_SERVER_NAME: &str = "NotValidForName.flowline.invalid";

/// The TLS settings of a connection URL, and the URL without them:
/// `mysql_async` rejects parameters it does not know.
#[derive(Debug, PartialEq)]
struct TlsSettings {
    /// The URL for `mysql_async::Opts::from_url`.
    url: String,
    /// `prefer` unless the URL says otherwise.
    mode: SslMode,
    /// The mode as written, for messages: `sslmode=require`, `ssl-mode=REQUIRED`.
    setting: String,
    /// `sslrootcert` (or `ssl-ca`): a PEM file of root certificates.
    root_cert: Option<PathBuf>,
}

fn bad_url(why: String) -> Error {
    Error::Config(format!("mysql: bad URL: {why}"))
}

impl TlsSettings {
    /// Reads and strips `sslmode`/`ssl-mode` and `sslrootcert`/`ssl-ca`.
    fn from_url(url: &str) -> Result<TlsSettings> {
        let mut settings = TlsSettings {
            url: url.to_string(),
            mode: SslMode::Prefer,
            setting: "sslmode=prefer".into(),
            root_cert: None,
        };
        if !url.contains('?') {
            return Ok(settings);
        }
        let mut parsed = url::Url::parse(url).map_err(|e| bad_url(e.to_string()))?;
        let mut kept = Vec::new();
        let mut stripped = false;
        for (key, value) in parsed.query_pairs() {
            if MODE_KEYS.contains(&key.as_ref()) {
                settings.mode = SslMode::parse(&value).ok_or_else(|| {
                    bad_url(format!(
                        "{key}={value:?} is not a TLS mode: use sslmode=disable, prefer, require, \
                         verify-ca or verify-full (or ssl-mode=DISABLED, PREFERRED, REQUIRED, \
                         VERIFY_CA or VERIFY_IDENTITY)"
                    ))
                })?;
                settings.setting = format!("{key}={value}");
                stripped = true;
            } else if ROOT_CERT_KEYS.contains(&key.as_ref()) {
                settings.root_cert = Some(PathBuf::from(value.as_ref()));
                stripped = true;
            } else if DRIVER_TLS_KEYS.contains(&key.as_ref()) {
                return Err(bad_url(format!(
                    "{key} is not supported; set sslmode=require, verify-ca or verify-full instead"
                )));
            } else {
                kept.push((key.into_owned(), value.into_owned()));
            }
        }
        match (settings.mode, &settings.root_cert) {
            (SslMode::VerifyCa, None) => return Err(settings.needs_root_cert()),
            (SslMode::Disable | SslMode::Prefer | SslMode::Require, Some(_)) => {
                return Err(bad_url(format!(
                    "sslrootcert is used only by sslmode=verify-ca and verify-full; {} does not \
                     check the server's certificate",
                    settings.setting
                )));
            }
            _ => {}
        }
        if stripped {
            parsed.set_query(None);
            if !kept.is_empty() {
                parsed.query_pairs_mut().extend_pairs(&kept);
            }
            settings.url = parsed.to_string();
        }
        Ok(settings)
    }

    /// `verify-ca` without `sslrootcert`: the public authorities sign
    /// certificates for anyone, so without the host name nothing is checked.
    fn needs_root_cert(&self) -> Error {
        bad_url(format!(
            "{} needs sslrootcert=/path/to/ca.pem, the certificate authority to trust \
             (a certificate from a public authority, its host name unchecked, authenticates \
             nobody; sslmode=verify-full checks both)",
            self.setting
        ))
    }

    /// The driver's TLS options; `None` under `disable`.
    fn ssl_opts(&self) -> Result<Option<SslOpts>> {
        let trusting = |opts: SslOpts, path: &Path| -> Result<SslOpts> {
            Ok(opts
                .with_root_certs(vec![read_root_certs(path)?.into()])
                .with_disable_built_in_roots(true))
        };
        let opts = SslOpts::default();
        Ok(Some(match (self.mode, &self.root_cert) {
            (SslMode::Disable, _) => return Ok(None),
            (SslMode::Prefer | SslMode::Require, _) => opts.with_danger_accept_invalid_certs(true),
            (SslMode::VerifyCa, Some(path)) => trusting(opts, path)?
                .with_danger_skip_domain_validation(true)
                .with_danger_tls_hostname_override(Some(VERIFY_CA_SERVER_NAME)),
            (SslMode::VerifyFull, Some(path)) => trusting(opts, path)?,
            (SslMode::VerifyCa, None) => return Err(self.needs_root_cert()),
            (SslMode::VerifyFull, None) => opts,
        }))
    }

    /// Why a connection failed, when TLS is the reason.
    fn describe_failure(&self, e: &mysql_async::Error, host: &str) -> Option<String> {
        if matches!(
            e,
            mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer)
        ) {
            return Some(format!(
                "TLS required ({}) but the server does not support it; enable TLS on the \
                 server (ssl_cert, ssl_key), or set sslmode=prefer to connect without",
                self.setting
            ));
        }
        let tls = rustls_error(e)?;
        Some(match tls {
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) if self.mode == SslMode::VerifyCa => format!(
                "TLS: {} could not skip the host-name check ({tls}); \
                 use sslmode=verify-full with a host name the certificate holds",
                self.setting
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                presented,
                ..
            }) => format!(
                "TLS: certificate not valid for {host} (it names {}); connect with a host name \
                 the certificate holds, or set sslmode=verify-ca to check only its authority",
                certificate_names(presented)
            ),
            rustls::Error::InvalidCertificate(CertificateError::NotValidForName) => format!(
                "TLS: certificate not valid for {host}; connect with a host name the \
                 certificate holds, or set sslmode=verify-ca to check only its authority"
            ),
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
                match &self.root_cert {
                    Some(path) => format!(
                        "TLS: unknown certificate authority: the server's certificate is not \
                         signed by a root certificate of sslrootcert {}",
                        path.display()
                    ),
                    None => "TLS: unknown certificate authority: the server's certificate is \
                             not signed by a public authority; set sslrootcert=/path/to/ca.pem \
                             to the authority that signed it"
                        .to_string(),
                }
            }
            other => format!("TLS: {other}"),
        })
    }
}

/// The names a certificate holds, as rustls lists them (`DnsName("db")`,
/// `IpAddress(10.0.0.5)`), for a message: `db, 10.0.0.5`.
fn certificate_names(presented: &[String]) -> String {
    if presented.is_empty() {
        return "no host".into();
    }
    presented
        .iter()
        .map(|name| {
            ["DnsName(\"", "IpAddress("]
                .iter()
                .find_map(|prefix| name.strip_prefix(prefix))
                .map(|inner| inner.trim_end_matches(')').trim_end_matches('"'))
                .unwrap_or(name)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The rustls error behind a driver error, if any: directly, or inside the
/// I/O error the TLS stream returned.
fn rustls_error(e: &mysql_async::Error) -> Option<&rustls::Error> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls);
        }
        next = err.source();
    }
    None
}

/// The root certificates of `sslrootcert`, checked to be PEM certificates.
fn read_root_certs(path: &Path) -> Result<Vec<u8>> {
    let shown = path.display();
    let pem = std::fs::read(path)
        .map_err(|e| Error::Config(format!("mysql: sslrootcert {shown}: cannot read it ({e})")))?;
    let mut certificates = 0;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|e| {
            Error::Config(format!(
                "mysql: sslrootcert {shown}: not a PEM certificate file ({e})"
            ))
        })?;
        certificates += 1;
    }
    if certificates == 0 {
        return Err(Error::Config(format!(
            "mysql: sslrootcert {shown}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)"
        )));
    }
    Ok(pem)
}

/// Connects, in UTC, with the URL's TLS settings. Under `sslmode=prefer`
/// (the default) a server without TLS is reached unencrypted. A TLS session
/// stays on TCP: `mysql_async` would otherwise move to the Unix socket the
/// server names, which is a local path even when the server is not local.
pub async fn connect(url: &str) -> Result<mysql_async::Conn> {
    let tls = TlsSettings::from_url(url)?;
    let opts = mysql_async::Opts::from_url(&tls.url).map_err(|e| bad_url(e.to_string()))?;
    let host = opts.ip_or_hostname().to_string();
    let at = format!("mysql at {host}:{}", opts.tcp_port());
    let failed = |e: mysql_async::Error| {
        let (failure, message) = classify(&e);
        Error::connection(&at, failure, message, Some(Box::new(e)))
    };
    let mut conn = match tls.ssl_opts()? {
        None => mysql_async::Conn::new(opts).await.map_err(failed)?,
        Some(ssl) => {
            let secured = OptsBuilder::from_opts(opts.clone())
                .ssl_opts(ssl)
                .prefer_socket(false);
            match mysql_async::Conn::new(secured).await {
                Ok(conn) => conn,
                Err(mysql_async::Error::Driver(DriverError::NoClientSslFlagFromServer))
                    if tls.mode == SslMode::Prefer =>
                {
                    tracing::debug!(
                        "{at}: the server does not support TLS; connecting unencrypted (sslmode=prefer)"
                    );
                    mysql_async::Conn::new(opts).await.map_err(failed)?
                }
                Err(e) => {
                    return Err(match tls.describe_failure(&e, &host) {
                        Some(why) => {
                            Error::connection(&at, ConnectionFailure::Tls, why, Some(Box::new(e)))
                        }
                        None => failed(e),
                    });
                }
            }
        }
    };
    conn.query_drop("SET time_zone = '+00:00'")
        .await
        .map_err(my_err("setting the session time zone"))?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> TlsSettings {
        TlsSettings::from_url(url).expect("valid URL")
    }

    fn rejected(url: &str) -> String {
        match TlsSettings::from_url(url) {
            Ok(s) => panic!("{url} should be rejected, got {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_url_without_tls_parameters_is_unchanged_and_prefers_tls() {
        for url in [
            "mysql://root@127.0.0.1:3306/shop",
            "mysql://u:p%40ss@db:3306/shop?prefer_socket=false",
        ] {
            let s = settings(url);
            assert_eq!(s.url, url);
            assert_eq!(s.mode, SslMode::Prefer);
            assert_eq!(s.root_cert, None);
        }
    }

    #[test]
    fn tls_parameters_are_stripped_and_the_others_kept() {
        let s = settings(
            "mysql://u:p%40ss@db.example:3307/shop?prefer_socket=false&sslmode=verify-full\
             &sslrootcert=/etc/ca%20dir/ca.pem&compression=fast",
        );
        assert_eq!(
            s.url,
            "mysql://u:p%40ss@db.example:3307/shop?prefer_socket=false&compression=fast"
        );
        assert_eq!(s.mode, SslMode::VerifyFull);
        assert_eq!(s.root_cert, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        let opts = mysql_async::Opts::from_url(&s.url).expect("the driver accepts it");
        assert_eq!(opts.pass(), Some("p@ss"));
        assert!(!opts.prefer_socket());

        let s = settings("mysql://root@h/db?sslmode=require");
        assert_eq!(s.url, "mysql://root@h/db");
        assert_eq!(s.mode, SslMode::Require);
        assert_eq!(s.setting, "sslmode=require");
    }

    #[test]
    fn libpq_and_mysql_spellings_of_the_mode_are_accepted() {
        for (value, mode) in [
            ("sslmode=disable", SslMode::Disable),
            ("sslmode=prefer", SslMode::Prefer),
            ("sslmode=require", SslMode::Require),
            ("sslmode=verify-ca&sslrootcert=ca.pem", SslMode::VerifyCa),
            ("sslmode=verify-full", SslMode::VerifyFull),
            ("ssl-mode=DISABLED", SslMode::Disable),
            ("ssl-mode=PREFERRED", SslMode::Prefer),
            ("ssl-mode=Required", SslMode::Require),
            ("ssl-mode=VERIFY_CA&ssl-ca=ca.pem", SslMode::VerifyCa),
            ("ssl-mode=verify_identity", SslMode::VerifyFull),
        ] {
            let s = settings(&format!("mysql://root@h/db?{value}"));
            assert_eq!(s.mode, mode, "{value}");
            assert_eq!(s.url, "mysql://root@h/db", "{value}");
        }
        assert_eq!(
            settings("mysql://root@h/db?ssl-mode=REQUIRED").setting,
            "ssl-mode=REQUIRED"
        );
    }

    #[test]
    fn bad_tls_parameters_are_rejected_without_showing_the_password() {
        let err = rejected("mysql://root:s3cret@h/db?sslmode=verify");
        assert!(
            err.contains("sslmode=\"verify\" is not a TLS mode"),
            "{err}"
        );
        assert!(
            err.contains("verify-full") && err.contains("VERIFY_IDENTITY"),
            "{err}"
        );

        let err = rejected("mysql://root:s3cret@h/db?sslmode=verify-ca");
        assert!(err.contains("needs sslrootcert="), "{err}");

        let err = rejected("mysql://root:s3cret@h/db?sslmode=require&sslrootcert=/ca.pem");
        assert!(
            err.contains("used only by sslmode=verify-ca and verify-full"),
            "{err}"
        );
        let err = rejected("mysql://root:s3cret@h/db?sslrootcert=/ca.pem");
        assert!(err.contains("sslmode=prefer does not check"), "{err}");

        let err = rejected("mysql://root:s3cret@h/db?require_ssl=true");
        assert!(
            err.contains("require_ssl is not supported; set sslmode="),
            "{err}"
        );

        let err = rejected("mysql://root:s3cret@h:99999/db?sslmode=require");
        assert!(err.contains("bad URL"), "{err}");

        for url in [
            "mysql://root:s3cret@h/db?sslmode=verify",
            "mysql://root:s3cret@h/db?sslmode=verify-ca",
            "mysql://root:s3cret@h/db?require_ssl=true",
            "mysql://root:s3cret@h:99999/db?sslmode=require",
        ] {
            assert!(!rejected(url).contains("s3cret"), "{url}");
        }
    }

    #[test]
    fn certificate_names_are_listed_plainly() {
        let names = vec![
            "DnsName(\"db.example\")".to_string(),
            "IpAddress(10.0.0.5)".to_string(),
        ];
        assert_eq!(certificate_names(&names), "db.example, 10.0.0.5");
        assert_eq!(certificate_names(&[]), "no host");
    }

    #[test]
    fn a_root_certificate_file_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.pem");
        let err = read_root_certs(&missing)
            .expect_err("missing file")
            .to_string();
        assert!(err.contains("missing.pem: cannot read it"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = read_root_certs(&empty)
            .expect_err("no certificate")
            .to_string();
        assert!(err.contains("empty.pem: no certificate in it"), "{err}");
    }
}
