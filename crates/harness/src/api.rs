//! The dispatcher's management API as a client uses it, for the webhooks of one project: create
//! and delete, with errors (not panics) a caller can report.

use anyhow::Context;
use std::net::SocketAddr;

/// The API of the dispatcher at one address, with its admin token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Api {
    pub fn new(http: reqwest::Client, dispatcher: SocketAddr, token: &str) -> Self {
        Self {
            http,
            base: format!("http://{dispatcher}/api/v1"),
            token: token.to_owned(),
        }
    }

    /// Creates a webhook of `project` for `events`, pointing at `url`; returns its id.
    pub async fn create_webhook(
        &self,
        project: &str,
        title: &str,
        url: &str,
        events: &[&str],
    ) -> anyhow::Result<String> {
        let response = self.post_webhook(project, title, url, events).await?;
        let status = response.status();
        let text = response.text().await.context("reading the API answer")?;
        anyhow::ensure!(status == 201, "creating a webhook: {status} {text}");
        let created: serde_json::Value =
            serde_json::from_str(&text).context("reading the created webhook")?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no id in the created webhook: {text}"))
    }

    /// Creates a webhook as [`Api::create_webhook`] does and returns the API's status alone.
    pub async fn create_webhook_status(
        &self,
        project: &str,
        title: &str,
        url: &str,
        events: &[&str],
    ) -> anyhow::Result<u16> {
        let response = self.post_webhook(project, title, url, events).await?;
        let status = response.status().as_u16();
        // Read to the end, so that the connection serves the next request.
        response.bytes().await.context("reading the API answer")?;
        Ok(status)
    }

    async fn post_webhook(
        &self,
        project: &str,
        title: &str,
        url: &str,
        events: &[&str],
    ) -> anyhow::Result<reqwest::Response> {
        let body = serde_json::json!({"title": title, "url": url, "events": events});
        self.http
            .post(format!("{}/projects/{project}/webhooks", self.base))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .context("creating a webhook")
    }

    /// Deletes webhook `id` of `project` (its unfinished deliveries are cancelled).
    pub async fn delete_webhook(&self, project: &str, id: &str) -> anyhow::Result<()> {
        let response = self
            .http
            .delete(format!("{}/projects/{project}/webhooks/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("deleting a webhook")?;
        let status = response.status();
        anyhow::ensure!(status == 204, "deleting webhook {id}: {status}");
        Ok(())
    }

    /// Asks for a replay of webhook `id` of `project` (`body`: `from`, `to`, `states`); returns
    /// the replay the API answered with.
    pub async fn replay(
        &self,
        project: &str,
        id: &str,
        body: &serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self
            .http
            .post(format!(
                "{}/projects/{project}/webhooks/{id}/replay",
                self.base
            ))
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .context("asking for a replay")?;
        Self::answer(response, 202, "asking for a replay").await
    }

    /// Replay `replay` of webhook `id` of `project`, as far as it has got.
    pub async fn get_replay(
        &self,
        project: &str,
        id: &str,
        replay: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let response = self
            .http
            .get(format!(
                "{}/projects/{project}/webhooks/{id}/replays/{replay}",
                self.base
            ))
            .bearer_auth(&self.token)
            .send()
            .await
            .context("reading a replay")?;
        Self::answer(response, 200, "reading a replay").await
    }

    /// The JSON of an answer that must have status `expected`.
    async fn answer(
        response: reqwest::Response,
        expected: u16,
        what: &str,
    ) -> anyhow::Result<serde_json::Value> {
        let status = response.status();
        let text = response.text().await.context("reading the API answer")?;
        anyhow::ensure!(status == expected, "{what}: {status} {text}");
        serde_json::from_str(&text).with_context(|| format!("{what}: not JSON: {text}"))
    }
}
