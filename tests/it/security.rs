//! A sender of requests to customer-chosen URLs must not be an SSRF machine, must bound what a
//! hostile receiver can cost, and must keep secrets out of everything it writes.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::{TOKEN, World};

use crate::SOON;

/// Waits for the first recorded attempt of the newest delivery of `webhook`.
async fn first_attempt(world: &World, webhook: &str) -> Value {
    wait::until("a recorded attempt", SOON, || async {
        let deliveries = world.deliveries("DEMO", webhook).await;
        deliveries.into_iter().next()?["attempts"].get(0).cloned()
    })
    .await
}

async fn webhook_to(world: &World, url: &str) -> String {
    let body = json!({"title": "t", "url": url, "events": ["run.started"]});
    let (status, answer) = world
        .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
        .await;
    assert_eq!(status, 201, "{answer}");
    answer["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_never_reach_loopback_by_ip_or_by_name() {
    // The API lets the URLs in (as an operator's ALLOWED_TARGETS could), the sender does not.
    let world = World::start_with(|o| o.sender.allowed_targets.clear()).await;
    let port = world.receiver.addr.port();
    let cases = [
        (
            format!("http://127.0.0.1:{port}/ip"),
            "127.0.0.1 is a loopback address",
        ),
        (
            format!("http://localhost:{port}/name"),
            "localhost resolves to",
        ),
        (
            format!("http://[::ffff:127.0.0.1]:{port}/mapped"),
            "127.0.0.1 is a loopback address",
        ),
    ];
    for (url, why) in &cases {
        let id = webhook_to(&world, url).await;
        world.publish("DEMO", "run.started", json!({})).await;
        let attempt = first_attempt(&world, &id).await;
        let error = attempt["error"].as_str().expect("error");
        assert!(
            error.starts_with("destination refused:") && error.contains(why),
            "{url}: {error}"
        );
        assert_eq!(attempt["status_code"], json!(null));
        let status = world.delete_webhook("DEMO", &id).await;
        assert_eq!(status, 204);
    }
    assert!(
        world.receiver.all().is_empty(),
        "nothing reached the receiver"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_not_followed() {
    let world = World::start().await;
    world.receiver.set("moved", Behaviour::Statuses(vec![302]));
    let id = world.webhook("DEMO", "moved", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    let attempt = first_attempt(&world, &id).await;
    assert_eq!(attempt["status_code"], 302);
    assert_eq!(attempt["error"], "HTTP 302 redirect, not followed");
    // The Location is this receiver's own /redirected, where a followed redirect would arrive.
    assert!(
        world.receiver.received("redirected").is_empty(),
        "the Location was never requested"
    );
    assert!(world.receiver.all().iter().all(|r| r.path == "/moved"));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_responses_cost_bounded_time_and_memory() {
    // Hostile answers are cut at the timeout, which runs on real time.
    let world = World::start_with(|o| o.delivery_timeout(Duration::from_secs(5))).await;
    world.receiver.set("endless", Behaviour::Endless);
    world.receiver.set("headers", Behaviour::HugeHeaders(200));
    let endless = world
        .webhook("DEMO", "endless", &["run.started"], None)
        .await;
    let headers = world
        .webhook("DEMO", "headers", &["case.created"], None)
        .await;
    world.publish("DEMO", "run.started", json!({})).await;
    world.publish("DEMO", "case.created", json!({})).await;

    let attempt = first_attempt(&world, &endless).await;
    assert_eq!(
        attempt["success"], true,
        "the status came before the endless body"
    );
    assert!(
        attempt["duration_ms"].as_i64().expect("ms") < 5000,
        "did not read until the timeout"
    );
    let db = world.db().await;
    let kept: i32 = db
        .query_one("SELECT max(length(response)) FROM attempts", &[])
        .await
        .expect("query")
        .get(0);
    assert!(kept <= 1024, "kept {kept} bytes of the response");

    let attempt = first_attempt(&world, &headers).await;
    assert!(attempt["duration_ms"].as_i64().expect("ms") < 5000);
    assert_eq!(
        attempt["success"], false,
        "1.6 MB of headers is refused: {attempt}"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_caps_request_bodies() {
    let world = World::start().await;
    let body = json!({"title": "x".repeat(100_000), "url": "https://example.com", "events": ["run.started"]});
    let (status, _) = world
        .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
        .await;
    assert_eq!(status, 413);
    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(list, json!([]));
    world.finish().await;
}

/// A writer that keeps everything the services log.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log lock").extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_reach_no_log_metric_or_answer() {
    let logs = Captured::default();
    let writer = logs.clone();
    // Everything, at debug level, from every crate: the services' logs, the HTTP client's, the broker client's.
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("debug")
        .json()
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("first subscriber of this process");

    let world = World::start().await;
    let secret = "whsec_c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr";
    world.receiver.set("s", Behaviour::Statuses(vec![500, 200]));
    let id = world
        .webhook("DEMO", "s", &["run.started"], Some(secret))
        .await;
    world
        .publish("DEMO", "run.started", json!({"payload": "marker-payload"}))
        .await;
    crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    let received = world.receiver.received("s");
    assert_eq!(
        received[0].header("x-qase-secret"),
        Some(secret),
        "the receiver does get it"
    );

    let mut everything = String::from_utf8(logs.0.lock().expect("log lock").clone()).expect("utf8");
    assert!(
        everything.contains("webhooks_sender"),
        "the capture saw the services' logs"
    );
    for addr in [world.dispatcher_addr(), world.sender_addr] {
        let metrics = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        everything.push_str(&metrics);
    }
    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    everything.push_str(&list.to_string());
    everything
        .push_str(&serde_json::to_string(&world.deliveries("DEMO", &id).await).expect("json"));
    assert!(!everything.contains(secret), "the webhook secret leaked");
    assert!(
        !everything.contains("c2VjcmV0LXRoYXQtbXVzdC1uZXZlci1sZWFr"),
        "the secret's key leaked"
    );
    assert!(!everything.contains(TOKEN), "the admin token leaked");
    assert!(
        !everything.contains("marker-payload"),
        "payloads are not logged at debug level or above"
    );
    world.finish().await;
}

/// `--help` shows each variable's value and each default unless told not to: a password in
/// `AMQP_URL` or `DATABASE_URL`, or the admin token, must not show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_shows_no_password() {
    for name in ["webhooks-dispatcher", "webhooks-sender", "webhooks-publish"] {
        let output = tokio::process::Command::new(webhooks_tests::process::binary(name))
            .arg("--help")
            .env("AMQP_URL", "amqp://app:amqp-hunter2@broker:5672/%2f")
            .env("DATABASE_URL", "postgres://app:pg-hunter2@db:5432/webhooks")
            .env("ADMIN_TOKEN", "token-hunter2")
            .env("HANDOFF_KEY", "handoff-key-hunter2-0123456789abcdef")
            .env(
                "HANDOFF_KEY_PREVIOUS",
                "previous-key-hunter2-0123456789abcdef",
            )
            .output()
            .await
            .expect("the binary runs");
        assert!(output.status.success(), "{name} --help failed");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("AMQP_URL"), "{name}: {help}");
        for secret in ["hunter2", "guest:guest"] {
            assert!(!help.contains(secret), "{name} shows {secret:?}: {help}");
        }
    }
}
