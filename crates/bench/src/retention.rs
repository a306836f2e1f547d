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
//! steady load in the first and last window; the throughput of bursts published at full speed
//! around the middle of each (the median of [`BURSTS`]), with the CPU each process used per
//! delivery during them; the database's work per delivery across each window's bursts (blocks
//! touched, rows read, WAL written: counts that the machine's noise does not move); and how long
//! each drop held the tables locked.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use webhooks_core::db::{Database, Reads};
use webhooks_core::retention;
use webhooks_harness::marks::{Marks, now_ns};
use webhooks_harness::publisher::{EVENT_NAME, PROJECT, Pipeline, event_body};
use webhooks_harness::world::World;

use crate::ctx::Ctx;
use crate::procfs;
use crate::report::{Report, int};

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
    /// Deliveries per second of each of its bursts.
    burst_rates: Vec<f64>,
    /// The database's counts and the deliveries made, before its first burst.
    before_bursts: Option<(DbWork, usize)>,
    /// The database's work per delivery from before its first burst to after its last.
    work: Option<DbWork>,
    /// CPU seconds used during its bursts by this process (the services), PostgreSQL and
    /// RabbitMQ.
    burst_cpu: [f64; 3],
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
            for (sum, (after, before)) in last
                .burst_cpu
                .iter_mut()
                .zip(cpu_seconds().into_iter().zip(cpu_before))
            {
                *sum += after - before;
            }
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
    let first = &windows[0];
    let last = windows.last().expect("windows");
    let p99 = |w: &Window| p99_ms(&latencies, w.first_seq, w.end_seq);
    let (first_p99, last_p99) = (p99(first), p99(last));
    let plateau = sizes
        .iter()
        .filter(|(day, _)| *day > 2.0 && *day <= 4.0)
        .map(|(_, s)| s.tables)
        .fold(0, u64::max);
    let latest = sizes
        .iter()
        .filter(|(day, _)| *day > 8.0)
        .map(|(_, s)| s.tables)
        .fold(0, u64::max);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "Retention: {} events/s to 1 webhook for {WINDOWS} windows of RETENTION=2d (DISABLE_AFTER=3h12m), one simulated hour every {} ms; \
         {BURSTS} bursts of {} events at full speed around the middle of the first and last window, {BURST_EVERY} simulated hours apart.\n",
        int(RATE),
        TICK.as_millis(),
        int(BURST as f64)
    );
    let _ = writeln!(
        table,
        "| | first window | last window | last / first |\n|---|---|---|---|"
    );
    let (first_rate, last_rate) = (first.burst_rate(), last.burst_rate());
    let rates = |w: &Window| {
        let each: Vec<String> = w.burst_rates.iter().map(|r| int(*r)).collect();
        each.join(" / ")
    };
    let _ = writeln!(
        table,
        "| burst throughput (deliveries/s, median of {BURSTS}) | {} | {} | {:.2} |",
        int(first_rate),
        int(last_rate),
        last_rate / first_rate
    );
    let _ = writeln!(
        table,
        "| each burst (deliveries/s) | {} | {} | |",
        rates(first),
        rates(last)
    );
    let _ = writeln!(
        table,
        "| steady p99 publish→receive (ms) | {first_p99:.1} | {last_p99:.1} | {:.2} |",
        last_p99 / first_p99
    );
    let cpu_ms =
        |w: &Window, i: usize| w.burst_cpu[i] * 1000.0 / (BURST * u64::from(BURSTS)) as f64;
    for (i, who) in ["the services", "PostgreSQL", "RabbitMQ"]
        .iter()
        .enumerate()
    {
        let (first, last) = (cpu_ms(first, i), cpu_ms(last, i));
        let _ = writeln!(
            table,
            "| CPU ms per delivery during the bursts, {who} | {first:.3} | {last:.3} | {:.2} |",
            last / first
        );
    }
    let (first_work, last_work) = (
        first.work.unwrap_or_default(),
        last.work.unwrap_or_default(),
    );
    for (what, first, last) in [
        (
            "database blocks touched per delivery",
            first_work.blocks,
            last_work.blocks,
        ),
        (
            "database rows read per delivery",
            first_work.rows,
            last_work.rows,
        ),
        (
            "WAL bytes per delivery",
            first_work.wal_bytes,
            last_work.wal_bytes,
        ),
    ] {
        let _ = writeln!(
            table,
            "| {what}, across the bursts | {first:.1} | {last:.1} | {:.2} |",
            last / first
        );
    }
    let _ = writeln!(
        table,
        "\n| simulated day | partitions + indexes (MiB) | event_keys (MiB) | days kept |\n|---|---|---|---|"
    );
    for (day, size) in sizes
        .iter()
        .filter(|(day, _)| (day * 4.0).round() % 2.0 == 0.0)
    {
        let _ = writeln!(
            table,
            "| {day:.1} | {:.1} | {:.1} | {} |",
            mib(size.tables),
            mib(size.keys),
            size.days
        );
    }
    let took: Vec<f64> = drops
        .iter()
        .map(|d| d.took.as_secs_f64() * 1000.0)
        .collect();
    let _ = writeln!(
        table,
        "\n{} days dropped; the tables were locked {:.1} ms on average per drop, {:.1} ms at most. \
         Largest size in days 2–4: {:.1} MiB; in days 8–10: {:.1} MiB.",
        drops.len(),
        took.iter().sum::<f64>() / took.len().max(1) as f64,
        took.iter().copied().fold(0.0, f64::max),
        mib(plateau),
        mib(latest)
    );
    report.table(table);
    if latest as f64 > plateau as f64 * 1.1 {
        report.missed("retention: the tables grew after the first window".into());
    }
    if last_rate < first_rate * 0.9 {
        report.missed("retention: last-window throughput under 90% of the first".into());
    }
    if last_p99 > first_p99 * 1.1 {
        report.missed("retention: last-window p99 over 110% of the first".into());
    }
    if first.work.is_none() || last.work.is_none() || last_work.blocks > first_work.blocks * 1.1 {
        report.missed(
            "retention: last-window database blocks per delivery over 110% of the first".into(),
        );
    }
    Ok(())
}

