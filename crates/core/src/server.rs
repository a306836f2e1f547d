//! The HTTP side every service has: `/healthz` (the process answers), `/readyz` (200 only while the
//! broker and the database are reachable) and `/metrics` (Prometheus text format).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use deadpool_postgres::Pool;
use prometheus::{Encoder, Registry, TextEncoder};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// What `/readyz` looks at: the broker session's own flag and a live database probe.
#[derive(Clone)]
pub struct Readiness {
    broker_up: Arc<AtomicBool>,
    pool: Pool,
}

impl Readiness {
    pub fn new(pool: Pool) -> Self {
        Self {
            broker_up: Arc::new(AtomicBool::new(false)),
            pool,
        }
    }

    /// Set by the broker session loop when it connects and when it loses the connection.
    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.store(up, Ordering::SeqCst);
    }

    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::SeqCst)
    }

    pub async fn is_ready(&self) -> bool {
        self.broker_up() && crate::db::is_reachable(&self.pool).await
    }
}

#[derive(Clone)]
struct Ops {
    readiness: Readiness,
    registry: Registry,
}

/// The operational routes, to merge with a service's own.
pub fn ops_router(readiness: Readiness, registry: Registry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ops {
            readiness,
            registry,
        })
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    if ops.readiness.is_ready().await {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: broker or database unreachable",
        )
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    let mut out = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&ops.registry.gather(), &mut out) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(header::CONTENT_TYPE, encoder.format_type().to_owned())],
        out,
    )
        .into_response()
}

/// Binds `addr` (port 0 picks a free one) and returns the bound address with the serving future,
/// which ends once `shutdown` is cancelled and open requests finish.
pub async fn bind(
    addr: SocketAddr,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, impl Future<Output = std::io::Result<()>>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let serve = async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
    };
    Ok((local, serve))
}
