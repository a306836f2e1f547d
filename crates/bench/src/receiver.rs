//! The benchmark's own webhook receiver: listeners on 127.0.0.1 ports chosen by the kernel,
//! `POST /w/{k}` answers 200 at once, `POST /hang/{k}` never answers, and `POST /beside/{k}`
//! answers 200 at once and only counts (webhooks whose deliveries are load, not measured).
//!
//! Every healthy arrival is matched to its publish through the payload the publisher wrote
//! (`phase`, `seq`, `sent_ns`): the [`Tracker`] counts each (webhook, event) once, notes duplicates
//! and stragglers of other phases, and keeps the publish→receive latency of each delivery.

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use serde::Deserialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Nanoseconds since the Unix epoch: the one clock publisher and receiver share.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

pub struct Receiver {
    ports: Vec<u16>,
    tracker: Arc<Tracker>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Receiver {
    /// Listens on `ports` fresh ports (each a distinct endpoint for the sender's per-endpoint limits).
    pub async fn start(ports: usize) -> anyhow::Result<Self> {
        let tracker = Arc::new(Tracker::default());
        let app = Router::new()
            .route("/w/{k}", post(healthy))
            .route("/hang/{k}", post(hang))
            .route("/beside/{k}", post(beside))
            .with_state(tracker.clone());
        let mut bound = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..ports.max(1) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding the receiver")?;
            bound.push(listener.local_addr().context("receiver address")?.port());
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("receiver stopped: {e}");
                }
            }));
        }
        Ok(Self {
            ports: bound,
            tracker,
            tasks,
        })
    }

    /// The URL of webhook `k`: its own port (round robin over the listeners) and path.
    pub fn url(&self, k: usize, hanging: bool) -> String {
        self.at(k, if hanging { "hang" } else { "w" }, k)
    }

    /// The URL of webhook `k` answering at once but not measured: its own port, `/beside/{k}`.
    pub fn beside_url(&self, k: usize) -> String {
        self.at(k, "beside", k)
    }

    /// The URL of healthy webhook `k`'s path on listener `port` (round robin).
    pub fn port_url(&self, port: usize, k: usize) -> String {
        self.at(port, "w", k)
    }

    /// `/{path}/{k}` on listener `port` (round robin over the listeners).
    fn at(&self, port: usize, path: &str, k: usize) -> String {
        let port = self.ports[port % self.ports.len()];
        format!("http://127.0.0.1:{port}/{path}/{k}")
    }

    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        // Aborting (not a graceful stop): the hanging handlers would never let one finish.
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[derive(Deserialize)]
struct Body {
    payload: Marks,
}

/// What the publisher writes into each event's payload.
#[derive(Deserialize)]
struct Marks {
    phase: u32,
    seq: u64,
    sent_ns: u64,
}

/// Microseconds from an event's publish (the `sent_ns` the publisher wrote into its payload) to
/// `arrived_ns`; `None` for a body without the marks.
pub fn latency_us(body: &[u8], arrived_ns: u64) -> Option<u32> {
    let marks = serde_json::from_slice::<Body>(body).ok()?.payload;
    Some(u32::try_from(arrived_ns.saturating_sub(marks.sent_ns) / 1_000).unwrap_or(u32::MAX))
}

async fn healthy(
    State(tracker): State<Arc<Tracker>>,
    Path(k): Path<usize>,
    body: Bytes,
) -> StatusCode {
    tracker.record(k, &body);
    StatusCode::OK
}

async fn beside(State(tracker): State<Arc<Tracker>>) -> StatusCode {
    tracker.beside_arrivals.fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

async fn hang(State(tracker): State<Arc<Tracker>>) -> StatusCode {
    tracker.hang_arrivals.fetch_add(1, Ordering::Relaxed);
    std::future::pending::<()>().await;
    StatusCode::OK
}

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

    fn record(&self, k: usize, body: &[u8]) {
        let arrived = now_ns();
        let marks = serde_json::from_slice::<Body>(body).ok().map(|b| b.payload);
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
    fn latency_is_read_from_the_publish_mark() {
        let body = body(1, 0);
        let sent_ns = serde_json::from_slice::<Body>(&body)
            .unwrap()
            .payload
            .sent_ns;
        assert_eq!(latency_us(&body, sent_ns + 2_500_000), Some(2_500));
        assert_eq!(latency_us(b"not json", sent_ns), None);
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
