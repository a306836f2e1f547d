use super::*;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use webhooks_core::event::EventName;

fn job(url: &str) -> Job {
    Job {
        delivery_id: uuid::Uuid::nil(),
        webhook_id: uuid::Uuid::nil(),
        project: String::new(),
        event_name: EventName::ALL[0].into(),
        url: Target::parse(url),
        secret: None,
        previous_secret: None,
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
    let moved = answer(b"HTTP/1.1 302 Found\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n").await;
    assert!(!moved.success);
    assert_eq!(moved.status_code, Some(302));
    assert_eq!(moved.error, Some(Failure::Redirect(302)));
    let busy = answer(b"HTTP/1.1 503 Busy\r\nretry-after: 7\r\ncontent-length: 3\r\n\r\nno!").await;
    assert_eq!(busy.error, Some(Failure::Status(503)));
    assert_eq!(
        busy.retry_after,
        Some(RetryAfter::Delay(Duration::from_secs(7)))
    );
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
        Some(
            "destination refused: 127.0.0.1 is a loopback address, which deliveries may not reach"
                .into()
        )
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
