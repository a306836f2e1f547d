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

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use std::io;
use std::path::{Path, PathBuf};

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

mod connect;
mod verify;
pub use connect::{MakeRustls, RustlsConnect, RustlsStream};
pub use verify::client_config;

#[cfg(test)]
mod tests;
