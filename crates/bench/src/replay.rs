//! The replay scenario (`--scenario replay`): what a bulk replay costs the live pipeline. A
//! second webhook, of another project, has [`SEEDED`] failed deliveries written straight into
//! the tables ([`webhooks_harness::seed`]); the steady load (as the `steady` scenario: 1,000
//! events/s to one webhook) runs alone, then again while those deliveries are replayed through
//! the API, until the replay has finished. The p99 of the steady load's publish→receive latency
//! during the replay is held to [`TARGET`] times its p99 alone, and the replay's own figures (how
//! long it took to match, how long to finish, its rate, the CPU it added) are reported.

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use webhooks_harness::api::Api;
use webhooks_harness::publisher::EVENT_NAME;
use webhooks_harness::publishing::{Plan, Publishing};
use webhooks_harness::seed;

use crate::args::STEADY_RATE;
use crate::ctx::{Ctx, Scene};
use crate::phase::{self, Measured, Probe, Progress, STALL, Spec};
use crate::report::{Report, int, percentile_us};

/// Failed deliveries replayed (÷ 10 with `--quick`).
const SEEDED: u64 = 100_000;
/// Seconds of the steady load alone (as the `steady` scenario's 20, and a little more).
const ALONE_SECONDS: u64 = 30;
/// The replayed webhook's project: another than the steady load's, whose events it does not get.
const REPLAY_PROJECT: &str = "REPLAY";
/// The most a replay's p99 may grow: a fifth.
const TARGET: f64 = 1.20;
/// Longest the replay may take before the scenario gives up on it.
const FINISH_WITHIN: Duration = Duration::from_secs(30 * 60);
/// The steady load alone before the replay is asked for, within the measured phase.
const LEAD: Duration = Duration::from_secs(1);

/// What the phase beside the replay measured, and the replay itself.
struct During {
    measured: Measured,
    replay: serde_json::Value,
    /// How long the API took to create the replay (matching its deliveries).
    created_in: Duration,
    /// From asking to `finished`.
    took: Duration,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let seeded = ctx.args.scaled(SEEDED);
    let alone_events = ctx.args.scaled(STEADY_RATE as u64 * ALONE_SECONDS);
    let (seeding, alone, during) = ctx
        .scene(2, None, async |scene| {
            scene.start_services().await?;
            scene.healthy_webhooks(0, 1).await?;
            let api = scene.world.api()?;
            let url = scene.receiver.beside_url(1);
            let replayed = api
                .create_webhook(REPLAY_PROJECT, "replayed", &url, &[EVENT_NAME])
                .await?;
            let db = scene.world.db().await?;
            let started = Instant::now();
            let webhook = replayed.parse().context("the webhook's id")?;
            let range =
                seed::failed_deliveries(&db, REPLAY_PROJECT, EVENT_NAME, webhook, seeded as i64)
                    .await?;
            let seeding = started.elapsed();
            report.settle("replay: steady alone".to_owned()).await;
            let alone = Spec {
                label: "replay: steady alone".to_owned(),
                phase: 1,
                events: alone_events,
                rate: Some(STEADY_RATE),
                healthy: 1,
            };
            let alone = phase::run(scene, &ctx.connection, alone).await?;
            report.settle("replay: steady beside it".to_owned()).await;
            let during = beside_replay(ctx, scene, &api, &replayed, range).await?;
            Ok((seeding, alone, during))
        })
        .await?;
    report.add_stages(&alone);
    report.add_stages(&during.measured);
    judge(report, seeded, seeding, &alone, &during);
    Ok(())
}

