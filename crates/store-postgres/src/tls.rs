//! TLS to PostgreSQL, with libpq's meanings of `sslmode` (rustls, ring):
//!
//! - `disable`: never;
//! - `prefer` (the default, as in libpq): TLS when the server offers it, unauthenticated;
//! - `require`: TLS or no connection, unauthenticated (it stops eavesdroppers, not a
//!   man in the middle);
//! - `verify-ca`: TLS, and the server's certificate must chain to a trusted root;
//! - `verify-full`: also for the host the URL names (its DNS name or IP address).
//!
//! The trusted roots are the file `sslrootcert` names (PEM), or else the system's. tokio-postgres
//! itself knows only `disable`, `prefer` and `require`, so `sslmode` and `sslrootcert` are taken
//! off the URL here before it is parsed.

use std::str::FromStr;
use std::sync::Arc;

use logbook_store::StoreError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// libpq's `sslmode` values (`allow` is taken as `prefer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl FromStr for SslMode {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, StoreError> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => {
                return Err(StoreError::backend(format!(
                    "sslmode={s} is not one of disable, prefer, require, verify-ca, verify-full"
                )))
            }
        })
    }
}

/// What to connect to and how.
pub(crate) struct Target {
    pub config: tokio_postgres::Config,
    pub tls: MakeRustlsConnect,
    pub mode: SslMode,
}

/// Reads a `postgres://` URL (or a `key=value` string, which tokio-postgres parses as it is).
pub(crate) fn target(url: &str) -> Result<Target, StoreError> {
    let (rest, mode, root_cert) = split(url)?;
    // The parser's own error is left out: it can quote the URL, password included.
    let mut config = tokio_postgres::Config::from_str(&rest).map_err(|_| {
        StoreError::backend("the PostgreSQL URL is malformed (expected postgres://USER@HOST:PORT/DATABASE)")
    })?;
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => tokio_postgres::config::SslMode::Require,
    });
    let tls = MakeRustlsConnect::new(client_config(mode, root_cert.as_deref())?);
    Ok(Target { config, tls, mode })
}

/// The URL without `sslmode` and `sslrootcert`, and their values.
fn split(url: &str) -> Result<(String, SslMode, Option<String>), StoreError> {
    let Some((head, query)) = url.split_once('?').filter(|_| url.contains("://")) else {
        return Ok((url.to_owned(), SslMode::Prefer, None));
    };
    let (mut mode, mut root_cert, mut kept) = (SslMode::Prefer, None, Vec::new());
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some(("sslmode", v)) => mode = v.parse()?,
            Some(("sslrootcert", v)) => {
                root_cert = Some(percent_encoding::percent_decode_str(v).decode_utf8_lossy().into_owned())
                    .filter(|p| !p.is_empty())
            }
            _ => kept.push(pair),
        }
    }
    let rest = if kept.is_empty() { head.to_owned() } else { format!("{head}?{}", kept.join("&")) };
    Ok((rest, mode, root_cert))
}

fn client_config(mode: SslMode, root_cert: Option<&str>) -> Result<ClientConfig, StoreError> {
    // ring, as lettre's TLS uses: rustls 0.23.48 deprecates it only for lacking post-quantum
    // key exchange, which PostgreSQL's own OpenSSL does not offer by default either; aws-lc-rs
    // would add a C build (cmake) to every machine that builds Logbook.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(StoreError::backend)?;
    let config = match mode {
        SslMode::Disable | SslMode::Prefer | SslMode::Require if root_cert.is_none() => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unauthenticated(provider)))
            .with_no_client_auth(),
        _ => {
            let roots = Arc::new(roots(root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| StoreError::backend(format!("PostgreSQL TLS roots: {e}")))?;
            if mode == SslMode::VerifyFull {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                // libpq: with a root certificate, `require` and `prefer` check the chain too.
                builder.dangerous().with_custom_certificate_verifier(Arc::new(ChainOnly(webpki))).with_no_client_auth()
            }
        }
    };
    Ok(config)
}

/// The roots in `file`, or the system's.
fn roots(file: Option<&str>) -> Result<RootCertStore, StoreError> {
    let mut roots = RootCertStore::empty();
    match file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| StoreError::backend(format!("reading sslrootcert {path}: {e}")))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(StoreError::backend(format!("sslrootcert {path} holds no usable certificate")));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(StoreError::backend(
                    "sslmode verify-ca/verify-full: no system root certificates found; name the CA with sslrootcert=FILE",
                ));
            }
        }
    }
    Ok(roots)
}

/// `prefer` and `require` without a root certificate: encrypted, the server not authenticated
/// (libpq's meaning). The handshake's signatures are still checked.
#[derive(Debug)]
struct Unauthenticated(Arc<CryptoProvider>);

impl ServerCertVerifier for Unauthenticated {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to a trusted root; the name in the certificate is not
/// compared with the host.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.0.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
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
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_parameters_come_off_the_url() {
        let (rest, mode, root) =
            split("postgres://u:p@db:5432/logbook?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem")
                .unwrap();
        assert_eq!(rest, "postgres://u:p@db:5432/logbook?application_name=x");
        assert_eq!((mode, root.as_deref()), (SslMode::VerifyFull, Some("/etc/ca.pem")));
        let (rest, mode, root) = split("postgres://u@db/logbook?sslmode=require").unwrap();
        assert_eq!((rest.as_str(), mode, root), ("postgres://u@db/logbook", SslMode::Require, None));
        assert_eq!(split("postgres://u@db/logbook").unwrap().1, SslMode::Prefer, "libpq's default");
        let e = split("postgres://u:secret@db/logbook?sslmode=verify").unwrap_err().to_string();
        assert!(e.contains("sslmode=verify is not one of") && !e.contains("secret"), "{e}");
        assert!(target("postgres://u@db/logbook?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem").is_err());
    }
}
