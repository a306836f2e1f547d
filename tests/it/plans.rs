//! The delivery lists' statements read a bounded number of index entries, whatever the size of
//! the table: each is run under `EXPLAIN ANALYZE` over a table seeded with hundreds of thousands
//! of deliveries, and the rows its scans of `deliveries` return are counted. A statement that
//! scanned the table, or read every delivery of a webhook before sorting them, would read the
//! whole seeded history and fail here. (`webhooks-bench --scenario listing` times the same
//! lists at millions of rows.)

use chrono::{DateTime, Utc};
use serde_json::Value;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use uuid::Uuid;
use webhooks_dispatcher::store::listing;
use webhooks_tests::seed::{self, Seed};
use webhooks_tests::world::World;

/// Deliveries seeded per webhook, over the seven days the services have partitions for.
const PER_WEBHOOK: i64 = 80_000;
/// The page size asked for, plus one: the API reads one more to know whether a next page exists.
const LIMIT: i64 = 51;

/// The scans of `deliveries` partitions in `plan`, each as (node type, rows read in all loops).
fn delivery_scans(plan: &Value, scans: &mut Vec<(String, f64)>) {
    let relation = plan["Relation Name"].as_str().unwrap_or("");
    if relation.starts_with("deliveries") {
        // What the scan returned and what it read and dropped (on a filter, or on rechecking
        // a bitmap's pages).
        let rows = [
            "Actual Rows",
            "Rows Removed by Filter",
            "Rows Removed by Index Recheck",
        ]
        .iter()
        .filter_map(|field| plan[field].as_f64())
        .sum::<f64>();
        let loops = plan["Actual Loops"].as_f64().unwrap_or(1.0);
        let kind = plan["Node Type"].as_str().unwrap_or("?").to_owned();
        scans.push((kind, rows * loops));
    }
    for child in plan["Plans"].as_array().into_iter().flatten() {
        delivery_scans(child, scans);
    }
}

