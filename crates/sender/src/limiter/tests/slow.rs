//! Slow answers: successes slower than the breaker's threshold count toward opening a circuit.

use super::*;

/// Enters `endpoint` and finishes with a success that took `took`.
async fn answer_after(l: &Limiter, endpoint: &str, took: Duration) -> Vec<Uuid> {
    let mut slot = enter(l, endpoint).await.expect("closed");
    slot.entered -= took;
    l.finish(slot, Finished::Success)
}

#[tokio::test]
async fn slow_successes_in_a_row_open_the_circuit() {
    let (l, _) = limiter(10, 3);
    for _ in 0..2 {
        answer_after(&l, "e", SLOW).await;
    }
    // A quick success in between starts the count over.
    answer_after(&l, "e", Duration::from_millis(5)).await;
    for _ in 0..2 {
        answer_after(&l, "e", SLOW + Duration::from_millis(1)).await;
    }
    assert!(
        enter(&l, "e").await.is_ok(),
        "two slow in a row: still closed"
    );
    answer_after(&l, "e", SLOW).await;
    let held = enter(&l, "e").await.expect_err("three slow in a row: open");
    assert!(matches!(held, HeldBack::CircuitOpen(_)), "{held:?}");
}

#[tokio::test]
async fn failures_and_slow_successes_count_together() {
    let (l, _) = limiter(10, 3);
    open(&l, "e", 2).await;
    answer_after(&l, "e", SLOW).await;
    assert!(matches!(
        enter(&l, "e").await.expect_err("open"),
        HeldBack::CircuitOpen(_)
    ));
}

#[tokio::test]
async fn a_slow_probe_keeps_the_circuit_open_and_a_quick_one_closes_it() {
    let (l, clock) = limiter(10, 1);
    answer_after(&l, "e", SLOW).await;
    let held = Uuid::new_v4();
    assert!(l.enter(route("e"), held, unchanged()).await.is_err());
    clock.advance(PAUSE);
    assert!(
        answer_after(&l, "e", SLOW).await.is_empty(),
        "a slow probe releases nothing"
    );
    assert!(enter(&l, "e").await.is_err(), "open again for a pause");
    clock.advance(PAUSE);
    assert!(
        answer_after(&l, "e", Duration::from_millis(5))
            .await
            .contains(&held)
    );
    assert!(enter(&l, "e").await.is_ok());
}

#[tokio::test]
async fn slow_answers_never_open_a_circuit_when_the_slow_rule_is_off() {
    let clock = Clock::shifted();
    let l = Limiter::new(
        LimiterConfig {
            max_per_endpoint: 10,
            max_per_host: 10,
            max_per_project: 10,
            breaker_failures: 1,
            breaker_slow: Duration::ZERO,
            breaker_pause: PAUSE,
            busy_hold: PAUSE,
        },
        clock,
    );
    answer_after(&l, "e", Duration::from_secs(60)).await;
    assert!(enter(&l, "e").await.is_ok());
}
