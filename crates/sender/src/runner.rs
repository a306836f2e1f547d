//! Runs claimed jobs: each gets a slot at its endpoint, host and project (or is held back), one
//! attempt, and its outcome handed to the recorder. Every job holds one permit of the
//! process-wide in-flight limit from before its claim until its outcome is queued.

use std::time::Instant;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio_util::task::TaskTracker;
use uuid::Uuid;
use webhooks_core::clock::Clock;

use crate::attempt::Sender;
use crate::claim::Job;
use crate::limiter::{Finished, Limiter, Route};
use crate::metrics::{AttemptOutcome, Metrics};
use crate::outcome::Outcome;

#[derive(Clone)]
pub struct Runner {
    pub sender: Sender,
    pub limiter: Limiter,
    pub outcomes: mpsc::Sender<Outcome>,
    pub clock: Clock,
    pub metrics: Metrics,
    /// Tracks running jobs so shutdown can wait for them.
    pub jobs: TaskTracker,
}

impl Runner {
    /// Starts every job; `permits` holds at least one permit per job.
    pub fn run(&self, jobs: Vec<Job>, mut permits: OwnedSemaphorePermit) {
        for job in jobs {
            let Some(permit) = permits.split(1) else {
                // Cannot happen: callers claim at most as many jobs as they hold permits.
                tracing::error!("job without a permit; leaving it to the scheduler");
                continue;
            };
            let runner = self.clone();
            self.jobs.spawn(async move {
                let outcome = runner.handle(job).await;
                // If the recorder is gone the process is stopping; the lease brings the job back.
                let _ = runner.outcomes.send(outcome).await;
                drop(permit);
            });
        }
    }

    async fn handle(&self, job: Job) -> Outcome {
        let host = job.url.host();
        let route = Route {
            endpoint: job.url.endpoint(),
            host: &host,
            project: &job.project,
        };
        self.limiter.learn(job.webhook_id, route);
        let fresh_since = job.fresh_since(self.clock.now());
        let mut slot = match self
            .limiter
            .enter(route, job.delivery_id, fresh_since)
            .await
        {
            Ok(slot) => slot,
            Err(held) => {
                self.metrics.deferred.inc();
                return Outcome::Deferred {
                    delivery_id: job.delivery_id,
                    until: held.until(),
                };
            }
        };
        self.release(slot.take_released()).await;
        let at = self.clock.now();
        self.metrics.in_flight.inc();
        let started = Instant::now();
        let attempt = self.sender.attempt(&job, at.timestamp()).await;
        self.metrics.in_flight.dec();
        self.metrics
            .attempt_seconds
            .observe(started.elapsed().as_secs_f64());
        let outcome = if attempt.success {
            AttemptOutcome::Success
        } else {
            AttemptOutcome::Failure
        };
        self.metrics.attempts.with(outcome).inc();
        tracing::debug!(
            delivery_id = %job.delivery_id,
            webhook_id = %job.webhook_id,
            success = attempt.success,
            error = attempt.error.as_ref().map(ToString::to_string).unwrap_or_default(),
            "attempt made"
        );
        let finished = if attempt.success {
            Finished::Success
        } else if attempt.reached_network {
            Finished::Failure {
                answered: attempt.status_code.is_some(),
            }
        } else {
            Finished::NotSent
        };
        self.release(self.limiter.finish(slot, finished)).await;
        Outcome::Attempted {
            delivery_id: job.delivery_id,
            webhook_id: job.webhook_id,
            attempts_before: job.attempt_count,
            first_attempt_at: job.first_attempt_at,
            at,
            attempt,
        }
    }

    /// Makes deliveries that a closed circuit had held back due now.
    async fn release(&self, deliveries: Vec<Uuid>) {
        if deliveries.is_empty() {
            return;
        }
        let at = self.clock.now();
        for delivery_id in deliveries {
            // If the recorder is gone the process is stopping; they are due at their held time.
            let _ = self
                .outcomes
                .send(Outcome::Released { delivery_id, at })
                .await;
        }
    }
}
