//! The work waiting in the database, as gauges: every [`INTERVAL`], one query reads the deliveries
//! not finished, soonest due first, through the due index (`deliveries_due`, partial on the
//! unfinished states and ordered by `next_attempt_at`), at most [`COUNTED_MOST`] of them: the cost
//! is bounded however large the backlog grows. Every sender reads the same numbers; dashboards and
//! alerts take their `max`.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webhooks_core::clock::Clock;
use webhooks_core::{retrying_state, waiting_states};

use crate::metrics::Metrics;

/// How often the waiting work is counted.
pub const INTERVAL: Duration = Duration::from_secs(15);
/// Most deliveries one count reads; the gauges stop there.
pub const COUNTED_MOST: i64 = 100_000;

/// What one count found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Due at `now` and under no lease.
    pub due: i64,
    /// In state `retrying`.
    pub retrying: i64,
    /// When the longest-due of `due` came due.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Counts the waiting work as at `now`.
pub async fn count(pool: &Pool, now: DateTime<Utc>) -> anyhow::Result<Backlog> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(concat!(
            "SELECT count(*) FILTER (WHERE due),
                    count(*) FILTER (WHERE state = ",
            retrying_state!(),
            "),
                    min(next_attempt_at) FILTER (WHERE due)
             FROM (SELECT state, next_attempt_at,
                          next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until <= $1) AS due
                   FROM deliveries
                   WHERE state IN ",
            waiting_states!(),
            "
                   ORDER BY next_attempt_at
                   LIMIT $2) waiting"
        ))
        .await?;
    let row = client.query_one(&statement, &[&now, &COUNTED_MOST]).await?;
    Ok(Backlog {
        due: row.get(0),
        retrying: row.get(1),
        oldest_due: row.get(2),
    })
}

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
