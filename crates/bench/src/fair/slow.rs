//! What the fairness scenario adds to its world: the host that answers slowly, counting the
//! requests it gets and the most it answers at once.

use anyhow::Context;
use axum::Router;
use axum::routing::post;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The host that answers slowly: requests so far, answering now, the most at once.
pub struct SlowHost {
    pub port: u16,
    counts: Arc<[AtomicUsize; 3]>,
    task: tokio::task::JoinHandle<()>,
}

impl SlowHost {
    /// Listens on a fresh port, answering every POST with 200 after `answer`.
    pub async fn start(answer: Duration) -> anyhow::Result<Self> {
        let counts: Arc<[AtomicUsize; 3]> = Arc::default();
        let shared = counts.clone();
        let app = Router::new().route(
            "/{*path}",
            post(move || {
                let counts = shared.clone();
                async move {
                    counts[0].fetch_add(1, Ordering::SeqCst);
                    let now = counts[1].fetch_add(1, Ordering::SeqCst) + 1;
                    counts[2].fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(answer).await;
                    counts[1].fetch_sub(1, Ordering::SeqCst);
                    "slow"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("binding the slow host")?;
        let port = listener.local_addr().context("slow host address")?.port();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                eprintln!("slow host stopped: {e}");
            }
        });
        Ok(Self { port, counts, task })
    }

    /// Counts anew from here: requests from 0, the most at once from those answered now.
    pub fn reset(&self) {
        self.counts[0].store(0, Ordering::SeqCst);
        let now = self.counts[1].load(Ordering::SeqCst);
        self.counts[2].store(now, Ordering::SeqCst);
    }

    /// Requests since the reset, and the most answered at once.
    pub fn counted(&self) -> (usize, usize) {
        let load = |i: usize| self.counts[i].load(Ordering::SeqCst);
        (load(0), load(2))
    }

    /// Whether it answered everything within `within`.
    pub async fn idle(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.counts[1].load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.counts[1].load(Ordering::SeqCst) == 0
    }
}

impl Drop for SlowHost {
    fn drop(&mut self) {
        self.task.abort();
    }
}
