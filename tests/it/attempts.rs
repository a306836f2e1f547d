//! Attempts bounded in storage and in lists: a delivery retried for long keeps its first attempt
//! and its most recent ones, counts those removed between them, and the deliveries list shows no
//! more (contract, API: attempts in lists). Retries are moved forward on the world's clock.

use serde_json::{Value, json};
use std::time::Duration;
use webhooks_core::delivery::ATTEMPTS_KEPT_RECENT;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;

/// The first attempt and the most recent.
const KEPT: usize = ATTEMPTS_KEPT_RECENT + 1;

/// Every attempt the list accounts for: those shown and those it says it omits.
fn accounted(delivery: &Value) -> Option<usize> {
    let shown = delivery["attempts"].as_array()?.len();
    let omitted = usize::try_from(delivery["attempts_omitted"].as_u64()?).ok()?;
    Some(shown + omitted)
}

/// The times of the attempts a delivery lists, as listed.
fn times(delivery: &Value) -> Vec<String> {
    delivery["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["at"].as_str().expect("at").to_owned())
        .collect()
}

/// (stored attempts, `attempts_pruned`, `attempt_count`) of a delivery, as the database has them.
async fn stored(world: &World, delivery: &str) -> (i64, i32, i32) {
    let row = world
        .db()
        .await
        .query_one(
            "SELECT (SELECT count(*) FROM attempts WHERE delivery_id = d.id),
                    d.attempts_pruned, d.attempt_count
             FROM deliveries d WHERE d.id = $1::text::uuid",
            &[&delivery],
        )
        .await
        .expect("delivery");
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_retried_many_times_keeps_its_first_and_recent_attempts_and_counts_the_rest() {
    let world = World::start_with(|o| {
        // Retries a minute apart at most: many attempts within the two days before a delivery is
        // given up (with the defaults it makes about 22, all kept). Without the breaker, which
        // would hold retries back between them; a scheduler turning every 100 ms, so the many
        // retries do not wait a second each for it.
        o.sender.retry_max = Duration::from_secs(60);
        o.sender.breaker_failures = 0;
        o.sender.scheduler_interval = Duration::from_millis(100);
    })
    .await;
    world.receiver.set("down", Behaviour::Statuses(vec![500]));
    let id = world.webhook("DEMO", "down", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;

    let total = KEPT + 10;
    let mut first_at = String::new();
    let mut delivery = Value::Null;
    for made in 1..=total {
        delivery = wait::until(&format!("attempt {made} recorded"), SOON, || async {
            let newest = world.deliveries("DEMO", &id).await.into_iter().next()?;
            (accounted(&newest)? == made && newest["state"] == "retrying").then_some(newest)
        })
        .await;
        if made == 1 {
            first_at = times(&delivery)[0].clone();
        }
        let listed = delivery["attempts"].as_array().expect("attempts").len();
        assert_eq!(listed, made.min(KEPT), "attempts listed after {made}");
        if made < total {
            world
                .advance_to_next_attempt(&id)
                .await
                .expect("a retry waits");
        }
    }

    assert_eq!(
        world.receiver.received("down").len(),
        total,
        "every attempt was made"
    );
    let listed = times(&delivery);
    assert_eq!(listed.len(), KEPT, "the list is bounded");
    assert_eq!(delivery["attempts_omitted"], json!(total - KEPT));
    assert_eq!(listed[0], first_at, "the first attempt is kept");
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "oldest first");
    let delivery_id = delivery["id"].as_str().expect("id");
    let (kept, pruned, count) = stored(&world, delivery_id).await;
    assert_eq!(kept, KEPT as i64, "storage is bounded");
    assert_eq!(
        pruned as usize,
        total - KEPT,
        "every attempt removed is counted"
    );
    assert_eq!(count as usize, total);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_stored_before_the_bound_are_listed_within_it_and_counted() {
    let world = World::start().await;
    world.receiver.set("ok", Behaviour::Statuses(vec![200]));
    let id = world.webhook("DEMO", "ok", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    let delivery = crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    let delivery_id = delivery["id"].as_str().expect("id").to_owned();

    // History from before the bound: 40 failed attempts before the success, all stored.
    let older: i32 = 40;
    world
        .db()
        .await
        .execute(
            "INSERT INTO attempts (delivery_id, at, success, status_code, error, duration_ms)
             SELECT $1::text::uuid, now() - make_interval(mins => n), false, 500, 'HTTP 500', 3
             FROM generate_series(1, $2) AS n",
            &[&delivery_id, &older],
        )
        .await
        .expect("older attempts");

    let listed = world.deliveries("DEMO", &id).await.remove(0);
    let times = times(&listed);
    assert_eq!(times.len(), KEPT, "the list is bounded");
    assert_eq!(listed["attempts_omitted"], json!(older as usize + 1 - KEPT));
    assert_eq!(
        accounted(&listed),
        Some(older as usize + 1),
        "every attempt accounted for"
    );
    let attempts = listed["attempts"].as_array().expect("attempts");
    assert_eq!(
        attempts[0]["success"],
        json!(false),
        "the first attempt, oldest first"
    );
    assert_eq!(
        attempts[KEPT - 1]["success"],
        json!(true),
        "the most recent, last"
    );
    world.finish().await;
}
