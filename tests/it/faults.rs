//! Keep working through faults: broker and database outages, kill -9, SIGTERM, slow endpoints and
//! several instances. Every test bounds its waits; each reports the duplicates it saw.

use serde_json::json;
use std::time::{Duration, Instant};
use webhooks_tests::broker::PrivateBroker;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

const LONG: Duration = Duration::from_secs(60);

/// Deliveries the sender has held back so far.
async fn deferred(world: &World) -> f64 {
    world
        .metric(
            world.sender_addr,
            "webhooks_sender_deliveries_deferred_total",
        )
        .await
}

const HANDOFF: &str = "webhooks_sender_deliveries_claimed_total{source=\"handoff\"}";
const CLAIMED_QUEUE: &str = "webhooks_sender_deliveries_claimed_total{source=\"queue\"}";

/// Publishes `case.created` events of 100 KiB each, numbered by `range`.
async fn publish_large(world: &World, range: std::ops::Range<u64>) {
    let filler = "x".repeat(100 * 1024);
    for seq in range {
        world
            .publish(
                "DEMO",
                "case.created",
                json!({ "seq": seq, "filler": filler }),
            )
            .await;
    }
}

async fn publish_seqs(world: &World, path_events: &str, range: std::ops::Range<u64>) {
    for seq in range {
        world
            .publish("DEMO", path_events, json!({"seq": seq}))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_nothing() {
    let broker = PrivateBroker::start().await;
    let mut world = World::start_with(|o| o.amqp_url = broker.url()).await;
    world
        .webhook("DEMO", "stream", &["run.started"], None)
        .await;
    // Events too large to travel in their hand-off take the claimed path through the fault.
    world
        .webhook("DEMO", "large", &["case.created"], None)
        .await;
    publish_large(&world, 0..10).await;
    publish_seqs(&world, "run.started", 0..100).await;
    world.receiver.wait_for("stream", 10, LONG).await;

    let in_flight = world.unfinished_deliveries().await;
    broker.stop_app();
    let dispatcher = world.dispatcher_addr();
    wait::until("the dispatcher to report not ready", LONG, || async {
        (world.readyz(dispatcher).await == 503).then_some(())
    })
    .await;
    wait::until("the sender to report not ready", LONG, || async {
        (world.readyz(world.sender_addr).await == 503).then_some(())
    })
    .await;
    broker.start_app().await;
    wait::until("both services ready again", LONG, || async {
        (world.readyz(dispatcher).await == 200 && world.readyz(world.sender_addr).await == 200)
            .then_some(())
    })
    .await;
    world.reconnect_broker().await;
    publish_seqs(&world, "run.started", 100..200).await;
    publish_large(&world, 10..20).await;
    let duplicates = world.receiver.wait_for_seqs("stream", 200, LONG).await
        + world.receiver.wait_for_seqs("large", 20, LONG).await;
    println!("broker restart: 220 events delivered, {duplicates} duplicates");
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, {in_flight} in flight at the fault"
    );
    // Both hand-off paths ran.
    for path in [HANDOFF, CLAIMED_QUEUE] {
        assert!(world.metric(world.sender_addr, path).await >= 1.0, "{path}");
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_broker_connections_come_back_by_themselves() {
    let world = World::start().await;
    world.webhook("DEMO", "cut", &["run.started"], None).await;
    publish_seqs(&world, "run.started", 0..50).await;
    let mut in_flight = world.unfinished_deliveries().await;
    world.drop_service_connections().await;
    publish_seqs(&world, "run.started", 50..100).await;
    in_flight += world.unfinished_deliveries().await;
    world.drop_service_connections().await;
    publish_seqs(&world, "run.started", 100..150).await;
    let duplicates = world.receiver.wait_for_seqs("cut", 150, LONG).await;
    println!("connection cuts: 150 events delivered, {duplicates} duplicates");
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, {in_flight} in flight at the cuts"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_mid_stream_loses_nothing() {
    let world = World::start().await;
    world.webhook("DEMO", "db", &["run.started"], None).await;
    publish_seqs(&world, "run.started", 0..50).await;
    let in_flight = world.unfinished_deliveries().await;
    let outage = world.database_outage(Duration::from_secs(3));
    let during = async {
        // Published while the database is away.
        tokio::time::sleep(Duration::from_millis(300)).await;
        publish_seqs(&world, "run.started", 50..100).await;
        let dispatcher = world.dispatcher_addr();
        wait::until("the dispatcher to report not ready", LONG, || async {
            (world.readyz(dispatcher).await == 503).then_some(())
        })
        .await;
    };
    tokio::join!(outage, during);
    wait::until("ready again after the outage", LONG, || async {
        (world.readyz(world.dispatcher_addr()).await == 200).then_some(())
    })
    .await;
    publish_seqs(&world, "run.started", 100..150).await;
    let duplicates = world.receiver.wait_for_seqs("db", 150, LONG).await;
    println!("database outage: 150 events delivered, {duplicates} duplicates");
    // Published while the database was away, events 50..100 were in flight too.
    assert!(
        duplicates <= in_flight + 50,
        "{duplicates} duplicates, {in_flight} + 50 in flight during the outage"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_dispatcher_mid_stream_loses_nothing() {
    let mut world = World::start().await;
    world.webhook("DEMO", "k9d", &["run.started"], None).await;
    world.stop_dispatcher().await;
    let mut process = world.dispatcher_process().await;
    let publisher = async {
        publish_seqs(&world, "run.started", 0..300).await;
    };
    let killer = async {
        wait::until("the process dispatcher to deliver", LONG, || async {
            (!world.receiver.received("k9d").is_empty()).then_some(())
        })
        .await;
        process.kill9().await;
        let delivered = world.receiver.seqs("k9d").len();
        (delivered, world.unfinished_deliveries().await)
    };
    let ((), (delivered_before, in_flight)) = tokio::join!(publisher, killer);
    // Mid-stream: some events were delivered before the kill, and most were not.
    assert!(
        (1..300).contains(&delivered_before),
        "{delivered_before} of 300 delivered before the kill"
    );
    world.start_dispatcher().await;
    let duplicates = world.receiver.wait_for_seqs("k9d", 300, LONG).await;
    println!(
        "dispatcher kill -9 after {delivered_before} deliveries: 300 events delivered, {duplicates} duplicates"
    );
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, {in_flight} in flight at the kill"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_sender_mid_stream_loses_nothing() {
    let mut world = World::start().await;
    // Slow answers keep many deliveries leased and in flight when the process dies.
    world
        .receiver
        .set("k9s", Behaviour::Slow(Duration::from_millis(300)));
    world.webhook("DEMO", "k9s", &["run.started"], None).await;
    world.stop_senders().await;
    let mut process = world.sender_process().await;
    publish_seqs(&world, "run.started", 0..300).await;
    wait::until("the process sender to deliver", LONG, || async {
        (world.receiver.received("k9s").len() >= 20).then_some(())
    })
    .await;
    process.kill9().await;
    let delivered_before = world.receiver.seqs("k9s").len();
    let in_flight = world.unfinished_deliveries().await;
    assert!(
        delivered_before < 300,
        "mid-stream: {delivered_before} of 300 had arrived at the kill"
    );
    world.start_sender().await;
    // The dead sender's leases (the hand-off's 30 s, a claim's 35 s) run out on the clock.
    world.clock.advance(Duration::from_secs(36));
    let duplicates = world.receiver.wait_for_seqs("k9s", 300, LONG).await;
    println!("sender kill -9: 300 events delivered, {duplicates} duplicates");
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, {in_flight} in flight at the kill"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_0_with_nothing_lost() {
    let mut world = World::start().await;
    world
        .receiver
        .set("term", Behaviour::Slow(Duration::from_millis(10)));
    world.webhook("DEMO", "term", &["run.started"], None).await;
    world.stop_senders().await;
    world.stop_dispatcher().await;
    let mut dispatcher = world.dispatcher_process().await;
    let mut sender = world.sender_process().await;
    publish_seqs(&world, "run.started", 0..200).await;
    wait::until("deliveries under way", LONG, || async {
        (world.receiver.received("term").len() >= 10).then_some(())
    })
    .await;
    let started = Instant::now();
    let (sender_status, dispatcher_status) =
        tokio::join!(sender.terminate(), dispatcher.terminate());
    assert!(sender_status.success(), "sender exit: {sender_status}");
    assert!(
        dispatcher_status.success(),
        "dispatcher exit: {dispatcher_status}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "bounded by the grace period"
    );
    // Drained: every request the receiver saw has its outcome recorded by the sender that sent
    // it, before any other sender runs (a sender that dropped its in-flight work would leave
    // them pending, for the scheduler to send again).
    let sent: Vec<String> = world
        .receiver
        .received("term")
        .iter()
        .filter_map(|r| r.header("x-qase-delivery").map(str::to_owned))
        .collect();
    let recorded: i64 = world
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM deliveries WHERE id::text = ANY($1) AND state = 'succeeded'",
            &[&sent],
        )
        .await
        .expect("recorded")
        .get(0);
    assert_eq!(
        recorded as usize,
        sent.len(),
        "every delivery sent before the exit is recorded as succeeded"
    );
    world.start_dispatcher().await;
    world.start_sender().await;
    // Deliveries recorded but not started keep their hand-off lease (30 s): let it run out.
    world.clock.advance(Duration::from_secs(31));
    let duplicates = world.receiver.wait_for_seqs("term", 200, LONG).await;
    println!("SIGTERM: 200 events delivered, {duplicates} duplicates");
    assert_eq!(
        duplicates, 0,
        "a drained sender leaves nothing to send twice"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hanging_endpoints_do_not_hold_up_healthy_ones() {
    // Few slots, so that without per-endpoint limits the hanging endpoints would take them all.
    let world = World::start_with(|o| {
        o.sender.max_in_flight = 8;
        o.sender.max_per_endpoint = 2;
        // Every endpoint here is on the one receiver and of one project: this is about endpoints.
        o.sender.max_per_host = Some(8);
        o.sender.max_per_project = Some(8);
        // The hanging requests end at the timeout, on real time, before the world can stop.
        o.delivery_timeout(Duration::from_secs(10));
    })
    .await;
    for path in ["hang1", "hang2"] {
        world.receiver.set(path, Behaviour::Hang);
        world.webhook("DEMO", path, &["run.started"], None).await;
    }
    // The hanging endpoints get their events first and would fill every slot.
    for seq in 0..20 {
        world
            .publish("DEMO", "run.started", json!({"seq": seq}))
            .await;
    }
    world.receiver.wait_for("hang1", 2, LONG).await;
    world.receiver.wait_for("hang2", 2, LONG).await;
    for path in ["ok1", "ok2", "ok3"] {
        world.webhook("DEMO", path, &["case.created"], None).await;
    }
    let started = Instant::now();
    for seq in 0..30 {
        world
            .publish("DEMO", "case.created", json!({"seq": seq}))
            .await;
    }
    for path in ["ok1", "ok2", "ok3"] {
        world.receiver.wait_for_seqs(path, 30, LONG).await;
    }
    let took = started.elapsed();
    // Every healthy delivery arrived before any hanging request ended (at its timeout, which is
    // when a slot held by one would have come free): none of them waited for a hanging one.
    let hanging = world.receiver.received("hang1").len() + world.receiver.received("hang2").len();
    let timed_out: i64 = world
        .db()
        .await
        .query_one(
            "SELECT count(*) FROM attempts WHERE status_code IS NULL",
            &[],
        )
        .await
        .expect("attempts")
        .get(0);
    assert_eq!(
        timed_out, 0,
        "healthy endpoints took {took:?}, past a hanging request's timeout"
    );
    assert!(
        hanging <= 4,
        "at most the per-endpoint cap in flight to each hanging endpoint, saw {hanging}"
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_to_one_healthy_endpoint_waits_for_slots_instead_of_being_held_back() {
    // Far more deliveries at once than the endpoint has slots; it answers at once.
    let world = World::start_with(|o| o.sender.max_per_endpoint = 2).await;
    world.webhook("DEMO", "busy", &["run.started"], None).await;
    publish_seqs(&world, "run.started", 0..200).await;
    let duplicates = world.receiver.wait_for_seqs("busy", 200, LONG).await;
    assert_eq!(duplicates, 0);
    // An endpoint counts as answering while its answers come less than a second apart; only
    // then is nothing held back. A stall of the whole machine longer than that makes it look
    // silent, and holding back is then right: the check applies when the answers kept coming.
    let received = world.receiver.received("busy");
    let longest_gap = received
        .windows(2)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .max()
        .unwrap_or_default();
    let held = deferred(&world).await;
    println!("burst: longest gap between answers {longest_gap:?}, {held} held back");
    if longest_gap < Duration::from_millis(900) {
        assert_eq!(held, 0.0, "nothing held back from an answering endpoint");
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_dispatchers_and_two_senders_deliver_every_event_once() {
    let mut world = World::start_with(|o| o.senders = 2).await;
    world.start_dispatcher_replica().await;
    for path in ["x", "y", "z"] {
        world.webhook("DEMO", path, &["run.started"], None).await;
    }
    publish_seqs(&world, "run.started", 0..300).await;
    for path in ["x", "y", "z"] {
        let duplicates = world.receiver.wait_for_seqs(path, 300, LONG).await;
        assert_eq!(duplicates, 0, "no crash, so no duplicates on {path}");
    }
    world.finish().await;
}

/// Deliveries are recorded only with the event that was new, in one statement: an event id
/// published over and over, taken by two dispatchers at once, still makes one delivery per webhook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_published_again_and_again_to_two_dispatchers_is_delivered_once() {
    let mut world = World::start().await;
    let replica = world.start_dispatcher_replica().await;
    for path in ["x", "y"] {
        world.webhook("DEMO", path, &["run.started"], None).await;
    }
    let event_id = uuid::Uuid::new_v4().to_string();
    const COPIES: usize = 200;
    futures::future::join_all(
        (0..COPIES).map(|_| world.publish_event(&event_id, "DEMO", "run.started", r#"{"n":1}"#)),
    )
    .await;
    let primary = world.dispatcher_addr();
    wait::until("every copy recorded", LONG, || async {
        // Messages of recorded batches, copies of one event in a batch included.
        let consumed = world
            .metric(primary, "webhooks_dispatcher_batch_events_sum")
            .await
            + world
                .metric(replica, "webhooks_dispatcher_batch_events_sum")
                .await;
        (consumed >= COPIES as f64).then_some(())
    })
    .await;
    let recorded = world.deliveries_of_event(&event_id).await;
    assert_eq!(recorded, 2, "one delivery per webhook");
    for path in ["x", "y"] {
        world.receiver.wait_for(path, 1, LONG).await;
    }
    // Both consumed every copy they were given, so nothing else is on its way.
    for path in ["x", "y"] {
        assert_eq!(
            world.receiver.received(path).len(),
            1,
            "{path} received the event once"
        );
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_fails_processing_is_dead_lettered_not_looped() {
    let world = World::start().await;
    world
        .webhook("DEMO", "poison", &["run.started"], None)
        .await;
    // A delivery row for this event id already exists under another webhook... no: break the
    // events table instead so that recording this event fails while others still work.
    let db = world.db().await;
    db.batch_execute(
        "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN
             IF NEW.body::text LIKE '%706f69736f6e21%' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$ LANGUAGE plpgsql;
         CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison();",
    )
    .await
    .expect("trigger");
    world
        .publish("DEMO", "run.started", json!({"seq": 0}))
        .await;
    world
        .publish("DEMO", "run.started", json!({"poison!": true}))
        .await;
    world
        .publish("DEMO", "run.started", json!({"seq": 1}))
        .await;
    world.receiver.wait_for_seqs("poison", 2, LONG).await;
    let dead = world
        .take_n(&world.topology.dead_letter_queue(), 1, LONG)
        .await;
    assert!(String::from_utf8_lossy(&dead[0].delivery.data).contains("poison!"));
    let why =
        webhooks_core::amqp::header_string(&dead[0].delivery.properties, "x-rejection-reason")
            .expect("reason");
    assert!(why.contains("refused"), "{why}");
    world.finish().await;
}