/// CPU seconds used so far by this process (where the services run), every PostgreSQL process and
/// every RabbitMQ process.
fn cpu_seconds() -> [f64; 3] {
    [
        procfs::cpu_seconds(std::process::id()).unwrap_or(0.0),
        procfs::cpu_seconds_of_command("postgres"),
        procfs::cpu_seconds_of_command("beam.smp"),
    ]
}

/// The database's work: counted since its statistics began, or per delivery.
#[derive(Clone, Copy, Debug, Default)]
struct DbWork {
    /// Shared buffers hit or read, by every backend of the database (autovacuum's too).
    blocks: f64,
    /// Rows returned by scans and fetched from indexes.
    rows: f64,
    /// Bytes of WAL the server wrote (the whole server: nothing else runs beside the benchmark).
    wal_bytes: f64,
}

impl DbWork {
    async fn now(world: &World) -> anyhow::Result<Self> {
        let row = world
            .db()
            .await
            .query_one(
                "SELECT (blks_hit + blks_read)::float8, (tup_returned + tup_fetched)::float8,
                        (SELECT wal_bytes::float8 FROM pg_stat_wal)
                 FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await?;
        Ok(Self {
            blocks: row.get(0),
            rows: row.get(1),
            wal_bytes: row.get(2),
        })
    }

    fn per_delivery(&self, before: &Self, deliveries: usize) -> Self {
        let n = deliveries.max(1) as f64;
        Self {
            blocks: (self.blocks - before.blocks) / n,
            rows: (self.rows - before.rows) / n,
            wal_bytes: (self.wal_bytes - before.wal_bytes) / n,
        }
    }
}

/// Sizes at one moment.
struct Sizes {
    /// The partitions of the three tables with their indexes.
    tables: u64,
    keys: u64,
    /// Days with partitions (the coming ones included).
    days: i64,
}

async fn table_bytes(world: &World) -> anyhow::Result<Sizes> {
    let client = world.db().await;
    let row = client
        .query_one(
            "SELECT (SELECT sum(pg_total_relation_size(inhrelid))::bigint FROM pg_inherits
                     WHERE inhparent IN ('events'::regclass, 'deliveries'::regclass, 'attempts'::regclass)),
                    pg_total_relation_size('event_keys'),
                    (SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass)",
            &[],
        )
        .await?;
    let bytes = |i: usize| u64::try_from(row.get::<_, Option<i64>>(i).unwrap_or(0)).unwrap_or(0);
    Ok(Sizes {
        tables: bytes(0),
        keys: bytes(1),
        days: row.get(2),
    })
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// (seq, latency in µs) of every steady delivery received.
fn steady_latencies(world: &World, base_at: Instant, base_ns: u64) -> Vec<(u64, u64)> {
    world
        .receiver
        .received("w")
        .iter()
        .filter_map(|r| {
            let marks = Marks::read(&r.body).filter(|m| m.phase == STEADY)?;
            let arrived_ns =
                base_ns + u64::try_from(r.at.duration_since(base_at).as_nanos()).ok()?;
            Some((marks.seq, arrived_ns.saturating_sub(marks.sent_ns) / 1_000))
        })
        .collect()
}

/// p99 in milliseconds of the steady deliveries with seq in `from..to`.
fn p99_ms(latencies: &[(u64, u64)], from: u64, to: u64) -> f64 {
    let mut window: Vec<u64> = latencies
        .iter()
        .filter(|(seq, _)| (from..to).contains(seq))
        .map(|(_, us)| *us)
        .collect();
    window.sort_unstable();
    let index = ((window.len() as f64 * 0.99).ceil() as usize).saturating_sub(1);
    window.get(index).map_or(f64::NAN, |us| *us as f64 / 1000.0)
}
