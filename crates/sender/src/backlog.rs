//! The work waiting in the database, as gauges: every [`INTERVAL`], one query
//! ([`crate::store::backlog::count`]) reads the deliveries not finished, soonest due first,
//! through the due index (`deliveries_due`, partial on the unfinished states and ordered by
//! `next_attempt_at`), at most [`COUNTED_MOST`] of them: the cost is bounded however large the
//! backlog grows. Every sender reads the same numbers; dashboards and alerts take their `max`.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webhooks_core::clock::Clock;

use crate::metrics::Metrics;
use crate::store;
use crate::store::backlog::Backlog;

/// How often the waiting work is counted.
pub const INTERVAL: Duration = Duration::from_secs(15);
/// Most deliveries one count reads; the gauges stop there.
pub const COUNTED_MOST: i64 = 100_000;

/// Sets the gauges from a count every [`INTERVAL`] until `shutdown`.
pub async fn run(pool: Pool, clock: Clock, metrics: Metrics, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = clock.now();
        match count(&pool, now).await {
            Ok(backlog) => {
                metrics.deliveries_due.set(backlog.due);
                metrics.deliveries_retrying.set(backlog.retrying);
                let waited = backlog.oldest_due.map_or(0.0, |at| {
                    (now - at).num_milliseconds().max(0) as f64 / 1000.0
                });
                metrics.oldest_due_seconds.set(waited);
            }
            // The gauges keep their last values; /readyz and the logs say the database is away.
            Err(e) => tracing::debug!(
                error = format!("{e:#}"),
                "counting waiting deliveries failed"
            ),
        }
    }
}

/// Counts the waiting work as at `now`.
async fn count(pool: &Pool, now: DateTime<Utc>) -> anyhow::Result<Backlog> {
    let client = pool.get().await?;
    Ok(store::backlog::count(&client, now, COUNTED_MOST).await?)
}
