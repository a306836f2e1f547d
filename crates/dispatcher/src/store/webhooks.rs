//! The `webhooks` table: what the matching index loads, and the API's create, read, change and
//! soft delete.
//!
//! Reads of one webhook go by primary key and also check its project, so that an id of another
//! project is simply not found (contract §2). A deleted webhook keeps its row (`deleted_at`) so
//! that its delivery history stays readable for support; every read here skips it.
//!
//! A trigger (migration 0001) NOTIFYs `webhooks_changed` with the webhook's id whenever a change
//! matters for matching (enabled, events, project, deleted); [`listen`] subscribes to it.

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Row, Transaction};
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::{EventName, ProjectCode};

/// The columns of a [`WebhookRow`], in the order [`WebhookRow::from_row`] reads them. The secret
/// itself is never read for the API: only whether there is one.
const WEBHOOK_COLUMNS: &str = "id, project_code, title, url, secret IS NOT NULL, events, enabled, created_by, \
     created_at, updated_at, failing_since, failed_attempts, last_error, disabled_at, disabled_reason, \
     previous_secret_until, last_success_at";

/// A webhook as the API shows it.
#[derive(Debug)]
pub struct WebhookRow {
    pub id: Uuid,
    pub project_code: String,
    pub title: String,
    pub url: String,
    pub has_secret: bool,
    /// As stored: names validated on the way in.
    pub events: Vec<String>,
    pub enabled: bool,
    pub created_by: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub failing_since: Option<DateTime<Utc>>,
    pub failed_attempts: i32,
    pub last_error: Option<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub disabled_reason: Option<String>,
    /// Until when the secret a rotation replaced still signs.
    pub previous_secret_until: Option<DateTime<Utc>>,
    /// When its endpoint last answered with success, to the minute.
    pub last_success_at: Option<DateTime<Utc>>,
}

impl WebhookRow {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            project_code: row.get(1),
            title: row.get(2),
            url: row.get(3),
            has_secret: row.get(4),
            events: row.get(5),
            enabled: row.get(6),
            created_by: row.get(7),
            created_at: row.get(8),
            updated_at: row.get(9),
            failing_since: row.get(10),
            failed_attempts: row.get(11),
            last_error: row.get(12),
            disabled_at: row.get(13),
            disabled_reason: row.get(14),
            previous_secret_until: row.get(15),
            last_success_at: row.get(16),
        }
    }
}

/// An enabled webhook as the matching index sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    pub id: Uuid,
    pub project_code: String,
    pub events: Vec<EventName>,
}

impl Subscription {
    fn from_row(row: &Row) -> Self {
        let events: Vec<String> = row.get(2);
        Self {
            id: row.get(0),
            project_code: row.get(1),
            // Names were validated on the way in; an unknown one (from a newer version) matches
            // nothing.
            events: events.iter().filter_map(|name| name.parse().ok()).collect(),
        }
    }
}

/// Subscribes the session to the notifications of changed webhooks (their ids as payloads).
pub async fn listen(client: &Client) -> Result<(), StoreError> {
    client.batch_execute("LISTEN webhooks_changed").await?;
    Ok(())
}

/// Every enabled webhook. A full scan, as every such row is wanted; "enabled" is spelt as the
/// record spells it (`enabled AND deleted_at IS NULL`), so the index and the record agree.
pub async fn subscriptions(client: &Client) -> Result<Vec<Subscription>, StoreError> {
    let rows = client
        .query(
            "SELECT id, project_code, events FROM webhooks WHERE enabled AND deleted_at IS NULL",
            &[],
        )
        .await?;
    Ok(rows.iter().map(Subscription::from_row).collect())
}

/// Those of `ids` that are enabled, by primary key; the others are absent.
pub async fn subscriptions_among(
    client: &Client,
    ids: &[Uuid],
) -> Result<Vec<Subscription>, StoreError> {
    let rows = client
        .query(
            "SELECT id, project_code, events FROM webhooks
             WHERE id = ANY($1) AND enabled AND deleted_at IS NULL",
            &[&ids],
        )
        .await?;
    Ok(rows.iter().map(Subscription::from_row).collect())
}

/// The webhooks of a project, oldest first. Through `webhooks_by_project (project_code,
/// created_at) WHERE deleted_at IS NULL`: `deleted_at IS NULL` is that partial index's own
/// condition, and the index gives the order; the id only breaks ties.
pub async fn of_project(
    client: &Client,
    project: &ProjectCode,
) -> Result<Vec<WebhookRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                 WHERE project_code = $1 AND deleted_at IS NULL ORDER BY created_at, id"
            ),
            &[&project.as_str()],
        )
        .await?;
    Ok(rows.iter().map(WebhookRow::from_row).collect())
}

/// One webhook of a project, by primary key.
pub async fn get(
    client: &Client,
    project: &ProjectCode,
    id: Uuid,
) -> Result<Option<WebhookRow>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                 WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL"
            ),
            &[&id, &project.as_str()],
        )
        .await?;
    Ok(row.as_ref().map(WebhookRow::from_row))
}

