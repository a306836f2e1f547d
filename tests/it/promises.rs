//! Every promise the README makes about running the services, tested as users meet it: the
//! binaries as processes with their documented variables, the publish tool, a real restart of
//! PostgreSQL, and the tuning knobs set away from their defaults.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use webhooks_core::amqp::QueueType;
use webhooks_tests::postgres::{PrivatePostgres, Stop};
use webhooks_tests::process::{Process, binary};
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::{TOKEN, World};

use crate::SOON;

const LONG: Duration = Duration::from_secs(60);

fn env(pairs: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    pairs.iter().map(|(k, v)| (*k, (*v).to_owned())).collect()
}

async fn publish_seqs(world: &World, path_events: &str, range: std::ops::Range<u64>) {
    for seq in range {
        world
            .publish("DEMO", path_events, json!({"seq": seq}))
            .await;
    }
}

/// Parses every line a process wrote as one JSON log record; panics naming the first that is not.
fn json_records(process: &Process) -> Vec<Value> {
    let lines = process.lines();
    assert!(!lines.is_empty(), "the process logged nothing");
    lines
        .iter()
        .map(|line| {
            let record: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line:?}"));
            assert!(record.is_object(), "not a JSON object: {line:?}");
            for field in ["timestamp", "level", "message"] {
                assert!(record[field].is_string(), "no {field} in {line:?}");
            }
            record
        })
        .collect()
}

