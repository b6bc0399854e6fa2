//! TLS for Postgres connections (rustls), with libpq's `sslmode` levels.
//!
//! tokio-postgres knows `disable`, `prefer` and `require`; flowline adds
//! libpq's `verify-ca` (the server's certificate chains to a trusted root)
//! and `verify-full` (and names the host connected to). Roots come from
//! `sslrootcert` (a PEM file), else `~/.postgresql/root.crt` as with libpq,
//! else the public web roots.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::clients::SslMode;
use crate::core::error::{Error, Result};

/// How much of the server's identity is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Encryption only: any certificate (libpq's `prefer` and `require`).
    Nothing,
    /// The certificate chains to a trusted root, whatever name it carries.
    Chain,
    /// The chain, and the certificate names the host connected to.
    Full,
}

/// A connection URL's TLS settings, taken out of it because tokio-postgres
/// does not know the verifying modes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// What to check.
    pub verify: Verify,
    /// `sslrootcert`: trusted roots for `verify-ca` and `verify-full`.
    pub root_cert: Option<PathBuf>,
}

/// Splits `verify-ca`/`verify-full` and `sslrootcert` off a `postgres://`
/// URL, returning the URL tokio-postgres accepts (with `sslmode=require` in
/// their place) and what to verify. Other URLs are returned unchanged.
pub fn split_url(url: &str) -> Result<(String, TlsSettings)> {
    let unchanged = |url: &str| {
        (
            url.to_string(),
            TlsSettings {
                verify: Verify::Nothing,
                root_cert: None,
            },
        )
    };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) || !url.contains('?') {
        return Ok(unchanged(url));
    }
    let mut parsed = url::Url::parse(url)
        .map_err(|e| Error::Config(format!("postgres: bad connection URL: {e}")))?;
    let mut verifying_mode = None;
    let mut root_cert = None;
    let mut kept = Vec::new();
    for (key, value) in parsed.query_pairs() {
        match (key.as_ref(), value.as_ref()) {
            ("sslmode", value) if SslMode::parse(value) == Some(SslMode::VerifyCa) => {
                verifying_mode = Some(Verify::Chain)
            }
            ("sslmode", value) if SslMode::parse(value) == Some(SslMode::VerifyFull) => {
                verifying_mode = Some(Verify::Full)
            }
            ("sslrootcert", path) => root_cert = Some(PathBuf::from(path)),
            _ => kept.push((key.into_owned(), value.into_owned())),
        }
    }
    let verify = match (verifying_mode, &root_cert) {
        (Some(mode), _) => {
            kept.push(("sslmode".into(), "require".into()));
            mode
        }
        // As with libpq, a root certificate given makes `require` (and a
        // `prefer` that gets TLS) check the chain.
        (None, Some(_)) => Verify::Chain,
        (None, None) => return Ok(unchanged(url)),
    };
    parsed.set_query(None);
    if !kept.is_empty() {
        parsed.query_pairs_mut().extend_pairs(kept);
    }
    Ok((parsed.to_string(), TlsSettings { verify, root_cert }))
}

/// The verifier of `prefer`, `require` and `verify-ca`: handshake
/// signatures are always checked; the certificate's chain only with
/// `check_chain` (libpq's `verify-ca`), and its host name never.
#[derive(Debug)]
struct Relaxed {
    webpki: Arc<WebPkiServerVerifier>,
    check_chain: bool,
}

impl ServerCertVerifier for Relaxed {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        if !self.check_chain {
            return Ok(ServerCertVerified::assertion());
        }
        match self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// The roots `verify-ca` and `verify-full` trust.
fn trusted_roots(settings: &TlsSettings) -> Result<RootCertStore> {
    let default_file = std::env::var_os("HOME")
        .map(|home| Path::new(&home).join(".postgresql/root.crt"))
        .filter(|path| path.exists());
    let mut roots = RootCertStore::empty();
    match settings.root_cert.as_ref().or(default_file.as_ref()) {
        Some(path) => {
            let unreadable = |e: &dyn std::fmt::Display| {
                Error::Config(format!("postgres: sslrootcert {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(&e))? {
                let cert = cert.map_err(|e| unreadable(&e))?;
                roots.add(cert).map_err(|e| unreadable(&e))?;
            }
            if roots.is_empty() {
                return Err(unreadable(&"no certificates in the file"));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    Ok(roots)
}

/// The TLS connector for a connection with `settings`.
pub fn connector(settings: &TlsSettings) -> Result<MakeRustlsConnect> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let setup = |e: &dyn std::fmt::Display| Error::Config(format!("postgres: TLS setup: {e}"));
    let roots = match settings.verify {
        // Not consulted; a verifier needs roots all the same.
        Verify::Nothing => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        Verify::Chain | Verify::Full => trusted_roots(settings)?,
    };
    let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| setup(&e))?;
    let verifier: Arc<dyn ServerCertVerifier> = match settings.verify {
        Verify::Full => webpki,
        other => Arc::new(Relaxed {
            webpki,
            check_chain: other == Verify::Chain,
        }),
    };
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(&e))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A TLS failure in a connection error, said plainly.
pub fn describe(error: &rustls::Error) -> String {
    match error {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "TLS: the server's certificate is not signed by a trusted root \
             (give the CA with sslrootcert=/path/ca.pem)"
                .into()
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "TLS: the server's certificate does not name this host \
              (connect by a name it carries, or use sslmode=verify-ca)"
            .into(),
        rustls::Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "TLS: the server's certificate has expired".into(),
        other => format!("TLS: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifying_modes_are_taken_out_of_the_url() {
        let (url, tls) = split_url(
            "postgresql://app:s3cret@db.example.com:5433/shop?sslmode=verify-full&sslrootcert=/etc/ca.pem&application_name=x",
        )
        .expect("splits");
        assert_eq!(
            url,
            "postgresql://app:s3cret@db.example.com:5433/shop?application_name=x&sslmode=require"
        );
        assert_eq!(tls.verify, Verify::Full);
        assert_eq!(tls.root_cert, Some(PathBuf::from("/etc/ca.pem")));

        let (_, tls) = split_url("postgres://h/db?sslmode=verify-ca").expect("splits");
        assert_eq!(tls.verify, Verify::Chain);
        // MySQL's spelling names the same mode, as in a MySQL URL.
        let (_, tls) = split_url("postgres://h/db?sslmode=VERIFY_IDENTITY").expect("splits");
        assert_eq!(tls.verify, Verify::Full);

        for plain in [
            "postgres://h/db",
            "postgres://h/db?sslmode=require",
            "host=h dbname=db sslmode=disable",
        ] {
            let (url, tls) = split_url(plain).expect("splits");
            assert_eq!(url, plain);
            assert_eq!(tls.verify, Verify::Nothing);
        }
    }

    #[test]
    fn a_missing_root_file_is_named() {
        let settings = TlsSettings {
            verify: Verify::Full,
            root_cert: Some(PathBuf::from("/nonexistent/ca.pem")),
        };
        let err = connector(&settings).err().expect("fails").to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
