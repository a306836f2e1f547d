//! The retention scenario (`--scenario retention`, not in the default run: about three and a half minutes):
//! a steady load while the clock moves through five retention windows, to show that the tables
//! stop growing after one window and that the last window is as fast as the first.
//!
//! The services run in this process (the harness's [`World`]) on a shifted clock, which the
//! scenario moves forward one hour every half second: `RETENTION=2d` and `DISABLE_AFTER=3h12m`,
//! the production 30 days and 2 days shortened fifteen times alike, pass in 24 s and 1.6 s. The
//! binaries have no way to run on another clock. Every half second the scenario runs the
//! partitions' turn itself ([`retention::create_ahead`], [`retention::drop_expired`], what the
//! services run every `MAINTENANCE_INTERVAL`, here set to an hour so that only these turns act),
//! so that each drop can be timed.
//!
//! Measured: the total size of the partitions of `events`, `deliveries` and `attempts` with their
//! indexes (and of `event_keys`) every six simulated hours; p99 publish→receive latency of the
//! steady load in the first and last window, whole and as the median of its stretches of six
//! simulated hours; the throughput of bursts published at full speed
//! around the middle of each (the median of [`BURSTS`]), with the CPU each process used per
//! delivery during them; the database's work per delivery across each window's bursts (blocks
//! touched, rows read, WAL written: counts that the machine's noise does not move); and how long
//! each drop held the tables locked.

use std::time::{Duration, Instant};

use webhooks_core::db::{Database, Reads};
use webhooks_core::retention;
use webhooks_harness::marks::now_ns;
use webhooks_harness::publisher::{EVENT_NAME, PROJECT, Pipeline, event_body};
use webhooks_harness::world::World;

use crate::ctx::Ctx;
use crate::report::Report;

mod measures;
mod report;

use measures::{DbWork, cpu_seconds, steady_latencies, table_bytes};

const HOUR: Duration = Duration::from_secs(3_600);
/// The window, and the give-up time, shortened in proportion (30 d : 2 d = 2 d : 3.2 h).
const RETENTION: Duration = Duration::from_secs(2 * 24 * 3_600);
const DISABLE_AFTER: Duration = Duration::from_secs(3 * 3_600 + 12 * 60);
/// Real time per simulated hour.
const TICK: Duration = Duration::from_millis(500);
/// Windows the clock moves through.
const WINDOWS: u32 = 5;
/// Events per second of the steady load (one webhook: one delivery each).
const RATE: f64 = 400.0;
/// Events of each burst: a couple of seconds at full speed.
const BURST: u64 = 20_000;
/// Bursts in the first and in the last window, [`BURST_EVERY`] simulated hours apart around its
/// middle: one burst of a shared machine is no measure of a window; their median is.
const BURSTS: u32 = 5;
const BURST_EVERY: u32 = 6;
/// Simulated hours of each stretch of the steady load whose p99 is taken apart: a window's p99
/// is also given as the median of its stretches', which a second of a shared machine's stall
/// does not move.
const STRETCH: u32 = 6;
/// How long a PostgreSQL backend may keep its counts before they show in the statistics views:
/// one left idle reports them after 10 s.
const STATS_SETTLE: Duration = Duration::from_secs(11);
/// The phase marks of the steady load and of the bursts.
const STEADY: u32 = 1;
const BURSTING: u32 = 2;

/// What one window measured.
#[derive(Default)]
struct Window {
    /// Sequence numbers of its steady events.
    first_seq: u64,
    end_seq: u64,
    /// The first sequence number of each of its stretches of [`STRETCH`] simulated hours.
    stretch_starts: Vec<u64>,
    /// Deliveries per second of each of its bursts.
    burst_rates: Vec<f64>,
    /// The database's counts and the deliveries made, before its first burst.
    before_bursts: Option<(DbWork, usize)>,
    /// The database's work per delivery from before its first burst to after its last.
    work: Option<DbWork>,
    /// CPU seconds used during each of its bursts by this process (the services), PostgreSQL
    /// and RabbitMQ.
    burst_cpu: Vec<[f64; 3]>,
}

