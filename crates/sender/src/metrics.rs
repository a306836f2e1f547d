//! Every metric the sender exports, declared in one place. Labels are small fixed sets.

use prometheus::core::Collector;
use prometheus::{Gauge, Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};
use webhooks_core::handoff_auth::Refusal;
use webhooks_core::labels::{CounterBy, LabelValue};

/// The `outcome` label of `attempts_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttemptOutcome {
    Success,
    Failure,
}

impl LabelValue for AttemptOutcome {
    const ALL: &'static [Self] = &[Self::Success, Self::Failure];
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// The `source` label of `deliveries_claimed_total`: where a delivery taken for an attempt
/// came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimSource {
    /// Carried whole by a fresh hand-off message, no claim.
    Handoff,
    /// Claimed from a hand-off message.
    Queue,
    /// Claimed by the scheduler: a due retry, a lost hand-off.
    Scheduler,
}

impl LabelValue for ClaimSource {
    const ALL: &'static [Self] = &[Self::Handoff, Self::Queue, Self::Scheduler];
    fn as_str(self) -> &'static str {
        match self {
            Self::Handoff => "handoff",
            Self::Queue => "queue",
            Self::Scheduler => "scheduler",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// HTTP attempts made, by outcome: success or failure.
    pub attempts: CounterBy<AttemptOutcome>,
    /// Seconds from sending a request to its outcome.
    pub attempt_seconds: Histogram,
    /// Deliveries taken for an attempt, by source: handoff (carried whole by a fresh hand-off
    /// message, no claim), queue (claimed from a hand-off message) or scheduler (due retry, lost
    /// hand-off).
    pub claimed: CounterBy<ClaimSource>,
    /// Failed deliveries scheduled for another attempt.
    pub retries_scheduled: IntCounter,
    /// Deliveries given up after failing for DISABLE_AFTER.
    pub deliveries_given_up: IntCounter,
    /// Deliveries held back by an endpoint's, host's or project's limit or an open circuit, to be
    /// tried later.
    pub deferred: IntCounter,
    /// Webhooks disabled for failing too long.
    pub webhooks_disabled: IntCounter,
    /// Disable notifications published.
    pub notifications_published: IntCounter,
    /// HTTP requests in flight now.
    pub in_flight: IntGauge,
    /// Deliveries due now and under no lease: what the scheduler has yet to take (see
    /// [`crate::backlog`], which counts at most [`crate::backlog::COUNTED_MOST`]).
    pub deliveries_due: IntGauge,
    /// Deliveries waiting for a retry (state `retrying`), due or not.
    pub deliveries_retrying: IntGauge,
    /// How long the longest-due of the deliveries in `deliveries_due` has been due; 0 when none is.
    pub oldest_due_seconds: Gauge,
    /// Deliveries parked for a moment, waiting for a full endpoint's, host's or project's first
    /// answer (see [`crate::intake::Parked`]).
    pub deliveries_parked: IntGauge,
    /// Hand-off messages refused unread and dead-lettered, by reason: missing (no signature),
    /// malformed, mismatch (signed with no key this sender holds).
    pub handoffs_refused: CounterBy<Refusal>,
}

impl Metrics {
    pub fn new() -> Self {
        let registry =
            Registry::new_custom(Some("webhooks_sender".into()), None).expect("valid namespace");
        let attempts = CounterBy::new(
            Opts::new("attempts_total", "HTTP attempts made, by outcome."),
            "outcome",
        )
        .expect("valid metric");
        let attempt_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "attempt_seconds",
                "Seconds from sending a request to its outcome.",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0,
            ]),
        )
        .expect("valid metric");
        let claimed = CounterBy::new(
            Opts::new(
                "deliveries_claimed_total",
                "Deliveries taken for an attempt, by source.",
            ),
            "source",
        )
        .expect("valid metric");
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let retries_scheduled = counter(
            "retries_scheduled_total",
            "Failed deliveries scheduled for another attempt.",
        );
        let deliveries_given_up = counter(
            "deliveries_given_up_total",
            "Deliveries given up after failing for DISABLE_AFTER.",
        );
        let deferred = counter(
            "deliveries_deferred_total",
            "Deliveries held back by an endpoint's, host's or project's limit or an open circuit.",
        );
        let webhooks_disabled = counter(
            "webhooks_disabled_total",
            "Webhooks disabled for failing too long.",
        );
        let notifications_published = counter(
            "notifications_published_total",
            "Disable notifications published.",
        );
        let in_flight = IntGauge::new("in_flight_requests", "HTTP requests in flight now.")
            .expect("valid metric");
        let deliveries_due = IntGauge::new(
            "deliveries_due",
            "Deliveries due now and under no lease, not yet taken (counted up to 100000).",
        )
        .expect("valid metric");
        let deliveries_retrying = IntGauge::new(
            "deliveries_retrying",
            "Deliveries waiting for a retry (counted up to 100000, soonest due first).",
        )
        .expect("valid metric");
        let oldest_due_seconds = Gauge::new(
            "oldest_due_seconds",
            "How long the longest-due delivery not yet taken has been due.",
        )
        .expect("valid metric");
        let deliveries_parked = IntGauge::new(
            "deliveries_parked",
            "Deliveries parked for a moment, waiting for a full endpoint's, host's or project's first answer.",
        )
        .expect("valid metric");
        let handoffs_refused = CounterBy::new(
            Opts::new(
                "handoffs_refused_total",
                "Hand-off messages without a valid signature, dead-lettered unread, by reason.",
            ),
            "reason",
        )
        .expect("valid metric");
        let collectors: Vec<Box<dyn Collector>> = vec![
            handoffs_refused.collector(),
            Box::new(deliveries_parked.clone()),
            attempts.collector(),
            Box::new(attempt_seconds.clone()),
            claimed.collector(),
            Box::new(retries_scheduled.clone()),
            Box::new(deliveries_given_up.clone()),
            Box::new(deferred.clone()),
            Box::new(webhooks_disabled.clone()),
            Box::new(notifications_published.clone()),
            Box::new(in_flight.clone()),
            Box::new(deliveries_due.clone()),
            Box::new(deliveries_retrying.clone()),
            Box::new(oldest_due_seconds.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("unique metric");
        }
        Self {
            registry,
            attempts,
            attempt_seconds,
            claimed,
            retries_scheduled,
            deliveries_given_up,
            deferred,
            webhooks_disabled,
            notifications_published,
            in_flight,
            deliveries_due,
            deliveries_retrying,
            oldest_due_seconds,
            deliveries_parked,
            handoffs_refused,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_labelled_series_is_exported_from_the_start() {
        let metrics = Metrics::new();
        let text = prometheus::TextEncoder::new()
            .encode_to_string(&metrics.registry.gather())
            .expect("text");
        for outcome in AttemptOutcome::ALL.iter().map(|o| o.as_str()) {
            let line = format!("webhooks_sender_attempts_total{{outcome=\"{outcome}\"}} 0");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
        for source in ClaimSource::ALL.iter().map(|s| s.as_str()) {
            let line = format!("webhooks_sender_deliveries_claimed_total{{source=\"{source}\"}} 0");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
        for reason in Refusal::ALL.iter().map(|r| r.as_str()) {
            let line = format!("webhooks_sender_handoffs_refused_total{{reason=\"{reason}\"}} 0");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
    }
}
