//! Both services as processes, configured only through their environment as an installation is,
//! against backends a test runs itself (see [`crate::postgres`] and [`crate::rabbit`]), and the
//! few things a test does to them: ask `/healthz` and `/readyz`, create a webhook, publish an
//! event.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::SocketAddr;
use std::time::Duration;

use crate::process::Process;

pub const TOKEN: &str = "standalone-admin-token";

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
            ("HANDOFF_KEY", crate::world::HANDOFF_KEY.to_owned()),
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
        let response = self
            .http
            .post(format!(
                "http://{}/api/v1/projects/{project}/webhooks",
                self.dispatcher.addr
            ))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(
                serde_json::json!({"title": "standalone", "url": url, "events": events})
                    .to_string(),
            )
            .send()
            .await
            .expect("the API answers");
        let status = response.status();
        let text = response.text().await.expect("an answer");
        let answer: serde_json::Value = serde_json::from_str(&text).expect("a JSON answer");
        assert_eq!(status, 201, "webhook created: {answer}");
        answer["id"].as_str().expect("id").to_owned()
    }
}

/// Publishes an event to `exchange` on the broker at `amqp_url` with confirms, as other services
/// do; returns its id.
pub async fn publish(amqp_url: &str, exchange: &str, project: &str, event_name: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let body = format!(
        r#"{{"id":"{id}","event_name":"{event_name}","timestamp":1650540069,"project_code":"{project}","team_member_id":40,"payload":{{"title":"standalone"}}}}"#
    );
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
