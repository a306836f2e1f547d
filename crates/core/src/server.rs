//! The HTTP side every service has: `/healthz` (the process answers), `/readyz` (200 only while the
//! broker and the database are reachable) and `/metrics` (Prometheus text format): the service's
//! own metrics and those every service has (see [`Common`]).

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use deadpool_postgres::Pool;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
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

/// The metrics every service exports beside its own, under the same names whichever service it
/// is (the scrape target tells them apart): `webhooks_ready`, `webhooks_build_info` and, on
/// Linux, the process's memory, CPU and file descriptors (`process_*`).
#[derive(Clone)]
pub struct Common {
    pub registry: Registry,
    /// 1 while `/readyz` would answer 200, set at each scrape.
    pub ready: IntGauge,
}

impl Common {
    /// `service` names the binary (`webhooks-dispatcher`, `webhooks-sender`) in the build info.
    pub fn new(service: &str) -> Self {
        let registry = Registry::new();
        let ready = IntGauge::new(
            "webhooks_ready",
            "1 while the broker and the database are reachable (what /readyz answers), else 0.",
        )
        .expect("valid metric");
        let build_info = IntGaugeVec::new(
            Opts::new(
                "webhooks_build_info",
                "Always 1; the labels name the running service and its version.",
            ),
            &["service", "version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[service, env!("CARGO_PKG_VERSION")])
            .set(1);
        registry
            .register(Box::new(ready.clone()))
            .expect("unique metric");
        registry
            .register(Box::new(build_info))
            .expect("unique metric");
        // process_resident_memory_bytes, process_cpu_seconds_total, process_open_fds, … read from
        // /proc at each scrape (Linux only: elsewhere the crate has no such collector).
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("unique metric");
        Self { registry, ready }
    }
}

#[derive(Clone)]
struct Ops {
    readiness: Readiness,
    registry: Registry,
    common: Common,
}

/// The operational routes, to merge with a service's own; `/metrics` serves `registry` (the
/// service's own metrics) and `common`.
pub fn ops_router(readiness: Readiness, registry: Registry, common: Common) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(Ops {
            readiness,
            registry,
            common,
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
    // The same check as /readyz (a flag and a `SELECT 1` bounded by 1 s), once per scrape.
    ops.common
        .ready
        .set(i64::from(ops.readiness.is_ready().await));
    let mut families = ops.registry.gather();
    families.extend(ops.common.registry.gather());
    let mut out = Vec::new();
    let encoder = TextEncoder::new();
    if let Err(e) = encoder.encode(&families, &mut out) {
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
