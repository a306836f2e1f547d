//! Every metric the README lists is exported by the running services from the start, and moves
//! when the thing it counts happens.

use lapin::BasicProperties;
use reqwest::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;

const DAY: Duration = Duration::from_secs(86_400);

/// The metric names in the README's Metrics table.
fn readme_metrics() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("## Metrics")
        .nth(1)
        .expect("a Metrics section")
        .split("\n## ")
        .next()
        .expect("its text");
    table
        .lines()
        .filter_map(|line| line.strip_prefix("| `")?.split('`').next())
        .map(str::to_owned)
        .collect()
}

/// What a service exports, a histogram's series under its own name.
async fn exported(addr: SocketAddr) -> String {
    reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
        .replace("_bucket{", "{")
        .replace("_count ", " ")
        .replace("_sum ", " ")
}

/// Waits until `metric` on `addr` reaches at least `at_least`.
async fn moves(world: &World, addr: SocketAddr, metric: &str, at_least: f64) {
    wait::until(&format!("{metric} to reach {at_least}"), SOON, || async {
        (world.metric(addr, metric).await >= at_least).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_readme_is_exported_from_the_start_and_moves() {
    let world = World::start().await;
    let (dispatcher, sender) = (world.dispatcher_addr(), world.sender_addr);

    // Exported before anything happened, every labelled series at 0.
    let names = readme_metrics();
    assert!(names.len() >= 15, "the README's table: {names:?}");
    let (from_dispatcher, from_sender) = (exported(dispatcher).await, exported(sender).await);
    for name in &names {
        // A name with neither service's prefix is one every service exports.
        let texts = if name.starts_with("webhooks_dispatcher_") {
            vec![&from_dispatcher]
        } else if name.starts_with("webhooks_sender_") {
            vec![&from_sender]
        } else {
            vec![&from_dispatcher, &from_sender]
        };
        for text in texts {
            assert!(
                text.lines().any(
                    |l| l.starts_with(name.as_str()) && l[name.len()..].starts_with([' ', '{'])
                ),
                "{name} is in the README but not exported"
            );
        }
    }
    // What every service exports: readiness, its build and its process.
    for (addr, service) in [
        (dispatcher, "webhooks-dispatcher"),
        (sender, "webhooks-sender"),
    ] {
        moves(&world, addr, "webhooks_ready", 1.0).await;
        let build = format!(
            "webhooks_build_info{{service=\"{service}\",version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(world.metric(addr, &build).await, 1.0, "{build}");
        assert!(world.metric(addr, "process_resident_memory_bytes").await > 0.0);
        assert!(world.metric(addr, "process_open_fds").await > 0.0);
    }
    for series in [
        "webhooks_dispatcher_events_total{outcome=\"accepted\"}",
        "webhooks_dispatcher_events_total{outcome=\"unmatched\"}",
        "webhooks_dispatcher_events_total{outcome=\"rejected\"}",
        "webhooks_dispatcher_api_requests_total{status=\"5xx\"}",
    ] {
        assert_eq!(world.metric(dispatcher, series).await, 0.0, "{series}");
    }
    for series in [
        "webhooks_sender_attempts_total{outcome=\"success\"}",
        "webhooks_sender_attempts_total{outcome=\"failure\"}",
        "webhooks_sender_deliveries_claimed_total{source=\"handoff\"}",
        "webhooks_sender_deliveries_claimed_total{source=\"queue\"}",
        "webhooks_sender_deliveries_claimed_total{source=\"scheduler\"}",
    ] {
        assert_eq!(world.metric(sender, series).await, 0.0, "{series}");
    }

    // The API and the index.
    world.receiver.set("down", Behaviour::Statuses(vec![500]));
    world
        .receiver
        .set("slow", Behaviour::Slow(Duration::from_secs(2)));
    let ok = world.webhook("DEMO", "ok", &["run.started"], None).await;
    let down = world.webhook("DEMO", "down", &["case.created"], None).await;
    world.receiver.set("held", Behaviour::Statuses(vec![500]));
    world
        .webhook("DEMO", "held", &["run.completed"], None)
        .await;
    world.webhook("DEMO", "slow", &["plan.created"], None).await;
    let (status, _) = world
        .api(Method::GET, "/projects/DEMO/webhooks/nope", None)
        .await;
    assert_eq!(status, 404);
    moves(
        &world,
        dispatcher,
        "webhooks_dispatcher_index_webhooks",
        4.0,
    )
    .await;
    moves(
        &world,
        dispatcher,
        "webhooks_dispatcher_api_requests_total{status=\"2xx\"}",
        4.0,
    )
    .await;
    moves(
        &world,
        dispatcher,
        "webhooks_dispatcher_api_requests_total{status=\"4xx\"}",
        1.0,
    )
    .await;

    // Events: accepted, unmatched, rejected; batches; deliveries; a carried attempt.
    world.publish("DEMO", "run.started", json!({})).await;
    world.publish("ELSE", "run.started", json!({})).await;
    world
        .publish_raw("run.started", b"not json", BasicProperties::default())
        .await;
    for (outcome, at_least) in [("accepted", 1.0), ("unmatched", 1.0), ("rejected", 1.0)] {
        let series = format!("webhooks_dispatcher_events_total{{outcome=\"{outcome}\"}}");
        moves(&world, dispatcher, &series, at_least).await;
    }
    moves(
        &world,
        dispatcher,
        "webhooks_dispatcher_deliveries_created_total",
        1.0,
    )
    .await;
    moves(
        &world,
        dispatcher,
        "webhooks_dispatcher_batch_seconds_count",
        1.0,
    )
    .await;
    moves(
        &world,
        dispatcher,
        "webhooks_dispatcher_batch_events_count",
        1.0,
    )
    .await;
    crate::wait_state(&world, "DEMO", &ok, "succeeded").await;
    moves(
        &world,
        sender,
        "webhooks_sender_attempts_total{outcome=\"success\"}",
        1.0,
    )
    .await;
    moves(&world, sender, "webhooks_sender_attempt_seconds_count", 1.0).await;
    moves(
        &world,
        sender,
        "webhooks_sender_deliveries_claimed_total{source=\"handoff\"}",
        1.0,
    )
    .await;

    // A request in flight.
    world.publish("DEMO", "plan.created", json!({})).await;
    moves(&world, sender, "webhooks_sender_in_flight_requests", 1.0).await;

    // A body too large to be carried is claimed from its hand-off.
    let large = "x".repeat(100 * 1024);
    world
        .publish("DEMO", "run.started", json!({ "large": large }))
        .await;
    moves(
        &world,
        sender,
        "webhooks_sender_deliveries_claimed_total{source=\"queue\"}",
        1.0,
    )
    .await;

    // A failure and its retry scheduled.
    world
        .publish("DEMO", "case.created", json!({ "seq": 0 }))
        .await;
    moves(
        &world,
        sender,
        "webhooks_sender_attempts_total{outcome=\"failure\"}",
        1.0,
    )
    .await;
    moves(
        &world,
        sender,
        "webhooks_sender_retries_scheduled_total",
        1.0,
    )
    .await;

    // Another endpoint fails BREAKER_FAILURES (10) times in a row; its circuit holds the next back.
    for seq in 0..10 {
        world
            .publish("DEMO", "run.completed", json!({ "seq": seq }))
            .await;
    }
    moves(
        &world,
        sender,
        "webhooks_sender_attempts_total{outcome=\"failure\"}",
        11.0,
    )
    .await;
    world
        .publish("DEMO", "run.completed", json!({ "seq": 10 }))
        .await;
    moves(
        &world,
        sender,
        "webhooks_sender_deliveries_deferred_total",
        1.0,
    )
    .await;

    // Retries come from the scheduler; past DISABLE_AFTER a failure gives up and disables, and
    // the owner is notified.
    world.clock.advance(2 * DAY + Duration::from_secs(60));
    moves(
        &world,
        sender,
        "webhooks_sender_deliveries_claimed_total{source=\"scheduler\"}",
        1.0,
    )
    .await;
    moves(
        &world,
        sender,
        "webhooks_sender_deliveries_given_up_total",
        1.0,
    )
    .await;
    moves(
        &world,
        sender,
        "webhooks_sender_webhooks_disabled_total",
        1.0,
    )
    .await;
    moves(
        &world,
        sender,
        "webhooks_sender_notifications_published_total",
        1.0,
    )
    .await;
    assert_eq!(world.get_webhook("DEMO", &down).await["enabled"], false);
    world.finish().await;
}
