//! Why an attempt failed, as a kind decided from the error's types where it arises.
//!
//! [`Failure`]'s `Display` is the text stored with the attempt (`attempts.error`, the webhook's
//! `last_error`) and shown in the API and the disable notification, so its wording is part of
//! the contract: change a text only on purpose. [`Failure::classify`] reads a client error's
//! cause chain for the types that say what happened (the resolver's own errors, `std::io`'s
//! kinds, rustls's and hyper's errors) rather than matching on their messages.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::resolver::{DestinationRefused, LookupFailed};

/// What went wrong with one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The stored URL does not parse (the API accepts none such); says why.
    InvalidUrl(String),
    /// The URL's address, or every address its host resolves to, is one deliveries may not
    /// reach; says why.
    RefusedDestination(String),
    /// The host name did not resolve.
    Dns,
    /// Nothing listens at the address.
    ConnectionRefused,
    /// The receiver reset the connection.
    ConnectionReset,
    /// The receiver closed the connection before a whole response.
    ConnectionClosed,
    /// No connection for another reason (unreachable network, say).
    Connect,
    /// The TLS handshake failed; rustls's description.
    Tls(String),
    /// No whole response within `DELIVERY_TIMEOUT`.
    Timeout(Duration),
    /// The receiver answered with a status that is neither success nor redirection.
    Status(u16),
    /// The receiver answered with a redirection, which is never followed.
    Redirect(u16),
    /// The receiver's answer is not HTTP.
    InvalidResponse,
    /// Anything else the client reports.
    Other,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            Self::RefusedDestination(why) => write!(f, "destination refused: {why}"),
            Self::Dns => f.write_str("could not resolve the host name"),
            Self::ConnectionRefused => f.write_str("connection refused"),
            Self::ConnectionReset => f.write_str("connection reset by the receiver"),
            Self::ConnectionClosed => f.write_str("connection closed by the receiver"),
            Self::Connect => f.write_str("could not connect"),
            Self::Tls(why) => write!(f, "TLS error: {why}"),
            Self::Timeout(timeout) => write!(
                f,
                "no response within {}",
                webhooks_core::duration::format(*timeout)
            ),
            Self::Status(code) => write!(f, "HTTP {code}"),
            Self::Redirect(code) => write!(f, "HTTP {code} redirect, not followed"),
            Self::InvalidResponse => f.write_str("invalid response"),
            Self::Other => f.write_str("request failed"),
        }
    }
}

impl Failure {
    /// The failure a response's status means, if any: `None` for a success.
    pub fn from_status(status: reqwest::StatusCode) -> Option<Self> {
        if status.is_success() {
            None
        } else if status.is_redirection() {
            Some(Self::Redirect(status.as_u16()))
        } else {
            Some(Self::Status(status.as_u16()))
        }
    }

    /// Classifies a client error by the first cause in its chain whose type says what happened;
    /// failing that, by what reqwest knows of it. `timeout` is the attempt's limit, for the text.
    pub fn classify(error: &reqwest::Error, timeout: Duration) -> Self {
        if error.is_timeout() {
            return Self::Timeout(timeout);
        }
        let mut source = error.source();
        while let Some(cause) = source {
            if let Some(failure) = Self::from_cause(cause, timeout) {
                return failure;
            }
            source = cause.source();
        }
        if error.is_connect() {
            Self::Connect
        } else if error.is_body() || error.is_decode() {
            Self::InvalidResponse
        } else {
            Self::Other
        }
    }

    /// The failure one cause of a client error names, if its type names one.
    fn from_cause(cause: &(dyn Error + 'static), timeout: Duration) -> Option<Self> {
        if let Some(refused) = cause.downcast_ref::<DestinationRefused>() {
            return Some(Self::RefusedDestination(refused.0.clone()));
        }
        if cause.is::<LookupFailed>() {
            return Some(Self::Dns);
        }
        if let Some(tls) = cause.downcast_ref::<rustls::Error>() {
            return Some(Self::Tls(tls.to_string()));
        }
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Self::from_io(io, timeout);
        }
        if let Some(http) = cause.downcast_ref::<hyper::Error>() {
            if http.is_incomplete_message() {
                return Some(Self::ConnectionClosed);
            }
            if http.is_parse() || http.is_parse_status() {
                return Some(Self::InvalidResponse);
            }
            if http.is_timeout() {
                return Some(Self::Timeout(timeout));
            }
        }
        None
    }

