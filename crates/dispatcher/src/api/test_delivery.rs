//! A test delivery on request (`POST …/webhooks/{id}/test`): an event of its own, `webhook.test`,
//! sent to one webhook through the same pipeline as every other delivery.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use uuid::Uuid;
use webhooks_core::body::test_body;

use super::error::ApiError;
use super::schemas::{ErrorBody, ProjectCodeParam};
use super::state::Api;
use super::views::DeliveryView;
use super::webhooks::{id, project};
use crate::store::deliveries::{TestDelivery, record_test};
use crate::store::webhooks::lock;

/// Sends the webhook a `webhook.test` delivery: recorded, signed, retried and listed with its
/// deliveries like any other.
#[utoipa::path(post, operation_id = "testWebhook", path = "/projects/{project_code}/webhooks/{id}/test", tag = "webhooks",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id")),
    responses(
        (status = 202, description = "The test delivery, due at once", body = DeliveryView),
        (status = 409, description = "The webhook is disabled", body = ErrorBody)))]
pub async fn send(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, webhook) = (project(code)?, id(&id_text)?);
    let now = api.clock.now();
    let mut client = api.client().await?;
    let tx = client.transaction().await?;
    let enabled = lock(&tx, &code, webhook)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook is disabled: enable it before testing",
        ));
    }
    let event = Uuid::new_v4().to_string();
    let body = test_body(code.as_str(), &webhook.to_string(), now.timestamp());
    let test = TestDelivery {
        delivery: Uuid::now_v7(),
        event: &event,
        webhook,
        project: &code,
        body: &body,
    };
    let row = record_test(&tx, &test, now).await?;
    tx.commit().await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(row))))
}
