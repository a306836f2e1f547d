//! A project's deliveries: pages of them filtered by webhook, state, event name and creation
//! time, newest first, with a cursor to the next page (one delivery is in [`super::detail`]).

use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::response::IntoResponse;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use webhooks_core::delivery::DeliveryState;
use webhooks_core::event::DeliveredName;

use super::deliveries::with_attempts;
use super::error::ApiError;
use super::query::Params;
use super::schemas::{DeliveryStateSchema, ProjectCodeParam};
use super::state::Api;
use super::views::DeliveryView;
use super::webhooks::project;
use crate::store::listing::{self, Filter};

/// The query of [`search`], described for the OpenAPI document; read through [`Params`].
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // Described, not built.
pub struct SearchQuery {
    /// Only this webhook's deliveries.
    webhook_id: Option<Uuid>,
    /// Only deliveries in this state.
    #[param(value_type = Option<DeliveryStateSchema>)]
    state: Option<String>,
    /// Only deliveries of this event: a catalogue name or `webhook.test`.
    event_name: Option<String>,
    /// Only deliveries created at or after this time (RFC 3339).
    #[param(format = DateTime)]
    since: Option<String>,
    /// Only deliveries created before this time (RFC 3339).
    #[param(format = DateTime)]
    until: Option<String>,
    /// How many deliveries, 1 to 200; 50 when not given.
    #[param(minimum = 1, maximum = 200)]
    limit: Option<i64>,
    /// The `next_cursor` of the page before, for the page after it (with the same filters).
    cursor: Option<String>,
}

/// A page of deliveries.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryPage)]
pub struct PageView {
    /// Newest first, each with its attempts.
    deliveries: Vec<DeliveryView>,
    /// Where the next page starts (pass it as `cursor`); `null` on the last page.
    next_cursor: Option<String>,
}

/// The project's deliveries, filtered, newest first, a page at a time.
#[utoipa::path(get, operation_id = "searchDeliveries", path = "/projects/{project_code}/deliveries", tag = "deliveries",
    params(("project_code" = ProjectCodeParam, Path), SearchQuery),
    responses((status = 200, description = "A page of deliveries, newest first", body = PageView)))]
pub async fn search(
    State(api): State<Api>,
    Path(code): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let code = project(code)?;
    let params = Params::parse(query.as_deref())?;
    let state = params.get("state", |text| {
        text.parse::<DeliveryState>()
            .map(DeliveryState::as_str)
            .map_err(|_| "must be pending, retrying, succeeded, failed or cancelled".to_owned())
    })?;
    let event_name = params.get("event_name", |text| {
        text.parse::<DeliveredName>()
            .map(DeliveredName::as_str)
            .map_err(|e| e.to_string())
    })?;
    let filter = Filter {
        webhook: params.get("webhook_id", |text| {
            text.parse::<Uuid>()
                .map_err(|_| "must be a UUID".to_owned())
        })?,
        state,
        event_name,
        since: params.get("since", time)?,
        until: params.get("until", time)?,
        after: params.get("cursor", cursor::read)?,
    };
    let limit = params.limit()?;
    let client = api.client().await?;
    // One more than asked: whether there is a next page.
    let mut rows = listing::page(&client, &code, &filter, limit + 1).await?;
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last()
            .map(|last| cursor::write(last.created_at, last.id))
    } else {
        None
    };
    let deliveries = with_attempts(&client, rows, false).await?;
    Ok(Json(PageView {
        deliveries,
        next_cursor,
    }))
}

fn time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|_| "must be an RFC 3339 time, e.g. 2026-11-26T10:00:00Z".to_owned())
}

/// A cursor: where a page ended, as the creation time (in microseconds, as stored) and id of its
/// last delivery, opaque to clients.
mod cursor {
    use super::*;

    pub fn write(created_at: DateTime<Utc>, id: Uuid) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}.{id}", created_at.timestamp_micros()))
    }

    pub fn read(text: &str) -> Result<(DateTime<Utc>, Uuid), String> {
        let refused = || "not a cursor this API gave".to_owned();
        let decoded = URL_SAFE_NO_PAD.decode(text).map_err(|_| refused())?;
        let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
        let (micros, id) = decoded.split_once('.').ok_or_else(refused)?;
        let at = micros
            .parse::<i64>()
            .ok()
            .and_then(DateTime::from_timestamp_micros)
            .ok_or_else(refused)?;
        Ok((at, id.parse().map_err(|_| refused())?))
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_cursor_reads_back_to_the_microsecond_and_nothing_else_reads() {
            let at = DateTime::from_timestamp_micros(1_764_151_200_123_456).expect("time");
            let id = Uuid::now_v7();
            assert_eq!(read(&write(at, id)), Ok((at, id)));
            for bad in ["", "x", "MTIz", &URL_SAFE_NO_PAD.encode("1.not-a-uuid")] {
                assert!(read(bad).is_err(), "{bad}");
            }
        }
    }
}
