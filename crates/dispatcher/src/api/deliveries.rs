//! A webhook's recent deliveries with their attempts (each with its first and its most recent,
//! and the count of those not shown), and the manual retry of one delivery.

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use std::collections::HashMap;
use uuid::Uuid;
use webhooks_core::delivery::ATTEMPTS_KEPT_RECENT;

use super::error::ApiError;
use super::query::Params;
use super::schemas::{ErrorBody, LimitQuery, ProjectCodeParam};
use super::state::Api;
use super::views::{AttemptView, DeliveryView};
use super::webhooks::{id, project};
use crate::store::{deliveries as store, webhooks};

/// A webhook's most recent deliveries, newest first, each with its attempts.
#[utoipa::path(get, operation_id = "listDeliveries", path = "/projects/{project_code}/webhooks/{id}/deliveries", tag = "deliveries",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id"), LimitQuery),
    responses((status = 200, description = "Its deliveries, newest first", body = Vec<DeliveryView>)))]
pub async fn list(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let (code, webhook) = (project(code)?, id(&id_text)?);
    let params = Params::parse(query.as_deref())?;
    let limit = params.limit()?;
    let client = api.client().await?;
    if !webhooks::exists(&client, &code, webhook).await? {
        return Err(ApiError::not_found());
    }
    let rows = store::recent(&client, webhook, limit).await?;
    let deliveries = with_attempts(&client, rows, false).await?;
    Ok(Json(deliveries))
}

/// `rows` as the API shows them, each with its first attempt and its most recent, oldest first,
/// and how many in between are not kept (one query for all); the answers' first bytes only with
/// `responses`.
pub(super) async fn with_attempts(
    client: &tokio_postgres::Client,
    rows: Vec<store::DeliveryRow>,
    responses: bool,
) -> Result<Vec<DeliveryView>, ApiError> {
    let mut deliveries: Vec<DeliveryView> = rows.into_iter().map(DeliveryView::from).collect();
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    // Of each delivery, its first attempt and its most recent (as many as the senders keep).
    let recent = i64::try_from(ATTEMPTS_KEPT_RECENT).expect("a small bound");
    let mut by_delivery: HashMap<Uuid, (i64, Vec<AttemptView>)> = HashMap::new();
    for attempt in store::attempts(client, &ids, recent, responses).await? {
        let (stored, shown) = by_delivery.entry(attempt.delivery_id).or_default();
        *stored = attempt.stored;
        shown.push(AttemptView::from(attempt));
    }
    for delivery in &mut deliveries {
        let (stored, shown) = by_delivery.remove(&delivery.id).unwrap_or_default();
        delivery.attempts_omitted += (stored - shown.len() as i64).max(0);
        delivery.attempts = shown;
    }
    Ok(deliveries)
}

/// Makes a delivery due at once, with a fresh give-up window.
#[utoipa::path(post, operation_id = "retryDelivery", path = "/projects/{project_code}/deliveries/{id}/retry", tag = "deliveries",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The delivery's id")),
    responses(
        (status = 202, description = "The delivery, due at once", body = DeliveryView),
        (status = 409, description = "Its webhook is disabled, or it is being attempted right now", body = ErrorBody)))]
pub async fn retry(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, delivery) = (project(code)?, id(&id_text)?);
    let now = api.clock.now();
    let client = api.client().await?;
    let found = store::retry_target(&client, &code, delivery, now)
        .await?
        .ok_or_else(ApiError::not_found)?;
    if !found.webhook_enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook is disabled: enable it before retrying",
        ));
    }
    if found.leased == Some(true) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery is being attempted right now",
        ));
    }
    // Due now, with a fresh give-up window; the senders' scheduler picks it up.
    let row = store::retry(&client, delivery, now).await?;
    // With the attempts it has had so far, as every list shows a delivery.
    let view = with_attempts(&client, vec![row], false)
        .await?
        .pop()
        .ok_or_else(ApiError::not_found)?;
    Ok((StatusCode::ACCEPTED, Json(view)))
}
