//! The circuit breaker saves the sender's slots, never a delivery's time: it opens on failures,
//! holds deliveries back with a true next-try time, probes no later than the earliest retry it
//! holds back, releases everything once its probe succeeds, and starts over closed for a webhook
//! that changed (a re-enable) or a manual retry. These tests run the production breaker
//! (`BREAKER_FAILURES`, `BREAKER_PAUSE`) and hand-off lease (`HANDOFF_GRACE`) defaults.

use chrono::{DateTime, Utc};
use clap::Parser;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::{Options, World};

use crate::SOON;

const LONG: Duration = Duration::from_secs(60);

/// The production breaker and hand-off lease; the rest of the test world's timings stay short.
fn production_breaker(o: &mut Options) {
    let sender = webhooks_sender::Config::parse_from(["webhooks-sender"]);
    let dispatcher = webhooks_dispatcher::Config::parse_from(["webhooks-dispatcher"]);
    o.sender.breaker_failures = sender.breaker_failures;
    o.sender.breaker_pause = sender.breaker_pause;
    o.dispatcher.handoff_grace = dispatcher.handoff_grace;
}

/// Deliveries the sender has held back so far.
async fn deferred(world: &World) -> f64 {
    world
        .metric(
            world.sender_addr,
            "webhooks_sender_deliveries_deferred_total",
        )
        .await
}

async fn publish_seqs(world: &World, range: std::ops::Range<u64>) {
    for seq in range {
        world
            .publish("DEMO", "run.started", json!({ "seq": seq }))
            .await;
    }
}

/// Waits until the webhook has `failures` failed attempts recorded.
async fn failures_recorded(world: &World, id: &str, failures: u64) {
    wait::until(&format!("{failures} failures recorded"), LONG, || async {
        let webhook = world.get_webhook("DEMO", id).await;
        (webhook["failed_attempts"].as_u64() >= Some(failures)).then_some(())
    })
    .await;
}

/// Waits until the webhook is disabled, then fixes its endpoint and re-enables it.
async fn recover_and_re_enable(world: &World, id: &str) {
    wait::until("the webhook to be disabled", LONG, || async {
        (world.get_webhook("DEMO", id).await["enabled"] == false).then_some(())
    })
    .await;
    world.receiver.set("down", Behaviour::Statuses(vec![200]));
    let (status, _) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{id}"),
            Some(json!({"enabled": true})),
        )
        .await;
    assert_eq!(status, 200);
}

