//! Where the time goes inside the services, from their own `/metrics` scraped before and after a
//! phase: the dispatcher's batches (`webhooks_dispatcher_batch_seconds`, `_batch_events`) and the
//! sender's attempts (`webhooks_sender_attempt_seconds`), claims by source, deferrals and retries.

use webhooks_harness::metrics::Scrape;

/// Per-stage figures of one phase (differences between two scrapes).
#[derive(Clone, Debug, Default)]
pub struct Stages {
    pub batches: f64,
    pub events_per_batch: f64,
    pub ms_per_batch: f64,
    /// Share of the phase's wall time the dispatcher spent inside batches.
    pub dispatcher_busy: f64,
    pub attempts: f64,
    pub failed_attempts: f64,
    pub ms_per_attempt: f64,
    pub claimed_queue: f64,
    pub claimed_scheduler: f64,
    pub deferred: f64,
    pub retries: f64,
}

const D: &str = "webhooks_dispatcher_";
const S: &str = "webhooks_sender_";

impl Stages {
    /// What happened between the `before` and `after` scrapes of each service over `wall_s` seconds.
    pub fn between(
        dispatcher: (&Scrape, &Scrape),
        sender: (&Scrape, &Scrape),
        wall_s: f64,
    ) -> Self {
        let d = |name: &str| {
            dispatcher.1.sum(&format!("{D}{name}")) - dispatcher.0.sum(&format!("{D}{name}"))
        };
        let s =
            |name: &str| sender.1.sum(&format!("{S}{name}")) - sender.0.sum(&format!("{S}{name}"));
        let s_label = |name: &str, label: &str, value: &str| {
            let name = format!("{S}{name}");
            sender.1.labelled(&name, label, value) - sender.0.labelled(&name, label, value)
        };
        let batches = d("batch_seconds_count");
        let batch_seconds = d("batch_seconds_sum");
        let attempts = s("attempt_seconds_count");
        Self {
            batches,
            events_per_batch: ratio(d("batch_events_sum"), batches),
            ms_per_batch: ratio(batch_seconds * 1e3, batches),
            dispatcher_busy: ratio(batch_seconds, wall_s),
            attempts,
            failed_attempts: s_label("attempts_total", "outcome", "failure"),
            ms_per_attempt: ratio(s("attempt_seconds_sum") * 1e3, attempts),
            // Carried whole or claimed, both taken from the queue.
            claimed_queue: s_label("deliveries_claimed_total", "source", "queue")
                + s_label("deliveries_claimed_total", "source", "handoff"),
            claimed_scheduler: s_label("deliveries_claimed_total", "source", "scheduler"),
            deferred: s("deliveries_deferred_total"),
            retries: s("retries_scheduled_total"),
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}
