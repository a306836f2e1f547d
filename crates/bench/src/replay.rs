//! The replay scenario (`--scenario replay`): what a bulk replay costs the live pipeline. A
//! second webhook, of another project, has [`SEEDED`] failed deliveries written straight into
//! the tables ([`webhooks_harness::seed`]); the steady load (as the `steady` scenario: 1,000
//! events/s to one webhook) runs alone, then again while those deliveries are replayed through
//! the API, until the replay has finished. Both are measured in windows of [`WINDOW_SECONDS`]
//! (each a phase of its own), and the median window's p99 beside the replay is held to
//! [`TARGET`] times the median window's p99 alone: on a machine shared with other work, a stall
//! that hits one window decides neither (as the `hanging` and `fair` scenarios take the median
//! of their rounds). The replay's own figures (how long it took to match, how long to finish, its
//! rate, the CPU it added) are reported too.

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt::Write as _;
use std::time::{Duration, Instant};
use webhooks_harness::api::Api;
use webhooks_harness::publisher::EVENT_NAME;
use webhooks_harness::seed;

use crate::args::STEADY_RATE;
use crate::ctx::{Ctx, Scene};
use crate::phase::{self, Measured, Spec};
use crate::report::{Report, int, percentile_us};

/// Failed deliveries replayed (÷ 10 with `--quick`).
const SEEDED: u64 = 100_000;
/// Seconds of steady load per measured window.
const WINDOW_SECONDS: u64 = 20;
/// Windows of the steady load alone (a minute, as three `steady` scenarios).
const ALONE_WINDOWS: usize = 3;
/// The replayed webhook's project: another than the steady load's, whose events it does not get.
const REPLAY_PROJECT: &str = "REPLAY";
/// The most a replay's p99 may grow: a fifth.
const TARGET: f64 = 1.20;
/// Longest the replay may take before the scenario gives up on it.
const FINISH_WITHIN: Duration = Duration::from_secs(30 * 60);

/// What the windows beside the replay measured, and the replay itself.
struct During {
    windows: Vec<Measured>,
    replay: serde_json::Value,
    /// How long the API took to create the replay (matching its deliveries).
    created_in: Duration,
    /// From asking to `finished` (seen at the end of a window).
    took: Duration,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let seeded = ctx.args.scaled(SEEDED);
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
            let mut alone = Vec::new();
            for n in 0..ALONE_WINDOWS {
                alone.push(window(ctx, scene, "alone", n).await?);
            }
            let during = beside_replay(ctx, scene, &api, &replayed, range, ALONE_WINDOWS).await?;
            Ok((seeding, alone, during))
        })
        .await?;
    for m in alone.iter().chain(&during.windows) {
        report.add_stages(m);
    }
    judge(report, seeded, seeding, &alone, &during);
    Ok(())
}

/// Window `n` of the steady load, `what` it runs beside.
async fn window(ctx: &Ctx, scene: &Scene, what: &str, n: usize) -> anyhow::Result<Measured> {
    let events = ctx.args.scaled(STEADY_RATE as u64 * WINDOW_SECONDS);
    let spec = Spec {
        label: format!("replay: steady {what} ({})", n + 1),
        phase: u32::try_from(n + 1).unwrap_or(u32::MAX),
        events,
        rate: Some(STEADY_RATE),
        healthy: 1,
    };
    phase::run(scene, &ctx.connection, spec).await
}