fn has_message(records: &[Value], message: &str) -> bool {
    records.iter().any(|r| r["message"] == message)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_format_json_writes_one_json_object_per_line() {
    let mut world = World::start().await;
    world.webhook("DEMO", "json", &["run.started"], None).await;
    world.stop_dispatcher().await;
    world.stop_senders().await;
    let json = env(&[("LOG_FORMAT", "json"), ("RUST_LOG", "info")]);
    let mut dispatcher = world.dispatcher_process_with(&json).await;
    let mut sender = world.sender_process_with(&json).await;
    publish_seqs(&world, "run.started", 0..5).await;
    world.receiver.wait_for_seqs("json", 5, SOON).await;
    // Warnings carry an error text of the broker's (quotes, colons) as a field.
    world.drop_service_connections().await;
    publish_seqs(&world, "run.started", 5..10).await;
    world.receiver.wait_for_seqs("json", 10, LONG).await;
    let (d, s) = tokio::join!(dispatcher.terminate(), sender.terminate());
    assert!(d.success() && s.success(), "{d} {s}");
    dispatcher.exited(SOON).await;
    sender.exited(SOON).await;

    let dispatcher = json_records(&dispatcher);
    let sender = json_records(&sender);
    for (records, name) in [(&dispatcher, "dispatcher"), (&sender, "sender")] {
        assert!(
            has_message(records, &format!("{name} started")),
            "{records:?}"
        );
        assert!(
            has_message(records, &format!("{name} stopped")),
            "{records:?}"
        );
        let failed = records
            .iter()
            .find(|r| r["message"] == "broker session failed; reconnecting")
            .unwrap_or_else(|| panic!("{name} logged no reconnect: {records:?}"));
        assert_eq!(failed["level"], "WARN");
        assert!(failed["error"].is_string(), "{failed}");
    }
    println!(
        "json logs: {} dispatcher and {} sender lines, each one JSON object",
        dispatcher.len(),
        sender.len()
    );
    world.finish().await;
}

/// Strips the terminal colour codes the text format may add around field names.
fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unset_admin_token_is_generated_logged_once_and_guards_the_api() {
    let mut world = World::start().await;
    world.stop_dispatcher().await;
    // The default text format, as `scripts/run` without ADMIN_TOKEN would show it.
    let mut dispatcher =
        world.spawn_dispatcher_process(&env(&[("RUST_LOG", "info")]), &["ADMIN_TOKEN"]);
    world.wait_ready(dispatcher.addr).await;
    let line = dispatcher
        .wait_for_line("the generated token in the log", SOON, |l| {
            l.contains("admin_token")
        })
        .await;
    let line = strip_ansi(&line);
    let token = line
        .split_once("admin_token=")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no admin_token=… in {line:?}"))
        .trim_matches('"')
        .to_owned();
    assert!(token.len() >= 32, "a short token: {token:?}");
    assert_ne!(token, TOKEN);

    world.api_base = format!("http://{}/api/v1", dispatcher.addr);
    let get = |token: Option<&str>| {
        let world = &world;
        let token = token.map(str::to_owned);
        async move {
            world
                .api_as(
                    token.as_deref(),
                    reqwest::Method::GET,
                    "/projects/DEMO/webhooks",
                    None,
                )
                .await
                .0
        }
    };
    assert_eq!(get(Some(&token)).await, 200, "the logged token is refused");
    assert_eq!(get(Some(TOKEN)).await, 401, "another token is accepted");
    assert_eq!(get(Some(&format!("{token}x"))).await, 401);
    assert_eq!(get(None).await, 401, "no token is accepted");
    let (status, created) = world
        .api_as(
            Some(&token),
            reqwest::Method::POST,
            "/projects/DEMO/webhooks",
            Some(
                json!({"title": "t", "url": world.receiver.url("gen"), "events": ["run.started"]}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{created}");

    assert!(dispatcher.terminate().await.success());
    dispatcher.exited(SOON).await;
    let mentions = dispatcher
        .lines()
        .iter()
        .filter(|l| l.contains(&token))
        .count();
    assert_eq!(mentions, 1, "the token is to be logged once");
    world.finish().await;
}

/// Lines of `process` that tell of the broker refusing the events queue's declaration.
fn refusals(process: &Process) -> usize {
    process
        .lines()
        .iter()
        .filter(|l| {
            l.contains("PRECONDITION_FAILED") && l.contains("inequivalent arg 'x-queue-type'")
        })
        .count()
}

/// A dispatcher asking for `asked` (`EVENTS_QUEUE_TYPE`) where the queue exists as `existing`:
/// refused by the broker, said in the log, unready, and nothing taken from the queue; the
/// dispatcher of the queue's own type then delivers what waited.
async fn a_queue_type_change_is_refused(existing: QueueType, asked: &str) {
    let mut world = World::start_with(|o| o.dispatcher.events_queue_type = existing).await;
    world.webhook("DEMO", "qtype", &["run.started"], None).await;
    world.stop_dispatcher().await;
    let queue = world.topology.dispatcher_queue();

    let mut dispatcher = world.spawn_dispatcher_process(&env(&[("EVENTS_QUEUE_TYPE", asked)]), &[]);
    wait::until("the refusal logged", SOON, || async {
        (refusals(&dispatcher) >= 1).then_some(())
    })
    .await;
    assert_eq!(world.readyz(dispatcher.addr).await, 503);
    publish_seqs(&world, "run.started", 0..3).await;
    // Two more attempts to declare after the events were published, both refused.
    let seen = refusals(&dispatcher);
    wait::until("two more refusals", SOON, || async {
        (refusals(&dispatcher) >= seen + 2).then_some(())
    })
    .await;
    assert_eq!(
        world.readyz(dispatcher.addr).await,
        503,
        "ready although refused"
    );
    assert!(
        world.receiver.received("qtype").is_empty(),
        "delivered by a dispatcher whose queue was refused"
    );
    assert_eq!(
        world.queue_length(&queue).await,
        3,
        "events taken from the queue"
    );
    assert!(dispatcher.terminate().await.success());

    world.start_dispatcher().await;
    world.receiver.wait_for_seqs("qtype", 3, SOON).await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_asking_for_quorum_where_the_queue_is_classic_stays_unready() {
    a_queue_type_change_is_refused(QueueType::Classic, "quorum").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dispatcher_asking_for_classic_where_the_queue_is_quorum_stays_unready() {
    a_queue_type_change_is_refused(QueueType::Quorum, "classic").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_whose_attempt_outlasts_shutdown_grace_exits_in_time_and_loses_nothing() {
    let mut world = World::start().await;
    world.receiver.set("grace", Behaviour::Hang);
    let webhook = world.webhook("DEMO", "grace", &["run.started"], None).await;
    world.stop_senders().await;
    let grace = Duration::from_secs(1);
    let mut sender = world
        .sender_process_with(&env(&[
            ("SHUTDOWN_GRACE", "1s"),
            // Far past the grace: an exit that waited for the attempt would come 10 s late.
            ("DELIVERY_TIMEOUT", "10s"),
            ("LOG_FORMAT", "json"),
        ]))
        .await;
    publish_seqs(&world, "run.started", 0..1).await;
    world.receiver.wait_for("grace", 1, SOON).await;

    let asked = Instant::now();
    sender.signal_term();
    let status = sender.exited(grace + SOON).await;
    let took = asked.elapsed();
    assert_eq!(status.code(), Some(1), "exit status {status}");
    assert!(
        took >= grace,
        "exited after {took:?}, before the grace ran out"
    );
    assert!(
        took < grace + Duration::from_secs(2),
        "exited only after {took:?}"
    );
    let records = json_records(&sender);
    let failed = records
        .iter()
        .find(|r| r["message"] == "sender failed")
        .unwrap_or_else(|| panic!("the exit is not explained: {records:?}"));
    assert_eq!(failed["level"], "ERROR");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("shutdown grace period")),
        "{failed}"
    );

    // The delivery stays in the database, leased to the dead process; another sender takes it
    // when the lease runs out.
    world.receiver.set("grace", Behaviour::Statuses(vec![200]));
    world.start_sender().await;
    wait::until(
        "the delivery attempted again and succeeded",
        LONG,
        || async {
            let deliveries = world.deliveries("DEMO", &webhook).await;
            deliveries
                .first()
                .filter(|d| d["state"] == "succeeded")
                .cloned()
        },
    )
    .await;
    assert_eq!(world.receiver.received("grace").len(), 2);
    println!("grace 1 s: the sender exited after {took:?}");
    world.finish().await;
}

/// One line of a /metrics text: the value of the series `series` (name and labels as printed).
fn series(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_batch_size_and_batch_linger_take_effect_and_events_still_arrive() {
    let world = World::start_with(|o| {
        o.dispatcher.prefetch = 7;
        o.dispatcher.batch_size = 2;
        // Long enough that every batch fills up from events published one by one.
        o.dispatcher.batch_linger = Duration::from_secs(2);
    })
    .await;
    world.webhook("DEMO", "tuned", &["run.started"], None).await;
    let queue = world.topology.dispatcher_queue();
    assert_eq!(world.consumer_prefetch(&queue), vec![7], "PREFETCH");

    publish_seqs(&world, "run.started", 0..10).await;
    world.receiver.wait_for_seqs("tuned", 10, SOON).await;
    let text = world.metrics_text(world.dispatcher_addr()).await;
    let batches = series(&text, "webhooks_dispatcher_batch_events_count");
    let events = series(&text, "webhooks_dispatcher_batch_events_sum");
    let at_most_2 = series(&text, "webhooks_dispatcher_batch_events_bucket{le=\"2\"}");
    assert_eq!(events, 10.0);
    assert_eq!(at_most_2, batches, "a batch over BATCH_SIZE");
    assert_eq!(
        batches, 5.0,
        "batches did not wait for BATCH_LINGER to fill"
    );
    world.finish().await;
}

/// Inserts an enabled webhook of DEMO for run.started pointing at the receiver's `path`, straight
/// into the database (the API also updates its own dispatcher's index; this does not).
async fn insert_webhook(world: &World, path: &str) {
    insert_webhook_with(&world.db().await, world, path).await;
}

async fn insert_webhook_with(db: &tokio_postgres::Client, world: &World, path: &str) {
    db.execute(
        "INSERT INTO webhooks (id, project_code, title, url, events, enabled, created_at, updated_at)
         VALUES ($1, 'DEMO', $2, $3, ARRAY['run.started'], true, now(), now())",
        &[&uuid::Uuid::new_v4(), &path, &world.receiver.url(path)],
    )
    .await
    .expect("insert a webhook");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn index_reload_picks_up_a_webhook_whose_notification_never_came() {
    let world = World::start_with(|o| o.dispatcher.index_reload = Duration::from_secs(1)).await;
    let dispatcher = world.dispatcher_addr();
    assert_eq!(
        world
            .metric(dispatcher, "webhooks_dispatcher_index_webhooks")
            .await,
        0.0
    );
    // Written behind the API's back with triggers off: no NOTIFY reaches the dispatcher.
    let db = world.db().await;
    db.batch_execute("SET session_replication_role = replica")
        .await
        .expect("triggers off");
    insert_webhook_with(&db, &world, "direct").await;
    let inserted = Instant::now();
    wait::until("the reload to index the webhook", SOON, || async {
        (world
            .metric(dispatcher, "webhooks_dispatcher_index_webhooks")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    let took = inserted.elapsed();
    assert!(took < Duration::from_secs(3), "indexed only after {took:?}");
    publish_seqs(&world, "run.started", 0..1).await;
    world.receiver.wait_for_seqs("direct", 1, SOON).await;
    println!("INDEX_RELOAD 1 s: indexed {took:?} after the insert");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_publish_publishes_an_event_that_is_delivered() {
    let world = World::start().await;
    world.webhook("DEMO", "cli", &["run.started"], None).await;
    let publish = |args: Vec<String>| {
        let world = &world;
        async move {
            tokio::process::Command::new(binary("webhooks-publish"))
                .env("AMQP_URL", world.dispatcher_config.common.amqp_url.expose())
                .env("EVENTS_EXCHANGE", world.topology.events_exchange())
                .args(args)
                .output()
                .await
                .expect("webhooks-publish runs")
        }
    };
    let id = uuid::Uuid::new_v4().to_string();
    let args = |event: &str, id: &str| -> Vec<String> {
        [
            "--project",
            "DEMO",
            "--event",
            event,
            "--payload",
            r#"{"id":1,"title":"Nightly"}"#,
            "--id",
            id,
        ]
        .map(str::to_owned)
        .to_vec()
    };
    // A misspelt event is refused before it reaches the broker.
    let refused = publish(args("run.begun", &uuid::Uuid::new_v4().to_string())).await;
    assert!(!refused.status.success(), "a misspelt event was published");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("unknown event_name"),
        "{refused:?}"
    );
    let published = publish(args("run.started", &id)).await;
    assert!(published.status.success(), "{published:?}");

    let got = world.receiver.wait_for("cli", 1, SOON).await;
    let body: Value = serde_json::from_slice(&got[0].body).expect("JSON body");
    assert_eq!(body["payload"]["title"], "Nightly", "{body}");
    assert_eq!(body["event_name"], "run.started", "{body}");
    assert_eq!(
        world.deliveries_of_event(&id).await,
        1,
        "not the event with --id"
    );
    let consumed = world
        .metric(world.dispatcher_addr(), "webhooks_dispatcher_events_total")
        .await;
    assert_eq!(consumed, 1.0, "the refused event reached the dispatcher");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_postgresql_restart_loses_nothing_and_both_services_recover() {
    let pg = PrivatePostgres::start().await;
    let world = World::start_with(|o| o.pg_server = pg.server_url()).await;
    world.webhook("DEMO", "pg", &["run.started"], None).await;
    publish_seqs(&world, "run.started", 0..30).await;
    world.receiver.wait_for_seqs("pg", 30, LONG).await;

    let ready = || async {
        (world.readyz(world.dispatcher_addr()).await == 200
            && world.readyz(world.sender_addr).await == 200)
            .then_some(())
    };
    let mut next = 30;
    for mode in [Stop::Fast, Stop::Immediate] {
        // Events keep coming while the server goes down and comes back.
        let restart = pg.restart(mode);
        tokio::pin!(restart);
        let mut every = tokio::time::interval(Duration::from_millis(10));
        let before = next;
        loop {
            tokio::select! {
                () = &mut restart => break,
                _ = every.tick() => {
                    publish_seqs(&world, "run.started", next..next + 1).await;
                    next += 1;
                }
            }
        }
        println!("{} events published during the restart", next - before);
        wait::until("both services ready again", LONG, ready).await;
        publish_seqs(&world, "run.started", next..next + 30).await;
        next += 30;
        let duplicates = world.receiver.wait_for_seqs("pg", next, LONG).await;
        println!("PostgreSQL restart ({mode:?}): {next} events delivered, {duplicates} duplicates");
    }
    // The dispatcher listens for webhook changes again: one written behind the API's back now
    // reaches its index by NOTIFY alone (the full reload is 30 s away), and is matched.
    insert_webhook(&world, "pg-late").await;
    let dispatcher = world.dispatcher_addr();
    wait::until(
        "the new webhook indexed by its notification",
        SOON,
        || async {
            (world
                .metric(dispatcher, "webhooks_dispatcher_index_webhooks")
                .await
                == 2.0)
                .then_some(())
        },
    )
    .await;
    world
        .publish("DEMO", "run.started", json!({"seq": 0}))
        .await;
    world.receiver.wait_for_seqs("pg-late", 1, LONG).await;
    world.finish().await;
    drop(pg);
}
