//! Every metric the dispatcher exports, declared in one place. Labels are small fixed sets.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntGauge, Opts, Registry};
use webhooks_core::labels::{CounterBy, LabelValue};

/// The `outcome` label of `events_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// Matched at least one webhook.
    Accepted,
    Unmatched,
    /// Dead-lettered: not a valid event.
    Rejected,
}

impl LabelValue for EventOutcome {
    const ALL: &'static [Self] = &[Self::Accepted, Self::Unmatched, Self::Rejected];
    fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Unmatched => "unmatched",
            Self::Rejected => "rejected",
        }
    }
}

/// The `status` label of `api_requests_total`: the class of the answer's status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusClass {
    Success,
    ClientError,
    ServerError,
    Other,
}

impl StatusClass {
    pub fn of(status: u16) -> Self {
        match status {
            200..=299 => Self::Success,
            400..=499 => Self::ClientError,
            500..=599 => Self::ServerError,
            _ => Self::Other,
        }
    }
}

impl LabelValue for StatusClass {
    const ALL: &'static [Self] = &[
        Self::Success,
        Self::ClientError,
        Self::ServerError,
        Self::Other,
    ];
    fn as_str(self) -> &'static str {
        match self {
            Self::Success => "2xx",
            Self::ClientError => "4xx",
            Self::ServerError => "5xx",
            Self::Other => "other",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Domain events consumed, by outcome: accepted (matched at least one webhook), unmatched, rejected.
    pub events: CounterBy<EventOutcome>,
    /// Deliveries recorded and handed to the senders.
    pub deliveries_created: IntCounter,
    /// Seconds to process one batch of events (parse, record, hand off, ack).
    pub batch_seconds: Histogram,
    /// Events per processed batch.
    pub batch_events: Histogram,
    /// Enabled webhooks in this instance's matching index.
    pub index_webhooks: IntGauge,
    /// Management API requests, by status class.
    pub api_requests: CounterBy<StatusClass>,
    /// Deliveries handed back to the senders by replays.
    pub deliveries_replayed: IntCounter,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("webhooks_dispatcher".into()), None)
            .expect("valid namespace");
        let events = CounterBy::new(
            Opts::new("events_total", "Domain events consumed, by outcome."),
            "outcome",
        )
        .expect("valid metric");
        let deliveries_created = IntCounter::new(
            "deliveries_created_total",
            "Deliveries recorded and handed to the senders.",
        )
        .expect("valid metric");
        let batch_seconds = Histogram::with_opts(
            HistogramOpts::new("batch_seconds", "Seconds to process one batch of events.").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
        )
        .expect("valid metric");
        let batch_events = Histogram::with_opts(
            HistogramOpts::new("batch_events", "Events per processed batch.").buckets(vec![
                1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0,
            ]),
        )
        .expect("valid metric");
        let index_webhooks = IntGauge::new(
            "index_webhooks",
            "Enabled webhooks in this instance's matching index.",
        )
        .expect("valid metric");
        let api_requests = CounterBy::new(
            Opts::new(
                "api_requests_total",
                "Management API requests, by status class.",
            ),
            "status",
        )
        .expect("valid metric");
        let deliveries_replayed = IntCounter::new(
            "deliveries_replayed_total",
            "Deliveries handed back to the senders by replays.",
        )
        .expect("valid metric");
        for collector in [
            events.collector(),
            Box::new(deliveries_created.clone()),
            Box::new(batch_seconds.clone()),
            Box::new(batch_events.clone()),
            Box::new(index_webhooks.clone()),
            api_requests.collector(),
            Box::new(deliveries_replayed.clone()),
        ] {
            registry.register(collector).expect("unique metric");
        }
        Self {
            registry,
            events,
            deliveries_created,
            batch_seconds,
            batch_events,
            index_webhooks,
            api_requests,
            deliveries_replayed,
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
        for outcome in EventOutcome::ALL.iter().map(|o| o.as_str()) {
            let line = format!("webhooks_dispatcher_events_total{{outcome=\"{outcome}\"}} 0");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
        for class in StatusClass::ALL.iter().map(|c| c.as_str()) {
            let line = format!("webhooks_dispatcher_api_requests_total{{status=\"{class}\"}} 0");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn a_status_falls_in_its_class() {
        let classes = [200, 204, 301, 404, 422, 500, 503, 101].map(StatusClass::of);
        assert_eq!(
            classes.map(StatusClass::as_str),
            ["2xx", "2xx", "other", "4xx", "4xx", "5xx", "5xx", "other"]
        );
    }
}
