//! Arrivals of one phase of a run, matched to their publishes by the marks in their payload: each
//! (webhook, event) pair counted once, duplicates and stragglers of other phases noted apart, and
//! the publish→receive latency of each delivery kept.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::marks::{Marks, now_ns};

/// Arrivals of the current phase.
#[derive(Default)]
pub struct Tracker {
    delivered: AtomicU64,
    hang_arrivals: AtomicU64,
    beside_arrivals: AtomicU64,
    window: Mutex<Window>,
}

#[derive(Default)]
struct Window {
    phase: u32,
    events: u64,
    webhooks: usize,
    seen: Vec<bool>,
    latencies_us: Vec<u32>,
    duplicates: u64,
    strays: u64,
    first_ns: Option<u64>,
    last_ns: u64,
}

/// What arrived during one phase.
#[derive(Clone, Debug, Default)]
pub struct Arrivals {
    /// Distinct (webhook, event) pairs received.
    pub unique: u64,
    /// Repeated arrivals of a pair already received (at-least-once delivery).
    pub duplicates: u64,
    /// Arrivals that belong to no pair of this phase (e.g. late retries of an earlier phase).
    pub strays: u64,
    /// Requests to hanging paths since the phase began.
    pub hang_arrivals: u64,
    /// Requests to `/beside` paths since the phase began.
    pub beside_arrivals: u64,
    /// Publish→receive latency of each distinct delivery, in microseconds, sorted.
    pub latencies_us: Vec<u32>,
    pub first_ns: Option<u64>,
    pub last_ns: u64,
}

impl Tracker {
    /// Starts a phase: `events` events (seq 0..events), each expected at webhooks 0..webhooks.
    pub fn begin(&self, phase: u32, webhooks: usize, events: u64) {
        let mut window = self.window.lock().expect("tracker lock");
        let slots = usize::try_from(events).unwrap_or(usize::MAX) * webhooks;
        *window = Window {
            phase,
            events,
            webhooks,
            seen: vec![false; slots],
            latencies_us: Vec::with_capacity(slots),
            ..Window::default()
        };
        self.delivered.store(0, Ordering::Relaxed);
        self.hang_arrivals.store(0, Ordering::Relaxed);
        self.beside_arrivals.store(0, Ordering::Relaxed);
    }

    /// The count of requests to hanging paths, which the receiver adds to.
    pub(super) fn hang_arrivals(&self) -> &AtomicU64 {
        &self.hang_arrivals
    }

    /// The count of requests to `/beside` paths, which the receiver adds to.
    pub(super) fn beside_arrivals(&self) -> &AtomicU64 {
        &self.beside_arrivals
    }

    /// Distinct deliveries of this phase so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// The (webhook, seq) pairs of this phase that have not arrived: how many, and the first
    /// `limit` of them in seq order.
    pub fn missing(&self, limit: usize) -> (u64, Vec<(usize, u64)>) {
        let window = self.window.lock().expect("tracker lock");
        let events = usize::try_from(window.events).unwrap_or(usize::MAX);
        let mut first = Vec::new();
        let mut count = 0;
        for seq in 0..events {
            for webhook in 0..window.webhooks {
                if !window.seen[webhook * events + seq] {
                    count += 1;
                    if first.len() < limit {
                        first.push((webhook, seq as u64));
                    }
                }
            }
        }
        (count, first)
    }

    /// Ends the phase and returns what arrived.
    pub fn finish(&self) -> Arrivals {
        let mut window = self.window.lock().expect("tracker lock");
        let mut latencies = std::mem::take(&mut window.latencies_us);
        latencies.sort_unstable();
        Arrivals {
            unique: latencies.len() as u64,
            duplicates: window.duplicates,
            strays: window.strays,
            hang_arrivals: self.hang_arrivals.load(Ordering::Relaxed),
            beside_arrivals: self.beside_arrivals.load(Ordering::Relaxed),
            latencies_us: latencies,
            first_ns: window.first_ns,
            last_ns: window.last_ns,
        }
    }

    /// Counts an arrival at webhook `k`.
    pub fn record(&self, k: usize, body: &[u8]) {
        let arrived = now_ns();
        let marks = Marks::read(body);
        let mut window = self.window.lock().expect("tracker lock");
        let Some(marks) = marks
            .filter(|m| m.phase == window.phase && m.seq < window.events && k < window.webhooks)
        else {
            window.strays += 1;
            return;
        };
        let slot = k * usize::try_from(window.events).unwrap_or(usize::MAX)
            + usize::try_from(marks.seq).unwrap_or(usize::MAX);
        if std::mem::replace(&mut window.seen[slot], true) {
            window.duplicates += 1;
            return;
        }
        let latency_us = arrived.saturating_sub(marks.sent_ns) / 1_000;
        window
            .latencies_us
            .push(u32::try_from(latency_us).unwrap_or(u32::MAX));
        window.first_ns.get_or_insert(arrived);
        window.last_ns = window.last_ns.max(arrived);
        self.delivered.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(phase: u32, seq: u64) -> Vec<u8> {
        format!(r#"{{"event_name":"run.started","timestamp":1,"payload":{{"phase":{phase},"seq":{seq},"sent_ns":{}}},"team_member_id":null,"project_code":"B"}}"#, now_ns())
            .into_bytes()
    }

    #[test]
    fn counts_each_pair_once_and_ignores_other_phases() {
        let tracker = Tracker::default();
        tracker.begin(2, 2, 3);
        tracker.record(0, &body(2, 0));
        tracker.record(1, &body(2, 0));
        tracker.record(1, &body(2, 0));
        tracker.record(0, &body(1, 1));
        tracker.record(0, &body(2, 7));
        tracker.record(0, b"not json");
        assert_eq!(tracker.delivered(), 2);
        let arrivals = tracker.finish();
        assert_eq!(
            (arrivals.unique, arrivals.duplicates, arrivals.strays),
            (2, 1, 3)
        );
        assert!(arrivals.first_ns.is_some());
        assert_eq!(tracker.missing(1), (4, vec![(0, 1)]));
    }
}
