//! A webhook's recent deliveries with their attempts, and the manual retry of one delivery.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use std::collections::HashMap;
use uuid::Uuid;
use webhooks_core::retrying_state;

use super::error::ApiError;
use super::state::Api;
use super::views::{ATTEMPT_COLUMNS, AttemptView, DELIVERY_COLUMNS, DeliveryView};
use super::webhooks::{id, project};

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 200;

#[derive(Deserialize)]
pub struct ListQuery {
    limit: Option<String>,
}

pub async fn list(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, webhook) = (project(code)?, id(&id_text)?);
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| ApiError::bad_request(format!("limit: must be 1 to {MAX_LIMIT}")))?,
    };
    let client = api.client().await?;
    client
        .query_opt(
            "SELECT 1 FROM webhooks WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL",
            &[&webhook, &code.as_str()],
        )
        .await?
        .ok_or_else(ApiError::not_found)?;
    let rows = client
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.webhook_id = $1
                 ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
            ),
            &[&webhook, &limit],
        )
        .await?;
    let mut deliveries: Vec<DeliveryView> = rows.iter().map(DeliveryView::from).collect();
    let ids: Vec<Uuid> = deliveries.iter().map(|d| d.id).collect();
    let attempts = client
        .query(
            &format!(
                "SELECT {ATTEMPT_COLUMNS} FROM attempts WHERE delivery_id = ANY($1) ORDER BY at"
            ),
            &[&ids],
        )
        .await?;
    let mut by_delivery: HashMap<Uuid, Vec<AttemptView>> = HashMap::new();
    for row in &attempts {
        by_delivery
            .entry(row.get(0))
            .or_default()
            .push(AttemptView::from(row));
    }
    for delivery in &mut deliveries {
        delivery.attempts = by_delivery.remove(&delivery.id).unwrap_or_default();
    }
    Ok(Json(deliveries))
}

pub async fn retry(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, delivery) = (project(code)?, id(&id_text)?);
    let now = api.clock.now();
    let client = api.client().await?;
    let found = client
        .query_opt(
            "SELECT w.enabled, d.leased_until > $3 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.id = $1 AND w.project_code = $2 AND w.deleted_at IS NULL",
            &[&delivery, &code.as_str(), &now],
        )
        .await?
        .ok_or_else(ApiError::not_found)?;
    let (enabled, in_flight): (bool, Option<bool>) = (found.get(0), found.get(1));
    if !enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook is disabled: enable it before retrying",
        ));
    }
    if in_flight == Some(true) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "delivery is being attempted right now",
        ));
    }
    // Due now, with a fresh give-up window; the senders' scheduler picks it up.
    let row = client
        .query_one(
            &format!(
                concat!(
                    "UPDATE deliveries d SET state = ",
                    retrying_state!(),
                    ", next_attempt_at = $2,
                        leased_until = NULL, first_attempt_at = NULL
                     WHERE d.id = $1 RETURNING {columns}"
                ),
                columns = DELIVERY_COLUMNS
            ),
            &[&delivery, &now],
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(DeliveryView::from(&row))))
}
