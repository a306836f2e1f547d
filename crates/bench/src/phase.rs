//! One measured phase of a scenario: publish a plan of events, print progress every second, wait
//! until every expected delivery has arrived (or arrivals stall), and measure meanwhile what each
//! service cost: CPU seconds (`/proc/<pid>/stat`), peak resident memory, and its stage metrics.

use std::time::{Duration, Instant};

use webhooks_harness::metrics::Scrape;
use webhooks_harness::publishing::{Plan, Published, Publishing};
use webhooks_harness::receiver::tracker::Arrivals;
use webhooks_harness::receiver::tracking::Tracking;
use webhooks_harness::service::Service;

use crate::ctx::Scene;
use crate::procfs::{self, MachineTicks};
use crate::stages::Stages;

/// No new arrival for this long after publishing ended: the phase is reported as incomplete.
pub const STALL: Duration = Duration::from_secs(45);

/// Prints one progress line a second to stderr.
pub struct Progress {
    label: String,
    started: Instant,
    last: Instant,
    last_sent: u64,
    last_delivered: u64,
}

impl Progress {
    pub fn new(label: &str) -> Self {
        let now = Instant::now();
        Self {
            label: label.to_owned(),
            started: now,
            last: now,
            last_sent: 0,
            last_delivered: 0,
        }
    }

    /// Prints a line if a second has passed since the last one.
    pub fn tick(&mut self, sent_word: &str, sent: u64, delivered_word: &str, delivered: u64) {
        let elapsed = self.last.elapsed();
        if elapsed < Duration::from_secs(1) {
            return;
        }
        let secs = elapsed.as_secs_f64();
        eprintln!(
            "[{}] {:>4.0}s  {sent_word} {:>9} ({:>7.0}/s)  {delivered_word} {:>9} ({:>7.0}/s)",
            self.label,
            self.started.elapsed().as_secs_f64(),
            sent,
            sent.saturating_sub(self.last_sent) as f64 / secs,
            delivered,
            delivered.saturating_sub(self.last_delivered) as f64 / secs,
        );
        self.last = Instant::now();
        self.last_sent = sent;
        self.last_delivered = delivered;
    }
}

/// What a phase publishes and expects.
pub struct Spec {
    pub label: String,
    pub phase: u32,
    pub events: u64,
    pub rate: Option<f64>,
    /// Healthy webhooks (indexes 0..healthy) each event is expected at.
    pub healthy: usize,
}

/// What a service cost during a phase.
#[derive(Clone, Copy, Debug, Default)]
pub struct Cost {
    pub cpu_s: f64,
    /// Largest of the sampled `VmRSS` and the process's `VmHWM`, in KiB.
    pub peak_rss_kib: u64,
}

/// The measurements of one phase.
#[derive(Clone, Debug, Default)]
pub struct Measured {
    pub label: String,
    pub events: u64,
    pub expected: u64,
    /// Events per second from the first publish to the last confirm.
    pub published_rate: f64,
    pub first_publish_ns: u64,
    pub arrivals: Arrivals,
    pub complete: bool,
    pub dispatcher: Option<Cost>,
    pub sender: Option<Cost>,
    pub machine_busy: f64,
    pub bench_cpu_s: f64,
    /// CPU seconds of every PostgreSQL and RabbitMQ process on the machine (shared with anything else using them).
    pub postgres_cpu_s: f64,
    pub rabbitmq_cpu_s: f64,
    pub stages: Stages,
}

impl Measured {
    /// What a phase published and what arrived; costs and stages are filled in by [`Probe::finish`].
    pub fn arrived(
        label: &str,
        events: u64,
        expected: u64,
        published: &Published,
        receiver: &Tracking,
        complete: bool,
    ) -> Self {
        Self {
            label: label.to_owned(),
            events,
            expected,
            published_rate: published.rate(),
            first_publish_ns: published.first_ns(),
            arrivals: receiver.tracker().finish(),
            complete,
            ..Self::default()
        }
    }

    /// Seconds from the first publish to the last arrival.
    pub fn wall_s(&self) -> f64 {
        self.arrivals.last_ns.saturating_sub(self.first_publish_ns) as f64 / 1e9
    }

    /// Distinct deliveries per second, first publish → last arrival.
    pub fn delivered_rate(&self) -> f64 {
        self.delivered_since(self.first_publish_ns)
    }

    /// Distinct deliveries per second from `from_ns` (by [`now_ns`](webhooks_harness::marks::now_ns))
    /// to the last arrival.
    pub fn delivered_since(&self, from_ns: u64) -> f64 {
        let seconds = self.arrivals.last_ns.saturating_sub(from_ns) as f64 / 1e9;
        if seconds > 0.0 {
            self.arrivals.unique as f64 / seconds
        } else {
            0.0
        }
    }
}

/// Readings taken at the start of a phase, to subtract at its end.
pub struct Probe {
    cpu: [Option<f64>; 2],
    scrapes: [Scrape; 2],
    machine: MachineTicks,
    bench_cpu: f64,
    postgres_cpu: f64,
    rabbitmq_cpu: f64,
}

