//! The soak (`--scenario soak`, never part of the default run): for `--minutes`, events flow at a
//! steady `--rate` to 4 webhooks while a fault from [`webhooks_harness::injector`] is injected every 20-60 s on
//! the seeded [`Schedule`]. Then publishing stops and the soak waits, up to 5 minutes, until
//! every (event, webhook) pair has arrived at least once, prints a summary to stdout, and fails
//! when any delivery is missing or a fault showed a problem (a SIGTERM not ending in exit 0, the
//! services not ready again).
//!
//! Every setting is the services' default, the hand-off lease (`HANDOFF_GRACE`, 30 s) and the
//! attempt's timeout (`DELIVERY_TIMEOUT`, 15 s) included: faults hit the path production uses, where
//! fresh deliveries are carried by their hand-off, and recovery takes what it takes there.

mod outcome;

use std::sync::Arc;
use std::time::{Duration, Instant};
use webhooks_harness::injector::Injector;
use webhooks_harness::marks::now_ns;
use webhooks_harness::publishing::{Plan, Published, Publishing};
use webhooks_harness::receiver::tracker::Tracker;
use webhooks_harness::service::Service;

use crate::args::Scenario;
use crate::ctx::{Ctx, Scene};
use crate::phase::Progress;
use crate::report::int;
use outcome::{FaultLog, Peaks, Summary};
use webhooks_harness::injector::schedule::Schedule;

/// Webhooks, each on a receiver port of its own.
const WEBHOOKS: usize = 4;
/// Longest wait for the last deliveries after publishing ended.
const SETTLE_WITHIN: Duration = Duration::from_secs(300);
/// How often a progress line is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Missing deliveries listed by seq.
const LIST_MISSING: usize = 10;

/// Runs the soak; an error when anything is missing or a fault showed a problem.
pub async fn run(ctx: &Ctx) -> anyhow::Result<()> {
    let args = &ctx.args;
    anyhow::ensure!(
        args.scenarios.iter().all(|s| *s == Scenario::Soak),
        "the soak runs alone: give --scenario soak without other scenarios"
    );
    anyhow::ensure!(
        args.minutes > 0 && args.rate > 0.0,
        "--minutes and --rate must be positive"
    );
    let seed = args.seed.unwrap_or_else(now_ns);
    let events = args.events(Scenario::Soak);
    eprintln!(
        "[soak] seed {seed} (replay the fault schedule with --seed {seed}); {} min at {} events/s = {} events \
         to {WEBHOOKS} webhooks; the services' default settings",
        args.minutes,
        args.rate,
        int(events as f64),
    );
    let summary = ctx
        .scene(WEBHOOKS, None, async |scene| {
            soak(ctx, scene, seed, events).await
        })
        .await?;
    println!("{}", summary.render());
    summary.verdict()
}

async fn soak(ctx: &Ctx, scene: &mut Scene, seed: u64, events: u64) -> anyhow::Result<Summary> {
    scene.start_services().await?;
    scene.healthy_webhooks(0, WEBHOOKS).await?;
    let tracker = scene.receiver.tracker().clone();
    tracker.begin(1, WEBHOOKS, events);
    let plan = Plan {
        rate: Some(ctx.args.rate),
        ..Plan::new(&scene.world.names.exchange, 1, events)
    };
    let started = Instant::now();
    let mut publishing = Publishing::start(&ctx.connection, plan).await?;
    let published = publishing.published.clone();
    let progress = tokio::spawn(show_progress(tracker.clone(), published.clone()));
    let publish_end = started + Duration::from_secs_f64(events as f64 / ctx.args.rate);
    let mut peaks = Peaks::default();
    let mut log = FaultLog::default();
    let mut schedule = Schedule::new(seed);
    loop {
        let at = Instant::now() + schedule.pause();
        if at >= publish_end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        if publishing.done().await? {
            break;
        }
        let fault = schedule.next_fault();
        let n = log.injected.len() + 1;
        eprintln!(
            "[soak] {:>7.1}s  fault {n}: {}",
            started.elapsed().as_secs_f64(),
            fault.name()
        );
        let replaced = fault.replaces();
        if let Some(service) = replaced {
            peaks.fold(&scene.world, service, &scene.sampler);
        }
        let world = &mut scene.world;
        let injected = Injector { world }.inject(fault).await?;
        if let Some(service) = replaced {
            scene.watch(service);
        }
        eprintln!(
            "[soak] {:>7.1}s  fault {n}: {}",
            started.elapsed().as_secs_f64(),
            injected.detail
        );
        if let Some(problem) = injected.problem {
            eprintln!("[soak] PROBLEM: {problem}");
            log.problems.push(problem);
        }
        log.injected.push(fault);
    }
    publishing.finish().await?;
    let expected = published.count() * WEBHOOKS as u64;
    eprintln!(
        "[soak] {:>7.1}s  publishing done ({} events); waiting up to {SETTLE_WITHIN:?} for {} deliveries",
        started.elapsed().as_secs_f64(),
        int(published.count() as f64),
        int(expected as f64)
    );
    let settled = settle(&tracker, expected).await;
    progress.abort();
    for service in Service::BOTH {
        peaks.fold(&scene.world, service, &scene.sampler);
    }
    let (missing, first_missing) = tracker.missing(LIST_MISSING);
    Ok(Summary {
        seed,
        webhooks: WEBHOOKS,
        minutes: ctx.args.minutes,
        rate: ctx.args.rate,
        published: published.count(),
        expected,
        arrivals: tracker.finish(),
        missing,
        first_missing,
        settled,
        log,
        peaks,
    })
}

/// A progress line every [`PROGRESS_EVERY`] until aborted.
async fn show_progress(tracker: Arc<Tracker>, published: Arc<Published>) {
    let mut progress = Progress::new("soak");
    loop {
        tokio::time::sleep(PROGRESS_EVERY).await;
        progress.tick(
            "published",
            published.count(),
            "delivered",
            tracker.delivered(),
        );
    }
}

/// Waits until `expected` distinct deliveries arrived; how long that took after publishing ended.
async fn settle(tracker: &Tracker, expected: u64) -> Option<Duration> {
    let since = Instant::now();
    while since.elapsed() < SETTLE_WITHIN {
        if tracker.delivered() >= expected {
            return Some(since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}
