//! The scheduler: every `SCHEDULER_INTERVAL` it claims deliveries that are due — retries whose
//! time has come, manual retries, deliveries held back, hand-offs that never arrived, and leases
//! of senders that died — as far as free in-flight permits allow. Waiting retries live only in
//! the database: they hold no consumer, no memory and survive any restart.

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::bodies::Bodies;
use crate::claim;
use crate::metrics::ClaimSource;
use crate::runner::Runner;

/// Most deliveries claimed in one query.
const CLAIM_BATCH: usize = 500;

pub struct Scheduler {
    pub pool: Pool,
    pub runner: Runner,
    pub permits: Arc<Semaphore>,
    pub interval: Duration,
    pub lease: Duration,
    pub bodies: Bodies,
}

impl Scheduler {
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let claimed = match self.tick().await {
                Ok(claimed) => claimed,
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler could not claim due deliveries");
                    0
                }
            };
            // A full batch means more is probably due: go on at once.
            let pause = if claimed >= CLAIM_BATCH {
                Duration::ZERO
            } else {
                self.interval
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    async fn tick(&self) -> anyhow::Result<usize> {
        let free = self.permits.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            return Ok(0);
        }
        let permits = Arc::clone(&self.permits)
            .acquire_many_owned(u32::try_from(free)?)
            .await?;
        let now = self.runner.clock.now();
        let jobs = claim::due(
            &self.pool,
            now,
            lease_end(now, self.lease),
            i64::try_from(free)?,
        )
        .await?;
        let claimed = jobs.len();
        self.runner
            .metrics
            .claimed
            .with(ClaimSource::Scheduler)
            .inc_by(claimed as u64);
        // Started as the budget of bodies in flight has room for them.
        self.bodies
            .run(&self.runner, &self.pool, jobs, permits)
            .await?;
        Ok(claimed)
    }
}

/// When a lease taken at `now` ends.
pub fn lease_end(now: DateTime<Utc>, lease: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(lease).unwrap_or(chrono::Duration::minutes(1))
}
