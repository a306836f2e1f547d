//! Both services as processes, configured only through their environment as an installation is,
//! against backends a test runs itself (see [`crate::postgres`] and [`crate::rabbit`]), and the
//! few things a test does to them: ask `/healthz` and `/readyz`, create a webhook, publish an
//! event.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::time::Duration;

use crate::api::Api;
use crate::process::Process;
use crate::publisher::event_json;

pub const TOKEN: &str = "8d2f6a1c9e4b07d3a5f8c2e6b1d9a4f7";

/// A dispatcher and a sender started with the same settings.
pub struct Standalone {
    pub dispatcher: Process,
    pub sender: Process,
    http: reqwest::Client,
}

impl Standalone {
    /// Starts both binaries with `env` (plus the admin token, the hand-off key and loopback
    /// targets) and returns at once: they may not be ready, or even listening, yet.
    pub fn spawn(env: &[(&str, String)]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut common = vec![
            ("ADMIN_TOKEN", TOKEN.to_owned()),
            ("ALLOWED_TARGETS", "127.0.0.0/8".to_owned()),
            ("DATABASE_POOL_SIZE", "4".to_owned()),
            ("HANDOFF_KEY", crate::service::HANDOFF_KEY.to_owned()),
        ];
        common.extend(env.iter().cloned());
        Self {
            dispatcher: Process::spawn("webhooks-dispatcher", &common, &[]),
            sender: Process::spawn("webhooks-sender", &common, &[]),
            http: reqwest::Client::new(),
        }
    }

    /// Both processes, named.
    pub fn both(&self) -> [(&'static str, &Process); 2] {
        [("dispatcher", &self.dispatcher), ("sender", &self.sender)]
    }

    /// The status `path` answers with on `addr`, `None` while nothing answers.
    pub async fn status(&self, addr: SocketAddr, path: &str) -> Option<u16> {
        let response = self
            .http
            .get(format!("http://{addr}{path}"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        Some(response.status().as_u16())
    }

    /// Waits until `path` answers `status` on both services.
    pub async fn wait_both(&self, path: &str, status: u16, deadline: Duration) {
        for (name, process) in self.both() {
            crate::wait::until(
                &format!("the {name}'s {path} to answer {status}"),
                deadline,
                || async { (self.status(process.addr, path).await == Some(status)).then_some(()) },
            )
            .await;
        }
    }

    /// Creates a webhook of `project` for `events` delivered to `url`; returns its id.
    pub async fn webhook(&self, project: &str, url: &str, events: &[&str]) -> String {
        let api = Api::new(self.http.clone(), self.dispatcher.addr, TOKEN);
        api.create_webhook(project, "standalone", url, events)
            .await
            .unwrap_or_else(|e| panic!("webhook created: {e:#}"))
    }
}

/// Publishes an event to `exchange` on the broker at `amqp_url` with confirms, as other services
/// do; returns its id.
pub async fn publish(amqp_url: &str, exchange: &str, project: &str, event_name: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let payload = r#"{"title":"standalone"}"#;
    let body = event_json(&id, event_name, 1_650_540_069, project, payload);
    let connection = Connection::connect(amqp_url, ConnectionProperties::default())
        .await
        .expect("the test's broker connection");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let confirm = channel
        .basic_publish(
            exchange.into(),
            event_name.into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into()),
        )
        .await
        .expect("publish");
    assert!(confirm.await.expect("confirm").is_ack(), "event confirmed");
    let _ = connection.close(200, "published".into()).await;
    id
}
