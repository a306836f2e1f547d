//! Retries, failure tracking, auto-disable and the disable notification (contract §4 and §5).
//! Time-dependent rules run against a clock the test moves forward by days in an instant.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;

const DAY: Duration = Duration::from_secs(86_400);

async fn wait_webhook(
    world: &World,
    id: &str,
    what: &str,
    check: impl Fn(&Value) -> bool,
) -> Value {
    wait::until(what, SOON, || async {
        let webhook = world.get_webhook("DEMO", id).await;
        check(&webhook).then_some(webhook)
    })
    .await
}

/// Waits until the webhook's newest delivery has `attempts` attempts recorded and waits for a
/// retry, then moves the clock to that retry; returns the delivery as it was before.
async fn retry_now(world: &World, id: &str, attempts: usize) -> Value {
    let delivery = wait::until(&format!("attempt {attempts} recorded"), SOON, || async {
        let newest = world.deliveries("DEMO", id).await.into_iter().next()?;
        (newest["attempts"].as_array()?.len() == attempts && newest["state"] == "retrying")
            .then_some(newest)
    })
    .await;
    world
        .advance_to_next_attempt(id)
        .await
        .expect("a retry waits");
    delivery
}

fn time(value: &Value) -> chrono::DateTime<chrono::Utc> {
    value
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("a time: {value}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_with_the_same_id_and_bytes_until_success() {
    let world = World::start().await;
    world
        .receiver
        .set("flaky", Behaviour::Statuses(vec![500, 500, 200]));
    let id = world
        .webhook("DEMO", "flaky", &["run.started"], Some("k"))
        .await;
    world.publish("DEMO", "run.started", json!({"n": 1})).await;

    let first = retry_now(&world, &id, 1).await;
    // The first retry comes RETRY_INITIAL (10 s) after the failure, give or take its 25% jitter
    // and a second either way (the API gives times to the second).
    let backoff = time(&first["next_attempt_at"]) - time(&first["attempts"][0]["at"]);
    assert!(
        backoff >= chrono::Duration::milliseconds(6_500)
            && backoff <= chrono::Duration::milliseconds(13_500),
        "first retry after {backoff}"
    );
    retry_now(&world, &id, 2).await;
    let got = world.receiver.wait_for("flaky", 3, SOON).await;
    let first = &got[0];
    for later in &got[1..] {
        assert_eq!(
            later.body, first.body,
            "identical body bytes on every attempt"
        );
        assert_eq!(
            later.header("x-qase-delivery"),
            first.header("x-qase-delivery")
        );
        assert_eq!(later.header("webhook-id"), first.header("webhook-id"));
    }
    let delivery = crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    let attempts = delivery["attempts"].as_array().expect("attempts");
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["error"], "HTTP 500");
    assert_eq!(attempts[0]["success"], false);
    assert_eq!(attempts[2]["status_code"], 200);
    assert_eq!(attempts[2]["error"], json!(null));
    assert_eq!(attempts[2]["success"], true);
    assert_eq!(delivery["next_attempt_at"], json!(null));
    let webhook = world.get_webhook("DEMO", &id).await;
    assert_eq!(
        webhook["failing_since"],
        json!(null),
        "a success clears failing_since"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_fails_at_the_timeout_and_is_retried() {
    // The timeout runs on real time.
    let world = World::start_with(|o| o.delivery_timeout(Duration::from_millis(500))).await;
    world.receiver.set("hang", Behaviour::Hang);
    let id = world.webhook("DEMO", "hang", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    retry_now(&world, &id, 1).await;
    let got = world.receiver.wait_for("hang", 2, SOON).await;
    assert!(
        got[1].at - got[0].at >= Duration::from_millis(500),
        "second attempt after the first timed out"
    );
    let delivery = wait::until("a recorded timeout", SOON, || async {
        let deliveries = world.deliveries("DEMO", &id).await;
        deliveries
            .into_iter()
            .next()
            .filter(|d| !d["attempts"].as_array().is_none_or(Vec::is_empty))
    })
    .await;
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error"], "no response within 500ms");
    assert_eq!(attempt["status_code"], json!(null));
    assert!(attempt["duration_ms"].as_i64().expect("duration") >= 450);
    assert_eq!(delivery["state"], "retrying");
    assert!(delivery["next_attempt_at"].is_string());
    let webhook = world.get_webhook("DEMO", &id).await;
    assert_eq!(webhook["last_error"], "no response within 500ms");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honours_retry_after() {
    let world = World::start().await;
    world.receiver.set("busy", Behaviour::RetryAfterOnce(120));
    let id = world.webhook("DEMO", "busy", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    // Without Retry-After the retry would come RETRY_INITIAL (10 s) after, give or take 25%.
    let asked = retry_now(&world, &id, 1).await;
    let wait = time(&asked["next_attempt_at"]) - time(&asked["attempts"][0]["at"]);
    assert!(
        wait >= chrono::Duration::seconds(120) && wait <= chrono::Duration::seconds(121),
        "retry {wait} after a Retry-After of 120 s"
    );
    world.receiver.wait_for("busy", 2, SOON).await;
    crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disables_after_the_window_notifies_once_and_re_enables() {
    let world = World::start().await;
    world.receiver.set("down", Behaviour::Statuses(vec![500]));
    let body = json!({"title": "CI hook", "url": world.receiver.url("down"), "events": ["run.started"], "created_by": 40});
    let (_, created) = world
        .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
        .await;
    let id = created["id"].as_str().expect("id").to_owned();
    let marker = world
        .webhook("DEMO", "marker", &["case.created"], None)
        .await;
    world.publish("DEMO", "run.started", json!({})).await;

    retry_now(&world, &id, 1).await;
    world.receiver.wait_for("down", 2, SOON).await;
    let failing = world.get_webhook("DEMO", &id).await;
    assert_eq!(failing["enabled"], true);
    assert!(failing["failing_since"].is_string());

    // Just short of the window: still enabled after a further failure.
    world.clock.advance(2 * DAY - Duration::from_secs(600));
    let seen = world.receiver.received("down").len();
    retry_now(&world, &id, 2).await;
    world.receiver.wait_for("down", seen + 1, SOON).await;
    let still = wait_webhook(&world, &id, "the third failure recorded", |w| {
        w["failed_attempts"] == 3
    })
    .await;
    assert_eq!(still["enabled"], true, "not disabled before DISABLE_AFTER");
    assert!(
        world
            .take(&world.topology.notifications_queue())
            .await
            .is_none()
    );

    // Past the window: the next failure disables it.
    world.clock.advance(Duration::from_secs(1200));
    retry_now(&world, &id, 3).await;
    let disabled = wait_webhook(&world, &id, "the webhook to be disabled", |w| {
        w["enabled"] == false
    })
    .await;
    assert!(disabled["disabled_at"].is_string());
    assert_eq!(disabled["disabled_reason"], "HTTP 500");

    let notes = world
        .take_n(&world.topology.notifications_queue(), 1, SOON)
        .await;
    let note: Value = serde_json::from_slice(&notes[0].delivery.data).expect("json");
    assert_eq!(notes[0].delivery.routing_key.as_str(), "webhook.disabled");
    assert_eq!(note["type"], "webhook.disabled");
    assert_eq!(note["webhook_id"], json!(id));
    assert_eq!(note["project_code"], "DEMO");
    assert_eq!(note["title"], "CI hook");
    assert_eq!(note["url"], json!(world.receiver.url("down")));
    assert_eq!(note["created_by"], 40);
    assert_eq!(note["failing_since"], disabled["failing_since"]);
    assert_eq!(note["disabled_at"], disabled["disabled_at"]);
    assert_eq!(note["last_error"], "HTTP 500");
    assert_eq!(note["failed_attempts"], disabled["failed_attempts"]);
    assert_eq!(note["failed_attempts"], 4);
    let delivery = &world.deliveries("DEMO", &id).await[0];
    assert!(
        delivery["state"] == "failed" || delivery["state"] == "cancelled",
        "{delivery}"
    );

    // Disabled: new events are not delivered (the marker shows they were processed).
    let before = world.receiver.received("down").len();
    world
        .publish("DEMO", "run.started", json!({"after": "disable"}))
        .await;
    world
        .publish("DEMO", "case.created", json!({"marker": 1}))
        .await;
    world.receiver.wait_for("marker", 1, SOON).await;
    crate::wait_state(&world, "DEMO", &marker, "succeeded").await;
    assert_eq!(world.receiver.received("down").len(), before);

    // Re-enable: health cleared, deliveries flow again, and no second notification appeared.
    world.receiver.set("down", Behaviour::Statuses(vec![200]));
    let (status, enabled) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(enabled["enabled"], true);
    assert_eq!(enabled["failing_since"], json!(null));
    assert_eq!(enabled["disabled_at"], json!(null));
    assert_eq!(enabled["disabled_reason"], json!(null));
    assert_eq!(enabled["failed_attempts"], 0);
    world
        .publish("DEMO", "run.started", json!({"after": "enable"}))
        .await;
    let got = world.receiver.wait_for("down", before + 1, SOON).await;
    assert!(
        std::str::from_utf8(&got[before].body)
            .expect("utf8")
            .contains("enable")
    );
    assert!(
        world
            .take(&world.topology.notifications_queue())
            .await
            .is_none(),
        "exactly one notification"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_success_inside_the_window_resets_it() {
    let world = World::start().await;
    world
        .receiver
        .set("wobbly", Behaviour::Statuses(vec![500, 500, 200, 500]));
    let id = world
        .webhook("DEMO", "wobbly", &["run.started"], None)
        .await;
    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    retry_now(&world, &id, 1).await;
    world.receiver.wait_for("wobbly", 2, SOON).await;
    let first = wait_webhook(&world, &id, "failing", |w| w["failed_attempts"] == 2).await;
    let first_since = first["failing_since"].clone();
    world.clock.advance(DAY + DAY / 2);
    // The third attempt succeeds: the slate is clean.
    wait_webhook(&world, &id, "reset by success", |w| {
        w["failing_since"].is_null()
    })
    .await;
    // A new failure starts a new window, 1.5 days after the first one.
    world.publish("DEMO", "run.started", json!({"n": 2})).await;
    let again = wait_webhook(&world, &id, "failing again", |w| {
        w["failing_since"].is_string()
    })
    .await;
    assert_ne!(again["failing_since"], first_since);
    world.clock.advance(DAY);
    let seen = world.receiver.received("wobbly").len();
    retry_now(&world, &id, 1).await;
    world.receiver.wait_for("wobbly", seen + 1, SOON).await;
    retry_now(&world, &id, 2).await;
    world.receiver.wait_for("wobbly", seen + 2, SOON).await;
    let webhook = world.get_webhook("DEMO", &id).await;
    assert_eq!(
        webhook["enabled"], true,
        "2.5 days since the first failure but only 1 since the success"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gives_up_a_delivery_after_the_window_and_retries_it_by_hand() {
    let world = World::start().await;
    world
        .receiver
        .set("picky", Behaviour::FailBodiesContaining("poison".into()));
    let id = world.webhook("DEMO", "picky", &["run.started"], None).await;
    world
        .publish("DEMO", "run.started", json!({"poison": true}))
        .await;
    retry_now(&world, &id, 1).await;
    world.receiver.wait_for("picky", 2, SOON).await;

    // Successes of other deliveries keep the webhook healthy...
    world.clock.advance(DAY + DAY / 2);
    world
        .publish("DEMO", "run.started", json!({"fine": 1}))
        .await;
    wait::until("the good delivery", SOON, || async {
        let got = world.receiver.received("picky");
        got.iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains("fine"))
            .then_some(())
    })
    .await;
    // ...but the poisoned delivery gives up 2 days after its first attempt.
    world.clock.advance(DAY / 2 + Duration::from_secs(3600));
    let poisoned = wait::until("the poisoned delivery to be given up", SOON, || async {
        let deliveries = world.deliveries("DEMO", &id).await;
        deliveries.into_iter().find(|d| d["state"] == "failed")
    })
    .await;
    assert_eq!(poisoned["next_attempt_at"], json!(null));
    assert_eq!(world.get_webhook("DEMO", &id).await["enabled"], true);

    // A manual retry still works.
    world.receiver.set("picky", Behaviour::Statuses(vec![200]));
    let delivery_id = poisoned["id"].as_str().expect("id");
    let (status, answer) = world
        .api(
            Method::POST,
            &format!("/projects/DEMO/deliveries/{delivery_id}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    // The answer shows the delivery with the attempts it has had, as the lists do.
    assert_eq!(answer["state"], "retrying", "{answer}");
    assert_eq!(
        answer["attempts"].as_array().map(Vec::len),
        poisoned["attempts"].as_array().map(Vec::len),
        "{answer}"
    );
    assert!(
        answer["attempts"].as_array().is_some_and(|a| !a.is_empty()),
        "{answer}"
    );
    wait::until("the retried delivery to succeed", SOON, || async {
        let deliveries = world.deliveries("DEMO", &id).await;
        deliveries
            .into_iter()
            .find(|d| d["id"] == delivery_id && d["state"] == "succeeded")
    })
    .await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_webhook_stops_its_retries() {
    let world = World::start().await;
    world.receiver.set("gone", Behaviour::Statuses(vec![500]));
    world
        .receiver
        .set("once", Behaviour::Statuses(vec![500, 200]));
    let gone = world.webhook("DEMO", "gone", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    retry_now(&world, &gone, 1).await;
    world.receiver.wait_for("gone", 2, SOON).await;
    let status = world.delete_webhook("DEMO", &gone).await;
    assert_eq!(status, 204);
    let db = world.db().await;
    let states: Vec<String> = db
        .query(
            "SELECT state FROM deliveries WHERE webhook_id = $1::text::uuid",
            &[&gone],
        )
        .await
        .expect("query")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(states, vec!["cancelled".to_owned()]);
    let after_delete = world.receiver.received("gone").len();
    // A retry of another webhook passes through the scheduler: once it succeeded, the scheduler
    // has run after the delete.
    let once = world.webhook("DEMO", "once", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    retry_now(&world, &once, 1).await;
    crate::wait_state(&world, "DEMO", &once, "succeeded").await;
    // One attempt may have been in flight during the delete; nothing after it.
    assert!(world.receiver.received("gone").len() <= after_delete + 1);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_senders_racing_send_one_notification() {
    let world = World::start_with(|o| o.senders = 2).await;
    world.receiver.set("race", Behaviour::Statuses(vec![500]));
    let id = world.webhook("DEMO", "race", &["run.started"], None).await;
    for n in 0..20 {
        world.publish("DEMO", "run.started", json!({"n": n})).await;
    }
    // Every delivery settled: attempted, or held back by a sender whose circuit opened (with
    // BREAKER_FAILURES at 10, one of the two may take more than ten of them); none in flight.
    let db = world.db().await;
    wait::until("all 20 deliveries attempted or held back", SOON, || async {
        let row = db
            .query_one(
                "SELECT count(*), count(leased_until) FROM deliveries WHERE webhook_id = $1::text::uuid",
                &[&id],
            )
            .await
            .ok()?;
        (row.get::<_, i64>(0) == 20 && row.get::<_, i64>(1) == 0).then_some(())
    })
    .await;
    assert!(!world.receiver.received("race").is_empty());
    // Every retry is due at once, on both senders.
    world.clock.advance(2 * DAY + Duration::from_secs(1));
    wait_webhook(&world, &id, "the webhook to be disabled", |w| {
        w["enabled"] == false
    })
    .await;
    wait::until("the outbox to drain", SOON, || async {
        let left: i64 = db
            .query_one("SELECT count(*) FROM notification_outbox", &[])
            .await
            .ok()?
            .get(0);
        (left == 0).then_some(())
    })
    .await;
    let notes = world
        .take_n(&world.topology.notifications_queue(), 1, SOON)
        .await;
    assert_eq!(notes.len(), 1);
    assert!(
        world
            .take(&world.topology.notifications_queue())
            .await
            .is_none(),
        "exactly one notification"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_killed_while_retries_wait_loses_none() {
    let mut world = World::start_with(|o| {
        // The sender process runs on the system clock: retries 2 s apart, long enough that the
        // crash happens while they wait. The breaker's pause follows them down.
        o.sender.retry_initial = Duration::from_secs(2);
        o.sender.retry_max = Duration::from_secs(2);
    })
    .await;
    world.receiver.set("later", Behaviour::Statuses(vec![500]));
    let id = world.webhook("DEMO", "later", &["run.started"], None).await;
    for n in 0..10 {
        world.publish("DEMO", "run.started", json!({"n": n})).await;
    }
    wait::until("every delivery to wait for a retry", SOON, || async {
        let deliveries = world.deliveries("DEMO", &id).await;
        (deliveries.len() == 10 && deliveries.iter().all(|d| d["state"] == "retrying"))
            .then_some(())
    })
    .await;
    let mut process = world.sender_process().await;
    world.stop_senders().await;
    // The process sender takes over the retries (every request from now on is its own); then it
    // is killed without warning.
    let before = world.receiver.received("later").len();
    wait::until("the process sender to attempt", SOON, || async {
        (world.receiver.received("later").len() > before).then_some(())
    })
    .await;
    process.kill9().await;
    world.receiver.set("later", Behaviour::Statuses(vec![200]));
    world.start_sender().await;
    // The dead sender's claims (35 s leases) run out on the clock.
    world.clock.advance(Duration::from_secs(36));
    wait::until(
        "every retry to be delivered",
        Duration::from_secs(30),
        || async {
            let deliveries = world.deliveries("DEMO", &id).await;
            deliveries
                .iter()
                .all(|d| d["state"] == "succeeded")
                .then_some(())
        },
    )
    .await;
    world.finish().await;
}

/// Waits until the webhook has `count` deliveries, every one succeeded; returns the newest.
async fn succeeded(world: &World, id: &str, count: usize) -> Value {
    wait::until(&format!("{count} deliveries succeeded"), SOON, || async {
        let deliveries = world.deliveries("DEMO", id).await;
        (deliveries.len() == count && deliveries.iter().all(|d| d["state"] == "succeeded"))
            .then(|| deliveries[0].clone())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_success_is_kept_to_the_minute_and_shown_at_once_after_failures() {
    let world = World::start().await;
    let id = world.webhook("DEMO", "hook", &["run.started"], None).await;
    let last_success = || async { world.get_webhook("DEMO", &id).await["last_success_at"].clone() };
    assert_eq!(last_success().await, json!(null), "none before a delivery");

    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    let first = succeeded(&world, &id, 1).await;
    let stored = last_success().await;
    let attempted = time(&first["attempts"][0]["at"]);
    assert!(
        time(&stored) >= attempted && time(&stored) <= world.clock.now(),
        "last success {stored} is the end of the attempt at {attempted}"
    );

    // A success within the minute: the row is not written again for it (its outcome, written in
    // the same transaction as the webhook's health, is already recorded).
    world.clock.advance(Duration::from_secs(30));
    world.publish("DEMO", "run.started", json!({"n": 2})).await;
    succeeded(&world, &id, 2).await;
    assert_eq!(last_success().await, stored, "kept to the minute");

    // A minute after the one stored: written.
    world.clock.advance(Duration::from_secs(31));
    world.publish("DEMO", "run.started", json!({"n": 3})).await;
    let third = succeeded(&world, &id, 3).await;
    let moved = last_success().await;
    assert!(
        time(&moved) >= time(&third["attempts"][0]["at"]),
        "{moved} is the third delivery's success"
    );

    // Failures leave it; the success that ends them is written at once, though within the minute.
    world.receiver.set("hook", Behaviour::Statuses(vec![500]));
    world.publish("DEMO", "run.started", json!({"n": 4})).await;
    let failing = wait_webhook(&world, &id, "the failure recorded", |w| {
        w["failing_since"].is_string()
    })
    .await;
    assert_eq!(failing["last_success_at"], moved, "a failure leaves it");
    world.receiver.set("hook", Behaviour::Statuses(vec![200]));
    retry_now(&world, &id, 1).await;
    let recovered = crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    let retried = time(&recovered["attempts"][1]["at"]);
    assert!(
        retried - time(&moved) < chrono::Duration::minutes(1),
        "the recovery comes within the minute"
    );
    let healthy = wait_webhook(&world, &id, "the recovery recorded", |w| {
        w["failing_since"].is_null()
    })
    .await;
    assert!(
        time(&healthy["last_success_at"]) >= retried,
        "the recovery is shown at once: {healthy}"
    );
    world.finish().await;
}
