//! Talking to a world's services as their users do: the management API, the events exchange,
//! the queues our services fill, the database and the metrics.

use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicNackOptions, BasicPublishOptions};
use serde_json::{Value, json};
use std::time::Duration;

use crate::world::{TOKEN, World};

impl World {
    // ---- the management API ----

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
        answer["id"].as_str().expect("id").to_owned()
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
        self.api(reqwest::Method::DELETE, &path, None).await.0
    }

    // ---- the broker ----

    /// Publishes a raw body to the events exchange, as another service would.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.topology.events_exchange().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into()),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack());
    }

    /// Publishes a well-formed event and returns its id.
    pub async fn publish(&self, project: &str, event_name: &str, payload: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish_event(&id, project, event_name, &payload.to_string())
            .await;
        id
    }

    /// Publishes an event with a given id and raw payload text.
    pub async fn publish_event(&self, id: &str, project: &str, event_name: &str, payload: &str) {
        let body = format!(
            r#"{{"id":"{id}","event_name":"{event_name}","timestamp":1650540069,"project_code":"{project}","team_member_id":40,"payload":{payload}}}"#
        );
        self.publish_raw(event_name, body.as_bytes(), BasicProperties::default())
            .await;
    }

    /// Takes one message from `queue`, if any.
    pub async fn take(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
    }

    /// Waits for a message on `queue` and hands it back unacked, as a consumer that dies holding
    /// it does: the broker then delivers it again, marked redelivered. Returns its `type` property.
    pub async fn hand_back(&self, queue: &str, deadline: Duration) -> Option<String> {
        let message = crate::wait::until(&format!("a message on {queue}"), deadline, || async {
            self.channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                .await
                .expect("basic.get")
        })
        .await;
        self.channel
            .basic_nack(
                message.delivery.delivery_tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await
            .expect("basic.nack");
        message
            .delivery
            .properties
            .kind()
            .as_ref()
            .map(|k| k.to_string())
    }

    /// Waits for `count` messages on `queue` and takes them.
    pub async fn take_n(
        &self,
        queue: &str,
        count: usize,
        deadline: Duration,
    ) -> Vec<lapin::message::BasicGetMessage> {
        let end = tokio::time::Instant::now() + deadline;
        let mut got = Vec::new();
        while got.len() < count {
            match self.take(queue).await {
                Some(message) => got.push(message),
                None if tokio::time::Instant::now() >= end => {
                    panic!(
                        "timed out after {deadline:?} with {} of {count} messages on {queue}",
                        got.len()
                    )
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        got
    }

    /// Messages ready in `queue` (a passive declare, on a channel of its own: a queue that is not
    /// there closes it).
    pub async fn queue_length(&self, queue: &str) -> u32 {
        let channel = self.amqp.create_channel().await.expect("channel");
        let queue = channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("passive declare");
        let _ = channel.close(200, "done".into()).await;
        queue.message_count()
    }

    /// The prefetch of every consumer of `queue`, as the broker reports it.
    pub fn consumer_prefetch(&self, queue: &str) -> Vec<u32> {
        let listed = std::process::Command::new("rabbitmqctl")
            .args(["-q", "list_consumers", "queue_name", "prefetch_count"])
            .output()
            .expect("rabbitmqctl list_consumers");
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next()? == queue).then_some(())?;
                fields.next()?.parse().ok()
            })
            .collect()
    }

    /// How many deliveries are recorded for an event.
    pub async fn deliveries_of_event(&self, event_id: &str) -> i64 {
        self.db()
            .await
            .query_one(
                "SELECT count(*) FROM deliveries WHERE event_id = $1",
                &[&event_id],
            )
            .await
            .expect("count")
            .get(0)
    }

    /// Opens a database connection to this world's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("test database connection");
        tokio::spawn(connection);
        client
    }

    /// Deliveries recorded and not finished yet (pending or retrying): at a fault, the most that
    /// can be sent twice because of it.
    pub async fn unfinished_deliveries(&self) -> usize {
        let count: i64 = self
            .db()
            .await
            .query_one(
                "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retrying')",
                &[],
            )
            .await
            .expect("unfinished deliveries")
            .get(0);
        usize::try_from(count).unwrap_or(0)
    }

    /// Moves the clock to the earliest time a delivery of `webhook` waits for (a retry, or a
    /// delivery held back), so that the scheduler takes it on its next turn. Returns that time's
    /// distance from now, or `None` when no delivery of the webhook is waiting.
    pub async fn advance_to_next_attempt(&self, webhook: &str) -> Option<std::time::Duration> {
        let next: Option<chrono::DateTime<chrono::Utc>> = self
            .db()
            .await
            .query_one(
                "SELECT min(next_attempt_at) FROM deliveries
                 WHERE webhook_id = $1::text::uuid AND state IN ('pending', 'retrying')",
                &[&webhook],
            )
            .await
            .expect("next attempt")
            .get(0);
        let wait = (next? - self.clock.now()).to_std().unwrap_or_default();
        self.clock
            .advance(wait + std::time::Duration::from_millis(1));
        Some(wait)
    }

    /// A service's /metrics text.
    pub async fn metrics_text(&self, addr: std::net::SocketAddr) -> String {
        self.http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }

    /// Fetches a counter from a service's /metrics (sum over its labels); the service must export
    /// it.
    pub async fn metric(&self, addr: std::net::SocketAddr, name: &str) -> f64 {
        let text = self.metrics_text(addr).await;
        let values: Vec<f64> = text
            .lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .collect();
        // A series that does not exist reads as nothing, not as 0: a check on it could not fail.
        assert!(!values.is_empty(), "{addr} exports no {name}");
        values.iter().sum()
    }
}
