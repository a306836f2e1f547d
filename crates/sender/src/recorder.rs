//! Writes outcomes in batches: attempts, delivery states, webhook health, and — in the same
//! transaction — disabling the webhooks that [`DisableRule`] says have failed for `DISABLE_AFTER`,
//! cancelling their waiting deliveries and queueing one notification each in the outbox. The
//! statements are in [`crate::store`].
//!
//! Only one transaction can flip a webhook from enabled to disabled (the row lock decides, see
//! [`store::webhooks::disable`]), so however many senders see its failures at once, exactly one
//! notification is queued.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;
use webhooks_core::clock::Clock;
use webhooks_core::db::StoreError;

use crate::disable::{self, DisableRule};
use crate::metrics::Metrics;
use crate::outcome::{self, Next, Outcome};
use crate::retry::RetryPolicy;
use crate::store;
use crate::store::outcomes::{AttemptRecord, Due};
use crate::store::webhooks::HealthChange;

/// Most outcomes written in one transaction.
const BATCH: usize = 1000;
/// How long the first outcome of a batch waits for company. Recording is not on the way to the
/// receiver (it follows the attempt), so a short wait costs no delivery latency, while at a
/// moderate rate it turns one transaction per couple of outcomes into one per this interval.
const LINGER: Duration = Duration::from_millis(20);

pub struct Recorder {
    pub pool: Pool,
    pub clock: Clock,
    pub policy: RetryPolicy,
    /// A delivery is given up this long after its first attempt (`DISABLE_AFTER`).
    pub give_up_after: Duration,
    pub disable: DisableRule,
    pub metrics: Metrics,
    /// Woken when notifications were queued.
    pub outbox: Arc<Notify>,
}

impl Recorder {
    /// Writes outcomes until every sender of the channel is gone, then returns.
    pub async fn run(self, mut outcomes: mpsc::Receiver<Outcome>) {
        let mut batch = Vec::with_capacity(BATCH);
        while outcomes.recv_many(&mut batch, BATCH).await > 0 {
            let gathered = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                let room = BATCH - batch.len();
                match tokio::time::timeout_at(gathered, outcomes.recv_many(&mut batch, room)).await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let mut wait = Duration::from_millis(100);
            loop {
                match self.write(&batch).await {
                    Ok(()) => break,
                    Err(e) => {
                        // The database is away: keep the batch (senders wait on the bounded
                        // channel) and try again; leases keep other senders off these deliveries.
                        tracing::warn!(error = %e, outcomes = batch.len(), "recording outcomes failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
            batch.clear();
        }
    }

    async fn write(&self, batch: &[Outcome]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let health = outcome::health(batch);
        let changes: Vec<HealthChange<'_>> = health
            .iter()
            .map(|h| HealthChange {
                webhook_id: h.webhook_id,
                reset: h.reset,
                last_success: h.last_success,
                first_failure: h.first_failure,
                failures: h.failures,
                last_error: h.last_error.as_deref(),
            })
            .collect();
        // Webhooks before deliveries, the order the API locks them in too, so the two can never
        // deadlock over a webhook and its deliveries.
        let windows = store::webhooks::record_health(&tx, &changes).await?;
        let deliveries = self.deliveries(batch);
        store::outcomes::record(
            &tx,
            &deliveries.attempts,
            &deliveries.deferred,
            &deliveries.released,
        )
        .await?;
        let crossed = self.disable.to_disable(&health, &windows);
        let disabled = disable_webhooks(&tx, &crossed, now).await?;
        tx.commit().await?;

        self.metrics.deliveries_given_up.inc_by(deliveries.given_up);
        if disabled > 0 {
            self.metrics.webhooks_disabled.inc_by(disabled);
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// What `batch` writes to its deliveries: each attempt with the state it leads to, the
    /// deliveries held back and those released.
    fn deliveries<'a>(&self, batch: &'a [Outcome]) -> Deliveries<'a> {
        let mut deliveries = Deliveries::default();
        for outcome in batch {
            match outcome {
                Outcome::Deferred { delivery_id, until } => deliveries.deferred.push(Due {
                    delivery_id: *delivery_id,
                    until: *until,
                }),
                Outcome::Released { delivery_id, at } => deliveries.released.push(Due {
                    delivery_id: *delivery_id,
                    until: *at,
                }),
                Outcome::Attempted {
                    delivery_id,
                    attempts_before,
                    first_attempt_at,
                    at,
                    attempt,
                    ..
                } => {
                    let next = outcome::next(
                        attempt,
                        *at,
                        *first_attempt_at,
                        *attempts_before,
                        &self.policy,
                        self.give_up_after,
                    );
                    match next {
                        Next::GivenUp => deliveries.given_up += 1,
                        Next::Retry(_) => self.metrics.retries_scheduled.inc(),
                        Next::Succeeded => {}
                    }
                    deliveries.attempts.push(AttemptRecord {
                        delivery_id: *delivery_id,
                        at: *at,
                        success: attempt.success,
                        status_code: attempt.status_code,
                        error: attempt.error.as_ref().map(ToString::to_string),
                        duration: attempt.duration,
                        response: attempt.response.as_deref(),
                        state: next.state(),
                        next_attempt_at: next.next_attempt_at(),
                        attempts_before: *attempts_before,
                    });
                }
            }
        }
        deliveries
    }
}

/// A batch's writes to its deliveries.
#[derive(Default)]
struct Deliveries<'a> {
    attempts: Vec<AttemptRecord<'a>>,
    deferred: Vec<Due>,
    released: Vec<Due>,
    given_up: u64,
}

/// Disables the webhooks `crossed` names, as the disable rule chose them in `tx`, cancelling
/// their waiting deliveries and queueing their notifications; returns how many it disabled (not
/// those another sender disabled first).
async fn disable_webhooks(
    tx: &Transaction<'_>,
    crossed: &[Uuid],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let disabled = store::webhooks::disable(tx, crossed, now).await?;
    if disabled.is_empty() {
        return Ok(0);
    }
    let notifications: Vec<(Uuid, Vec<u8>)> = disabled
        .iter()
        .map(|webhook| {
            tracing::warn!(webhook_id = %webhook.webhook_id, "webhook disabled after failing for DISABLE_AFTER");
            let message = disable::notification(webhook, now);
            let body = serde_json::to_vec(&message).expect("notification serialises");
            (webhook.webhook_id, body)
        })
        .collect();
    store::outbox::queue(tx, &notifications, now).await?;
    Ok(disabled.len() as u64)
}
