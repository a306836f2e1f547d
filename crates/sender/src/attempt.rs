//! One HTTP attempt: prepare the request, send it, and describe the outcome as a [`Failure`]
//! whose text a customer understands.
//!
//! The request is the contract's (§3): the stored body bytes, `X-Qase-*` headers and the Standard
//! Webhooks headers, signed per attempt. Redirects are never followed, no proxy is used, and the
//! response is read only up to a small cap, all within `DELIVERY_TIMEOUT`.

use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use std::time::{Duration, Instant};
use webhooks_core::destination::Destinations;
use webhooks_core::signing::SigningKey;

use crate::claim::{Job, Target};
use crate::failure::Failure;
use crate::resolver::GuardedResolver;

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
                return failure(Failure::InvalidUrl(error.clone()), started, false);
            }
        };
        if let Err(refused) = self.check_literal_ip(url) {
            return failure(refused, started, false);
        }
        let request = self.prepare(job, url, timestamp);
        match tokio::time::timeout(self.timeout, self.send(request)).await {
            Ok(Ok((status, headers, response))) => {
                let error = Failure::from_status(status);
                let retry_after = if matches!(status.as_u16(), 429 | 503) {
                    retry_after(&headers)
                } else {
                    None
                };
                Attempt {
                    success: error.is_none(),
                    status_code: Some(status.as_u16()),
                    error,
                    duration: started.elapsed(),
                    response: Some(response),
                    retry_after,
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use webhooks_core::event::EventName;

    fn job(url: &str) -> Job {
        Job {
            delivery_id: uuid::Uuid::nil(),
            webhook_id: uuid::Uuid::nil(),
            event_name: EventName::ALL[0],
            url: Target::parse(url),
            secret: None,
            body: Bytes::from_static(b"{}"),
            attempt_count: 0,
            first_attempt_at: None,
            webhook_changed_at: chrono::Utc::now(),
        }
    }

    fn sender(timeout: Duration, allow_loopback: bool) -> Sender {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let allowed = if allow_loopback {
            vec!["127.0.0.0/8".parse().unwrap()]
        } else {
            vec![]
        };
        Sender::new(Destinations::new(allowed), timeout, 64, 1).unwrap()
    }

    /// Serves one connection with `serve` and returns what an attempt at it saw.
    async fn against<F, Fut>(scheme: &str, timeout: Duration, serve: F) -> Attempt
    where
        F: FnOnce(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            serve(stream).await;
        });
        let attempt = sender(timeout, true)
            .attempt(&job(&format!("{scheme}://127.0.0.1:{port}/hook")), 0)
            .await;
        server.abort();
        attempt
    }

    /// Reads the request's head (the body is two bytes and comes with it or right after).
    async fn read_head(stream: &mut TcpStream) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "the client closed before sending its request");
            seen.extend_from_slice(&buf[..n]);
        }
    }

    const SHORT: Duration = Duration::from_secs(5);

    /// Waits for the client to close, so that the server's side of a test ends no earlier.
    async fn drain(stream: &mut TcpStream) {
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest).await;
    }

    #[tokio::test]
    async fn statuses_are_successes_redirects_or_failures() {
        let answer = |head: &'static [u8]| {
            against("http", SHORT, move |mut s| async move {
                read_head(&mut s).await;
                s.write_all(head).await.unwrap();
                drain(&mut s).await;
            })
        };
        let ok = answer(b"HTTP/1.1 204 No Content\r\n\r\n").await;
        assert!(ok.success);
        assert_eq!((ok.status_code, ok.error), (Some(204), None));
        let moved =
            answer(b"HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n").await;
        assert!(!moved.success);
        assert_eq!(moved.status_code, Some(302));
        assert_eq!(moved.error, Some(Failure::Redirect(302)));
        let busy =
            answer(b"HTTP/1.1 503 Busy\r\nretry-after: 7\r\ncontent-length: 3\r\n\r\nno!").await;
        assert_eq!(busy.error, Some(Failure::Status(503)));
        assert_eq!(busy.retry_after, Some(Duration::from_secs(7)));
        assert_eq!(busy.response.as_deref(), Some("no!"));
    }

    #[tokio::test]
    async fn a_body_cut_short_keeps_the_status() {
        let attempt = against("http", SHORT, |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"HTTP/1.1 500 Oops\r\ncontent-length: 100\r\n\r\nabc")
                .await
                .unwrap();
        })
        .await;
        assert_eq!(attempt.error, Some(Failure::Status(500)));
        assert_eq!(attempt.response.as_deref(), Some("abc"));
    }

    #[tokio::test]
    async fn nothing_listening_is_a_refused_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let attempt = sender(SHORT, true)
            .attempt(&job(&format!("http://127.0.0.1:{port}/")), 0)
            .await;
        assert_eq!(attempt.error, Some(Failure::ConnectionRefused));
        assert!(attempt.reached_network);
    }

    #[tokio::test]
    async fn a_reset_and_a_close_are_told_apart() {
        // Closing a socket with unread data makes the kernel reset the connection.
        let reset = against("http", SHORT, |mut s| async move {
            let mut first = [0u8; 1];
            s.read_exact(&mut first).await.unwrap();
        })
        .await;
        assert_eq!(reset.error, Some(Failure::ConnectionReset));
        let closed = against("http", SHORT, |mut s| async move {
            read_head(&mut s).await;
            s.shutdown().await.unwrap();
            drain(&mut s).await;
        })
        .await;
        assert_eq!(closed.error, Some(Failure::ConnectionClosed));
    }

    #[tokio::test]
    async fn an_answer_that_is_not_http_is_an_invalid_response() {
        let attempt = against("http", SHORT, |mut s| async move {
            read_head(&mut s).await;
            s.write_all(b"HELLO THERE\r\n\r\n").await.unwrap();
            drain(&mut s).await;
        })
        .await;
        assert_eq!(attempt.error, Some(Failure::InvalidResponse));
    }

    #[tokio::test]
    async fn a_failed_handshake_is_a_tls_error() {
        // A plain HTTP answer to the client's TLS hello.
        let attempt = against("https", SHORT, |mut s| async move {
            let mut hello = [0u8; 1024];
            let _ = s.read(&mut hello).await;
            s.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
            drain(&mut s).await;
        })
        .await;
        match attempt.error {
            Some(Failure::Tls(why)) => assert!(why.contains("corrupt message"), "{why}"),
            other => panic!("not a TLS error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn silence_is_a_timeout() {
        let attempt = against("http", Duration::from_millis(300), |mut s| async move {
            read_head(&mut s).await;
            std::future::pending::<()>().await;
        })
        .await;
        assert_eq!(
            attempt.error,
            Some(Failure::Timeout(Duration::from_millis(300)))
        );
        assert_eq!(
            attempt.error.unwrap().to_string(),
            "no response within 300ms"
        );
    }

    #[tokio::test]
    async fn a_name_that_does_not_resolve_is_a_dns_failure() {
        // `.invalid` never resolves (RFC 6761), with or without a network.
        let attempt = sender(SHORT, true)
            .attempt(&job("http://no-such-host.invalid/"), 0)
            .await;
        assert_eq!(attempt.error, Some(Failure::Dns));
    }

    #[tokio::test]
    async fn forbidden_destinations_are_refused_by_name_and_by_address() {
        let by_name = sender(SHORT, false)
            .attempt(&job("http://localhost:9/"), 0)
            .await;
        // localhost may resolve to ::1 first.
        let text = by_name.error.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("destination refused: localhost resolves to ")
                && text.ends_with(" is a loopback address, which deliveries may not reach"),
            "{text}"
        );
        let by_address = sender(SHORT, false)
            .attempt(&job("http://127.0.0.1:9/"), 0)
            .await;
        assert_eq!(
            by_address.error.map(|e| e.to_string()),
            Some("destination refused: 127.0.0.1 is a loopback address, which deliveries may not reach".into())
        );
        assert!(!by_address.reached_network);
    }

    #[tokio::test]
    async fn a_stored_url_that_does_not_parse_is_an_invalid_url() {
        let attempt = sender(SHORT, false).attempt(&job("not a url"), 0).await;
        assert_eq!(
            attempt.error,
            Some(Failure::InvalidUrl("relative URL without a base".into()))
        );
        assert!(!attempt.reached_network);
    }
}