fn exact(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The steady load from [`LEAD`] before the replay of every delivery of `webhook` in `range` is
/// asked for until it has finished; then until every event published has arrived.
async fn beside_replay(
    ctx: &Ctx,
    scene: &Scene,
    api: &Api,
    webhook: &str,
    (first, last): (DateTime<Utc>, DateTime<Utc>),
) -> anyhow::Result<During> {
    let label = "replay: steady beside it";
    let most = STEADY_RATE as u64 * (FINISH_WITHIN + LEAD).as_secs();
    let tracker = scene.receiver.tracker();
    tracker.begin(2, 1, most);
    scene.sampler.reset();
    let probe = Probe::start(scene).await?;
    let stop = CancellationToken::new();
    let plan = Plan {
        rate: Some(STEADY_RATE),
        until: Some(stop.clone()),
        ..Plan::new(&scene.world.names.exchange, 2, most)
    };
    let mut publishing = Publishing::start(&ctx.connection, plan).await?;
    tokio::time::sleep(LEAD).await;
    let body = serde_json::json!({
        "from": exact(first),
        "to": exact(last + chrono::Duration::microseconds(1)),
        "states": ["failed"],
    });
    let asked = Instant::now();
    let created = api.replay(REPLAY_PROJECT, webhook, &body).await?;
    let created_in = asked.elapsed();
    let id = created["id"].as_str().context("the replay's id")?;
    let mut progress = Progress::new(label);
    let replay = loop {
        let replay = api.get_replay(REPLAY_PROJECT, webhook, id).await?;
        let count = |name: &str| replay[name].as_u64().unwrap_or(0);
        progress.tick("replay queued", count("queued"), "done", count("done"));
        if replay["state"] == "finished" {
            break replay;
        }
        anyhow::ensure!(
            asked.elapsed() < FINISH_WITHIN,
            "the replay had not finished after {FINISH_WITHIN:?}: {replay}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let took = asked.elapsed();
    stop.cancel();
    publishing.finish().await?;
    let published = publishing.published.count();
    let (mut last_count, mut last_change) = (0, Instant::now());
    let complete = loop {
        let delivered = tracker.delivered();
        if delivered >= published {
            break true;
        }
        if delivered != last_count {
            (last_count, last_change) = (delivered, Instant::now());
        }
        if last_change.elapsed() > STALL {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut measured = Measured::arrived(
        label,
        published,
        published,
        &publishing.published,
        &scene.receiver,
        complete,
    );
    probe.finish(scene, &mut measured).await?;
    Ok(During {
        measured,
        replay,
        created_in,
        took,
    })
}

fn p_ms(m: &Measured, p: f64) -> f64 {
    percentile_us(&m.arrivals.latencies_us, p) / 1000.0
}

/// CPU seconds of a phase: dispatcher, sender, PostgreSQL, RabbitMQ.
fn cpu(m: &Measured) -> [f64; 4] {
    let service = |c: Option<phase::Cost>| c.map_or(0.0, |c| c.cpu_s);
    [
        service(m.dispatcher),
        service(m.sender),
        m.postgres_cpu_s,
        m.rabbitmq_cpu_s,
    ]
}

/// The scenario's table, its target (missed for `--check`) and its note.
fn judge(report: &mut Report, seeded: u64, seeding: Duration, alone: &Measured, during: &During) {
    let beside = &during.measured;
    let ratio = p_ms(beside, 0.99) / p_ms(alone, 0.99).max(1e-9);
    let replay = &during.replay;
    let count = |name: &str| replay[name].as_u64().unwrap_or(0);
    let all_done = count("matched") == seeded && count("done") == seeded;
    let complete = alone.complete && beside.complete && all_done;
    let mut t = format!(
        "Replay (`--scenario replay`): the steady load ({} events/s to one webhook) alone, then beside a replay \
         of {} failed deliveries of another project's webhook, until the replay finished.\n\n\
         | phase | events | seconds | p50 ms | p95 ms | p99 ms | dispatcher CPU s | sender CPU s | PostgreSQL CPU s | RabbitMQ CPU s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        int(STEADY_RATE),
        int(seeded as f64),
    );
    for m in [alone, beside] {
        let incomplete = if m.complete { "" } else { " (incomplete)" };
        let [d, s, pg, mq] = cpu(m);
        let _ = writeln!(
            t,
            "| {}{incomplete} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {d:.1} | {s:.1} | {pg:.1} | {mq:.1} |",
            m.label,
            int(m.arrivals.unique as f64),
            m.wall_s(),
            p_ms(m, 0.50),
            p_ms(m, 0.95),
            p_ms(m, 0.99),
        );
    }
    t.push_str("\n| measure | value | target | met |\n|---|---:|---|---|\n");
    let checks = [
        (
            "replay: steady p99, beside the replay ÷ alone".to_owned(),
            format!("{ratio:.2}"),
            format!("≤ {TARGET:.2}"),
            complete && ratio <= TARGET,
        ),
        (
            "replay: deliveries matched and done".to_owned(),
            format!(
                "{} and {}",
                int(count("matched") as f64),
                int(count("done") as f64)
            ),
            format!("{} each", int(seeded as f64)),
            all_done,
        ),
    ];
    for (what, value, goal, met) in checks {
        let _ = writeln!(
            t,
            "| {what} | {value} | {goal} | {} |",
            if met { "yes" } else { "**no**" }
        );
        if !met {
            report.missed(format!("{what}: {value} (target {goal})"));
        }
    }
    report.table(t);
    // What the replay added: each process's CPU beside it, less what the steady load alone costs
    // in as long, per 1,000 deliveries replayed.
    let (alone_s, beside_s) = (alone.wall_s().max(1e-9), beside.wall_s());
    let extra: Vec<String> = cpu(alone)
        .iter()
        .zip(cpu(beside))
        .zip(["dispatcher", "sender", "PostgreSQL", "RabbitMQ"])
        .map(|((a, b), who)| {
            let added = b - a / alone_s * beside_s;
            format!("{who} {:.3}", added / seeded.max(1) as f64 * 1000.0)
        })
        .collect();
    let took = during.took.as_secs_f64();
    report.note(format!(
        "replay: {} failed deliveries written in {:.1} s; the API matched them in {} ms and the replay finished \
         {:.1} s later: {} deliveries/s (queued {}, skipped {}, done {}; the replayed endpoint received {} requests). \
         CPU seconds it added per 1,000 deliveries replayed: {}. Settings: REPLAY_RATE, REPLAY_BATCH and \
         REPLAY_IN_FLIGHT as the environment gives them (defaults 500, 50, 500).",
        int(seeded as f64),
        seeding.as_secs_f64(),
        int(during.created_in.as_secs_f64() * 1000.0),
        took,
        int(count("done") as f64 / took.max(1e-9)),
        int(count("queued") as f64),
        int(count("skipped") as f64),
        int(count("done") as f64),
        int(beside.arrivals.beside_arrivals as f64),
        extra.join(", "),
    ));
}
