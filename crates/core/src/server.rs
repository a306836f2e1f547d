//! The HTTP side every service has: `/healthz` (the process answers), `/readyz` (200 only while the
//! broker and the database are reachable) and `/metrics` (Prometheus text format): the service's
//! own metrics and those every service has (see [`Common`]). None of them waits on the database:
//! readiness is read from flags (see [`Readiness`]). They are served by [`crate::listener`].

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use deadpool_postgres::Pool;
use prometheus::{Encoder, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What `/readyz` looks at: the broker session's own flag and the database's, which a probe of
/// its own ([`Readiness::probe_database`]) keeps up to date. Reading them never waits, so neither
/// a probe nor a scrape ever queues behind the workers for a database connection, and a slow
/// database cannot make a probe time out.
#[derive(Clone)]
pub struct Readiness {
    broker_up: Arc<AtomicBool>,
    database_up: Arc<AtomicBool>,
    /// One connection, the probe's own.
    probe: Pool,
}

/// How often the database is probed; each probe has a second to answer.
pub const DATABASE_PROBE_EVERY: Duration = Duration::from_secs(1);

impl Readiness {
    /// Readiness probed over `probe`, a pool of one connection apart from the workers' pools.
    /// Not ready until the broker session says so (which it does once the database is set up)
    /// and a probe has answered.
    pub fn new(probe: Pool) -> Self {
        Self {
            broker_up: Arc::new(AtomicBool::new(false)),
            database_up: Arc::new(AtomicBool::new(false)),
            probe,
        }
    }

    /// Set by the broker session loop when it connects and when it loses the connection.
    pub fn set_broker_up(&self, up: bool) {
        self.broker_up.store(up, Ordering::SeqCst);
    }

    pub fn broker_up(&self) -> bool {
        self.broker_up.load(Ordering::SeqCst)
    }

    pub fn database_up(&self) -> bool {
        self.database_up.load(Ordering::SeqCst)
    }

    pub fn is_ready(&self) -> bool {
        self.broker_up() && self.database_up()
    }

    /// Probes the database every [`DATABASE_PROBE_EVERY`] (a `SELECT 1` bounded by a second)
    /// until `shutdown`, and records the answer for [`Readiness::is_ready`].
    pub async fn probe_database(self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(DATABASE_PROBE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = every.tick() => {}
            }
            let up = crate::db::is_reachable(&self.probe).await;
            if self.database_up.swap(up, Ordering::SeqCst) != up {
                tracing::info!(reachable = up, "database reachability changed");
            }
        }
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
    if ops.readiness.is_ready() {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: broker or database unreachable",
        )
    }
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    // What /readyz would answer now.
    ops.common.ready.set(i64::from(ops.readiness.is_ready()));
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use std::time::Instant;
    use tower::ServiceExt;

    async fn status(router: &Router, path: &str) -> StatusCode {
        let request = Request::get(path).body(Body::empty()).unwrap();
        router.clone().oneshot(request).await.unwrap().status()
    }

    #[tokio::test]
    async fn probes_answer_at_once_whatever_the_database_does() {
        // Nothing listens on port 1: the database there never answers.
        let database = crate::db::Database::new("postgres://postgres@127.0.0.1:1/webhooks", None)
            .expect("settings");
        let readiness = Readiness::new(database.pool(1, crate::db::Reads::Default).unwrap());
        let router = ops_router(readiness.clone(), Registry::new(), Common::new("test"));
        readiness.set_broker_up(true);
        let started = Instant::now();
        assert_eq!(status(&router, "/healthz").await, StatusCode::OK);
        assert_eq!(
            status(&router, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE,
            "ready before any probe answered"
        );
        assert_eq!(status(&router, "/metrics").await, StatusCode::OK);
        assert!(started.elapsed() < Duration::from_millis(200));

        // Once a probe has answered, /readyz says so without asking the database itself.
        readiness.database_up.store(true, Ordering::SeqCst);
        assert_eq!(status(&router, "/readyz").await, StatusCode::OK);

        // The probe finds the database unreachable, and /readyz follows.
        let stop = CancellationToken::new();
        let probe = tokio::spawn(readiness.clone().probe_database(stop.clone()));
        let deadline = Instant::now() + Duration::from_secs(5);
        while readiness.database_up() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!readiness.database_up(), "the probe did not notice");
        assert_eq!(
            status(&router, "/readyz").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), probe)
            .await
            .expect("the probe stops")
            .unwrap();
    }
}
