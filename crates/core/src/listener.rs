//! The services' HTTP server (the dispatcher's API, both services' `/metrics`, `/healthz` and
//! `/readyz`), bounded so that no client can hold it: a request's head must arrive within
//! `HTTP_HEADER_TIMEOUT` (an idle kept-alive connection too), a request must be answered within
//! `HTTP_REQUEST_TIMEOUT` (its body read included), and at most `HTTP_MAX_CONNECTIONS`
//! connections are served at once.
//!
//! Beyond the cap, new connections are not refused: they wait, unaccepted, in the kernel's listen
//! backlog until a connection ends, which the two timeouts make sure happens soon. A client
//! trickling its headers a byte at a time (slowloris) so costs one slot for one header timeout.
//!
//! HTTP/1.1 only, served by hyper directly (rather than `axum::serve`, which sets no timeouts).

use axum::Router;
use axum::http::{HeaderValue, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a client may take: see the module's documentation.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    pub fn of(common: &crate::config::Common) -> Self {
        Self {
            header_timeout: common.http_header_timeout,
            request_timeout: common.http_request_timeout,
            max_connections: common.http_max_connections.max(1),
        }
    }
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address with the serving future,
/// which ends once `shutdown` is cancelled and the open connections have finished their requests.
pub async fn bind(
    addr: SocketAddr,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, serve(listener, router, limits, shutdown)))
}

async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // The timer is what makes hyper enforce the header timeout; it runs from the moment hyper
    // waits for a request's head, so it also closes a kept-alive connection left idle that long.
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        // A slot first: beyond the cap, connections wait in the backlog, not in our memory.
        let slot = tokio::select! {
            () = shutdown.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    pause_after_accept_error(&e).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        let timeout = limits.request_timeout;
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let router = router.clone();
            async move {
                Ok::<_, Infallible>(
                    match tokio::time::timeout(timeout, router.oneshot(request)).await {
                        Ok(Ok(response)) => response,
                        Ok(Err(never)) => match never {},
                        Err(_) => timed_out(timeout),
                    },
                )
            }
        });
        let connection = http.serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                // A header timeout, a client gone mid-request: the client's doing, not ours.
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// The answer to a request not completed within `timeout`.
fn timed_out(timeout: Duration) -> Response<axum::body::Body> {
    let body = serde_json::json!({
        "error": format!(
            "request not completed within {} (HTTP_REQUEST_TIMEOUT)",
            crate::duration::format(timeout)
        )
    });
    let mut response = Response::new(axum::body::Body::from(body.to_string()));
    *response.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // The rest of a body that was too slow is not read: the connection cannot be reused.
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// A failed accept is the listener's problem only when it is out of resources (file descriptors,
/// memory): then wait a moment rather than spin. A connection reset before it was accepted is not.
async fn pause_after_accept_error(error: &std::io::Error) {
    use std::io::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::ConnectionAborted | ErrorKind::ConnectionReset | ErrorKind::ConnectionRefused
    ) {
        return;
    }
    tracing::warn!(%error, "accepting an HTTP connection failed; pausing");
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::{get, post};
    use std::time::Instant;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn connect(addr: SocketAddr) -> TcpStream {
        TcpStream::connect(addr).await.expect("connect")
    }

    /// Whether connecting to `addr` is refused within 5 s (retried every 20 ms until then).
    async fn refused_soon(addr: SocketAddr) -> bool {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let router = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .route("/echo", post(|body: axum::body::Bytes| async move { body }));
        let stop = CancellationToken::new();
        let (addr, serve) = bind("127.0.0.1:0".parse().unwrap(), router, limits, stop.clone())
            .await
            .unwrap();
        tokio::spawn(serve);
        (addr, stop)
    }

    fn limits(max_connections: usize) -> Limits {
        Limits {
            header_timeout: Duration::from_millis(300),
            request_timeout: Duration::from_millis(600),
            max_connections,
        }
    }

    /// Reads until the server closes; returns what it sent and when it closed.
    async fn until_closed(stream: &mut TcpStream) -> (String, Instant) {
        let mut seen = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut seen)).await;
        (String::from_utf8_lossy(&seen).into_owned(), Instant::now())
    }

    #[tokio::test]
    async fn a_head_that_does_not_arrive_in_time_closes_the_connection() {
        let (addr, _stop) = start(limits(8)).await;
        let mut slow = connect(addr).await;
        let opened = Instant::now();
        slow.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let (_, closed) = until_closed(&mut slow).await;
        let after = closed - opened;
        assert!(
            after >= Duration::from_millis(250) && after < Duration::from_secs(3),
            "closed after {after:?}"
        );
        // An idle connection that never sends anything is closed likewise.
        let mut idle = connect(addr).await;
        let opened = Instant::now();
        let (_, closed) = until_closed(&mut idle).await;
        assert!(closed - opened < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn a_body_that_does_not_arrive_in_time_is_a_408() {
        let (addr, _stop) = start(limits(8)).await;
        let mut slow = connect(addr).await;
        slow.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nab")
            .await
            .unwrap();
        let (answer, _) = until_closed(&mut slow).await;
        assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
        assert!(answer.contains("HTTP_REQUEST_TIMEOUT"), "{answer}");
    }

    #[tokio::test]
    async fn beyond_the_cap_connections_wait_for_a_slot() {
        let (addr, _stop) = start(limits(2)).await;
        // Two connections hold both slots for a header timeout each.
        let mut holders = Vec::new();
        for _ in 0..2 {
            let mut held = connect(addr).await;
            held.write_all(b"GET").await.unwrap();
            holders.push(held);
        }
        let started = Instant::now();
        let mut third = connect(addr).await;
        third
            .write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, answered) = until_closed(&mut third).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        let waited = answered - started;
        assert!(
            waited >= Duration::from_millis(200) && waited < Duration::from_secs(3),
            "answered after {waited:?}: it waited for a slot, and got one once a holder timed out"
        );
    }

    #[tokio::test]
    async fn shutdown_stops_accepting() {
        let (addr, stop) = start(limits(8)).await;
        let mut ok = connect(addr).await;
        ok.write_all(b"GET /ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let (answer, _) = until_closed(&mut ok).await;
        assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
        stop.cancel();
        assert!(refused_soon(addr).await, "still accepting after shutdown");
    }
}
