//! TLS to PostgreSQL: rustls (with the `ring` provider, as everywhere in the services) under
//! tokio-postgres, with libpq's meanings of `sslmode`.
//!
//! `DATABASE_URL` may carry `sslmode` (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`)
//! and `sslrootcert` (a PEM file of the certificate authorities to trust); `DATABASE_CA_FILE` names
//! that file too. tokio-postgres knows neither the two `verify-` modes nor `sslrootcert`, so
//! [`split_url`] takes both out of the URL and [`client_config`] turns them into a rustls client
//! whose certificate verifier does what the mode says. [`MakeRustls`] hands that client to
//! tokio-postgres.
//!
//! The broker's TLS (`amqps://`, `AMQP_CA_FILE`) is lapin's own: see
//! [`crate::amqp::connection`].

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ClientConfig, WebPkiServerVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// What a TLS set-up can get wrong before any connection is made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("unknown sslmode {0:?} (disable, prefer, require, verify-ca or verify-full)")]
    Mode(String),
    #[error("reading the CA file {path}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the CA file {0} holds no PEM certificate")]
    NoCertificate(PathBuf),
    #[error("the CA file {path} holds a certificate that cannot be used")]
    BadCertificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("no trusted certificate authority: name a CA file, or install the system's")]
    NoRoots,
    #[error("TLS set-up")]
    Rustls(#[from] rustls::Error),
    #[error("TLS certificate verifier set-up")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
}

/// libpq's `sslmode`, from least to most checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, unverified; plain otherwise. libpq's default.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is not checked (unless a CA file is named, which
    /// makes it `VerifyCa`, as in libpq).
    Require,
    /// TLS with a certificate issued by a trusted authority, for whatever host name.
    VerifyCa,
    /// TLS with a certificate issued by a trusted authority for the host connected to.
    VerifyFull,
}

impl std::str::FromStr for SslMode {
    type Err = TlsError;

    fn from_str(s: &str) -> Result<Self, TlsError> {
        Ok(match s {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(TlsError::Mode(other.to_owned())),
        })
    }
}

impl SslMode {
    /// The mode tokio-postgres itself understands: whether to ask for TLS and whether to insist.
    pub fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            Self::Disable => Pg::Disable,
            Self::Prefer => Pg::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Pg::Require,
        }
    }
}

/// The TLS settings a `DATABASE_URL` carries, and the URL without them.
#[derive(Debug, PartialEq, Eq)]
pub struct UrlTls {
    /// The URL as tokio-postgres can read it.
    pub url: String,
    /// `sslmode`, when the URL names one.
    pub mode: Option<SslMode>,
    /// `sslrootcert`, when the URL names one.
    pub root_cert: Option<PathBuf>,
}

/// Takes `sslmode` and `sslrootcert` out of a URL (`postgres://…?sslmode=verify-full`) or out of a
/// key-value string (`host=… sslmode=verify-full`).
pub fn split_url(url: &str) -> Result<UrlTls, TlsError> {
    let mut mode = None;
    let mut root_cert = None;
    let mut take = |key: &str, value: &str| -> Result<bool, TlsError> {
        match key {
            "sslmode" => mode = Some(value.parse()?),
            "sslrootcert" => root_cert = Some(PathBuf::from(percent_decode(value))),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let url = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, value)? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        // Key-value form; values with spaces (quoted) are left to tokio-postgres untouched.
        let mut kept = Vec::new();
        for word in url.split(' ').filter(|w| !w.is_empty()) {
            let taken = match word.split_once('=') {
                Some((key, value)) => take(key, value)?,
                None => false,
            };
            if !taken {
                kept.push(word);
            }
        }
        kept.join(" ")
    };
    Ok(UrlTls {
        url,
        mode,
        root_cert,
    })
}

