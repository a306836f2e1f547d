//! One HTTP attempt: prepare the request ([`request`]), send it and read the answer
//! ([`response`]), and describe the outcome as a [`Failure`] whose text a customer understands.
//!
//! The request is the contract's (§3): the stored body bytes, `X-Qase-*` headers and the Standard
//! Webhooks headers, signed per attempt. Redirects are never followed, no proxy is used, and the
//! response is read only up to a small cap, all within `DELIVERY_TIMEOUT`.

use std::time::{Duration, Instant};
use webhooks_core::destination::Destinations;

use crate::claim::{Job, Target};
use crate::failure::Failure;
use crate::resolver::GuardedResolver;
use crate::retry::RetryAfter;

mod request;
mod response;

/// What happened to one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    pub success: bool,
    pub status_code: Option<u16>,
    /// `None` on success; otherwise what went wrong, whose text (e.g. "HTTP 500" or "no response
    /// within 15s") is stored and shown.
    pub error: Option<Failure>,
    pub duration: Duration,
    /// The first bytes of the response body, lossily decoded.
    pub response: Option<String>,
    /// The receiver's `Retry-After` on 429/503.
    pub retry_after: Option<RetryAfter>,
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
        let connect_timeout = timeout.min(Duration::from_secs(10));
        let client = reqwest::Client::builder()
            // A customer URL must never make us follow it elsewhere or through a proxy.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(GuardedResolver::new(destinations.clone(), connect_timeout))
            .timeout(timeout)
            .connect_timeout(connect_timeout)
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
                return failure(Failure::InvalidUrl(error.clone()), started, false);
            }
        };
        if let Err(refused) = self.check_literal_ip(url) {
            return failure(refused, started, false);
        }
        let request = request::prepare(&self.client, job, url, timestamp);
        let answer = response::receive(request, self.snippet_bytes);
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(answer)) => {
                let error = Failure::from_status(answer.status);
                Attempt {
                    success: error.is_none(),
                    status_code: Some(answer.status.as_u16()),
                    error,
                    duration: started.elapsed(),
                    response: Some(answer.snippet),
                    retry_after: answer.retry_after,
                    reached_network: true,
                }
            }
            Ok(Err(e)) => failure(Failure::classify(&e, self.timeout), started, true),
            Err(_) => failure(Failure::Timeout(self.timeout), started, true),
        }
    }

    fn check_literal_ip(&self, url: &reqwest::Url) -> Result<(), Failure> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => std::net::IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => std::net::IpAddr::V6(ip),
            _ => return Ok(()),
        };
        self.destinations
            .check(ip)
            .map_err(|refused| Failure::RefusedDestination(refused.to_string()))
    }
}

fn failure(error: Failure, started: Instant, reached_network: bool) -> Attempt {
    Attempt {
        success: false,
        status_code: None,
        error: Some(error),
        duration: started.elapsed(),
        response: None,
        retry_after: None,
        reached_network,
    }
}

#[cfg(test)]
mod tests;
