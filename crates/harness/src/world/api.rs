//! A world's management API and metrics, called as their users call them; a failure panics with
//! what the test was doing.

use serde_json::{Value, json};
use std::time::Duration;

use super::World;
use super::options::TOKEN;
use crate::metrics::Scrape;
use crate::service;
use crate::wait;

/// How long a replica's matching index may take to hear of a webhook change (a NOTIFY away).
const INDEX_CATCHES_UP: Duration = Duration::from_secs(15);

impl World {
    /// Calls the API with the right token; returns the status and the JSON answer (Null if none).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api_as(Some(TOKEN), method, path, body).await
    }

    pub async fn api_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.api_base, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("API body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Creates a webhook of `project` pointing at the receiver's `path`; returns its id.
    pub async fn webhook(
        &self,
        project: &str,
        path: &str,
        events: &[&str],
        secret: Option<&str>,
    ) -> String {
        let mut body = json!({"title": format!("hook {path}"), "url": self.receiver.url(path), "events": events});
        if let Some(secret) = secret {
            body["secret"] = json!(secret);
        }
        let (status, answer) = self
            .api(
                reqwest::Method::POST,
                &format!("/projects/{project}/webhooks"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "webhook created: {answer}");
        self.replicas_caught_up().await;
        answer["id"].as_str().expect("id").to_owned()
    }

    /// Waits until every dispatcher replica's matching index holds as many webhooks as are
    /// enabled. The dispatcher that served the change updates its own index before answering; a
    /// replica hears of it by NOTIFY, a moment later, and an event it matched before then would
    /// miss the webhook (and, its event recorded, never be matched again).
    pub async fn replicas_caught_up(&self) {
        let replicas = self.replica_addrs();
        if replicas.is_empty() {
            return;
        }
        let db = self.db().await;
        wait::until(
            "the replicas' webhook indexes caught up",
            INDEX_CATCHES_UP,
            || async {
                let enabled = super::database::enabled_webhooks(&db).await as f64;
                for replica in &replicas {
                    let held = self
                        .metric(*replica, "webhooks_dispatcher_index_webhooks")
                        .await;
                    if held != enabled {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await;
    }

    pub async fn deliveries(&self, project: &str, webhook: &str) -> Vec<Value> {
        let (status, answer) = self
            .api(
                reqwest::Method::GET,
                &format!("/projects/{project}/webhooks/{webhook}/deliveries"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer.as_array().cloned().expect("array")
    }

    pub async fn get_webhook(&self, project: &str, webhook: &str) -> Value {
        let (status, answer) = self
            .api(
                reqwest::Method::GET,
                &format!("/projects/{project}/webhooks/{webhook}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    /// Deletes a webhook; returns the status.
    pub async fn delete_webhook(&self, project: &str, webhook: &str) -> u16 {
        let path = format!("/projects/{project}/webhooks/{webhook}");
        let status = self.api(reqwest::Method::DELETE, &path, None).await.0;
        self.replicas_caught_up().await;
        status
    }

    /// A service's /metrics text.
    pub async fn metrics_text(&self, addr: std::net::SocketAddr) -> String {
        service::metrics_text(&self.http, addr)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"))
    }

    /// Fetches a counter from a service's /metrics (sum over its labels); the service must export
    /// it.
    pub async fn metric(&self, addr: std::net::SocketAddr, name: &str) -> f64 {
        let scrape = Scrape::parse(&self.metrics_text(addr).await);
        // A series that does not exist reads as nothing, not as 0: a check on it could not fail.
        scrape
            .find(name)
            .unwrap_or_else(|| panic!("{addr} exports no {name}"))
    }
}
