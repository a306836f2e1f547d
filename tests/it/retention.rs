//! Retention (`RETENTION`): events, deliveries and attempts in daily partitions, created ahead by
//! the services and dropped once past the window, never while a delivery of the day waits; event
//! de-duplication across midnight; the upgrade of an installation whose tables are not
//! partitioned; and migrations refused when one was edited after it ran. Time-dependent rules run
//! against the world's clock, moved forward by days in an instant.

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webhooks_core::retention::day_start;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::{DELIVERY_ID_NOW, Options, PG_SERVER, World};

use crate::{SOON, wait_state};

const DAY: Duration = Duration::from_secs(86_400);
const TABLES: [&str; 3] = ["events", "deliveries", "attempts"];

/// A window of 3 days (the shortest over the default `DISABLE_AFTER` of 2 days, as the services
/// require), and partitions looked after every 200 ms rather than every minute, so that a test
/// sees the services act on a clock it moved without waiting for the production interval.
fn short_window(options: &mut Options) {
    options.sender.retention = 3 * DAY;
    options.sender.common.maintenance_interval = Duration::from_millis(200);
    options.dispatcher.common.maintenance_interval = Duration::from_millis(200);
}

fn partition(table: &str, day: NaiveDate) -> String {
    format!("{table}_p{}", day.format("%Y%m%d"))
}

