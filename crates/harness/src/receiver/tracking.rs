//! The receiver of the benchmark and the soak, on many ports (one per webhook, as separate
//! subscribers are): `POST /w/{k}` answers 200 at once, `POST /hang/{k}` never answers, and
//! `POST /beside/{k}` answers 200 at once and only counts (webhooks whose deliveries are load,
//! not measured). It keeps no request: every healthy arrival goes to the [`Tracker`], which
//! matches it to its publish by the [`Marks`](crate::marks::Marks) in its payload.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::listen::Listeners;
use super::tracker::Tracker;

pub struct Tracking {
    listeners: Listeners,
    tracker: Arc<Tracker>,
}

impl Tracking {
    /// Listens on `ports` fresh ports.
    pub async fn start(ports: usize) -> anyhow::Result<Self> {
        let tracker = Arc::new(Tracker::default());
        let app = Router::new()
            .route("/w/{k}", post(healthy))
            .route("/hang/{k}", post(hang))
            .route("/beside/{k}", post(beside))
            .with_state(tracker.clone());
        let listeners = Listeners::start(ports, app).await?;
        Ok(Self { listeners, tracker })
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
        let addrs = &self.listeners.addrs;
        format!("http://{}/{path}/{k}", addrs[port % addrs.len()])
    }

    pub fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }
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
    tracker.beside_arrivals().fetch_add(1, Ordering::Relaxed);
    StatusCode::OK
}

async fn hang(State(tracker): State<Arc<Tracker>>) -> StatusCode {
    tracker.hang_arrivals().fetch_add(1, Ordering::Relaxed);
    std::future::pending::<()>().await;
    StatusCode::OK
}
