//! What the retention scenario reads off the machine and the database while it runs: CPU time by
//! process, the database's work counters, the tables' sizes, and the steady deliveries' latencies.

use std::time::Instant;

use webhooks_harness::marks::Marks;
use webhooks_harness::world::World;

use super::STEADY;
use crate::phase::{POSTGRES, RABBITMQ};
use crate::procfs;

/// CPU seconds used so far by this process (where the services run), every PostgreSQL process and
/// every RabbitMQ process.
pub(super) fn cpu_seconds() -> [f64; 3] {
    [
        procfs::cpu_seconds(std::process::id()).unwrap_or(0.0),
        procfs::cpu_seconds_of_command(POSTGRES),
        procfs::cpu_seconds_of_command(RABBITMQ),
    ]
}

/// The database's work: counted since its statistics began, or per delivery.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DbWork {
    /// Shared buffers hit or read, by every backend of the database (autovacuum's too).
    pub(super) blocks: f64,
    /// Rows returned by scans and fetched from indexes.
    pub(super) rows: f64,
    /// Bytes of WAL the server wrote (the whole server: nothing else runs beside the benchmark).
    pub(super) wal_bytes: f64,
}

impl DbWork {
    pub(super) async fn now(world: &World) -> anyhow::Result<Self> {
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

    pub(super) fn per_delivery(&self, before: &Self, deliveries: usize) -> Self {
        let n = deliveries.max(1) as f64;
        Self {
            blocks: (self.blocks - before.blocks) / n,
            rows: (self.rows - before.rows) / n,
            wal_bytes: (self.wal_bytes - before.wal_bytes) / n,
        }
    }
}

/// Sizes at one moment.
pub(super) struct Sizes {
    /// The partitions of the three tables with their indexes.
    pub(super) tables: u64,
    pub(super) keys: u64,
    /// Days with partitions (the coming ones included).
    pub(super) days: i64,
}

pub(super) async fn table_bytes(world: &World) -> anyhow::Result<Sizes> {
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

/// (seq, latency in µs) of every steady delivery received.
pub(super) fn steady_latencies(world: &World, base_at: Instant, base_ns: u64) -> Vec<(u64, u64)> {
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
