//! The listing scenario (`--scenario listing`, not in the default run: about two minutes, most of
//! it inserting rows): the API's delivery lists timed over a small history and again over a
//! table of millions of rows, to show that a page costs the same at any size.
//!
//! The services run in this process (the harness's [`World`]); the history is inserted straight
//! into the tables ([`webhooks_harness::seed`]): 4 webhooks (3 of one project, 1 of another),
//! their deliveries spread over the 7 days the services have partitions for. Each list is asked
//! for [`REQUESTS`] times, one request after another, through the API (each page with its
//! deliveries' attempts), first with [`SMALL`] deliveries per webhook, then with [`LARGE`].
//! Reported: each list's median and p99 answer time at both sizes and their ratio; the ratio of
//! the medians is checked. The plans behind these pages are shown, with the rows they read, by
//! the end-to-end test `plans::delivery_lists_read_a_bounded_number_of_rows_at_any_table_size`.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use reqwest::Method;
use uuid::Uuid;
use webhooks_harness::seed::{self, Seed};
use webhooks_harness::world::World;

use crate::ctx::Ctx;
use crate::report::{Report, int, percentile_us};

/// Deliveries per webhook of the small history, and of the large one (the small one and more).
const SMALL: i64 = 10_000;
const LARGE: i64 = 750_000;
/// Requests per list and size.
const REQUESTS: usize = 100;
/// The largest ratio of a list's median answer time at the large size to the small one's.
const TARGET_RATIO: f64 = 1.5;
const PROJECT: &str = "BIG";
const EVENT: &str = "run.completed";
/// The span of the history: the 7 days from today's start, which have their partitions.
const SPAN: Duration = Duration::from_secs(7 * 86_400 - 60);

/// One list's answer times, in microseconds, sorted.
struct Timed {
    list: &'static str,
    small: Vec<u32>,
    large: Vec<u32>,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (amqp_url, pg_server) = (ctx.args.amqp_url.clone(), ctx.args.postgres.clone());
    let world = World::start_with(move |o| {
        o.amqp_url = amqp_url;
        o.pg_server = pg_server;
    })
    .await;
    let outcome = measure(&world, report).await;
    world.finish().await;
    outcome
}

async fn measure(world: &World, report: &mut Report) -> anyhow::Result<()> {
    let mut webhooks = Vec::new();
    for (project, path) in [
        (PROJECT, "a"),
        (PROJECT, "b"),
        (PROJECT, "c"),
        ("OTHER", "o"),
    ] {
        webhooks.push(
            world
                .webhook(project, path, &[EVENT], None)
                .await
                .parse::<Uuid>()?,
        );
    }
    let db = world.db().await;
    let from = seed::today(&db).await;
    let lists = lists(&webhooks[0], from);
    let mut timed: Vec<Timed> = lists
        .iter()
        .map(|(list, _)| Timed {
            list,
            small: Vec::new(),
            large: Vec::new(),
        })
        .collect();
    let mut seeded = Vec::new();
    for (size, per_webhook) in [(0, SMALL), (1, LARGE - SMALL)] {
        let started = Instant::now();
        let rows = seed::deliveries(
            &db,
            &Seed {
                webhooks: &webhooks,
                per_webhook,
                from,
                span: SPAN,
                state: "succeeded",
                event_name: EVENT,
                attempt: true,
            },
        )
        .await;
        seeded.push((rows, started.elapsed()));
        // Any one delivery of the first webhook, for the read by id.
        let one: Uuid = db
            .query_one(
                "SELECT id FROM deliveries WHERE webhook_id = $1 ORDER BY id LIMIT 1 OFFSET $2",
                &[&webhooks[0], &(per_webhook / 2)],
            )
            .await?
            .get(0);
        for ((_, path), t) in lists.iter().zip(&mut timed) {
            let path = path.replace("{one}", &one.to_string());
            let times = time(world, &path).await?;
            if size == 0 {
                t.small = times;
            } else {
                t.large = times;
            }
        }
    }
    report.table(table(&timed, &seeded));
    for t in &timed {
        let ratio = ratio(t);
        if ratio > TARGET_RATIO {
            report.missed(format!(
                "listing: {} took {ratio:.2}× as long at {} rows as at {} (target ≤ {TARGET_RATIO})",
                t.list,
                int((LARGE * 4) as f64),
                int((SMALL * 4) as f64)
            ));
        }
    }
    Ok(())
}

/// The lists timed: a name, and the path under `/api/v1` (`{one}`: a delivery's id).
fn lists(webhook: &Uuid, from: chrono::DateTime<chrono::Utc>) -> Vec<(&'static str, String)> {
    let day = |d: i64| {
        (from + chrono::Duration::days(d)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    vec![
        (
            "a webhook's newest page",
            format!("/projects/{PROJECT}/webhooks/{webhook}/deliveries"),
        ),
        (
            "a webhook's page from the middle of its history",
            format!(
                "/projects/{PROJECT}/deliveries?webhook_id={webhook}&until={}",
                day(3)
            ),
        ),
        (
            "the project's newest page",
            format!("/projects/{PROJECT}/deliveries"),
        ),
        (
            "the project's page of one day and one event",
            format!(
                "/projects/{PROJECT}/deliveries?since={}&until={}&event_name={EVENT}",
                day(2),
                day(3)
            ),
        ),
        (
            "one delivery by id",
            format!("/projects/{PROJECT}/deliveries/{{one}}"),
        ),
    ]
}

/// `REQUESTS` answers to `GET path`, one after another (after one not counted); each must be a 200.
async fn time(world: &World, path: &str) -> anyhow::Result<Vec<u32>> {
    let mut times = Vec::with_capacity(REQUESTS);
    for n in 0..=REQUESTS {
        let sent = Instant::now();
        let (status, answer) = world.api(Method::GET, path, None).await;
        anyhow::ensure!(status == 200, "GET {path}: {status} {answer}");
        if n > 0 {
            times.push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
        }
    }
    times.sort_unstable();
    Ok(times)
}

fn ratio(t: &Timed) -> f64 {
    percentile_us(&t.large, 0.5) / percentile_us(&t.small, 0.5).max(1.0)
}

fn table(timed: &[Timed], seeded: &[(u64, Duration)]) -> String {
    let total = |i: usize| {
        seeded
            .iter()
            .take(i + 1)
            .map(|(rows, _)| *rows)
            .sum::<u64>() as f64
    };
    let mut out = format!(
        "Delivery lists: {REQUESTS} requests each, at {} deliveries and at {} (each with an attempt; \
         inserting the rest took {:.0} s)\n\n\
         | list | p50 ms small | p99 ms small | p50 ms large | p99 ms large | p50 ratio (target ≤ {TARGET_RATIO}) |\n\
         |---|---:|---:|---:|---:|---:|\n",
        int(total(0)),
        int(total(1)),
        seeded.get(1).map_or(0.0, |(_, took)| took.as_secs_f64()),
    );
    let ms = |times: &[u32], p| percentile_us(times, p) / 1000.0;
    for t in timed {
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            t.list,
            ms(&t.small, 0.5),
            ms(&t.small, 0.99),
            ms(&t.large, 0.5),
            ms(&t.large, 0.99),
            ratio(t)
        );
    }
    out
}
