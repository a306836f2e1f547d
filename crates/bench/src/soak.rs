//! The soak (`--scenario soak`, never part of the default run): for `--minutes`, events flow at a
//! steady `--rate` to 4 webhooks while a fault from [`crate::faults`] is injected every 20-60 s on
//! the seeded [`crate::schedule`]. Then publishing stops and the soak waits, up to 5 minutes, until
//! every (event, webhook) pair has arrived at least once, prints a summary to stdout, and fails
//! when any delivery is missing or a fault showed a problem (a SIGTERM not ending in exit 0, the
//! services not ready again).
//!
//! Every setting is the services' default, the hand-off lease (`HANDOFF_GRACE`, 30 s) and the
//! attempt's timeout (`DELIVERY_TIMEOUT`, 15 s) included: faults hit the path production uses, where
//! fresh deliveries are carried by their hand-off, and recovery takes what it takes there.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::args::Scenario;
use crate::ctx::{Ctx, healthy_webhooks, start_services};
use crate::faults::{Fault, Injector, Peaks};
use crate::phase::Progress;
use crate::procfs::RssSampler;
use crate::publisher::{self, Pipeline, Plan, Published};
use crate::receiver::{Arrivals, Receiver, Tracker, now_ns};
use crate::report::{int, percentile_us};
use crate::schedule::Schedule;
use crate::services::{Service, World};

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
    let receiver = Receiver::start(WEBHOOKS).await?;
    let sampler = RssSampler::start();
    let mut world = ctx.world(None)?;
    let outcome = soak(ctx, &mut world, &receiver, &sampler, seed, events).await;
    world.finish().await;
    let summary = outcome?;
    println!("{}", summary.render());
    summary.verdict()
}

