//! The edges a receiver or a client could abuse: a `Retry-After` asking for a tight loop, slow or
//! endless clients of the services' own HTTP servers.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::{TOKEN, World};

use crate::SOON;

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a time: {value}"))
}

/// Waits until the newest delivery of `webhook` has `attempts` attempts and waits for a retry.
async fn retrying(world: &World, webhook: &str, attempts: usize) -> Value {
    wait::until(&format!("attempt {attempts} recorded"), SOON, || async {
        let newest = world.deliveries("DEMO", webhook).await.into_iter().next()?;
        (newest["attempts"].as_array()?.len() == attempts && newest["state"] == "retrying")
            .then_some(newest)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_after_of_one_second_waits_retry_initial() {
    let world = World::start().await;
    world.receiver.set("busy", Behaviour::RetryAfterOnce(1));
    let busy = world.webhook("DEMO", "busy", &["run.started"], None).await;
    // A webhook whose manual retry shows that the scheduler has had a turn.
    world
        .receiver
        .set("probe", Behaviour::Statuses(vec![500, 200]));
    let probe = world
        .webhook("DEMO", "probe", &["case.created"], None)
        .await;
    world.publish("DEMO", "run.started", json!({})).await;
    world.publish("DEMO", "case.created", json!({})).await;

    // The retry is due RETRY_INITIAL (10 s, no jitter) after the attempt, not the 1 s asked for
    // (the API gives times to the second).
    let asked = retrying(&world, &busy, 1).await;
    assert_eq!(asked["attempts"][0]["status_code"], 429);
    let wait = time(&asked["next_attempt_at"]) - time(&asked["attempts"][0]["at"]);
    assert!(
        wait >= chrono::Duration::seconds(9) && wait <= chrono::Duration::seconds(11),
        "retry {wait} after a Retry-After of 1 s"
    );

    // Past what the receiver asked for, short of RETRY_INITIAL: the scheduler runs and leaves it.
    world.clock.advance(Duration::from_secs(3));
    let failed = retrying(&world, &probe, 1).await;
    let path = format!(
        "/projects/DEMO/deliveries/{}/retry",
        failed["id"].as_str().expect("id")
    );
    let (status, answer) = world.api(Method::POST, &path, None).await;
    assert_eq!(status, 202, "{answer}");
    crate::wait_state(&world, "DEMO", &probe, "succeeded").await;
    assert_eq!(world.receiver.received("busy").len(), 1, "retried too soon");
    let waiting = &world.deliveries("DEMO", &busy).await[0];
    assert_eq!(waiting["state"], "retrying");
    assert_eq!(waiting["attempts"].as_array().map(Vec::len), Some(1));

    // At RETRY_INITIAL it goes.
    world
        .advance_to_next_attempt(&busy)
        .await
        .expect("a retry waits");
    world.receiver.wait_for("busy", 2, SOON).await;
    let done = crate::wait_state(&world, "DEMO", &busy, "succeeded").await;
    let gap = time(&done["attempts"][1]["at"]) - time(&done["attempts"][0]["at"]);
    assert!(
        gap >= chrono::Duration::seconds(9),
        "second attempt {gap} after the first"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weak_admin_token_stops_the_dispatcher_before_it_serves() {
    let world = World::start().await;
    let long_placeholder = "change-me-change-me-change-me-change-me".to_owned();
    for (token, why) in [
        ("change-me".to_owned(), "too short"),
        ("x".repeat(40), "repeats a few characters"),
        (long_placeholder, "is a placeholder"),
    ] {
        let mut dispatcher = world.spawn_dispatcher_process(&[("ADMIN_TOKEN", token.clone())], &[]);
        let status = dispatcher.exited(SOON).await;
        assert!(!status.success(), "started with ADMIN_TOKEN={token:?}");
        let lines = dispatcher.lines().join("\n");
        assert!(
            lines.contains("ADMIN_TOKEN")
                && lines.contains(why)
                && lines.contains("openssl rand -hex 32"),
            "{token:?}: {lines}"
        );
        assert!(
            !lines.contains(&token),
            "the refused token was logged: {lines}"
        );
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_with_control_characters_is_refused_and_nothing_stored() {
    let world = World::start().await;
    for secret in [
        "s3cr3t\r\nX-Injected: 1",
        "s3cr3t\n",
        "s3cr3t\u{0}",
        "s3cr3t\t",
    ] {
        let body = json!({"title": "t", "url": world.receiver.url("h"), "secret": secret, "events": ["run.started"]});
        let (status, answer) = world
            .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
            .await;
        assert_eq!(status, 422, "{secret:?}: {answer}");
        let error = answer["error"].as_str().expect("an error");
        assert!(error.starts_with("secret: "), "{error}");
    }
    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(list, json!([]), "nothing stored");

    // Nor can a change bring one in.
    let id = world
        .webhook("DEMO", "h", &["run.started"], Some("fine"))
        .await;
    let (status, answer) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{id}"),
            Some(json!({"secret": "a\r\nb"})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("secret: "))
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_with_control_characters_is_refused_and_nothing_stored() {
    let world = World::start().await;
    for title in ["two\nlines", "nul\u{0}", "bell\u{7}", "c1\u{85}in"] {
        let body =
            json!({"title": title, "url": world.receiver.url("h"), "events": ["run.started"]});
        let (status, answer) = world
            .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
            .await;
        assert_eq!(status, 422, "{title:?}: {answer}");
        let error = answer["error"].as_str().expect("an error");
        assert!(error.starts_with("title: "), "{error}");
    }
    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(list, json!([]), "nothing stored");

    let id = world.webhook("DEMO", "h", &["run.started"], None).await;
    let (status, answer) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{id}"),
            Some(json!({"title": "a\r\nb"})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("title: "))
    );
    // A project code with one in a path is no project: not found, never a server error.
    let (status, answer) = world
        .api(Method::GET, "/projects/DE%0AMO/webhooks", None)
        .await;
    assert_eq!(status, 404, "{answer}");
    world.finish().await;
}

/// Sends an endless request head one byte every 100 ms until the server closes the connection;
/// returns how long after its first byte that was.
async fn trickle(stream: TcpStream) -> Duration {
    let (mut read, mut write) = stream.into_split();
    let began = Instant::now();
    let head = b"GET /api/v1/projects/DEMO/webhooks HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let writer = async {
        for byte in head.iter().chain(std::iter::repeat(&b'a')) {
            if write.write_all(&[*byte]).await.is_err() {
                break;
            }
            // The slowloris's pace, not a wait for anything.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let closed = async {
        let mut buf = [0u8; 512];
        while let Ok(n) = read.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = closed => {}
        () = writer => {}
    }
    began.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slowloris_does_not_keep_the_api_from_answering() {
    const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
    const CAP: usize = 16;
    let world = World::start_with(|o| {
        o.dispatcher.common.http_header_timeout = HEADER_TIMEOUT;
        o.dispatcher.common.http_max_connections = CAP;
    })
    .await;
    let addr = world.dispatcher_addr();

    // Twice as many trickling connections as the server serves at once: the first CAP hold every
    // slot, the rest wait in the backlog ahead of the real request.
    let mut slow = Vec::new();
    for _ in 0..2 * CAP {
        let stream = TcpStream::connect(addr).await.expect("connect");
        slow.push(tokio::spawn(trickle(stream)));
    }
    let asked = Instant::now();
    let (status, answer) = tokio::time::timeout(
        SOON,
        world.api(Method::GET, "/projects/DEMO/webhooks", None),
    )
    .await
    .expect("the API answers while the slowloris runs");
    let took = asked.elapsed();
    assert_eq!(status, 200, "{answer}");
    // Each wave of slow connections is closed after a header timeout: the request waits for at
    // most two of them, not for the slowloris to give up.
    assert!(
        took < 4 * HEADER_TIMEOUT,
        "answered after {took:?} (header timeout {HEADER_TIMEOUT:?})"
    );

    let mut closed_after = Vec::new();
    for connection in slow {
        let after = tokio::time::timeout(SOON, connection)
            .await
            .expect("the server closes every slow connection")
            .expect("trickle task");
        closed_after.push(after);
    }
    let first = closed_after.iter().min().expect("some");
    let last = closed_after.iter().max().expect("some");
    assert!(
        *first >= HEADER_TIMEOUT.mul_f64(0.9),
        "a slow connection closed after {first:?}, before the header timeout"
    );
    assert!(
        *last < 6 * HEADER_TIMEOUT,
        "a slow connection was kept {last:?}"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_never_ends_gets_a_408() {
    const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
    let world =
        World::start_with(|o| o.dispatcher.common.http_request_timeout = REQUEST_TIMEOUT).await;
    let mut stream = TcpStream::connect(world.dispatcher_addr())
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/projects/DEMO/webhooks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"title\":"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let sent = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(SOON, stream.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes")
        .expect("read");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408 "), "{answer}");
    assert!(answer.contains("HTTP_REQUEST_TIMEOUT"), "{answer}");
    assert!(sent.elapsed() >= REQUEST_TIMEOUT.mul_f64(0.9));
    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(list, json!([]), "nothing stored");
    world.finish().await;
}