    fn from_io(io: &io::Error, timeout: Duration) -> Option<Self> {
        // The TLS stream reports rustls's errors as I/O errors that wrap them (and the HTTPS
        // connector wraps those once more). An I/O error's `source` skips the error it wraps,
        // so look inside.
        if let Some(failure) = io
            .get_ref()
            .and_then(|inner| Self::from_cause(inner, timeout))
        {
            return Some(failure);
        }
        match io.kind() {
            io::ErrorKind::ConnectionRefused => Some(Self::ConnectionRefused),
            io::ErrorKind::ConnectionReset => Some(Self::ConnectionReset),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::UnexpectedEof => {
                Some(Self::ConnectionClosed)
            }
            io::ErrorKind::TimedOut => Some(Self::Timeout(timeout)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The texts customers see today, which stored attempts and tests rely on.
    #[test]
    fn each_kind_reads_as_the_customer_sees_it() {
        let cases = [
            (
                Failure::InvalidUrl("relative URL without a base".into()),
                "invalid URL: relative URL without a base",
            ),
            (
                Failure::RefusedDestination("10.0.0.1 is a private address".into()),
                "destination refused: 10.0.0.1 is a private address",
            ),
            (Failure::Dns, "could not resolve the host name"),
            (Failure::ConnectionRefused, "connection refused"),
            (Failure::ConnectionReset, "connection reset by the receiver"),
            (
                Failure::ConnectionClosed,
                "connection closed by the receiver",
            ),
            (Failure::Connect, "could not connect"),
            (
                Failure::Tls("invalid peer certificate: UnknownIssuer".into()),
                "TLS error: invalid peer certificate: UnknownIssuer",
            ),
            (
                Failure::Timeout(Duration::from_millis(500)),
                "no response within 500ms",
            ),
            (
                Failure::Timeout(Duration::from_secs(15)),
                "no response within 15s",
            ),
            (Failure::Status(500), "HTTP 500"),
            (Failure::Redirect(302), "HTTP 302 redirect, not followed"),
            (Failure::InvalidResponse, "invalid response"),
            (Failure::Other, "request failed"),
        ];
        for (failure, text) in cases {
            assert_eq!(failure.to_string(), text, "{failure:?}");
        }
    }

    #[test]
    fn a_status_is_a_success_a_redirect_or_a_failure() {
        use reqwest::StatusCode;
        assert_eq!(Failure::from_status(StatusCode::OK), None);
        assert_eq!(Failure::from_status(StatusCode::NO_CONTENT), None);
        assert_eq!(
            Failure::from_status(StatusCode::FOUND),
            Some(Failure::Redirect(302))
        );
        assert_eq!(
            Failure::from_status(StatusCode::NOT_MODIFIED),
            Some(Failure::Redirect(304))
        );
        assert_eq!(
            Failure::from_status(StatusCode::TOO_MANY_REQUESTS),
            Some(Failure::Status(429))
        );
        assert_eq!(
            Failure::from_status(StatusCode::INTERNAL_SERVER_ERROR),
            Some(Failure::Status(500))
        );
        assert_eq!(
            Failure::from_status(StatusCode::CONTINUE),
            Some(Failure::Status(100))
        );
    }

    #[test]
    fn io_kinds_and_wrapped_tls_errors_are_classified_by_type() {
        let timeout = Duration::from_secs(1);
        let kind = |kind: io::ErrorKind| Failure::from_io(&io::Error::from(kind), timeout);
        assert_eq!(
            kind(io::ErrorKind::ConnectionRefused),
            Some(Failure::ConnectionRefused)
        );
        assert_eq!(
            kind(io::ErrorKind::ConnectionReset),
            Some(Failure::ConnectionReset)
        );
        assert_eq!(
            kind(io::ErrorKind::ConnectionAborted),
            Some(Failure::ConnectionClosed)
        );
        assert_eq!(
            kind(io::ErrorKind::UnexpectedEof),
            Some(Failure::ConnectionClosed)
        );
        assert_eq!(
            kind(io::ErrorKind::TimedOut),
            Some(Failure::Timeout(timeout))
        );
        assert_eq!(kind(io::ErrorKind::PermissionDenied), None);
        let tls = io::Error::other(io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::AlertReceived(rustls::AlertDescription::HandshakeFailure),
        ));
        assert_eq!(
            Failure::from_io(&tls, timeout),
            Some(Failure::Tls(
                "received fatal alert: HandshakeFailure".into()
            ))
        );
    }

    #[test]
    fn the_resolver_s_errors_are_classified_by_type() {
        let timeout = Duration::from_secs(1);
        let refused = DestinationRefused("example.com resolves to 10.0.0.1".into());
        assert_eq!(
            Failure::from_cause(&refused, timeout),
            Some(Failure::RefusedDestination(
                "example.com resolves to 10.0.0.1".into()
            ))
        );
        let lookup = LookupFailed(io::Error::other("failed to lookup address information"));
        assert_eq!(Failure::from_cause(&lookup, timeout), Some(Failure::Dns));
    }
}