/// The partitions of `table`, by name.
async fn partitions(world: &World, table: &str) -> Vec<String> {
    world
        .db()
        .await
        .query(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::text::regclass ORDER BY 1",
            &[&table],
        )
        .await
        .expect("partitions")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn count(world: &World, sql: &str) -> i64 {
    world
        .db()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

/// The day the newest delivery of `webhook` was recorded on.
async fn day_of_delivery(world: &World, webhook: &str) -> NaiveDate {
    let at: DateTime<Utc> = world
        .db()
        .await
        .query_one(
            "SELECT max(created_at) FROM deliveries WHERE webhook_id = $1::text::uuid",
            &[&webhook],
        )
        .await
        .expect("created_at")
        .get(0);
    at.date_naive()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_partitions_of_the_coming_days_are_there_before_they_are_needed() {
    let world = World::start_with(short_window).await;
    let today = world.clock.now().date_naive();
    for table in TABLES {
        let found = partitions(&world, table).await;
        for ahead in 0..=webhooks_core::retention::AHEAD_DAYS {
            let day = today + chrono::Days::new(ahead);
            assert!(
                found.contains(&partition(table, day)),
                "{table} on {day}: {found:?}"
            );
        }
    }
    // Deliveries are updated in place: their partitions leave half of each page free (see
    // migration 0005), as the table did.
    let options: Vec<String> = world
        .db()
        .await
        .query_one(
            "SELECT reloptions FROM pg_class WHERE relname = $1",
            &[&partition("deliveries", today)],
        )
        .await
        .expect("reloptions")
        .get(0);
    assert_eq!(options, vec!["fillfactor=50".to_owned()]);

    world.clock.advance(3 * DAY);
    let later = today + chrono::Days::new(3 + webhooks_core::retention::AHEAD_DAYS);
    wait::until(
        "the partitions of the moved clock's coming days",
        SOON,
        || async {
            partitions(&world, "deliveries")
                .await
                .contains(&partition("deliveries", later))
                .then_some(())
        },
    )
    .await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_past_the_window_goes_with_its_events_deliveries_and_attempts() {
    let world = World::start_with(short_window).await;
    let id = world.webhook("DEMO", "kept", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    wait_state(&world, "DEMO", &id, "succeeded").await;
    let day = day_of_delivery(&world, &id).await;
    // A replay of it, finished: its row goes with the days it replayed.
    let now = world.clock.now();
    let range = json!({
        "from": (now - chrono::Duration::hours(1)).to_rfc3339(),
        "to": (now + chrono::Duration::minutes(1)).to_rfc3339(),
    });
    let (status, replay) = world
        .api(
            Method::POST,
            &format!("/projects/DEMO/webhooks/{id}/replay"),
            Some(range),
        )
        .await;
    assert_eq!(status, 202, "{replay}");
    let replay_path = format!(
        "/projects/DEMO/webhooks/{id}/replays/{}",
        replay["id"].as_str().expect("id")
    );
    wait::until("the replay finished", SOON, || async {
        let (_, shown) = world.api(Method::GET, &replay_path, None).await;
        (shown["state"] != "running").then_some(())
    })
    .await;
    assert_eq!(count(&world, "SELECT count(*) FROM attempts").await, 2);
    assert_eq!(count(&world, "SELECT count(*) FROM replays").await, 1);

    // The day's end, 3 days on.
    world.clock.advance(4 * DAY + Duration::from_secs(60));
    wait::until("the day past the window dropped", SOON, || async {
        let found = partitions(&world, "events").await;
        (!found.contains(&partition("events", day))).then_some(())
    })
    .await;
    for table in TABLES {
        assert!(
            !partitions(&world, table)
                .await
                .contains(&partition(table, day))
        );
    }
    for table in ["events", "deliveries", "attempts", "event_keys", "replays"] {
        let sql = format!("SELECT count(*) FROM {table}");
        assert_eq!(count(&world, &sql).await, 0, "{table}");
    }
    // Recording goes on in the days after.
    world.publish("DEMO", "run.started", json!({"n": 2})).await;
    world.receiver.wait_for("kept", 2, SOON).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_holding_a_delivery_still_retrying_is_kept_past_the_window() {
    let world = World::start_with(|options| {
        short_window(options);
        // The next attempt comes long after the window: the delivery stays `retrying` meanwhile.
        options.sender.retry_initial = 10 * DAY;
        options.sender.retry_max = 10 * DAY;
    })
    .await;
    world.receiver.set("down", Behaviour::Statuses(vec![500]));
    let down = world.webhook("DEMO", "down", &["run.started"], None).await;
    let up = world.webhook("DEMO", "up", &["run.completed"], None).await;
    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    let waiting = wait_state(&world, "DEMO", &down, "retrying").await;
    let waiting_day = day_of_delivery(&world, &down).await;

    world.clock.advance(DAY + Duration::from_secs(60));
    world
        .publish("DEMO", "run.completed", json!({"n": 2}))
        .await;
    wait_state(&world, "DEMO", &up, "succeeded").await;
    let done_day = day_of_delivery(&world, &up).await;
    assert!(done_day > waiting_day);

    // Both days are now past the window; only the one whose deliveries are done goes.
    world.clock.advance(4 * DAY);
    wait::until("the finished day dropped", SOON, || async {
        let found = partitions(&world, "deliveries").await;
        (!found.contains(&partition("deliveries", done_day))).then_some(())
    })
    .await;
    for table in TABLES {
        let found = partitions(&world, table).await;
        assert!(found.contains(&partition(table, waiting_day)), "{found:?}");
    }
    let now = world.deliveries("DEMO", &down).await;
    assert_eq!(now.len(), 1);
    assert_eq!(now[0]["id"], waiting["id"]);
    assert_eq!(now[0]["state"], "retrying");
    assert_eq!(now[0]["attempts"].as_array().map(Vec::len), Some(1));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_redelivered_after_midnight_is_still_recognised() {
    let world = World::start().await;
    world.webhook("DEMO", "once", &["run.started"], None).await;
    let (twice, after) = (
        uuid::Uuid::new_v4().to_string(),
        uuid::Uuid::new_v4().to_string(),
    );
    world
        .publish_event(&twice, "DEMO", "run.started", r#"{"n":1}"#)
        .await;
    world.receiver.wait_for("once", 1, SOON).await;

    // Into the next day, whose partitions are another table than the first delivery's.
    let now = world.clock.now();
    let midnight = day_start(now.date_naive().succ_opt().expect("tomorrow"));
    world
        .clock
        .advance((midnight - now).to_std().expect("ahead") + Duration::from_secs(1));
    world
        .publish_event(&twice, "DEMO", "run.started", r#"{"n":1}"#)
        .await;
    // Events are recorded in the order they were published: once this one is delivered, the
    // redelivery has been recorded (or not).
    world
        .publish_event(&after, "DEMO", "run.started", r#"{"n":2}"#)
        .await;
    let got = world.receiver.wait_for("once", 2, SOON).await;
    assert!(
        got.iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(r#""n":2"#)),
        "the second delivery is the later event's"
    );
    assert_eq!(world.deliveries_of_event(&twice).await, 1);
    let sql = format!("SELECT count(*) FROM events WHERE id = '{twice}'");
    assert_eq!(count(&world, &sql).await, 1);
    assert_eq!(world.receiver.received("once").len(), 2);
    world.finish().await;
}

/// Every table each plan in `plan` (an `EXPLAIN (FORMAT JSON)` answer) reads, by name.
fn relations(plan: &serde_json::Value, found: &mut Vec<String>) {
    if let Some(name) = plan.get("Relation Name").and_then(|n| n.as_str()) {
        found.push(name.to_owned());
    }
    for child in ["Plan", "Plans"].iter().filter_map(|key| plan.get(*key)) {
        match child {
            serde_json::Value::Array(plans) => plans.iter().for_each(|p| relations(p, found)),
            one => relations(one, found),
        }
    }
}

/// A body too large to come with its claim is read apart by its event's id and the time it was
/// received, so that both reads (its size, then the body) look in that day's partition alone,
/// not in every day kept and created ahead; in a plan made for these values and in one kept
/// for any (which the server prunes as the statement starts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_read_apart_is_looked_for_in_its_days_partition_alone() {
    use webhooks_sender::store::events;

    let world = World::start().await;
    // To the microsecond, as stored: the literals below name it exactly.
    let received = chrono::DateTime::from_timestamp_micros(world.clock.now().timestamp_micros())
        .expect("a time");
    let db = world.db().await;
    db.execute(
        "INSERT INTO events (id, event_name, project_code, body, received_at)
         VALUES ('apart', 'run.started', 'DEMO', '\\x7b7d', $1)",
        &[&received],
    )
    .await
    .expect("an event");
    let days = partitions(&world, "events").await;
    assert!(days.len() > 2, "{days:?}");

    for mode in ["force_custom_plan", "force_generic_plan"] {
        for (name, statement) in [("sizes", events::BODY_SIZES), ("bodies", events::BODIES)] {
            db.batch_execute(&format!(
                "SET plan_cache_mode = {mode};
                 PREPARE {name}(text[], timestamptz, timestamptz) AS {statement}"
            ))
            .await
            .expect("prepare");
            let at = received.to_rfc3339();
            let explained = db
                .query_one(
                    &format!(
                        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}('{{apart}}', '{at}', '{at}')"
                    ),
                    &[],
                )
                .await
                .expect("explain");
            let plan: serde_json::Value = explained.get(0);
            let mut read = Vec::new();
            relations(&plan[0], &mut read);
            assert_eq!(
                read,
                vec![partition("events", received.date_naive())],
                "{name}, {mode}: {plan}"
            );
            assert_eq!(plan[0]["Plan"]["Actual Rows"].as_u64(), Some(1), "{plan}");
            db.batch_execute(&format!("DEALLOCATE {name}"))
                .await
                .expect("deallocate");
        }
    }

    // And the sender's reads find it by those values.
    let pool =
        webhooks_core::db::connect(&world.database_url, 1, webhooks_core::db::Reads::ByIndex)
            .await
            .expect("pool");
    let session = pool.get().await.expect("session");
    let sizes = events::body_sizes(&session, &["apart"], &[received])
        .await
        .expect("sizes");
    assert_eq!(sizes, vec![("apart".to_owned(), 2)]);
    let bodies = events::bodies(&session, &["apart"], &[received])
        .await
        .expect("bodies");
    assert_eq!(bodies, vec![("apart".to_owned(), b"{}".to_vec())]);
    drop(session);
    pool.close();
    world.finish().await;
}

/// The texts of migrations 1 to 7: the schema of the version before partitioning.
const BEFORE_PARTITIONS: [&str; 7] = [
    include_str!("../../crates/core/src/migrations/0001_init.sql"),
    include_str!("../../crates/core/src/migrations/0002_drop_redundant_foreign_keys.sql"),
    include_str!("../../crates/core/src/migrations/0003_heap_only_leases.sql"),
    include_str!("../../crates/core/src/migrations/0004_deliveries_deduplicated_by_event.sql"),
    include_str!("../../crates/core/src/migrations/0005_deliveries_leave_half_a_page.sql"),
    include_str!("../../crates/core/src/migrations/0006_attempts_bounded.sql"),
    include_str!("../../crates/core/src/migrations/0007_previous_secret.sql"),
];

const OLD_DONE: &str = "0190d2c4-0000-4000-8000-0000000000d1";
const OLD_WAITING: &str = "0190d2c4-0000-4000-8000-0000000000d2";
const NEW: &str = "0190d2c4-0000-4000-8000-0000000000d3";

/// Replaces the world's database with one as the previous version left it: migrations 1 to 7,
/// recorded without checksums, and rows in every table.
async fn install_previous_version(world: &World, webhook_url: &str) {
    let name = world
        .database_url
        .rsplit('/')
        .next()
        .expect("database name");
    let (admin, connection) =
        tokio_postgres::connect(&format!("{PG_SERVER}/postgres"), tokio_postgres::NoTls)
            .await
            .expect("server");
    tokio::spawn(connection);
    admin
        .batch_execute(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
        .await
        .expect("the new version's database gone");
    admin
        .batch_execute(&format!("CREATE DATABASE \"{name}\""))
        .await
        .expect("a new database");
    let db = world.db().await;
    db.batch_execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .expect("schema_migrations");
    for (index, sql) in BEFORE_PARTITIONS.iter().enumerate() {
        db.batch_execute(sql).await.expect("an old migration");
        let version = i32::try_from(index + 1).expect("version");
        db.execute(
            "INSERT INTO schema_migrations (version) VALUES ($1)",
            &[&version],
        )
        .await
        .expect("recorded");
    }
    db.batch_execute(&format!(
        "INSERT INTO webhooks (id, project_code, title, url, events, created_at, updated_at)
         VALUES ('0190d2c4-0000-7000-8000-000000000001', 'DEMO', 'old', '{webhook_url}', ARRAY['run.started'], now(), now());
         INSERT INTO events VALUES
             ('{OLD_DONE}', 'run.started', 'DEMO', '{{\"old\":\"done\"}}', now() - interval '1 day'),
             ('{OLD_WAITING}', 'run.started', 'DEMO', '{{\"old\":\"waiting\"}}', now());
         INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at, next_attempt_at, attempt_count)
         VALUES ({DELIVERY_ID_NOW}, '{OLD_DONE}', '0190d2c4-0000-7000-8000-000000000001', 'run.started', 'succeeded', now() - interval '1 day', NULL, 1),
                ({DELIVERY_ID_NOW}, '{OLD_WAITING}', '0190d2c4-0000-7000-8000-000000000001', 'run.started', 'pending', now(), now(), 0);
         INSERT INTO attempts (delivery_id, at, success, status_code, duration_ms)
         SELECT id, now() - interval '1 day', true, 200, 5 FROM deliveries WHERE event_id = '{OLD_DONE}';"
    ))
    .await
    .expect("rows of the previous version");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_installation_without_partitions_is_upgraded_keeping_its_rows() {
    let mut world = World::start().await;
    world.stop_senders().await;
    world.stop_dispatcher().await;
    install_previous_version(&world, &world.receiver.url("old")).await;

    world.start_dispatcher().await;
    world.start_sender().await;
    // The old pending delivery is found by the new senders and sent with its event's body.
    let got = world.receiver.wait_for("old", 1, SOON).await;
    assert!(String::from_utf8_lossy(&got[0].body).contains("waiting"));

    let kinds = world
        .db()
        .await
        .query(
            "SELECT relname::text, relkind::text FROM pg_class
             WHERE relname IN ('events', 'deliveries', 'attempts') ORDER BY 1",
            &[],
        )
        .await
        .expect("kinds");
    for row in &kinds {
        assert_eq!(
            row.get::<_, String>(1),
            "p",
            "{} partitioned",
            row.get::<_, String>(0)
        );
    }
    for table in TABLES {
        let found = partitions(&world, table).await;
        assert!(found.contains(&format!("{table}_legacy")), "{found:?}");
    }
    assert_eq!(count(&world, "SELECT count(*) FROM events").await, 2);
    assert_eq!(count(&world, "SELECT count(*) FROM deliveries").await, 2);
    assert_eq!(count(&world, "SELECT count(*) FROM attempts").await, 2);
    // Every migration is checksummed, those applied before checksums existed included.
    let recorded = world
        .db()
        .await
        .query(
            "SELECT version, checksum FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .expect("migrations");
    assert_eq!(recorded.len(), webhooks_core::db::SCHEMA_VERSION);
    for (row, sql) in recorded.iter().zip(BEFORE_PARTITIONS) {
        assert_eq!(row.get::<_, String>(1), webhooks_core::db::checksum(sql));
    }

    // The old events' ids are still known: one published again is not recorded again.
    world
        .publish_event(OLD_DONE, "DEMO", "run.started", r#"{"again":1}"#)
        .await;
    world
        .publish_event(NEW, "DEMO", "run.started", r#"{"new":1}"#)
        .await;
    let got = world.receiver.wait_for("old", 2, SOON).await;
    assert!(String::from_utf8_lossy(&got[1].body).contains(r#""new":1"#));
    assert_eq!(world.deliveries_of_event(OLD_DONE).await, 1);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_edited_after_it_ran_stops_both_services() {
    let mut world = World::start().await;
    world.stop_senders().await;
    world.stop_dispatcher().await;
    let edited = "0".repeat(64);
    world
        .db()
        .await
        .execute(
            "UPDATE schema_migrations SET checksum = $1 WHERE version = 3",
            &[&edited],
        )
        .await
        .expect("an edit");

    let stop = CancellationToken::new();
    let sender = webhooks_sender::start(world.sender_config.clone(), world.clock.clone(), stop)
        .await
        .expect("the start does not wait for the database");
    let refused = tokio::time::timeout(SOON, sender.wait())
        .await
        .expect("the sender stops of itself")
        .expect_err("refused");
    let stop = CancellationToken::new();
    let dispatcher =
        webhooks_dispatcher::start(world.dispatcher_config.clone(), world.clock.clone(), stop)
            .await
            .expect("the start does not wait for the database");
    let also_refused = tokio::time::timeout(SOON, dispatcher.wait())
        .await
        .expect("the dispatcher stops of itself")
        .expect_err("refused");
    for error in [refused.to_string(), also_refused.to_string()] {
        assert!(
            error.contains(
                "migration 3 (0003_heap_only_leases.sql) was changed after it was applied"
            ),
            "{error}"
        );
    }
    // Nothing was written over the record.
    let kept: String = world
        .db()
        .await
        .query_one(
            "SELECT checksum FROM schema_migrations WHERE version = 3",
            &[],
        )
        .await
        .expect("checksum")
        .get(0);
    assert_eq!(kept, edited);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_no_longer_than_the_give_up_time_is_refused() {
    let world = World::start().await;
    let mut config = world.sender_config.clone();
    config.retention = config.disable_after;
    let refused = webhooks_sender::start(config, world.clock.clone(), CancellationToken::new())
        .await
        .err()
        .expect("refused");
    let text = refused.to_string();
    assert!(
        text.contains("RETENTION (2days) must be longer than DISABLE_AFTER (2days)"),
        "{text}"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_looking_after_the_partitions_at_once_create_and_drop_each_day_once() {
    use webhooks_core::db::{Database, Reads};
    use webhooks_core::retention;
    let world = World::start().await;
    let pools: Vec<_> = (0..4)
        .map(|_| {
            Database::new(&world.database_url, None)
                .and_then(|database| database.pool(1, Reads::Default))
                .expect("a pool")
        })
        .collect();
    // As four instances would, starting at once on a clock 40 days on.
    let later = world.clock.now() + chrono::Duration::days(40);
    let created =
        futures::future::join_all(pools.iter().map(|p| retention::prepare(p, later))).await;
    let created: usize = created.into_iter().map(|c| c.expect("created")).sum();
    let days = usize::try_from(retention::AHEAD_DAYS).expect("days") + 1;
    assert_eq!(created, days, "each day created once");

    // Then dropping, on a clock 39 days further: every day created so far is 30 days past.
    let keep = 30 * DAY;
    let far = later + chrono::Duration::days(39);
    let start = world.clock.now().date_naive();
    let dropped =
        futures::future::join_all(pools.iter().map(|p| retention::drop_expired(p, far, keep)))
            .await;
    let mut dropped: Vec<String> = dropped
        .into_iter()
        .flat_map(|d| d.expect("dropped"))
        .map(|d| d.partition.to_string())
        .collect();
    let expected: Vec<String> = (0..=retention::AHEAD_DAYS)
        .map(|ahead| (start + chrono::Days::new(ahead)).to_string())
        .chain(
            (0..=retention::AHEAD_DAYS)
                .map(|ahead| (later.date_naive() + chrono::Days::new(ahead)).to_string()),
        )
        .collect();
    // An instance that found another at it, or a day's tables busy with the services' own
    // statements (the lock is only waited for briefly), left the rest to the next turns.
    let rest = std::sync::Mutex::new(Vec::new());
    wait::until("every day dropped", SOON, || async {
        let more = retention::drop_expired(&pools[0], far, keep)
            .await
            .expect("the rest dropped");
        let mut rest = rest.lock().expect("not poisoned");
        rest.extend(more.into_iter().map(|d| d.partition.to_string()));
        (dropped.len() + rest.len() >= expected.len()).then_some(())
    })
    .await;
    dropped.extend(rest.into_inner().expect("not poisoned"));
    dropped.sort();
    assert_eq!(dropped, expected, "each day dropped once");
    let left = partitions(&world, "deliveries").await;
    assert!(
        !left.contains(&partition("deliveries", later.date_naive())),
        "{left:?}"
    );
    world.finish().await;
}
