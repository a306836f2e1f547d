//! Events in, signed deliveries out: bytes, headers, signatures, filtering, fan-out, replays and
//! dead letters.

use base64::Engine;
use hmac::{Hmac, Mac};
use lapin::BasicProperties;
use serde_json::json;
use sha2::Sha256;
use std::time::Duration;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::world::{DELIVERY_ID_NOW, World};

use crate::SOON;

fn hmac_b64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("key");
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivers_exact_body_and_headers() {
    let world = World::start().await;
    let webhook = world
        .webhook("DEMO", "plain", &["run.started"], Some("s3cr3t"))
        .await;
    let payload = r#"{ "id": 1, "title" : "Test run 2022/04/21", "cases_count": 14, "nested": {"a": [1, 2.50, "é"]} }"#;
    let event_id = uuid::Uuid::new_v4().to_string();
    world
        .publish_event(&event_id, "DEMO", "run.started", payload)
        .await;

    let got = world.receiver.wait_for("plain", 1, SOON).await;
    let request = &got[0];
    let expected = format!(
        r#"{{"event_name":"run.started","timestamp":1650540069,"payload":{payload},"team_member_id":40,"project_code":"DEMO"}}"#
    );
    assert_eq!(std::str::from_utf8(&request.body).expect("utf8"), expected);
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("x-qase-secret"), Some("s3cr3t"));
    assert_eq!(request.header("x-qase-event"), Some("run.started"));
    let delivery_id = request
        .header("x-qase-delivery")
        .expect("delivery id")
        .to_owned();
    assert!(uuid::Uuid::parse_str(&delivery_id).is_ok());
    assert_eq!(request.header("webhook-id"), Some(delivery_id.as_str()));
    let timestamp: i64 = request
        .header("webhook-timestamp")
        .expect("timestamp")
        .parse()
        .expect("number");
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    // Plain secret: the key is its UTF-8 bytes.
    let signed = format!("{delivery_id}.{timestamp}.{expected}");
    let signature = hmac_b64(b"s3cr3t", signed.as_bytes());
    assert_eq!(
        request.header("webhook-signature"),
        Some(format!("v1,{signature}").as_str())
    );

    let deliveries = world.deliveries("DEMO", &webhook).await;
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["id"], json!(delivery_id));
    assert_eq!(deliveries[0]["event_id"], json!(event_id));
    crate::wait_state(&world, "DEMO", &webhook, "succeeded").await;
    world.finish().await;
}

/// The services ask the broker for frames of at most 32 KiB (their buffers take 32 frames each
/// way); an event four frames long is still recorded and delivered byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_several_frames_long_arrives_whole() {
    use webhooks_core::amqp::{FRAME_MAX, Topology, close_connection, connect};

    let connection = connect(
        webhooks_tests::world::AMQP_URL,
        "frame-check",
        &Topology::new("", "frame-check"),
    )
    .await
    .expect("a broker connection");
    assert_eq!(connection.configuration().frame_max(), FRAME_MAX);
    close_connection(&connection, "checked").await;

    let world = World::start().await;
    world.webhook("DEMO", "long", &["run.started"], None).await;
    let payload = format!(r#"{{"notes":"{}"}}"#, "n".repeat(4 * FRAME_MAX as usize));
    let event_id = uuid::Uuid::new_v4().to_string();
    world
        .publish_event(&event_id, "DEMO", "run.started", &payload)
        .await;
    let got = world.receiver.wait_for("long", 1, SOON).await;
    let expected = format!(
        r#"{{"event_name":"run.started","timestamp":1650540069,"payload":{payload},"team_member_id":40,"project_code":"DEMO"}}"#
    );
    assert!(got[0].body.len() > 4 * FRAME_MAX as usize);
    assert!(
        got[0].body == expected.as_bytes(),
        "the body changed on the way"
    );
    world.finish().await;
}

