//! Serving one router on ports of 127.0.0.1 the kernel chooses, counting the connections accepted,
//! until dropped.

use anyhow::Context;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The listeners; dropping them stops serving at once (handlers that never answer included).
pub struct Listeners {
    pub addrs: Vec<SocketAddr>,
    accepted: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// A listener counting the connections it accepts.
struct Counting {
    listener: tokio::net::TcpListener,
    accepted: Arc<AtomicUsize>,
}

impl axum::serve::Listener for Counting {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let accepted = axum::serve::Listener::accept(&mut self.listener).await;
        self.accepted.fetch_add(1, Ordering::Relaxed);
        accepted
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl Listeners {
    /// Serves `app` on `ports` fresh ports (at least one): each is a distinct endpoint to the
    /// sender's per-endpoint limits.
    pub async fn start(ports: usize, app: Router) -> anyhow::Result<Self> {
        let accepted = Arc::new(AtomicUsize::new(0));
        let (mut addrs, mut tasks) = (Vec::new(), Vec::new());
        for _ in 0..ports.max(1) {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .context("binding a receiver port")?;
            addrs.push(listener.local_addr().context("receiver address")?);
            let listener = Counting {
                listener,
                accepted: accepted.clone(),
            };
            let app = app.clone();
            tasks.push(tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, app).await {
                    eprintln!("receiver stopped: {e}");
                }
            }));
        }
        Ok(Self {
            addrs,
            accepted,
            tasks,
        })
    }

    /// TCP connections accepted so far, over every port.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        // Aborting, not a graceful stop: a handler that never answers would never let one end.
        for task in &self.tasks {
            task.abort();
        }
    }
}
