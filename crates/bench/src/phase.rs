//! One measured phase of a scenario: publish a plan of events, print progress every second, wait
//! until every expected delivery has arrived (or arrivals stall), and measure meanwhile what each
//! service cost: CPU seconds (`/proc/<pid>/stat`), peak resident memory, and its stage metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use webhooks_harness::metrics::Scrape;
use webhooks_harness::publisher::{self, Pipeline, Plan, Published};
use webhooks_harness::receiver::tracker::Arrivals;
use webhooks_harness::receiver::tracking::Tracking;
use webhooks_harness::service::Service;
use webhooks_harness::services::Services;

use crate::procfs::{self, MachineTicks, RssSampler};
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
        let wall = self.wall_s();
        if wall > 0.0 {
            self.arrivals.unique as f64 / wall
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
const POSTGRES: &str = "postgres";
pub const RABBITMQ: &str = "beam.smp";

impl Probe {
    pub async fn start(world: &Services) -> anyhow::Result<Self> {
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
    pub async fn finish(
        &self,
        world: &Services,
        sampler: &RssSampler,
        measured: &mut Measured,
    ) -> anyhow::Result<()> {
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
    world: &Services,
    receiver: &Tracking,
    sampler: &RssSampler,
    connection: &lapin::Connection,
    spec: Spec,
) -> anyhow::Result<Measured> {
    let expected = spec.events * spec.healthy as u64;
    receiver
        .tracker()
        .begin(spec.phase, spec.healthy, spec.events);
    sampler.reset();
    let probe = Probe::start(world).await?;
    let published = Arc::new(Published::default());
    let plan = Plan {
        exchange: world.names.exchange.clone(),
        phase: spec.phase,
        events: spec.events,
        rate: spec.rate,
        bytes: 0,
    };
    let publishing = tokio::spawn(publisher::publish_events(
        Pipeline::open(connection).await?,
        plan,
        published.clone(),
    ));
    let complete = follow(&spec.label, receiver, &published, publishing, expected).await?;
    let mut measured = Measured::arrived(
        &spec.label,
        spec.events,
        expected,
        &published,
        receiver,
        complete,
    );
    probe.finish(world, sampler, &mut measured).await?;
    Ok(measured)
}

/// Shows progress until publishing ended and `expected` deliveries arrived; false if they stalled.
pub async fn follow(
    label: &str,
    receiver: &Tracking,
    published: &Published,
    mut publishing: tokio::task::JoinHandle<anyhow::Result<()>>,
    expected: u64,
) -> anyhow::Result<bool> {
    let mut progress = Progress::new(label);
    let mut publishing_done = false;
    let mut last_count = 0;
    let mut last_change = Instant::now();
    loop {
        if !publishing_done && publishing.is_finished() {
            (&mut publishing).await??;
            publishing_done = true;
        }
        let delivered = receiver.tracker().delivered();
        progress.tick("published", published.count(), "delivered", delivered);
        if delivered != last_count {
            last_count = delivered;
            last_change = Instant::now();
        }
        if publishing_done && delivered >= expected {
            return Ok(true);
        }
        if publishing_done && last_change.elapsed() > STALL {
            eprintln!(
                "[{label}] no arrival for {STALL:?}: {delivered} of {expected} delivered, giving up"
            );
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
