//! Every metric the dispatcher exports, declared in one place. Labels are small fixed sets.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The `outcome` label values of `events_total`.
pub const EVENT_OUTCOMES: [&str; 3] = ["accepted", "unmatched", "rejected"];
/// The `status` label values of `api_requests_total`.
pub const API_STATUS_CLASSES: [&str; 4] = ["2xx", "4xx", "5xx", "other"];

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Domain events consumed, by outcome: accepted (matched at least one webhook), unmatched, rejected.
    pub events: IntCounterVec,
    /// Deliveries recorded and handed to the senders.
    pub deliveries_created: IntCounter,
    /// Seconds to process one batch of events (parse, record, hand off, ack).
    pub batch_seconds: Histogram,
    /// Events per processed batch.
    pub batch_events: Histogram,
    /// Enabled webhooks in this instance's matching index.
    pub index_webhooks: IntGauge,
    /// Management API requests, by status class.
    pub api_requests: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("webhooks_dispatcher".into()), None)
            .expect("valid namespace");
        let events = IntCounterVec::new(
            Opts::new("events_total", "Domain events consumed, by outcome."),
            &["outcome"],
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
        let api_requests = IntCounterVec::new(
            Opts::new(
                "api_requests_total",
                "Management API requests, by status class.",
            ),
            &["status"],
        )
        .expect("valid metric");
        // Every series exists from the start, at 0: a rate() over one never counted is no rate.
        for outcome in EVENT_OUTCOMES {
            events.with_label_values(&[outcome]);
        }
        for class in API_STATUS_CLASSES {
            api_requests.with_label_values(&[class]);
        }
        for collector in [
            Box::new(events.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(deliveries_created.clone()),
            Box::new(batch_seconds.clone()),
            Box::new(batch_events.clone()),
            Box::new(index_webhooks.clone()),
            Box::new(api_requests.clone()),
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
        for outcome in EVENT_OUTCOMES {
            let line = format!("webhooks_dispatcher_events_total{{outcome=\"{outcome}\"}} 0");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
        for class in API_STATUS_CLASSES {
            let line = format!("webhooks_dispatcher_api_requests_total{{status=\"{class}\"}} 0");
            assert!(text.contains(&line), "{line} missing in\n{text}");
        }
    }
}