/// Runs `statement` under `EXPLAIN ANALYZE`; returns its plan.
async fn explain(
    db: &tokio_postgres::Client,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Value {
    let row = db
        .query_one(
            &format!("EXPLAIN (ANALYZE, FORMAT JSON) {statement}"),
            params,
        )
        .await
        .expect("explain");
    let plans: Value = row.get(0);
    plans[0]["Plan"].clone()
}

/// Checks that `plan` reads at most `bound` rows of `deliveries` in all its scans; returns
/// how many it read.
fn assert_bounded(case: &str, plan: &Value, bound: f64) -> f64 {
    let mut scans = Vec::new();
    delivery_scans(plan, &mut scans);
    assert!(
        !scans.is_empty(),
        "{case}: no scan of deliveries in {plan:#}"
    );
    // A scan of a whole partition is allowed where the partition is (nearly) empty, as the
    // planner rightly prefers there; elsewhere it would read far past the bound.
    let read: f64 = scans.iter().map(|(_, rows)| rows).sum();
    assert!(
        read <= bound,
        "{case}: {read} rows of deliveries read, more than {bound}: {plan:#}"
    );
    read
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_lists_read_a_bounded_number_of_rows_at_any_table_size() {
    let world = World::start().await;
    let mut webhooks = Vec::new();
    for path in ["a", "b", "c"] {
        let id = world.webhook("BIG", path, &["run.completed"], None).await;
        webhooks.push(id.parse::<Uuid>().expect("a webhook id"));
    }
    let other = world.webhook("OTHER", "o", &["run.completed"], None).await;
    let other: Uuid = other.parse().expect("a webhook id");
    let db = world.db().await;
    let from = seed::today(&db).await;
    let span = Duration::from_secs(7 * 86_400 - 60);
    let mut all = webhooks.clone();
    all.push(other);
    let seeded = seed::deliveries(
        &db,
        &Seed {
            webhooks: &all,
            per_webhook: PER_WEBHOOK,
            from,
            span,
            state: "succeeded",
            event_name: "run.completed",
            attempt: false,
        },
    )
    .await;
    assert_eq!(seeded, 4 * PER_WEBHOOK as u64);
    let partitions: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'deliveries'::regclass",
            &[],
        )
        .await
        .expect("partitions")
        .get(0);
    let partitions = partitions as f64;

    // Per webhook read, at most the page and one entry more from each day's partition (where
    // the merge stops), and a few for ties on the creation time.
    let per_webhook = LIMIT as f64 + 2.0 * partitions;
    let statement = listing::page_statement();
    let none_uuid: Option<Uuid> = None;
    let none_text: Option<&str> = None;
    let none_time: Option<DateTime<Utc>> = None;
    let middle = from + chrono::Duration::days(3);
    let (day_one, day_three) = (Some(from + chrono::Duration::days(1)), Some(middle));
    let middle_id: Option<Uuid> = Some(Uuid::max());
    let (rare, event) = (Some("failed"), Some("run.completed"));
    let cases: Vec<(&str, Vec<&(dyn ToSql + Sync)>, f64)> = vec![
        (
            "one webhook, first page",
            vec![
                &"BIG",
                &webhooks[0],
                &none_text,
                &none_text,
                &none_time,
                &none_time,
                &none_time,
                &none_uuid,
                &LIMIT,
            ],
            per_webhook,
        ),
        (
            "one webhook, a page in the middle of its history (cursor)",
            vec![
                &"BIG",
                &webhooks[1],
                &none_text,
                &none_text,
                &none_time,
                &none_time,
                &day_three,
                &middle_id,
                &LIMIT,
            ],
            per_webhook,
        ),
        (
            "the whole project, first page",
            vec![
                &"BIG", &none_uuid, &none_text, &none_text, &none_time, &none_time, &none_time,
                &none_uuid, &LIMIT,
            ],
            3.0 * per_webhook,
        ),
        (
            "the whole project, a time range and an event name",
            vec![
                &"BIG", &none_uuid, &none_text, &event, &day_one, &day_three, &none_time,
                &none_uuid, &LIMIT,
            ],
            3.0 * per_webhook,
        ),
    ];
    for (case, params, bound) in &cases {
        let plan = explain(&db, &statement, params).await;
        let read = assert_bounded(case, &plan, *bound);
        println!("{case}: {read} rows of {seeded} read");
    }

    // A state no delivery is in: the scans read the filtered range to its end, but by index,
    // and only the project's webhooks' entries.
    let plan = explain(
        &db,
        &statement,
        &[
            &"BIG", &none_uuid, &rare, &none_text, &day_three, &none_time, &none_time, &none_uuid,
            &LIMIT,
        ],
    )
    .await;
    assert_bounded(
        "the whole project, a rare state from the middle on",
        &plan,
        3.0 * PER_WEBHOOK as f64 * 0.6,
    );

    // One delivery by id: its day's partition alone, by primary key.
    let id: Uuid = db
        .query_one(
            "SELECT id FROM deliveries WHERE webhook_id = $1 LIMIT 1",
            &[&webhooks[2]],
        )
        .await
        .expect("a delivery")
        .get(0);
    let plan = explain(&db, &listing::one_statement(), &[&id, &"BIG"]).await;
    assert_bounded("one delivery by id", &plan, 1.0);

    // And the API answers these pages with what the plans read.
    let (status, page) = world
        .api(
            reqwest::Method::GET,
            "/projects/BIG/deliveries?limit=50",
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["deliveries"].as_array().map(Vec::len), Some(50));
    world.finish().await;
}

/// The services' sessions never compile a statement to machine code. A server with JIT on
/// compiles each statement whose estimated cost passes `jit_above_cost`, at every execution; a
/// generic plan over many day partitions passes it while it reads a few dozen rows, and its
/// compilation then took seconds of the server's CPU for a statement of a millisecond. Here the
/// threshold is lowered to nothing, so that any statement would be compiled: a plain session
/// compiles it (when the server can compile at all), none of the services' sessions does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_sessions_never_compile_a_statement() {
    use webhooks_core::db::{Database, Reads};
    let world = World::start().await;
    let (plain, connection) = tokio_postgres::connect(&world.database_url, tokio_postgres::NoTls)
        .await
        .expect("a plain session");
    tokio::spawn(connection);
    let available: bool = plain
        .query_one("SELECT pg_jit_available()", &[])
        .await
        .expect("jit available")
        .get(0);
    assert_eq!(
        compiled(&plain).await,
        available,
        "a plain session compiles when the server can"
    );

    let database = Database::new(&world.database_url, None).expect("settings");
    let pools = [
        (
            "reads by default",
            database.pool(1, Reads::Default).expect("pool"),
        ),
        (
            "reads by index",
            database.pool(1, Reads::ByIndex).expect("pool"),
        ),
        (
            "unflushed",
            database.unflushed_pool(1, Reads::Default).expect("pool"),
        ),
    ];
    for (name, pool) in &pools {
        let client = pool.get().await.expect("a session");
        let jit: String = client
            .query_one("SHOW jit", &[])
            .await
            .expect("show")
            .get(0);
        assert_eq!(jit, "off", "{name}");
        assert!(
            !compiled(&client).await,
            "{name}: the statement was compiled"
        );
        pool.close();
    }
    world.finish().await;
}

/// Whether the server compiles a statement planned in `client`'s session, with any cost enough.
async fn compiled(client: &tokio_postgres::Client) -> bool {
    client
        .batch_execute("SET jit_above_cost = 0")
        .await
        .expect("set");
    let row = client
        .query_one(
            "EXPLAIN (FORMAT JSON) SELECT count(*) FROM deliveries WHERE attempt_count > $1",
            &[&1_i32],
        )
        .await
        .expect("explain");
    let plans: Value = row.get(0);
    !plans[0]["JIT"].is_null()
}