/// Command names of the database's and the broker's processes.
pub const POSTGRES: &str = "postgres";
pub const RABBITMQ: &str = "beam.smp";

impl Probe {
    pub async fn start(scene: &Scene) -> anyhow::Result<Self> {
        let world = &scene.world;
        let mut cpu = [None, None];
        let mut scrapes = [Scrape::default(), Scrape::default()];
        for (i, service) in Service::BOTH.into_iter().enumerate() {
            if let Some(pid) = world.process(service).and_then(|p| p.pid()) {
                cpu[i] = Some(procfs::cpu_seconds(pid)?);
                scrapes[i] = Scrape::parse(&world.metrics(service).await?);
            }
        }
        Ok(Self {
            cpu,
            scrapes,
            machine: MachineTicks::now()?,
            bench_cpu: procfs::cpu_seconds(std::process::id())?,
            postgres_cpu: procfs::cpu_seconds_of_command(POSTGRES),
            rabbitmq_cpu: procfs::cpu_seconds_of_command(RABBITMQ),
        })
    }

    /// Fills in `measured`'s costs and stages (a service started during the phase counts from 0).
    pub async fn finish(&self, scene: &Scene, measured: &mut Measured) -> anyhow::Result<()> {
        let (world, sampler) = (&scene.world, &scene.sampler);
        let mut after = [Scrape::default(), Scrape::default()];
        for (i, service) in Service::BOTH.into_iter().enumerate() {
            let Some(pid) = world.process(service).and_then(|p| p.pid()) else {
                continue;
            };
            after[i] = Scrape::parse(&world.metrics(service).await?);
            let memory = procfs::memory(pid)?;
            let cost = Cost {
                cpu_s: procfs::cpu_seconds(pid)? - self.cpu[i].unwrap_or(0.0),
                peak_rss_kib: memory.hwm_kib.max(sampler.samples(service.name()).peak_kib),
            };
            match service {
                Service::Dispatcher => measured.dispatcher = Some(cost),
                Service::Sender => measured.sender = Some(cost),
            }
        }
        measured.machine_busy = self.machine.busy_share(&MachineTicks::now()?);
        measured.bench_cpu_s = procfs::cpu_seconds(std::process::id())? - self.bench_cpu;
        measured.postgres_cpu_s = procfs::cpu_seconds_of_command(POSTGRES) - self.postgres_cpu;
        measured.rabbitmq_cpu_s = procfs::cpu_seconds_of_command(RABBITMQ) - self.rabbitmq_cpu;
        measured.stages = Stages::between(
            (&self.scrapes[0], &after[0]),
            (&self.scrapes[1], &after[1]),
            measured.wall_s(),
        );
        Ok(())
    }
}

/// Runs one phase against a world whose services and webhooks are ready.
pub async fn run(
    scene: &Scene,
    connection: &lapin::Connection,
    spec: Spec,
) -> anyhow::Result<Measured> {
    let receiver = &scene.receiver;
    let expected = spec.events * spec.healthy as u64;
    receiver
        .tracker()
        .begin(spec.phase, spec.healthy, spec.events);
    scene.sampler.reset();
    let probe = Probe::start(scene).await?;
    let plan = Plan {
        rate: spec.rate,
        ..Plan::new(&scene.world.names.exchange, spec.phase, spec.events)
    };
    let mut publishing = Publishing::start(connection, plan).await?;
    let complete = follow(&spec.label, receiver, &mut publishing, expected).await?;
    let published = &publishing.published;
    let mut measured = Measured::arrived(
        &spec.label,
        spec.events,
        expected,
        published,
        receiver,
        complete,
    );
    probe.finish(scene, &mut measured).await?;
    Ok(measured)
}

/// Shows progress until publishing ended and `expected` deliveries arrived; false if they stalled.
pub async fn follow(
    label: &str,
    receiver: &Tracking,
    publishing: &mut Publishing,
    expected: u64,
) -> anyhow::Result<bool> {
    let delivered = || async { Ok(receiver.tracker().delivered()) };
    follow_count(label, publishing, "delivered", expected, delivered).await
}

/// Shows progress until publishing ended and `count` reached `expected`; false if it stopped
/// moving for [`STALL`] after publishing ended.
pub async fn follow_count<F, Fut>(
    label: &str,
    publishing: &mut Publishing,
    counted: &str,
    expected: u64,
    mut count: F,
) -> anyhow::Result<bool>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    let mut progress = Progress::new(label);
    let (mut last, mut last_change) = (0, Instant::now());
    loop {
        let publishing_done = publishing.done().await?;
        let counted_now = count().await?;
        progress.tick(
            "published",
            publishing.published.count(),
            counted,
            counted_now,
        );
        if counted_now != last {
            (last, last_change) = (counted_now, Instant::now());
        }
        if publishing_done && counted_now >= expected {
            return Ok(true);
        }
        if publishing_done && last_change.elapsed() > STALL {
            eprintln!("[{label}] stalled for {STALL:?}: {counted} {counted_now} of {expected}");
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
