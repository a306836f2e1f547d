//! Caps per host and per project beside those per endpoint.

use super::*;

/// `endpoint` on `host`, of `project`.
fn at<'a>(endpoint: &'a str, host: &'a str, project: &'a str) -> Route<'a> {
    Route {
        endpoint,
        host,
        project,
    }
}

#[tokio::test]
async fn caps_a_host_whatever_the_paths_of_its_endpoints() {
    let (l, _) = with_caps(10, 2, 1_000, 0);
    let _a = l
        .enter(at("h/a", "h", "P"), Uuid::new_v4(), unchanged())
        .await
        .expect("a");
    let _b = l
        .enter(at("h/b", "h", "Q"), Uuid::new_v4(), unchanged())
        .await
        .expect("b");
    // Full, first used a moment ago and never answered: a new endpoint on it waits a moment,
    // then is held back as busy, without a slot anywhere.
    l.with_host("h", |host| host.last_sign_of_life -= Duration::from_secs(2));
    let held = l
        .enter(at("h/c", "h", "R"), Uuid::new_v4(), unchanged())
        .await
        .expect_err("the host is full and silent");
    assert!(matches!(held, HeldBack::Busy(_)), "{held:?}");
    assert!(
        l.enter(at("h/c", "other", "R"), Uuid::new_v4(), unchanged())
            .await
            .is_ok(),
        "the endpoint and project it would have used have their slots"
    );
}

#[tokio::test]
async fn caps_a_project_across_hosts() {
    let (l, _) = with_caps(10, 1_000, 2, 0);
    let slow = l
        .enter(at("a", "a", "P"), Uuid::new_v4(), unchanged())
        .await
        .expect("a");
    let _b = l
        .enter(at("b", "b", "P"), Uuid::new_v4(), unchanged())
        .await
        .expect("b");
    // The project's answers take seconds: no use waiting for one of its slots.
    let took = SLOW + Duration::from_secs(1);
    let mut slow = slow;
    slow.entered -= took;
    l.finish(slow, Finished::Success);
    let _c = l
        .enter(at("c", "c", "P"), Uuid::new_v4(), unchanged())
        .await
        .expect("a slot came free");
    let started = std::time::Instant::now();
    let held = l
        .enter(at("d", "d", "P"), Uuid::new_v4(), unchanged())
        .await
        .expect_err("the project is full and slow");
    assert!(matches!(held, HeldBack::Busy(_)));
    assert!(
        started.elapsed() < ANSWERING,
        "held back at once, not after a wait"
    );
    assert!(
        l.enter(at("d", "d", "Q"), Uuid::new_v4(), unchanged())
            .await
            .is_ok(),
        "another project on the same hosts goes ahead"
    );
}

#[tokio::test]
async fn waits_briefly_for_a_full_host_that_answers_quickly() {
    let (l, _) = with_caps(10, 1, 1_000, 0);
    let a = l
        .enter(at("h/a", "h", "P"), Uuid::new_v4(), unchanged())
        .await
        .expect("a");
    let l2 = l.clone();
    let waiter = tokio::spawn(async move {
        l2.enter(at("h/b", "h", "Q"), Uuid::new_v4(), unchanged())
            .await
            .map(|_| ())
    });
    tokio::task::yield_now().await;
    l.finish(a, Finished::Success);
    assert_eq!(waiter.await.expect("task"), Ok(()));
}

#[tokio::test]
async fn a_delivery_held_back_by_its_host_gives_back_its_probe() {
    let (l, clock) = with_caps(10, 1, 1_000, 1);
    open(&l, "e", 1).await;
    clock.advance(PAUSE);
    let hanging = l
        .enter(at("x", "host:80", "Q"), Uuid::new_v4(), unchanged())
        .await
        .expect("x");
    l.with_host("host:80", |host| {
        host.last_sign_of_life -= Duration::from_secs(2)
    });
    assert!(matches!(
        enter(&l, "e").await.expect_err("its host is full"),
        HeldBack::Busy(_)
    ));
    drop(hanging);
    let probe = enter(&l, "e")
        .await
        .expect("the probe goes with the next delivery");
    l.finish(probe, Finished::Success);
    assert!(enter(&l, "e").await.is_ok(), "closed by its success");
}

#[tokio::test]
async fn verdicts_follow_the_strictest_of_endpoint_host_and_project() {
    let (l, _) = with_caps(10, 1, 1, 0);
    let (on_host, in_project, elsewhere) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    l.learn(on_host, at("h/b", "h", "Q"));
    l.learn(in_project, at("g/c", "g", "P"));
    l.learn(elsewhere, at("k/d", "k", "R"));
    let slot = l
        .enter(at("h/a", "h", "P"), Uuid::new_v4(), unchanged())
        .await
        .expect("a");
    assert_eq!(
        l.verdict(on_host),
        Verdict::Park,
        "its host is full, not proven yet"
    );
    assert_eq!(
        l.verdict(in_project),
        Verdict::Park,
        "its project is full, not proven yet"
    );
    assert_eq!(l.verdict(elsewhere), Verdict::Go);
    l.with_host("h", |host| host.last_sign_of_life -= Duration::from_secs(2));
    assert_eq!(
        l.verdict(on_host),
        Verdict::HoldBack,
        "its host is full and silent"
    );
    l.finish(slot, Finished::Success);
    assert_eq!(l.verdict(on_host), Verdict::Go, "its host has room again");
    assert_eq!(l.verdict(in_project), Verdict::Go);
}