/// With byte budgets far below the events' size (the dispatcher's prefetch rises for small events
/// and falls to 1 for large ones, every large body takes the sender's whole budget and is read
/// apart from its claim), large events mixed with small ones are still all delivered, byte for
/// byte, to every webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_are_all_delivered_within_small_memory_budgets() {
    let world = World::start_with(|options| {
        options.dispatcher.events_in_flight_bytes = 256 << 10;
        options.sender.bodies_in_flight_bytes = 64 << 10;
    })
    .await;
    world.webhook("DEMO", "a", &["run.started"], None).await;
    world.webhook("DEMO", "b", &["run.started"], None).await;
    let mut expected = Vec::new();
    for i in 0..100 {
        // Small events first, enough for the dispatcher's prefetch to rise (then fall again);
        // then every third one is 200 KiB (not carried in its hand-off, over the inline limit of
        // a claim).
        let large = i >= webhooks_dispatcher::prefetch::WINDOW_LEAST + 4 && i % 3 == 0;
        let notes = if large { 200 << 10 } else { 100 };
        let payload = format!(r#"{{"i":{i},"notes":"{}"}}"#, "n".repeat(notes));
        world
            .publish_event(
                &uuid::Uuid::new_v4().to_string(),
                "DEMO",
                "run.started",
                &payload,
            )
            .await;
        expected.push(format!(
            r#"{{"event_name":"run.started","timestamp":1650540069,"payload":{payload},"team_member_id":40,"project_code":"DEMO"}}"#
        ));
    }
    expected.sort();
    for path in ["a", "b"] {
        let got = world
            .receiver
            .wait_for(path, expected.len(), Duration::from_secs(60))
            .await;
        let mut bodies: Vec<String> = got
            .iter()
            .map(|r| String::from_utf8(r.body.to_vec()).expect("utf8"))
            .collect();
        bodies.sort();
        bodies.dedup();
        assert!(
            bodies == expected,
            "{path}: the bodies differ from those published"
        );
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signs_whsec_secrets_as_standard_webhooks_specifies() {
    let world = World::start().await;
    // The Standard Webhooks specification's published test vector secret.
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    world
        .webhook("DEMO", "std", &["case.created"], Some(secret))
        .await;
    world
        .publish("DEMO", "case.created", json!({"test": 2432232314u64}))
        .await;
    let request = world.receiver.wait_for("std", 1, SOON).await.remove(0);

    let key = base64::engine::general_purpose::STANDARD
        .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        .expect("base64");
    // The vector itself: msg_p5jXN8AQM9LWM0D4loKWxJek, 1614265330, {"test": 2432232314}.
    assert_eq!(
        hmac_b64(
            &key,
            br#"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}"#
        ),
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
    let id = request.header("webhook-id").expect("id");
    let timestamp = request.header("webhook-timestamp").expect("timestamp");
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    assert_eq!(
        request.header("webhook-signature"),
        Some(format!("v1,{}", hmac_b64(&key, &signed)).as_str())
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_by_project_event_and_enabled() {
    let world = World::start().await;
    world
        .webhook("DEMO", "match", &["run.started", "run.completed"], None)
        .await;
    world
        .webhook("OTHER", "other-project", &["run.started"], None)
        .await;
    world
        .webhook("DEMO", "other-event", &["case.created"], None)
        .await;
    let disabled = world
        .webhook("DEMO", "disabled", &["run.started"], None)
        .await;
    let (status, _) = world
        .api(
            reqwest::Method::PATCH,
            &format!("/projects/DEMO/webhooks/{disabled}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);

    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    world
        .publish("DEMO", "run.completed", json!({"n": 2}))
        .await;
    // A marker that only "other-event" listens to, published last.
    world.publish("DEMO", "case.created", json!({"n": 3})).await;
    world.receiver.wait_for("match", 2, SOON).await;
    world.receiver.wait_for("other-event", 1, SOON).await;
    let no_secret = &world.receiver.received("match")[0];
    assert_eq!(no_secret.header("x-qase-secret"), None);
    assert_eq!(no_secret.header("webhook-signature"), None);
    assert!(world.receiver.received("other-project").is_empty());
    assert!(world.receiver.received("disabled").is_empty());
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fans_out_with_distinct_delivery_ids_and_delivers_replays_once() {
    let world = World::start().await;
    for path in ["a", "b", "c"] {
        world.webhook("DEMO", path, &["defect.created"], None).await;
    }
    let event_id = uuid::Uuid::new_v4().to_string();
    world
        .publish_event(&event_id, "DEMO", "defect.created", r#"{"n":1}"#)
        .await;
    let mut ids = Vec::new();
    for path in ["a", "b", "c"] {
        let got = world.receiver.wait_for(path, 1, SOON).await;
        ids.push(got[0].header("x-qase-delivery").expect("id").to_owned());
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "each webhook has its own delivery id");

    // The same event id again, then a marker event: once the marker arrived, the replay was processed.
    world
        .publish_event(&event_id, "DEMO", "defect.created", r#"{"n":1}"#)
        .await;
    world
        .publish("DEMO", "defect.created", json!({"marker": true}))
        .await;
    for path in ["a", "b", "c"] {
        let got = world.receiver.wait_for(path, 2, SOON).await;
        assert!(
            std::str::from_utf8(&got[1].body)
                .expect("utf8")
                .contains("marker"),
            "second request is the marker"
        );
    }
    let count = world.deliveries_of_event(&event_id).await;
    assert_eq!(count, 3, "a replayed event id creates nothing new");
    for path in ["a", "b", "c"] {
        assert_eq!(world.receiver.received(path).len(), 2);
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_each_kind_of_bad_event_and_keeps_going() {
    let world = World::start_with(|o| o.dispatcher.max_event_bytes = 4096).await;
    world.webhook("DEMO", "good", &["run.started"], None).await;
    let valid_id = "7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77";
    let big = format!(
        r#"{{"id":"{valid_id}","event_name":"run.started","timestamp":1,"project_code":"DEMO","payload":{{"x":"{}"}}}}"#,
        "a".repeat(5000)
    );
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"not json at all".to_vec(), "not a JSON event"),
        (vec![0xff, 0xfe, 0x00], "not UTF-8"),
        (format!(r#"{{"id":"{valid_id}","event_name":"run.exploded","timestamp":1,"project_code":"DEMO","payload":{{}}}}"#).into_bytes(), "unknown event_name"),
        (format!(r#"{{"id":"{valid_id}","event_name":"run.started","timestamp":"yesterday","project_code":"DEMO","payload":{{}}}}"#).into_bytes(), "timestamp"),
        (format!(r#"{{"id":"{valid_id}","event_name":"run.started","timestamp":1,"payload":{{}}}}"#).into_bytes(), "project_code"),
        (format!(r#"{{"id":"{valid_id}","event_name":"run.started","timestamp":1,"project_code":"DEMO","payload":[]}}"#).into_bytes(), "payload"),
        (br#"{"event_name":"run.started","timestamp":1,"project_code":"DEMO","payload":{}}"#.to_vec(), "no id"),
        (big.into_bytes(), "over the limit"),
    ];
    for (body, _) in &cases {
        world
            .publish_raw(
                "run.started",
                body,
                BasicProperties::default().with_app_id("tests".into()),
            )
            .await;
    }
    world
        .publish("DEMO", "run.started", json!({"after": "the bad ones"}))
        .await;
    world.receiver.wait_for("good", 1, SOON).await;

    let dead = world
        .take_n(&world.topology.dead_letter_queue(), cases.len(), SOON)
        .await;
    for (message, (body, reason)) in dead.iter().zip(&cases) {
        assert_eq!(&message.delivery.data, body, "original body kept");
        assert_eq!(
            message
                .delivery
                .properties
                .app_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some("tests"),
            "original properties kept"
        );
        let why =
            webhooks_core::amqp::header_string(&message.delivery.properties, "x-rejection-reason")
                .expect("reason");
        assert!(why.contains(reason), "{why:?} should say {reason:?}");
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uses_message_id_when_the_body_has_no_id() {
    let world = World::start().await;
    let webhook = world.webhook("DEMO", "mid", &["plan.created"], None).await;
    let body = br#"{"event_name":"plan.created","timestamp":5,"project_code":"DEMO","payload":{}}"#;
    world
        .publish_raw(
            "plan.created",
            body,
            BasicProperties::default().with_message_id("order-42".into()),
        )
        .await;
    world.receiver.wait_for("mid", 1, SOON).await;
    let deliveries = world.deliveries("DEMO", &webhook).await;
    assert_eq!(deliveries[0]["event_id"], json!("order-42"));
    world.finish().await;
}

/// A hand-off claim reads its own deliveries by primary key however large the table has grown
/// since the session first ran it. A plan kept from when the table was nearly empty once turned
/// every claim into a scan of all deliveries of the webhook, at a cost growing with the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_only_its_own_rows_however_large_the_table_has_grown() {
    let world = World::start().await;
    let webhook = world.webhook("DEMO", "big", &["run.started"], None).await;
    let db = world.db().await;
    // Not due for a day, so the running sender's scheduler leaves them alone.
    let add = |from: u32, to: u32| {
        format!(
            "INSERT INTO events SELECT 'big-' || g, 'run.started', 'DEMO', '\\x7b7d', now()
             FROM generate_series({from}, {to}) g;
             INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at, next_attempt_at)
             SELECT {DELIVERY_ID_NOW}, 'big-' || g, '{webhook}', 'run.started', 'pending', now(), now() + interval '1 day'
             FROM generate_series({from}, {to}) g;"
        )
    };
    let ids = |from: u32, to: u32| {
        let db = &db;
        async move {
            let rows = db
                .query(
                    &format!(
                        "SELECT id::text FROM deliveries
                         WHERE event_id IN (SELECT 'big-' || g FROM generate_series({from}, {to}) g)
                         ORDER BY id"
                    ),
                    &[],
                )
                .await
                .expect("ids");
            let ids: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
            // The claim's own arguments: the ids, and their smallest and largest.
            let (low, high) = (ids.first().expect("ids"), ids.last().expect("ids"));
            format!(
                "'{{{}}}'::uuid[], now() + interval '1 minute', now(), NULL, '{low}', '{high}'",
                ids.join(",")
            )
        }
    };
    db.batch_execute(&add(1, 50)).await.expect("a small table");
    // As autovacuum does soon after a database is made.
    db.batch_execute("ANALYZE deliveries")
        .await
        .expect("analyze");

    // A session set up the way the sender sets up its own, running the sender's statement.
    let pool =
        webhooks_core::db::connect(&world.database_url, 1, webhooks_core::db::Reads::ByIndex)
            .await
            .expect("pool");
    let session = pool.get().await.expect("session");
    session
        .batch_execute(&format!(
            "PREPARE claim(uuid[], timestamptz, timestamptz, timestamptz, uuid, uuid) AS {}",
            webhooks_sender::store::claims::by_ids_statement()
        ))
        .await
        .expect("prepare");
    // Often enough, on the small table, for the server to settle on a plan to keep.
    for batch in 0..10 {
        let from = batch * 5 + 1;
        let claimed = session
            .query(
                &format!("EXECUTE claim({})", ids(from, from + 4).await),
                &[],
            )
            .await
            .expect("claim");
        assert_eq!(claimed.len(), 5);
    }

    db.batch_execute(&add(51, 50_050))
        .await
        .expect("a large table");
    let explained = session
        .query_one(
            &format!(
                "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE claim({})",
                ids(30_001, 30_010).await
            ),
            &[],
        )
        .await
        .expect("explain");
    let plan: serde_json::Value = explained.get(0);
    let top = &plan[0]["Plan"];
    let blocks = top["Shared Hit Blocks"].as_u64().expect("hit blocks")
        + top["Shared Read Blocks"].as_u64().expect("read blocks");
    assert_eq!(top["Actual Rows"].as_u64(), Some(10), "claimed: {plan}");
    // By primary key: a few index and heap pages per row. A scan of the webhook's 50,050
    // deliveries reads well over a thousand.
    assert!(
        blocks < 400,
        "{blocks} blocks read to claim 10 deliveries: {plan}"
    );
    drop(session);
    pool.close();
    world.finish().await;
}

/// The deliveries of a batch are inserted together, so they share pages, and are leased together.
/// Every lease must be a heap-only update (a new version on the row's own page, no new index
/// entries): a lease that does not fit moves the row to another page and adds an entry to every
/// index of the table, work that the next update and the index clean-up pay again. With 30% of a
/// page left free, 2,000 leases in one claim found room for 793; with half, for 1,938.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_lease_of_a_freshly_inserted_batch_fits_on_its_rows_page() {
    let world = World::start().await;
    let webhook = world
        .webhook("DEMO", "leased", &["run.started"], None)
        .await;
    let db = world.db().await;
    // As the dispatcher records a batch: one insert. Not due for a day, so the running sender's
    // scheduler leaves them alone.
    db.batch_execute(&format!(
        "INSERT INTO events SELECT 'leased-' || g, 'run.started', 'DEMO', '\\x7b7d', now()
         FROM generate_series(1, 2000) g;
         INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at, next_attempt_at)
         SELECT {DELIVERY_ID_NOW}, 'leased-' || g, '{webhook}', 'run.started', 'pending', now(), now() + interval '1 day'
         FROM generate_series(1, 2000) g;"
    ))
    .await
    .expect("a batch of deliveries");
    let ids: Vec<uuid::Uuid> = db
        .query(
            "SELECT id FROM deliveries WHERE event_id LIKE 'leased-%'",
            &[],
        )
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(ids.len(), 2000);

    let pool =
        webhooks_core::db::connect(&world.database_url, 1, webhooks_core::db::Reads::ByIndex)
            .await
            .expect("pool");
    let mut session = pool.get().await.expect("session");
    let tx = session.transaction().await.expect("begin");
    let claimed = tx
        .query(
            &webhooks_sender::store::claims::by_ids_statement(),
            &[
                &ids,
                &(chrono::Utc::now() + chrono::Duration::minutes(5)),
                &chrono::Utc::now(),
                &None::<chrono::DateTime<chrono::Utc>>,
                ids.iter().min().expect("ids"),
                ids.iter().max().expect("ids"),
            ],
        )
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 2000);
    let counts = tx
        .query_one(
            // Counted per partition: the table itself holds no rows.
            "SELECT sum(pg_stat_get_xact_tuples_updated(inhrelid))::bigint,
                    sum(pg_stat_get_xact_tuples_hot_updated(inhrelid))::bigint
             FROM pg_inherits WHERE inhparent = 'deliveries'::regclass",
            &[],
        )
        .await
        .expect("this transaction's update counts");
    let (updated, heap_only): (i64, i64) = (counts.get(0), counts.get(1));
    assert_eq!(updated, 2000);
    // A lease adds 8 bytes and a line pointer to each row, so the last row or two of a page can
    // still miss; at least 19 in 20 must stay.
    assert!(
        heap_only >= 1900,
        "only {heap_only} of {updated} leases stayed on their row's page"
    );
    tx.rollback().await.expect("rollback");
    drop(session);
    pool.close();
    world.finish().await;
}

/// The record and the hand-off claim commit without waiting for the disk; what must survive a
/// crash of the database is flushed before anything depends on it (an event's ack). A flush from
/// one session covers every commit before it, from any session, and flushes even from a session
/// (or on a server) set not to wait for the disk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_puts_every_earlier_unflushed_commit_on_disk() {
    use webhooks_core::db::{self, Reads};
    let world = World::start().await;
    let unflushed = db::connect_unflushed(&world.database_url, 2, Reads::Default).expect("pool");
    let flushing = db::connect(&world.database_url, 1, Reads::Default)
        .await
        .expect("pool");
    let writer = unflushed.get().await.expect("session");
    assert_eq!(synchronous_commit(&writer).await, "off");
    assert_eq!(
        synchronous_commit(&flushing.get().await.expect("session")).await,
        "on"
    );

    // The server's log writer flushes on its own every 200 ms: each round checks right away, so
    // a flush that waited for nothing would be caught in most rounds.
    for round in 0..40 {
        // Half of the flushes from a session that does not wait for the disk.
        let flusher = if round % 2 == 0 {
            &flushing
        } else {
            &unflushed
        };
        writer
            .execute(
                "INSERT INTO events VALUES ('flush-' || $1::int, 'run.started', 'DEMO', '\\x7b7d', now())",
                &[&round],
            )
            .await
            .expect("an unflushed commit");
        let written: String = writer
            .query_one("SELECT pg_current_wal_insert_lsn()::text", &[])
            .await
            .expect("lsn")
            .get(0);
        db::flush(flusher).await.expect("flush");
        let (on_disk, flushed_to): (bool, String) = {
            let row = writer
                .query_one(
                    "SELECT pg_current_wal_flush_lsn() >= $1::text::pg_lsn, pg_current_wal_flush_lsn()::text",
                    &[&written],
                )
                .await
                .expect("flush lsn");
            (row.get(0), row.get(1))
        };
        assert!(
            on_disk,
            "round {round}: committed up to {written}, but on disk only up to {flushed_to} after the flush"
        );
    }
    drop(writer);
    unflushed.close();
    flushing.close();
    world.finish().await;
}

async fn synchronous_commit(client: &tokio_postgres::Client) -> String {
    client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .expect("show")
        .get(0)
}

/// A sender keeps every connection of a burst to an endpoint for the next burst, instead of closing
/// those past a pool of 64 and opening them again (a TCP and, for https, a TLS handshake each).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_to_one_endpoint_reuse_their_connections() {
    const PER_ENDPOINT: usize = 96;
    const BURSTS: usize = 6;
    let world = World::start_with(|o| o.sender.max_per_endpoint = PER_ENDPOINT).await;
    world.receiver.set(
        "burst",
        Behaviour::Slow(std::time::Duration::from_millis(100)),
    );
    world.webhook("DEMO", "burst", &["run.started"], None).await;

    for burst in 1..=BURSTS {
        let publishes = (0..PER_ENDPOINT).map(|_| world.publish("DEMO", "run.started", json!({})));
        futures::future::join_all(publishes).await;
        // Every request of the burst answered: its connections are all idle before the next.
        let answered = (burst * PER_ENDPOINT) as f64;
        webhooks_tests::wait::until("the burst answered", SOON, || async {
            let attempts = world
                .metric(world.sender_addr, "webhooks_sender_attempts_total")
                .await;
            (attempts >= answered).then_some(())
        })
        .await;
    }
    assert_eq!(
        world.receiver.received("burst").len(),
        BURSTS * PER_ENDPOINT
    );

    // One connection per request in flight, opened in the first burst (96 in every run so far),
    // with room for a few opened while another one was coming free. A pool of 64, the client's
    // former setting, closed 32 of them after each burst and the next burst opened 32 anew: 256.
    let connections = world.receiver.connections();
    assert!(
        connections <= PER_ENDPOINT + PER_ENDPOINT / 4,
        "{connections} connections"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flow_through_a_quorum_queue_when_one_is_asked_for() {
    use webhooks_core::amqp::QueueType;
    let world = World::start_with(|o| o.dispatcher.events_queue_type = QueueType::Quorum).await;
    world.webhook("DEMO", "q", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({"n": 7})).await;
    let got = world.receiver.wait_for("q", 1, SOON).await;
    let body: serde_json::Value = serde_json::from_slice(&got[0].body).expect("json");
    assert_eq!(body["payload"]["n"], 7);

    // The broker takes a quorum declaration of an existing queue only if it is a quorum queue.
    let connection = lapin::Connection::connect(
        webhooks_tests::world::AMQP_URL,
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..lapin::options::QueueDeclareOptions::default()
    };
    channel
        .queue_declare(
            world.topology.dispatcher_queue().as_str().into(),
            durable,
            QueueType::Quorum.arguments(),
        )
        .await
        .expect("the dispatcher's queue is a quorum queue");
    let _ = connection.close(200, "done".into()).await;
    world.finish().await;
}

const HANDOFF: &str = "webhooks_sender_deliveries_claimed_total{source=\"handoff\"}";
const CLAIMED_QUEUE: &str = "webhooks_sender_deliveries_claimed_total{source=\"queue\"}";
const CLAIMED_SCHEDULER: &str = "webhooks_sender_deliveries_claimed_total{source=\"scheduler\"}";

/// Publishes a marker event for the webhook on path "marker" and waits for it: its hand-off is
/// queued behind any earlier one, so once it has arrived, those have been seen.
async fn marker_seen(world: &World) {
    world
        .publish("DEMO", "run.completed", json!({"seq": 0}))
        .await;
    world.receiver.wait_for("marker", 1, SOON).await;
}

/// A fresh delivery comes to the sender whole with its hand-off message, reserved by the lease it
/// was recorded with: the sender attempts it with no claim, reading only its webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_deliveries_are_carried_by_their_hand_off_not_claimed() {
    let world = World::start().await;
    world
        .webhook("DEMO", "carried", &["run.started"], None)
        .await;
    for seq in 0..20 {
        world
            .publish("DEMO", "run.started", json!({"seq": seq}))
            .await;
    }
    let duplicates = world.receiver.wait_for_seqs("carried", 20, SOON).await;
    assert_eq!(duplicates, 0);
    let sender = world.sender_addr;
    webhooks_tests::wait::until("every attempt counted", SOON, || async {
        (world.metric(sender, HANDOFF).await == 20.0).then_some(())
    })
    .await;
    assert_eq!(world.metric(sender, CLAIMED_QUEUE).await, 0.0);
    assert_eq!(world.metric(sender, CLAIMED_SCHEDULER).await, 0.0);
    world.finish().await;
}

/// A hand-off message that comes again, redelivered, may have been taken before by a sender that
/// is attempting its deliveries under their reservation right now. So its deliveries are left
/// alone until their lease runs out, and then taken by the scheduler, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_hand_off_leaves_its_deliveries_to_the_scheduler() {
    let mut world = World::start().await;
    world.webhook("DEMO", "again", &["run.started"], None).await;
    let marker = world
        .webhook("DEMO", "marker", &["run.completed"], None)
        .await;
    world.stop_senders().await;
    world
        .publish("DEMO", "run.started", json!({"seq": 0}))
        .await;
    let queue = world.topology.deliveries_queue();
    let kind = world.hand_back(&queue, SOON).await;
    assert_eq!(kind.as_deref(), Some("deliver.v2"));
    world.start_sender().await;
    marker_seen(&world).await;
    assert!(
        world.receiver.received("again").is_empty(),
        "a redelivered hand-off took a delivery still reserved"
    );
    let sender = world.sender_addr;
    assert_eq!(world.metric(sender, CLAIMED_QUEUE).await, 0.0);

    // The dispatcher's lease (HANDOFF_GRACE, 30 s) runs out, once the marker's outcome is in
    // (before, its own lease would run out too, and the scheduler would send it again).
    crate::wait_state(&world, "DEMO", &marker, "succeeded").await;
    world.clock.advance(Duration::from_secs(31));
    world.receiver.wait_for("again", 1, SOON).await;
    assert_eq!(world.metric(sender, CLAIMED_SCHEDULER).await, 1.0);
    assert_eq!(world.metric(sender, HANDOFF).await, 1.0, "the marker");
    assert_eq!(world.receiver.received("again").len(), 1);
    world.finish().await;
}

/// Disabling a webhook cancels its pending deliveries, including one already handed off. Should the
/// webhook be enabled again before a sender takes that hand-off, the cancelled delivery must still
/// not go out: a webhook changed since its deliveries were recorded has them claimed, and the claim
/// skips what is cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_cancelled_after_its_hand_off_is_not_sent() {
    let mut world = World::start().await;
    let flip = world.webhook("DEMO", "flip", &["run.started"], None).await;
    world
        .webhook("DEMO", "marker", &["run.completed"], None)
        .await;
    world.stop_senders().await;
    let event = world
        .publish("DEMO", "run.started", json!({"seq": 0}))
        .await;
    webhooks_tests::wait::until("the delivery recorded", SOON, || async {
        (world.deliveries_of_event(&event).await == 1).then_some(())
    })
    .await;
    for enabled in [false, true] {
        let (status, _) = world
            .api(
                reqwest::Method::PATCH,
                &format!("/projects/DEMO/webhooks/{flip}"),
                Some(json!({"enabled": enabled})),
            )
            .await;
        assert_eq!(status, 200);
    }
    world.start_sender().await;
    marker_seen(&world).await;
    assert!(
        world.receiver.received("flip").is_empty(),
        "a cancelled delivery was sent"
    );
    let sender = world.sender_addr;
    assert_eq!(world.metric(sender, HANDOFF).await, 1.0, "the marker");
    assert_eq!(world.metric(sender, CLAIMED_QUEUE).await, 0.0);
    world.finish().await;
}