async fn soak(
    ctx: &Ctx,
    world: &mut World,
    receiver: &Receiver,
    sampler: &RssSampler,
    seed: u64,
    events: u64,
) -> anyhow::Result<Summary> {
    start_services(world, sampler).await?;
    healthy_webhooks(world, receiver, 0, WEBHOOKS).await?;
    receiver.tracker().begin(1, WEBHOOKS, events);
    let published = Arc::new(Published::default());
    let plan = Plan {
        exchange: world.names.exchange.clone(),
        phase: 1,
        events,
        rate: Some(ctx.args.rate),
        bytes: 0,
    };
    let started = Instant::now();
    let publishing = tokio::spawn(publisher::publish_events(
        Pipeline::open(&ctx.connection).await?,
        plan,
        published.clone(),
    ));
    let progress = tokio::spawn(show_progress(receiver.tracker().clone(), published.clone()));
    let publish_end = started + Duration::from_secs_f64(events as f64 / ctx.args.rate);
    let mut injector = Injector {
        world,
        sampler,
        postgres: ctx.settings.postgres.clone(),
        peaks: Peaks::default(),
    };
    let mut log = FaultLog::default();
    let mut schedule = Schedule::new(seed);
    loop {
        let at = Instant::now() + schedule.pause();
        if at >= publish_end {
            break;
        }
        tokio::time::sleep_until(at.into()).await;
        if publishing.is_finished() {
            break;
        }
        let fault = schedule.next_fault();
        let n = log.injected.len() + 1;
        eprintln!(
            "[soak] {:>7.1}s  fault {n}: {}",
            started.elapsed().as_secs_f64(),
            fault.name()
        );
        let injected = injector.inject(fault).await?;
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
    publishing.await??;
    let mut peaks = injector.peaks;
    let expected = published.count() * WEBHOOKS as u64;
    eprintln!(
        "[soak] {:>7.1}s  publishing done ({} events); waiting up to {SETTLE_WITHIN:?} for {} deliveries",
        started.elapsed().as_secs_f64(),
        int(published.count() as f64),
        int(expected as f64)
    );
    let settled = settle(receiver.tracker(), expected).await;
    progress.abort();
    for service in [Service::Dispatcher, Service::Sender] {
        peaks.fold(world, service, sampler);
    }
    let (missing, first_missing) = receiver.tracker().missing(LIST_MISSING);
    Ok(Summary {
        seed,
        minutes: ctx.args.minutes,
        rate: ctx.args.rate,
        published: published.count(),
        expected,
        arrivals: receiver.tracker().finish(),
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

/// The faults injected, in order, and what went wrong with them.
#[derive(Default)]
struct FaultLog {
    injected: Vec<Fault>,
    problems: Vec<String>,
}

struct Summary {
    seed: u64,
    minutes: u64,
    rate: f64,
    published: u64,
    expected: u64,
    arrivals: Arrivals,
    missing: u64,
    first_missing: Vec<(usize, u64)>,
    settled: Option<Duration>,
    log: FaultLog,
    peaks: Peaks,
}

impl Summary {
    fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<22}{value}");
        };
        line(
            "run",
            format!(
                "{} min at {} events/s to {WEBHOOKS} webhooks, seed {}",
                self.minutes, self.rate, self.seed
            ),
        );
        line("events published", int(self.published as f64));
        line("deliveries expected", int(self.expected as f64));
        line("delivered (distinct)", int(self.arrivals.unique as f64));
        let listed: Vec<String> = self
            .first_missing
            .iter()
            .map(|(webhook, seq)| format!("seq {seq} at webhook {webhook}"))
            .collect();
        line(
            "missing",
            if listed.is_empty() {
                int(self.missing as f64)
            } else {
                format!(
                    "{} (first: {})",
                    int(self.missing as f64),
                    listed.join(", ")
                )
            },
        );
        line("duplicates", int(self.arrivals.duplicates as f64));
        line("stray arrivals", int(self.arrivals.strays as f64));
        line(
            "all arrived",
            self.settled.map_or("no: gave up waiting".to_owned(), |d| {
                format!("{:.1} s after publishing ended", d.as_secs_f64())
            }),
        );
        line(
            "latency p50/p99/max",
            latencies(&self.arrivals.latencies_us),
        );
        line("faults injected", self.faults());
        line(
            "fault problems",
            if self.log.problems.is_empty() {
                "none".to_owned()
            } else {
                self.log.problems.join("; ")
            },
        );
        line(
            "peak RSS",
            format!(
                "dispatcher {:.1} MiB, sender {:.1} MiB (largest of every process that ran)",
                self.peaks.dispatcher_kib as f64 / 1024.0,
                self.peaks.sender_kib as f64 / 1024.0
            ),
        );
        format!("Soak summary\n{out}")
    }

    /// `total: kind n, kind n, ...` in the order of [`Fault::ALL`].
    fn faults(&self) -> String {
        let kinds: Vec<String> = Fault::ALL
            .iter()
            .map(|kind| {
                let n = self.log.injected.iter().filter(|f| *f == kind).count();
                format!("{} {n}", kind.name())
            })
            .collect();
        format!("{} ({})", self.log.injected.len(), kinds.join(", "))
    }

    fn verdict(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.missing == 0,
            "{} of {} deliveries missing",
            self.missing,
            self.expected
        );
        anyhow::ensure!(
            self.log.problems.is_empty(),
            "faults showed problems: {}",
            self.log.problems.join("; ")
        );
        Ok(())
    }
}

/// p50, p99 and the maximum of sorted publish→receive latencies in microseconds.
fn latencies(sorted_us: &[u32]) -> String {
    if sorted_us.is_empty() {
        return "-".to_owned();
    }
    let show = |us: f64| {
        if us >= 1e6 {
            format!("{:.1} s", us / 1e6)
        } else {
            format!("{:.0} ms", us / 1e3)
        }
    };
    format!(
        "{} / {} / {}",
        show(percentile_us(sorted_us, 0.5)),
        show(percentile_us(sorted_us, 0.99)),
        show(percentile_us(sorted_us, 1.0))
    )
}