fn exact(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// Asks for the replay of every delivery of `webhook` in `range`, then runs windows of the steady
/// load (numbered on from `after`) until a window ends with the replay finished.
async fn beside_replay(
    ctx: &Ctx,
    scene: &Scene,
    api: &Api,
    webhook: &str,
    (first, last): (DateTime<Utc>, DateTime<Utc>),
    after: usize,
) -> anyhow::Result<During> {
    let body = serde_json::json!({
        "from": exact(first),
        "to": exact(last + chrono::Duration::microseconds(1)),
        "states": ["failed"],
    });
    let asked = Instant::now();
    let created = api.replay(REPLAY_PROJECT, webhook, &body).await?;
    let created_in = asked.elapsed();
    let id = created["id"].as_str().context("the replay's id")?;
    let mut windows = Vec::new();
    loop {
        windows.push(window(ctx, scene, "beside the replay", after + windows.len()).await?);
        let replay = api.get_replay(REPLAY_PROJECT, webhook, id).await?;
        eprintln!(
            "[replay] {:.0}s: queued {}, done {} of {}",
            asked.elapsed().as_secs_f64(),
            replay["queued"],
            replay["done"],
            replay["matched"]
        );
        if replay["state"] == "finished" {
            return Ok(During {
                windows,
                took: finished_after(&replay, asked)?,
                replay,
                created_in,
            });
        }
        anyhow::ensure!(
            asked.elapsed() < FINISH_WITHIN,
            "the replay had not finished after {FINISH_WITHIN:?}: {replay}"
        );
    }
}

/// How long after `asked` the replay finished, from its own times (to the second).
fn finished_after(replay: &serde_json::Value, asked: Instant) -> anyhow::Result<Duration> {
    let time = |name: &str| -> anyhow::Result<DateTime<Utc>> {
        let text = replay[name].as_str().context("a time")?;
        Ok(text.parse()?)
    };
    let took = (time("finished_at")? - time("created_at")?)
        .to_std()
        .unwrap_or_default();
    // Never more than the time seen from here.
    Ok(took.min(asked.elapsed()))
}

fn p_ms(m: &Measured, p: f64) -> f64 {
    percentile_us(&m.arrivals.latencies_us, p) / 1000.0
}

/// CPU seconds of phases together: dispatcher, sender, PostgreSQL, RabbitMQ.
fn cpu(phases: &[Measured]) -> [f64; 4] {
    let service = |c: Option<phase::Cost>| c.map_or(0.0, |c| c.cpu_s);
    let mut sum = [0.0; 4];
    for m in phases {
        let each = [
            service(m.dispatcher),
            service(m.sender),
            m.postgres_cpu_s,
            m.rabbitmq_cpu_s,
        ];
        for (total, one) in sum.iter_mut().zip(each) {
            *total += one;
        }
    }
    sum
}

/// The median of the windows' `p` percentile, in ms.
fn median_ms(windows: &[Measured], p: f64) -> f64 {
    let mut each: Vec<f64> = windows.iter().map(|m| p_ms(m, p)).collect();
    each.sort_by(f64::total_cmp);
    each.get(each.len() / 2).copied().unwrap_or(f64::NAN)
}

fn seconds(windows: &[Measured]) -> f64 {
    windows.iter().map(Measured::wall_s).sum()
}

/// The scenario's table, its targets (missed for `--check`) and its note.
fn judge(report: &mut Report, seeded: u64, seeding: Duration, alone: &[Measured], during: &During) {
    let beside = &during.windows;
    let ratio = median_ms(beside, 0.99) / median_ms(alone, 0.99).max(1e-9);
    let replay = &during.replay;
    let count = |name: &str| replay[name].as_u64().unwrap_or(0);
    let all_done = count("matched") == seeded && count("done") == seeded;
    let complete = alone.iter().chain(beside).all(|m| m.complete);
    let mut t = format!(
        "Replay (`--scenario replay`): the steady load ({} events/s to one webhook) alone, then beside a replay \
         of {} failed deliveries of another project's webhook until it finished, in windows of {WINDOW_SECONDS} s; \
         each percentile is the median window's.\n\n\
         | phase | windows | events | seconds | p50 ms | p95 ms | p99 ms | dispatcher CPU s | sender CPU s | PostgreSQL CPU s | RabbitMQ CPU s |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        int(STEADY_RATE),
        int(seeded as f64),
    );
    for (what, windows) in [("alone", alone), ("beside the replay", beside)] {
        let incomplete = if windows.iter().all(|m| m.complete) {
            ""
        } else {
            " (incomplete)"
        };
        let [d, s, pg, mq] = cpu(windows);
        let events: u64 = windows.iter().map(|m| m.arrivals.unique).sum();
        let _ = writeln!(
            t,
            "| replay: steady {what}{incomplete} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {d:.1} | {s:.1} | {pg:.1} | {mq:.1} |",
            windows.len(),
            int(events as f64),
            seconds(windows),
            median_ms(windows, 0.50),
            median_ms(windows, 0.95),
            median_ms(windows, 0.99),
        );
    }
    let checks = [
        (
            "replay: steady p99 (median window), beside the replay ÷ alone".to_owned(),
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
    report.targets(&mut t, checks);
    report.table(t);
    // What the replay added: each process's CPU beside it, less what the steady load alone costs
    // in as long, per 1,000 deliveries replayed.
    let (alone_s, beside_s) = (seconds(alone).max(1e-9), seconds(beside));
    let extra: Vec<String> = cpu(alone)
        .iter()
        .zip(cpu(beside))
        .zip(["dispatcher", "sender", "PostgreSQL", "RabbitMQ"])
        .map(|((a, b), who)| {
            let added = b - a / alone_s * beside_s;
            format!("{who} {:.3}", added / seeded.max(1) as f64 * 1000.0)
        })
        .collect();
    let p99s = |windows: &[Measured]| {
        windows
            .iter()
            .map(|m| format!("{:.1}", p_ms(m, 0.99)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let took = during.took.as_secs_f64();
    report.note(format!(
        "replay: {} failed deliveries written in {:.1} s; the API matched them in {} ms and the replay finished \
         {took:.0} s later: {} deliveries/s (queued {}, skipped {}, done {}; the replayed endpoint received {} \
         requests within the windows). CPU seconds it added per 1,000 deliveries replayed (beside ÷ alone, PostgreSQL and RabbitMQ \
         counting every process of theirs on the machine): {}. p99 of each window, ms: alone {}; beside the replay {}. \
         Settings: REPLAY_RATE, REPLAY_BATCH and REPLAY_IN_FLIGHT as the environment gives them (defaults 500, 50, 500).",
        int(seeded as f64),
        seeding.as_secs_f64(),
        int(during.created_in.as_secs_f64() * 1000.0),
        int(count("done") as f64 / took.max(1e-9)),
        int(count("queued") as f64),
        int(count("skipped") as f64),
        int(count("done") as f64),
        int(beside.iter().map(|m| m.arrivals.beside_arrivals).sum::<u64>() as f64),
        extra.join(", "),
        p99s(alone),
        p99s(beside),
    ));
}
