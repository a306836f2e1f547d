//! An installation whose database and broker are not there yet: both services start anyway,
//! answer `/healthz` but not `/readyz`, say why at each attempt, and become ready by themselves
//! once the backends come, without a restart.

use std::time::Duration;
use webhooks_tests::postgres::PrivatePostgres;
use webhooks_tests::rabbit::PrivateRabbit;
use webhooks_tests::receiver::Receiver;
use webhooks_tests::standalone::{Standalone, publish};

/// A node and a cluster take seconds to boot, and the services wait up to 5 s between attempts.
const LONG: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_started_before_their_backends_become_ready_when_they_come() {
    let pg = PrivatePostgres::create(None);
    let mut rabbit = PrivateRabbit::configure(None);
    let receiver = Receiver::start().await;
    let services = Standalone::spawn(&[
        ("DATABASE_URL", format!("{}/webhooks", pg.server_url())),
        ("AMQP_URL", rabbit.url()),
    ]);

    services.wait_both("/healthz", 200, crate::SOON).await;
    for (name, process) in services.both() {
        assert_eq!(
            services.status(process.addr, "/readyz").await,
            Some(503),
            "{name} ready without its backends"
        );
        // Each failed attempt is logged with its cause, not an empty one.
        process
            .wait_for_line(
                &format!("the {name} to log why the database is not set up"),
                crate::SOON,
                |line| {
                    line.contains("database set-up failed") && line.contains("Connection refused")
                },
            )
            .await;
    }

    pg.start_server().await;
    // The database alone does not make them ready: the broker is still away, and says so.
    services
        .dispatcher
        .wait_for_line(
            "the dispatcher to log why the broker is away",
            LONG,
            |line| line.contains("broker session failed") && line.contains("Connection refused"),
        )
        .await;
    for (name, process) in services.both() {
        assert_eq!(
            services.status(process.addr, "/readyz").await,
            Some(503),
            "{name} ready without its broker"
        );
    }
    rabbit.boot().await;
    services.wait_both("/readyz", 200, LONG).await;

    services
        .webhook("DEMO", &receiver.url("/late"), &["run.started"])
        .await;
    let id = publish(&rabbit.url(), "domain.events", "DEMO", "run.started").await;
    let got = receiver.wait_for("/late", 1, crate::SOON).await;
    assert_eq!(got[0].header("x-qase-event"), Some("run.started"));
    assert!(
        String::from_utf8_lossy(&got[0].body).contains(r#""project_code":"DEMO""#),
        "event {id} delivered: {:?}",
        got[0].body
    );
}