fn seq_of(body: &[u8]) -> Option<u64> {
    let body: Value = serde_json::from_slice(body).ok()?;
    body["payload"]["seq"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flaky_endpoint_gets_every_delivery_within_its_retry_schedule_once_it_recovers() {
    // The story as users met it: 500 for 2 s, then 200, with events every 0.3 s for 8 s.
    let world = World::start_with(|o| {
        production_breaker(o);
        o.sender.retry_initial = Duration::from_millis(200);
        o.sender.retry_max = Duration::from_millis(500);
    })
    .await;
    world.receiver.set("flaky", Behaviour::Statuses(vec![500]));
    let id = world.webhook("DEMO", "flaky", &["run.started"], None).await;

    let start = Instant::now();
    let mut pace = tokio::time::interval(Duration::from_millis(300));
    let mut published = Vec::new();
    let mut recovered = None;
    for seq in 0..27 {
        pace.tick().await;
        if recovered.is_none() && start.elapsed() >= Duration::from_secs(2) {
            recovered = Some(Instant::now());
            world.receiver.set("flaky", Behaviour::Statuses(vec![200]));
        }
        published.push(Instant::now());
        world
            .publish("DEMO", "run.started", json!({ "seq": seq }))
            .await;
    }
    let recovered = recovered.expect("the endpoint recovered mid-stream");

    wait::until("all 27 deliveries succeeded", LONG, || async {
        let deliveries = world.deliveries("DEMO", &id).await;
        (deliveries.len() == 27 && deliveries.iter().all(|d| d["state"] == "succeeded"))
            .then_some(())
    })
    .await;
    let held = deferred(&world).await;
    assert!(
        held >= 1.0,
        "the breaker opened and held deliveries back (else this test proves nothing)"
    );

    // Each delivery's last request (its success) came no later than the longest its own retry
    // schedule could have made it wait after the endpoint recovered (RETRY_MAX), with 2 s for the
    // scheduler's tick, the probe's round trip and a busy machine. Held back deliveries used to
    // wait for the hand-off lease (30 s) instead.
    let received = world.receiver.received("flaky");
    let bound = Duration::from_millis(500) + Duration::from_secs(2);
    for (seq, at) in published.iter().enumerate() {
        let last = received
            .iter()
            .filter(|r| seq_of(&r.body) == Some(seq as u64))
            .map(|r| r.at)
            .max()
            .unwrap_or_else(|| panic!("seq {seq} never arrived"));
        let due = (*at).max(recovered);
        let late = last.saturating_duration_since(due);
        assert!(
            late <= bound,
            "seq {seq} arrived {late:?} after it could have (bound {bound:?}; {held} held back)"
        );
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_re_enabled_after_its_disable_gets_the_next_event_at_once() {
    // The story as users met it, with a short window and retry schedule.
    let world = World::start_with(|o| {
        production_breaker(o);
        o.sender.disable_after = Duration::from_secs(4);
        o.sender.retry_initial = Duration::from_millis(200);
        o.sender.retry_max = Duration::from_millis(500);
    })
    .await;
    world.receiver.set("down", Behaviour::Statuses(vec![500]));
    let id = world.webhook("DEMO", "down", &["run.started"], None).await;
    publish_seqs(&world, 0..10).await;
    recover_and_re_enable(&world, &id).await;
    let before = world.receiver.received("down").len();
    let published = Instant::now();
    publish_seqs(&world, 100..101).await;
    let got = world.receiver.wait_for("down", before + 1, SOON).await;
    let took = got[before].at - published;
    // Within its first retry's time and a margin for a busy machine; it used to take 15 s and more.
    assert!(
        took < Duration::from_millis(200) + Duration::from_secs(3),
        "the re-enabled webhook's event took {took:?}"
    );
    assert_eq!(seq_of(&got[before].body), Some(100));
    world.finish().await;
}

/// A world whose endpoint's circuit stays open for the production pause (30 s) while the test
/// runs: retries come after a minute, so nothing but a probe or a fresh start reaches it.
async fn open_circuit_world() -> (World, String) {
    let world = World::start_with(|o| {
        production_breaker(o);
        o.sender.disable_after = Duration::from_secs(4);
        o.sender.retry_initial = Duration::from_secs(60);
        o.sender.retry_max = Duration::from_secs(120);
    })
    .await;
    world.receiver.set("down", Behaviour::Statuses(vec![500]));
    let id = world.webhook("DEMO", "down", &["run.started"], None).await;
    // BREAKER_FAILURES (10) failures in a row open the circuit.
    publish_seqs(&world, 0..10).await;
    failures_recorded(&world, &id, 10).await;
    (world, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_re_enabled_webhook_starts_from_a_closed_circuit() {
    let (world, id) = open_circuit_world().await;
    // Past the first retries: the circuit probes (the pause is over), fails, and the webhook,
    // failing for longer than DISABLE_AFTER, is disabled. The circuit is open for 30 s more.
    world.clock.advance(Duration::from_secs(61));
    recover_and_re_enable(&world, &id).await;
    let before = world.receiver.received("down").len();
    publish_seqs(&world, 100..101).await;
    // Within SOON (15 s), half the open circuit's remaining 30 s pause.
    let got = world.receiver.wait_for("down", before + 1, SOON).await;
    assert_eq!(seq_of(&got[before].body), Some(100));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_retry_starts_from_a_closed_circuit() {
    let (world, id) = open_circuit_world().await;
    world.receiver.set("down", Behaviour::Statuses(vec![200]));
    let delivery = world.deliveries("DEMO", &id).await[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (status, _) = world
        .api(
            Method::POST,
            &format!("/projects/DEMO/deliveries/{delivery}/retry"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    // Within SOON (15 s), half the open circuit's 30 s pause.
    wait::until("the retried delivery succeeded", SOON, || async {
        let deliveries = world.deliveries("DEMO", &id).await;
        deliveries
            .iter()
            .any(|d| d["id"] == json!(delivery) && d["state"] == "succeeded")
            .then_some(())
    })
    .await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_back_deliveries_show_their_next_try_and_all_go_when_the_probe_succeeds() {
    let (world, id) = open_circuit_world().await;
    let held_at = world.clock.now();
    publish_seqs(&world, 100..105).await;
    wait::until("five new deliveries held back", LONG, || async {
        (deferred(&world).await >= 5.0).then_some(())
    })
    .await;
    let shown = wait::until("the held deliveries' next try shown", SOON, || async {
        let held: Vec<DateTime<Utc>> = world
            .deliveries("DEMO", &id)
            .await
            .iter()
            .take(5)
            .filter(|d| {
                d["state"] == "pending" && d["attempts"].as_array().is_some_and(Vec::is_empty)
            })
            .filter_map(|d| d["next_attempt_at"].as_str()?.parse().ok())
            // Recorded, a fresh delivery shows its hand-off lease (30 s after its record, so
            // later than this); held, the circuit's probe (at most 30 s after it opened).
            .filter(|next| *next <= held_at + chrono::Duration::seconds(30))
            .collect();
        (held.len() == 5).then_some(held)
    })
    .await;
    for next in &shown {
        assert!(
            *next > held_at,
            "held, not due: the circuit is open until {next}"
        );
    }

    // The endpoint recovers, answering in a second. When the time shown comes, one of them is the
    // circuit's probe and the other four are held while it is out; its success releases them at
    // once (else they would wait another 30 s pause).
    world
        .receiver
        .set("down", Behaviour::Slow(Duration::from_secs(1)));
    let latest = *shown.iter().max().expect("five");
    world
        .clock
        .advance((latest - world.clock.now()).to_std().unwrap_or_default());
    wait::until("the five held deliveries arrived", SOON, || async {
        let seqs = world.receiver.seqs("down");
        (100..105).all(|seq| seqs.contains(&seq)).then_some(())
    })
    .await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_keeps_failing_trips_its_breaker_without_counting_held_deliveries() {
    let world = World::start_with(|o| {
        o.sender.breaker_failures = 3;
        // The circuit stays open for the whole test: no retry and no probe comes within a minute.
        o.sender.breaker_pause = Duration::from_secs(60);
        o.sender.retry_initial = Duration::from_secs(60);
    })
    .await;
    world.receiver.set("broken", Behaviour::Statuses(vec![500]));
    let id = world
        .webhook("DEMO", "broken", &["run.started"], None)
        .await;
    // Three failures open the circuit (requests already in flight cannot be held back)...
    publish_seqs(&world, 0..3).await;
    failures_recorded(&world, &id, 3).await;
    // ...and the next deliveries are held back instead of sent.
    publish_seqs(&world, 3..20).await;
    wait::until("deliveries held back by the open circuit", LONG, || async {
        (deferred(&world).await >= 17.0).then_some(())
    })
    .await;
    let attempts = world.receiver.received("broken").len();
    assert_eq!(
        attempts, 3,
        "the circuit stopped the flood after three failures"
    );
    let webhook = world.get_webhook("DEMO", &id).await;
    assert_eq!(
        webhook["failed_attempts"], 3,
        "held-back deliveries are not failures"
    );
    let deliveries = world.deliveries("DEMO", &id).await;
    let attempted: usize = deliveries
        .iter()
        .map(|d| d["attempts"].as_array().map_or(0, Vec::len))
        .sum();
    assert_eq!(attempted, 3, "no attempt rows for held-back deliveries");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_held_back_by_an_open_circuit_arrive_once_it_closes() {
    let world = World::start_with(|o| {
        o.sender.breaker_failures = 3;
        o.sender.breaker_pause = Duration::from_secs(3);
        // Retries after a minute: only the probe and the release bring the held deliveries.
        o.sender.retry_initial = Duration::from_secs(60);
        o.sender.retry_max = Duration::from_secs(60);
    })
    .await;
    // Three failures open the circuit; by the time it probes, the endpoint has recovered.
    world
        .receiver
        .set("flaky", Behaviour::Statuses(vec![500, 500, 500, 200]));
    let id = world.webhook("DEMO", "flaky", &["run.started"], None).await;
    publish_seqs(&world, 0..3).await;
    failures_recorded(&world, &id, 3).await;
    // Handed over while the circuit is open: held back, not attempted...
    publish_seqs(&world, 3..20).await;
    wait::until("deliveries held back by the open circuit", LONG, || async {
        (deferred(&world).await >= 17.0).then_some(())
    })
    .await;
    // ...and not lost: the probe (one of them, after the 3 s pause) succeeds, and the circuit
    // releases the rest at once, long before their held time would come round again.
    wait::until("all 17 held deliveries succeeded", LONG, || async {
        let deliveries = world.deliveries("DEMO", &id).await;
        (deliveries
            .iter()
            .filter(|d| d["state"] == "succeeded")
            .count()
            == 17)
            .then_some(())
    })
    .await;
    let seqs = world.receiver.seqs("flaky");
    for seq in 3..20 {
        assert_eq!(
            seqs.iter().filter(|s| **s == seq).count(),
            1,
            "held delivery {seq} sent exactly once"
        );
    }
    world.finish().await;
}
