//! One HTTP attempt: prepare the request, send it, and describe the outcome in words a customer
//! understands.
//!
//! The request is the contract's (§3): the stored body bytes, `X-Qase-*` headers and the Standard
//! Webhooks headers, signed per attempt. Redirects are never followed, no proxy is used, and the
//! response is read only up to a small cap, all within `DELIVERY_TIMEOUT`.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use std::error::Error as _;
use std::time::{Duration, Instant};
use webhooks_core::destination::Destinations;
use webhooks_core::signing::SigningKey;

use crate::claim::{Job, Target};
use crate::resolver::{DestinationRefused, GuardedResolver};

/// What happened to one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub success: bool,
    pub status_code: Option<u16>,
    /// `None` on success; otherwise what went wrong, e.g. "HTTP 500" or "no response within 15s".
    pub error: Option<String>,
    pub duration: Duration,
    /// The first bytes of the response body, lossily decoded.
    pub response: Option<String>,
    /// The receiver's `Retry-After` on 429/503.
    pub retry_after: Option<Duration>,
    /// Whether a connection was attempted at all (false when the destination was refused up front).
    pub reached_network: bool,
}

/// The HTTP client and what each attempt needs besides the job.
#[derive(Clone)]
pub struct Sender {
    client: reqwest::Client,
    destinations: Destinations,
    timeout: Duration,
    snippet_bytes: usize,
}

impl Sender {
    /// A client that keeps up to `idle_per_host` idle connections per host for reuse. The sender
    /// passes `MAX_IN_FLIGHT`, as many as can be in use at once, so that no connection of a burst
    /// is closed for want of room in the pool only for the next burst to open it again (a TCP
    /// and, for https, a TLS handshake each). Idle connections close after a minute.
    pub fn new(
        destinations: Destinations,
        timeout: Duration,
        snippet_bytes: usize,
        idle_per_host: usize,
    ) -> reqwest::Result<Self> {
        let client = reqwest::Client::builder()
            // A customer URL must never make us follow it elsewhere or through a proxy.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(destinations.clone()))
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(idle_per_host)
            .user_agent(concat!("webhooks-sender/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            destinations,
            timeout,
            snippet_bytes,
        })
    }

    /// Makes one attempt of `job`, stamped with `timestamp` (Unix seconds).
    pub async fn attempt(&self, job: &Job, timestamp: i64) -> Attempt {
        let started = Instant::now();
        let url = match &job.url {
            Target::Url(url) => url,
            Target::Invalid { error, .. } => {
                return failure(None, format!("invalid URL: {error}"), started, false);
            }
        };
        if let Err(refused) = self.check_literal_ip(url) {
            return failure(None, refused, started, false);
        }
        let request = self.prepare(job, url, timestamp);
        match tokio::time::timeout(self.timeout, self.send(request)).await {
            Ok(Ok((status, headers, response))) => {
                let success = status.is_success();
                let error = if success {
                    None
                } else if status.is_redirection() {
                    Some(format!("HTTP {} redirect, not followed", status.as_u16()))
                } else {
                    Some(format!("HTTP {}", status.as_u16()))
                };
                let retry_after = if matches!(status.as_u16(), 429 | 503) {
                    retry_after(&headers)
                } else {
                    None
                };
                Attempt {
                    success,
                    status_code: Some(status.as_u16()),
                    error,
                    duration: started.elapsed(),
                    response: Some(response),
                    retry_after,
                    reached_network: true,
                }
            }
            Ok(Err(e)) => failure(None, describe(&e, self.timeout), started, true),
            Err(_) => failure(None, timeout_text(self.timeout), started, true),
        }
    }

    fn check_literal_ip(&self, url: &reqwest::Url) -> Result<(), String> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.destinations
            .check(ip)
            .map_err(|refused| format!("destination refused: {refused}"))
    }

    fn prepare(&self, job: &Job, url: &reqwest::Url, timestamp: i64) -> reqwest::RequestBuilder {
        let id = job.delivery_id.to_string();
        let mut headers = HeaderMap::with_capacity(7);
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            "x-qase-event",
            HeaderValue::from_static(job.event_name.as_str()),
        );
        headers.insert("x-qase-delivery", header(&id));
        headers.insert("webhook-id", header(&id));
        headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
        if let Some(secret) = &job.secret {
            if let Ok(mut value) = HeaderValue::from_str(secret.expose()) {
                value.set_sensitive(true);
                headers.insert("x-qase-secret", value);
            }
            let signature = SigningKey::from_secret(secret).sign(&id, timestamp, &job.body);
            headers.insert("webhook-signature", header(&signature));
        }
        self.client
            .post(url.clone())
            .headers(headers)
            .body(Bytes::clone(&job.body))
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> reqwest::Result<(reqwest::StatusCode, HeaderMap, String)> {
        let mut response = request.send().await?;
        let status = response.status();
        let headers = std::mem::take(response.headers_mut());
        let mut kept = Vec::new();
        // Read at most the snippet; a receiver streaming forever costs nothing more.
        while kept.len() < self.snippet_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.snippet_bytes - kept.len();
                    kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                // A body cut short does not change the status the receiver already gave.
                Ok(None) | Err(_) => break,
            }
        }
        Ok((status, headers, String::from_utf8_lossy(&kept).into_owned()))
    }
}

fn header(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).expect("ids and signatures are ASCII")
}

fn failure(
    status_code: Option<u16>,
    error: String,
    started: Instant,
    reached_network: bool,
) -> Attempt {
    Attempt {
        success: false,
        status_code,
        error: Some(error),
        duration: started.elapsed(),
        response: None,
        retry_after: None,
        reached_network,
    }
}

fn timeout_text(timeout: Duration) -> String {
    format!(
        "no response within {}",
        webhooks_core::duration::format(timeout)
    )
}

/// `Retry-After` as delay-seconds (HTTP dates are rare from webhook receivers and are ignored).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds: u64 = headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

/// Turns a client error into the words a customer sees in the API.
fn describe(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return timeout_text(timeout);
    }
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<DestinationRefused>() {
            return refused.to_string();
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::*;
            match io.kind() {
                ConnectionRefused => return "connection refused".into(),
                ConnectionReset => return "connection reset by the receiver".into(),
                ConnectionAborted | UnexpectedEof => {
                    return "connection closed by the receiver".into();
                }
                TimedOut => return timeout_text(timeout),
                _ => {}
            }
            let text = io.to_string();
            if text.contains("failed to lookup") || text.contains("Name or service not known") {
                return "could not resolve the host name".into();
            }
        }
        let text = cause.to_string();
        if text.contains("certificate") || text.contains("tls") || text.contains("TLS") {
            return format!("TLS error: {text}");
        }
        source = cause.source();
    }
    if error.is_connect() {
        return "could not connect".into();
    }
    if error.is_body() || error.is_decode() {
        return "invalid response".into();
    }
    "request failed".into()
}