/// Whether a webhook of a project exists, by primary key.
pub async fn exists(client: &Client, project: &ProjectCode, id: Uuid) -> Result<bool, StoreError> {
    let row = client
        .query_opt(
            "SELECT 1 FROM webhooks WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL",
            &[&id, &project.as_str()],
        )
        .await?;
    Ok(row.is_some())
}

/// A webhook to create.
pub struct NewWebhook<'a> {
    pub project: &'a ProjectCode,
    pub title: &'a str,
    pub url: &'a str,
    pub secret: Option<&'a str>,
    pub events: &'a [EventName],
    pub enabled: bool,
    pub created_by: Option<i64>,
}

/// Inserts a webhook, created and updated `now`, with a new time-ordered id.
pub async fn insert(
    client: &Client,
    webhook: &NewWebhook<'_>,
    now: DateTime<Utc>,
) -> Result<WebhookRow, StoreError> {
    let events = names(webhook.events);
    let row = client
        .query_one(
            &format!(
                "INSERT INTO webhooks (id, project_code, title, url, secret, events, enabled, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 RETURNING {WEBHOOK_COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &webhook.project.as_str(),
                &webhook.title,
                &webhook.url,
                &webhook.secret,
                &events,
                &webhook.enabled,
                &webhook.created_by,
                &now,
            ],
        )
        .await?;
    Ok(WebhookRow::from_row(&row))
}

/// Locks a webhook of a project for the rest of `tx` and returns whether it is enabled, or
/// `None` when there is none. The lock orders a change after any other change of the same
/// webhook in flight (another request's, or a sender's disable, whose `UPDATE` waits for the
/// lock too), so that what the change decides from `enabled` (cancel its deliveries, clear its
/// health) still holds when it is written.
pub async fn lock(
    tx: &Transaction<'_>,
    project: &ProjectCode,
    id: Uuid,
) -> Result<Option<bool>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT enabled FROM webhooks WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL FOR UPDATE",
            &[&id, &project.as_str()],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// A change to a webhook; `None` keeps a field as it is.
pub struct WebhookChange<'a> {
    pub title: Option<&'a str>,
    pub url: Option<&'a str>,
    /// `Some(None)` clears the secret.
    pub secret: Option<Option<&'a str>>,
    pub events: Option<&'a [EventName]>,
    pub enabled: bool,
    /// `Some(None)` clears it.
    pub created_by: Option<Option<i64>>,
    /// Clears the webhook's health (failing since, failed attempts, last error, disabled at and
    /// why): a re-enabled webhook starts again with a clean slate.
    pub clear_health: bool,
}

/// Changes a webhook [`lock`]ed by `tx`, updated `now`.
pub async fn update(
    tx: &Transaction<'_>,
    project: &ProjectCode,
    id: Uuid,
    change: &WebhookChange<'_>,
    now: DateTime<Utc>,
) -> Result<WebhookRow, StoreError> {
    let events = change.events.map(names);
    // COALESCE keeps a field that was not given; the flags say whether a nullable one was given.
    // A secret given here replaces the old one at once: a rotation's grace, if any, ends.
    let row = tx
        .query_one(
            &format!(
                "UPDATE webhooks SET
                    title = COALESCE($3, title),
                    url = COALESCE($4, url),
                    secret = CASE WHEN $5 THEN $6 ELSE secret END,
                    previous_secret = CASE WHEN $5 THEN NULL ELSE previous_secret END,
                    previous_secret_until = CASE WHEN $5 THEN NULL ELSE previous_secret_until END,
                    events = COALESCE($7, events),
                    enabled = $8,
                    created_by = CASE WHEN $9 THEN $10 ELSE created_by END,
                    updated_at = $11,
                    failing_since = CASE WHEN $12 THEN NULL ELSE failing_since END,
                    failed_attempts = CASE WHEN $12 THEN 0 ELSE failed_attempts END,
                    last_error = CASE WHEN $12 THEN NULL ELSE last_error END,
                    disabled_at = CASE WHEN $12 THEN NULL ELSE disabled_at END,
                    disabled_reason = CASE WHEN $12 THEN NULL ELSE disabled_reason END
                 WHERE id = $1 AND project_code = $2
                 RETURNING {WEBHOOK_COLUMNS}"
            ),
            &[
                &id,
                &project.as_str(),
                &change.title,
                &change.url,
                &change.secret.is_some(),
                &change.secret.flatten(),
                &events,
                &change.enabled,
                &change.created_by.is_some(),
                &change.created_by.flatten(),
                &now,
                &change.clear_health,
            ],
        )
        .await?;
    Ok(WebhookRow::from_row(&row))
}

/// Soft-deletes a webhook of a project at `now`; false when there was none. Disabled too, so
/// that the record's own check of each webhook (`enabled AND deleted_at IS NULL`) refuses it
/// whatever an index still says.
pub async fn soft_delete(
    tx: &Transaction<'_>,
    project: &ProjectCode,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let deleted = tx
        .execute(
            "UPDATE webhooks SET deleted_at = $3, enabled = false, updated_at = $3
             WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL",
            &[&id, &project.as_str(), &now],
        )
        .await?;
    Ok(deleted > 0)
}

/// Event names as stored.
fn names(events: &[EventName]) -> Vec<&'static str> {
    events.iter().map(|e| e.as_str()).collect()
}