impl Window {
    /// The median of its bursts' rates.
    fn burst_rate(&self) -> f64 {
        let mut rates = self.burst_rates.clone();
        rates.sort_by(f64::total_cmp);
        rates.get(rates.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let (amqp_url, pg_server) = (ctx.args.amqp_url.clone(), ctx.args.postgres.clone());
    let world = World::start_with(move |o| {
        o.amqp_url = amqp_url;
        o.pg_server = pg_server;
        o.sender.retention = RETENTION;
        o.sender.disable_after = DISABLE_AFTER;
        for common in [&mut o.dispatcher.common, &mut o.sender.common] {
            common.maintenance_interval = HOUR;
            common.database_pool_size = 16;
        }
    })
    .await;
    let outcome = measure(ctx, &world, report).await;
    world.finish().await;
    outcome
}

async fn measure(ctx: &Ctx, world: &World, report: &mut Report) -> anyhow::Result<()> {
    world.webhook(PROJECT, "w", &[EVENT_NAME], None).await;
    let pool = Database::new(&world.database_url, None)?.pool(2, Reads::Default)?;
    let exchange = world.topology.events_exchange().to_owned();
    let mut pipeline = Pipeline::open(&ctx.connection).await?;
    let (base_at, base_ns) = (Instant::now(), now_ns());
    let ticks_per_window = u32::try_from(RETENTION.as_secs() / HOUR.as_secs()).unwrap_or(48);
    let per_tick = (RATE * TICK.as_secs_f64()).round() as u64;
    let (mut seq, mut burst_seq, mut received) = (0_u64, 0_u64, 0_usize);
    let mut windows: Vec<Window> = Vec::new();
    let mut sizes = Vec::new();
    let mut drops = Vec::new();
    for tick in 0..WINDOWS * ticks_per_window {
        let window = tick / ticks_per_window;
        if tick % ticks_per_window == 0 {
            windows.push(Window {
                first_seq: seq,
                ..Window::default()
            });
        }
        if tick % STRETCH == 0
            && let Some(current) = windows.last_mut()
        {
            current.stretch_starts.push(seq);
        }
        let started = Instant::now();
        for slice in 0..10_u64 {
            let share = per_tick / 10 + u64::from(slice < per_tick % 10);
            for _ in 0..share {
                pipeline
                    .publish(&exchange, EVENT_NAME, &event_body(STEADY, seq))
                    .await?;
                seq += 1;
            }
            let slice_end = started + TICK.mul_f64((slice + 1) as f64 / 10.0);
            tokio::time::sleep_until(slice_end.into()).await;
        }
        received += usize::try_from(per_tick).unwrap_or(0);
        world.clock.advance(HOUR);
        let now = world.clock.now();
        retention::create_ahead(&pool, now).await?;
        drops.extend(retention::drop_expired(&pool, now, RETENTION).await?);
        if tick % 6 == 5 {
            sizes.push((f64::from(tick + 1) / 24.0, table_bytes(world).await?));
        }
        let last = windows.last_mut().expect("a window");
        last.end_seq = seq;
        // Hours into the window, counted from the first burst's.
        let from_first = (tick % ticks_per_window + BURST_EVERY * (BURSTS - 1) / 2)
            .checked_sub(ticks_per_window / 2);
        let bursting = from_first.is_some_and(|h| h % BURST_EVERY == 0 && h / BURST_EVERY < BURSTS);
        if bursting && (window == 0 || window == WINDOWS - 1) {
            pipeline.flush().await?;
            world
                .receiver
                .wait_for_count("w", received, Duration::from_secs(60))
                .await;
            if last.burst_rates.is_empty() {
                tokio::time::sleep(STATS_SETTLE).await;
                last.before_bursts = Some((DbWork::now(world).await?, received));
            }
            let cpu_before = cpu_seconds();
            let burst_started = Instant::now();
            for _ in 0..BURST {
                pipeline
                    .publish(&exchange, EVENT_NAME, &event_body(BURSTING, burst_seq))
                    .await?;
                burst_seq += 1;
            }
            received += usize::try_from(BURST).unwrap_or(0);
            world
                .receiver
                .wait_for_count("w", received, Duration::from_secs(120))
                .await;
            last.burst_rates
                .push(BURST as f64 / burst_started.elapsed().as_secs_f64());
            let cpu_after = cpu_seconds();
            last.burst_cpu
                .push(std::array::from_fn(|i| cpu_after[i] - cpu_before[i]));
            if last.burst_rates.len() == BURSTS as usize
                && let Some((before, made)) = last.before_bursts
            {
                tokio::time::sleep(STATS_SETTLE).await;
                let after = DbWork::now(world).await?;
                last.work = Some(after.per_delivery(&before, received - made));
            }
        }
    }
    pipeline.flush().await?;
    world
        .receiver
        .wait_for_count("w", received, Duration::from_secs(60))
        .await;

    let latencies = steady_latencies(world, base_at, base_ns);
    report::judge(report, &windows, &sizes, &drops, &latencies);
    Ok(())
}
