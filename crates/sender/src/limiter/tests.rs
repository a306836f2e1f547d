//! The limiter as attempts meet it: slots, verdicts, and the breaker through enter and finish.

use super::*;

mod scopes;
mod slow;

const PAUSE: Duration = Duration::from_secs(10);
const SLOW: Duration = Duration::from_secs(5);

/// A limiter whose hosts and projects have room for everything, for tests of endpoints alone.
fn limiter(max: usize, failures: u32) -> (Limiter, Clock) {
    with_caps(max, 1_000, 1_000, failures)
}

fn with_caps(endpoint: usize, host: usize, project: usize, failures: u32) -> (Limiter, Clock) {
    let clock = Clock::shifted();
    let limiter = Limiter::new(
        LimiterConfig {
            max_per_endpoint: endpoint,
            max_per_host: host,
            max_per_project: project,
            breaker_failures: failures,
            breaker_slow: SLOW,
            breaker_pause: PAUSE,
            busy_hold: Duration::from_secs(15),
        },
        clock.clone(),
    );
    (limiter, clock)
}

/// An endpoint on one host, of one project, with every other endpoint of these tests.
fn route(endpoint: &str) -> Route<'_> {
    Route {
        endpoint,
        host: "host:80",
        project: "DEMO",
    }
}

/// Long ago: the delivery's webhook has not changed since any circuit opened.
fn unchanged() -> DateTime<Utc> {
    DateTime::UNIX_EPOCH
}

async fn enter(l: &Limiter, endpoint: &str) -> Result<Slot, HeldBack> {
    l.enter(route(endpoint), Uuid::new_v4(), unchanged()).await
}

const FAILED: Finished = Finished::Failure { answered: true };

/// Opens the circuit of `endpoint` with `failures` failed attempts.
async fn open(l: &Limiter, endpoint: &str, failures: u32) {
    for _ in 0..failures {
        let slot = enter(l, endpoint).await.expect("closed");
        assert!(l.finish(slot, FAILED).is_empty());
    }
}

#[tokio::test]
async fn caps_concurrency_per_endpoint_and_waits_briefly_while_it_answers() {
    let (l, _) = limiter(2, 0);
    let a = enter(&l, "e").await.expect("first");
    let _b = enter(&l, "e").await.expect("second");
    assert!(
        enter(&l, "other").await.is_ok(),
        "other endpoints are not affected"
    );
    // At the cap and answering: waits for a slot, which frees when `a` finishes.
    let l2 = l.clone();
    let waiter = tokio::spawn(async move { enter(&l2, "e").await.map(|_| ()) });
    tokio::task::yield_now().await;
    l.finish(a, Finished::Success);
    assert_eq!(waiter.await.expect("task"), Ok(()));
}

#[tokio::test]
async fn holds_back_when_the_endpoint_is_not_answering() {
    let (l, clock) = limiter(1, 0);
    let _hanging = enter(&l, "e").await.expect("first");
    // Last sign of life two seconds ago: not answering.
    l.with("e", |state| {
        state.last_sign_of_life -= Duration::from_secs(2)
    });
    let held = enter(&l, "e").await.expect_err("held");
    assert!(matches!(held, HeldBack::Busy(_)));
    let wait = held.until() - clock.now();
    assert!(
        wait > chrono::Duration::seconds(14) && wait <= chrono::Duration::seconds(15),
        "{wait}"
    );
}

#[tokio::test]
async fn opens_after_failures_then_probes_once_when_the_pause_is_over() {
    let (l, clock) = limiter(10, 3);
    open(&l, "e", 3).await;
    let opened = clock.now();
    let held = enter(&l, "e").await.expect_err("open");
    let HeldBack::CircuitOpen(until) = held else {
        panic!("{held:?}")
    };
    assert!(
        until - opened <= chrono::Duration::from_std(PAUSE).expect("pause"),
        "held no longer than the pause: the probe comes by then"
    );
    clock.advance(PAUSE);
    let probe = enter(&l, "e").await.expect("probe after the pause");
    let during = enter(&l, "e").await.expect_err("one probe at a time");
    assert!(matches!(during, HeldBack::CircuitOpen(_)));
    assert!(
        during.until() - clock.now() <= chrono::Duration::from_std(PAUSE).expect("pause"),
        "held while the probe is out no longer than a pause"
    );
    l.finish(probe, Finished::Success);
    assert!(
        enter(&l, "e").await.is_ok(),
        "closed again after a successful probe"
    );
}

