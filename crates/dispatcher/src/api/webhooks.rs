//! Create, list, read, change and delete the webhooks of a project.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use uuid::Uuid;
use webhooks_core::event::ProjectCode;
use webhooks_core::{cancelled_state, waiting_states};

use super::error::ApiError;
use super::input::WebhookInput;
use super::state::Api;
use super::views::{WEBHOOK_COLUMNS, WebhookView};

/// A project code from the path; an impossible one is simply not found.
pub fn project(code: String) -> Result<ProjectCode, ApiError> {
    ProjectCode::parse(code).map_err(|_| ApiError::not_found())
}

/// An id from the path; anything but a UUID is simply not found.
pub fn id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| ApiError::not_found())
}

pub async fn list(
    State(api): State<Api>,
    Path(code): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let client = api.client().await?;
    let rows = client
        .query(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                 WHERE project_code = $1 AND deleted_at IS NULL ORDER BY created_at, id"
            ),
            &[&project(code)?.as_str()],
        )
        .await?;
    Ok(Json(rows.iter().map(WebhookView::from).collect::<Vec<_>>()))
}

pub async fn get(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let client = api.client().await?;
    let row = client
        .query_opt(
            &format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks
                 WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL"
            ),
            &[&id(&id_text)?, &project(code)?.as_str()],
        )
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(WebhookView::from(&row)))
}

pub async fn create(
    State(api): State<Api>,
    Path(code): Path<String>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let code = project(code)?;
    let input = WebhookInput::parse(&body, &api.destinations)?;
    let title = input
        .title
        .ok_or_else(|| ApiError::invalid("title: required"))?;
    let url = input
        .url
        .ok_or_else(|| ApiError::invalid("url: required"))?;
    let events = input
        .events
        .ok_or_else(|| ApiError::invalid("events: required"))?;
    let events: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    let now = api.clock.now();
    let client = api.client().await?;
    let row = client
        .query_one(
            &format!(
                "INSERT INTO webhooks (id, project_code, title, url, secret, events, enabled, created_by, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
                 RETURNING {WEBHOOK_COLUMNS}"
            ),
            &[
                &Uuid::now_v7(), &code.as_str(), &title, &url, &input.secret.flatten(), &events,
                &input.enabled.unwrap_or(true), &input.created_by.flatten(), &now,
            ],
        )
        .await?;
    let view = WebhookView::from(&row);
    refresh_index(&api, &client, row.get(0)).await;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn update(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let (code, id) = (project(code)?, id(&id_text)?);
    let input = WebhookInput::parse(&body, &api.destinations)?;
    let now = api.clock.now();
    let mut client = api.client().await?;
    let tx = client.transaction().await?;
    let current = tx
        .query_opt(
            "SELECT enabled FROM webhooks WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL FOR UPDATE",
            &[&id, &code.as_str()],
        )
        .await?
        .ok_or_else(ApiError::not_found)?;
    let was_enabled: bool = current.get(0);
    let enabled = input.enabled.unwrap_or(was_enabled);
    let events: Option<Vec<&str>> = input
        .events
        .as_ref()
        .map(|e| e.iter().map(|e| e.as_str()).collect());
    // COALESCE keeps a field that was not given; the flags say whether a nullable one was given.
    let row = tx
        .query_one(
            &format!(
                "UPDATE webhooks SET
                    title = COALESCE($3, title),
                    url = COALESCE($4, url),
                    secret = CASE WHEN $5 THEN $6 ELSE secret END,
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
                &code.as_str(),
                &input.title,
                &input.url,
                &input.secret.is_some(),
                &input.secret.clone().flatten(),
                &events,
                &enabled,
                &input.created_by.is_some(),
                &input.created_by.flatten(),
                &now,
                // Enabling a webhook clears its health: it starts again with a clean slate.
                &(enabled && !was_enabled),
            ],
        )
        .await?;
    if was_enabled && !enabled {
        cancel_pending(&tx, id).await?;
    }
    tx.commit().await?;
    refresh_index(&api, &client, id).await;
    Ok(Json(WebhookView::from(&row)))
}

pub async fn delete(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, id) = (project(code)?, id(&id_text)?);
    let now = api.clock.now();
    let mut client = api.client().await?;
    let tx = client.transaction().await?;
    // Soft delete: the delivery history stays readable for support, the webhook is gone for users.
    let deleted = tx
        .execute(
            "UPDATE webhooks SET deleted_at = $3, enabled = false, updated_at = $3
             WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL",
            &[&id, &code.as_str(), &now],
        )
        .await?;
    if deleted == 0 {
        return Err(ApiError::not_found());
    }
    cancel_pending(&tx, id).await?;
    tx.commit().await?;
    refresh_index(&api, &client, id).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Brings this instance's index up to date with `webhook` as committed, on the connection the
/// request already holds: asking the pool for a second one while holding the first would let
/// as many concurrent requests as the pool has connections wait for each other. Read after the
/// commit, so the index shows the row as it is now, even when another change was committed in
/// between. Should the read fail, the change stands: its NOTIFY (and the periodic reload) brings
/// every instance's index up to date, so the request does not fail for it.
async fn refresh_index(api: &Api, client: &tokio_postgres::Client, webhook: Uuid) {
    if let Err(e) = api.index.refresh(client, &[webhook]).await {
        tracing::warn!(error = format!("{e:#}"), %webhook, "refreshing the webhook index after a change failed; its notification will");
    }
}

/// Stops every delivery of `webhook` that has not finished.
async fn cancel_pending(
    tx: &deadpool_postgres::Transaction<'_>,
    webhook: Uuid,
) -> Result<(), ApiError> {
    tx.execute(
        concat!(
            "UPDATE deliveries SET state = ",
            cancelled_state!(),
            ", next_attempt_at = NULL,
                leased_until = NULL
             WHERE webhook_id = $1 AND state IN ",
            waiting_states!()
        ),
        &[&webhook],
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhooks_core::event::MAX_PROJECT_CODE;

    #[test]
    fn an_impossible_project_code_is_not_found() {
        assert_eq!(
            project("DEMO".into()).map(ProjectCode::into_string).ok(),
            Some("DEMO".into())
        );
        let too_long = "P".repeat(MAX_PROJECT_CODE + 1);
        for code in ["", too_long.as_str(), "DE\u{1}MO", "DEMO\0"] {
            let status = project(code.into())
                .map(|_| ())
                .unwrap_err()
                .into_response()
                .status();
            assert_eq!(status, StatusCode::NOT_FOUND, "{code:?}");
        }
    }
}
