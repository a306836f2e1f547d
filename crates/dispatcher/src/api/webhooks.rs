//! Create, list, read, change and delete the webhooks of a project.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use uuid::Uuid;
use webhooks_core::event::ProjectCode;

use super::error::ApiError;
use super::input::WebhookInput;
use super::schemas::ProjectCodeParam;
use super::schemas::{NewWebhookBody, WebhookChangeBody};
use super::state::Api;
use super::views::WebhookView;
use crate::store::deliveries::cancel_waiting;
use crate::store::webhooks::{self as store, NewWebhook, WebhookChange};

/// A project code from the path; an impossible one is simply not found.
pub fn project(code: String) -> Result<ProjectCode, ApiError> {
    ProjectCode::parse(code).map_err(|_| ApiError::not_found())
}

/// An id from the path; anything but a UUID is simply not found.
pub fn id(text: &str) -> Result<Uuid, ApiError> {
    text.parse().map_err(|_| ApiError::not_found())
}

/// The webhooks of a project, oldest first.
#[utoipa::path(get, operation_id = "listWebhooks", path = "/projects/{project_code}/webhooks", tag = "webhooks",
    params(("project_code" = ProjectCodeParam, Path)),
    responses((status = 200, description = "The project's webhooks, oldest first", body = Vec<WebhookView>)))]
pub async fn list(
    State(api): State<Api>,
    Path(code): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let client = api.client().await?;
    let rows = store::of_project(&client, &project(code)?).await?;
    Ok(Json(
        rows.into_iter().map(WebhookView::from).collect::<Vec<_>>(),
    ))
}

/// One webhook.
#[utoipa::path(get, operation_id = "getWebhook", path = "/projects/{project_code}/webhooks/{id}", tag = "webhooks",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id")),
    responses((status = 200, description = "The webhook", body = WebhookView)))]
pub async fn get(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let client = api.client().await?;
    let row = store::get(&client, &project(code)?, id(&id_text)?)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(WebhookView::from(row)))
}

/// Creates a webhook.
#[utoipa::path(post, operation_id = "createWebhook", path = "/projects/{project_code}/webhooks", tag = "webhooks",
    params(("project_code" = ProjectCodeParam, Path)),
    request_body = NewWebhookBody,
    responses((status = 201, description = "The webhook created", body = WebhookView)))]
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
    let secret = input.secret.flatten();
    let webhook = NewWebhook {
        project: &code,
        title: &title,
        url: &url,
        secret: secret.as_deref(),
        events: &events,
        enabled: input.enabled.unwrap_or(true),
        created_by: input.created_by.flatten(),
    };
    let now = api.clock.now();
    let client = api.client().await?;
    let row = store::insert(&client, &webhook, now).await?;
    let id = row.id;
    let view = WebhookView::from(row);
    refresh_index(&api, &client, id).await;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Changes some of a webhook's fields.
#[utoipa::path(patch, operation_id = "updateWebhook", path = "/projects/{project_code}/webhooks/{id}", tag = "webhooks",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id")),
    request_body = WebhookChangeBody,
    responses((status = 200, description = "The webhook changed", body = WebhookView)))]
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
    let was_enabled = store::lock(&tx, &code, id)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let enabled = input.enabled.unwrap_or(was_enabled);
    let change = WebhookChange {
        title: input.title.as_deref(),
        url: input.url.as_deref(),
        secret: input.secret.as_ref().map(Option::as_deref),
        events: input.events.as_deref(),
        enabled,
        created_by: input.created_by,
        // Enabling a webhook clears its health: it starts again with a clean slate.
        clear_health: enabled && !was_enabled,
    };
    let row = store::update(&tx, &code, id, &change, now).await?;
    if was_enabled && !enabled {
        cancel_waiting(&tx, id).await?;
    }
    tx.commit().await?;
    refresh_index(&api, &client, id).await;
    Ok(Json(WebhookView::from(row)))
}

/// Deletes a webhook and cancels its pending deliveries; its delivery history is kept.
#[utoipa::path(delete, operation_id = "deleteWebhook", path = "/projects/{project_code}/webhooks/{id}", tag = "webhooks",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id")),
    responses((status = 204, description = "Deleted")))]
pub async fn delete(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, id) = (project(code)?, id(&id_text)?);
    let now = api.clock.now();
    let mut client = api.client().await?;
    let tx = client.transaction().await?;
    // Soft delete: the delivery history stays readable for support, the webhook is gone for users.
    if !store::soft_delete(&tx, &code, id, now).await? {
        return Err(ApiError::not_found());
    }
    cancel_waiting(&tx, id).await?;
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