/// `%XX` escapes of a URL query value (a path may hold `/` written as `%2F`).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a PEM file of certificate authorities.
pub fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::CaFile {
        path: path.to_owned(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::CaFile {
            path: path.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls client for `mode`: trusting the authorities in `ca_file`, or the system's when
/// none is named; `None` for [`SslMode::Disable`].
pub fn client_config(
    mode: SslMode,
    ca_file: Option<&Path>,
) -> Result<Option<ClientConfig>, TlsError> {
    let provider = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, ca_file) {
        (SslMode::Disable, _) => return Ok(None),
        // Encrypt without checking who answers: what libpq's prefer and require do.
        (SslMode::Prefer | SslMode::Require, None) => Arc::new(Unverified(provider.clone())),
        (SslMode::Prefer | SslMode::Require | SslMode::VerifyCa, _) => Arc::new(AnyName(
            WebPkiServerVerifier::builder_with_provider(roots(ca_file)?, provider.clone())
                .build()?,
        )),
        (SslMode::VerifyFull, _) => {
            WebPkiServerVerifier::builder_with_provider(roots(ca_file)?, provider.clone())
                .build()?
        }
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Some(config))
}

/// The authorities in `ca_file`, or the system's.
fn roots(ca_file: Option<&Path>) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_ca_file(path)? {
                store.add(cert).map_err(|source| TlsError::BadCertificate {
                    path: path.to_owned(),
                    source,
                })?;
            }
        }
        None => {
            let (added, _) =
                store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            if added == 0 {
                return Err(TlsError::NoRoots);
            }
        }
    }
    Ok(Arc::new(store))
}

/// Accepts any certificate, checking only that the server holds its key (the handshake's
/// signature): encryption without authentication, libpq's `require`.
#[derive(Debug)]
struct Unverified(Arc<CryptoProvider>);

impl ServerCertVerifier for Unverified {
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
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The chain must lead to a trusted authority; the name in the certificate is not checked
/// (`verify-ca`). webpki checks the chain before the name, so a name mismatch is all it can
/// report about a certificate whose chain is good.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
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

/// tokio-postgres's TLS connector over a rustls client. Without a client (`sslmode=disable`) it is
/// never asked to connect.
#[derive(Clone)]
pub struct MakeRustls(Option<Arc<ClientConfig>>);

impl MakeRustls {
    pub fn new(config: Option<ClientConfig>) -> Self {
        Self(config.map(Arc::new))
    }
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            config: self.0.clone(),
            name,
        })
    }
}

/// One connection's TLS handshake.
pub struct RustlsConnect {
    config: Option<Arc<ClientConfig>>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self.config.ok_or_else(|| {
                io::Error::new(io::ErrorKind::Unsupported, "TLS is disabled (sslmode)")
            })?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(stream))
        })
    }
}

/// A TLS connection to the server.
pub struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    /// No channel binding: SCRAM authenticates without it (tokio-postgres's default is to use it
    /// only when offered, and the server never insists).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_leave_the_url() {
        let split =
            split_url("postgres://u@db:5432/webhooks?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x")
                .expect("a URL");
        assert_eq!(
            split.url,
            "postgres://u@db:5432/webhooks?application_name=x"
        );
        assert_eq!(split.mode, Some(SslMode::VerifyFull));
        assert_eq!(split.root_cert, Some(PathBuf::from("/etc/ca.pem")));

        let plain = split_url("postgres://u@db/webhooks").expect("a URL");
        assert_eq!(plain.url, "postgres://u@db/webhooks");
        assert_eq!(plain.mode, None);

        let only = split_url("postgresql://db/w?sslmode=require").expect("a URL");
        assert_eq!(only.url, "postgresql://db/w");
        assert_eq!(only.mode, Some(SslMode::Require));

        let pairs = split_url("host=db user=u sslmode=verify-ca dbname=w").expect("pairs");
        assert_eq!(pairs.url, "host=db user=u dbname=w");
        assert_eq!(pairs.mode, Some(SslMode::VerifyCa));

        let error = split_url("postgres://db/w?sslmode=strict").expect_err("unknown mode");
        assert!(error.to_string().contains("\"strict\""), "{error}");
    }

    #[test]
    fn verify_modes_ask_tokio_postgres_for_tls_or_nothing() {
        use tokio_postgres::config::SslMode as Pg;
        assert_eq!(SslMode::VerifyFull.negotiation(), Pg::Require);
        assert_eq!(SslMode::VerifyCa.negotiation(), Pg::Require);
        assert_eq!(SslMode::default().negotiation(), Pg::Prefer);
        assert_eq!(SslMode::Disable.negotiation(), Pg::Disable);
    }

    #[test]
    fn a_missing_ca_file_is_named() {
        let error = client_config(SslMode::VerifyFull, Some(Path::new("/nonexistent/ca.pem")))
            .expect_err("no such file");
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        assert!(
            client_config(SslMode::Disable, None)
                .expect("no TLS")
                .is_none()
        );
    }
}