#[tokio::test]
async fn a_successful_probe_releases_every_delivery_held_back() {
    let (l, clock) = limiter(10, 1);
    open(&l, "e", 1).await;
    let held: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    for id in &held {
        assert!(l.enter(route("e"), *id, unchanged()).await.is_err());
    }
    clock.advance(PAUSE);
    let probe = enter(&l, "e").await.expect("probe");
    let during = Uuid::new_v4();
    assert!(l.enter(route("e"), during, unchanged()).await.is_err());
    let mut released = l.finish(probe, Finished::Success);
    released.sort();
    let mut expected = [held, vec![during]].concat();
    expected.sort();
    assert_eq!(released, expected);
}

#[tokio::test]
async fn failed_probe_reopens_and_keeps_what_it_held() {
    let (l, clock) = limiter(10, 1);
    open(&l, "e", 1).await;
    let held = Uuid::new_v4();
    assert!(l.enter(route("e"), held, unchanged()).await.is_err());
    clock.advance(PAUSE);
    let probe = enter(&l, "e").await.expect("probe");
    assert!(l.finish(probe, FAILED).is_empty());
    let reopened = enter(&l, "e").await.expect_err("open again");
    assert!(reopened.until() > clock.now());
    clock.advance(PAUSE);
    let probe = enter(&l, "e").await.expect("second probe");
    assert!(l.finish(probe, Finished::Success).contains(&held));
}

#[tokio::test]
async fn a_webhook_changed_since_the_circuit_opened_starts_from_a_closed_circuit() {
    let (l, clock) = limiter(10, 1);
    open(&l, "e", 1).await;
    let held = Uuid::new_v4();
    assert!(l.enter(route("e"), held, unchanged()).await.is_err());
    clock.advance(Duration::from_secs(1));
    let mut slot = l
        .enter(route("e"), Uuid::new_v4(), clock.now())
        .await
        .expect("re-enabled since: closed");
    assert_eq!(slot.take_released(), vec![held]);
    assert!(
        enter(&l, "e").await.is_ok(),
        "closed for the other deliveries too"
    );
    l.finish(slot, Finished::Success);
}

#[tokio::test]
async fn refused_destinations_do_not_trip_the_breaker() {
    let (l, _) = limiter(10, 1);
    let slot = enter(&l, "e").await.expect("closed");
    l.finish(slot, Finished::NotSent);
    assert!(enter(&l, "e").await.is_ok());
}

#[tokio::test]
async fn a_timeout_is_no_sign_of_life() {
    let (l, _) = limiter(1, 0);
    let webhook = Uuid::new_v4();
    l.learn(webhook, route("e"));
    let slot = enter(&l, "e").await.expect("slot");
    l.with("e", |state| {
        state.last_sign_of_life -= Duration::from_secs(2)
    });
    // No response within the timeout: the endpoint still counts as silent.
    l.finish(slot, Finished::Failure { answered: false });
    let _hanging = enter(&l, "e").await.expect("the slot is free again");
    assert_eq!(l.verdict(webhook), Verdict::HoldBack, "full and silent");
}

#[tokio::test]
async fn tells_which_webhooks_are_held_back() {
    let (l, _) = limiter(1, 1);
    let (hanging, failing, healthy) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    l.learn(hanging, route("h"));
    l.learn(failing, route("f"));
    l.learn(healthy, route("ok"));
    assert_eq!(
        l.verdict(hanging),
        Verdict::Go,
        "nothing known against it yet"
    );
    assert_eq!(
        l.verdict(Uuid::new_v4()),
        Verdict::Go,
        "unknown webhooks go ahead"
    );

    let _in_flight = enter(&l, "h").await.expect("slot");
    assert_eq!(
        l.verdict(hanging),
        Verdict::Park,
        "full, first used a moment ago, never answered: wait and see"
    );
    l.with("h", |state| {
        state.last_sign_of_life -= Duration::from_secs(2)
    });
    assert_eq!(l.verdict(hanging), Verdict::HoldBack, "full and silent");

    open(&l, "f", 1).await;
    assert_eq!(
        l.verdict(failing),
        Verdict::Go,
        "an open circuit is judged on entry, where the delivery's next try is written"
    );

    let slot = enter(&l, "ok").await.expect("slot");
    assert_eq!(l.verdict(healthy), Verdict::Park, "full and not proven yet");
    l.finish(slot, Finished::Success);
    assert_eq!(l.verdict(healthy), Verdict::Go);
    // Full, but it has answered lately: go ahead and wait briefly for a slot.
    let _busy = enter(&l, "ok").await.expect("slot");
    l.with("ok", |state| state.answered = true);
    assert_eq!(l.verdict(healthy), Verdict::Go);
}
