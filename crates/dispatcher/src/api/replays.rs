//! Bulk replays of a webhook's deliveries: `POST …/webhooks/{id}/replay` matches the deliveries
//! of a time range in some finished states and answers at once; the replay task
//! ([`crate::replay`]) hands them back to the senders, paced. `GET …/replays/{replay_id}` and
//! `GET …/replays` show how far each replay has got.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use webhooks_core::messages::rfc3339;

use super::error::ApiError;
use super::query::Params;
use super::replay_input::{KEY_HEADER, ReplayInput};
use super::schemas::{
    ErrorBody, FinishedStateSchema, LimitQuery, ProjectCodeParam, ReplayRequestBody,
};
use super::state::Api;
use super::webhooks::{id, project};
use crate::store::replays::{self as store, NewReplay, ReplayRow};
use crate::store::webhooks;

/// Most deliveries one replay may match; a range that matches more is refused, to be replayed in
/// parts.
pub const MAX_MATCHED: i64 = 1_000_000;

/// A bulk replay and how far it has got.
#[derive(Serialize, ToSchema)]
#[schema(as = Replay)]
pub struct ReplayView {
    id: Uuid,
    /// The same as `id`.
    replay_id: Uuid,
    webhook_id: Uuid,
    /// The range's start (inclusive), to the microsecond.
    #[schema(format = DateTime)]
    from: String,
    /// The range's end (exclusive), to the microsecond.
    #[schema(format = DateTime)]
    to: String,
    /// The states of the deliveries matched, sorted.
    #[schema(value_type = Vec<FinishedStateSchema>)]
    states: Vec<String>,
    /// `running` while it hands back deliveries or waits for their attempts; `finished` once
    /// `queued + skipped = matched` and `done = queued`.
    #[schema(value_type = String, example = "running")]
    state: String,
    /// The webhook's deliveries created in the range and in one of `states` when the replay was
    /// asked for: those it replays.
    #[schema(minimum = 0)]
    matched: i32,
    /// Matches handed back to the senders so far: `pending` again and due at once.
    #[schema(minimum = 0)]
    queued: i32,
    /// Matches left alone: no longer in one of `states`, or attempted again, when their turn came
    /// (retried by hand meanwhile), or not handed back because the replay stopped.
    #[schema(minimum = 0)]
    skipped: i32,
    /// Of `queued`, those whose new attempt has been made, whatever its outcome (a failed one
    /// goes on as any failed attempt does), or that ended without one (cancelled when the
    /// webhook was disabled or deleted).
    #[schema(minimum = 0)]
    done: i32,
    /// Why it stopped before handing back every match (`webhook disabled`, `webhook deleted`);
    /// `null` unless it did.
    stopped_reason: Option<String>,
    /// The key it was made with, if any.
    idempotency_key: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    finished_at: Option<String>,
}

impl From<ReplayRow> for ReplayView {
    fn from(row: ReplayRow) -> Self {
        let exact = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        Self {
            id: row.id,
            replay_id: row.id,
            webhook_id: row.webhook_id,
            from: exact(row.from),
            to: exact(row.to),
            states: row.states,
            state: row.state,
            matched: row.progress.matched,
            queued: row.progress.queued,
            skipped: row.progress.skipped,
            done: row.progress.done,
            stopped_reason: row.progress.stopped_reason,
            idempotency_key: row.idempotency_key,
            created_at: rfc3339::format(&row.created_at),
            finished_at: row.finished_at.as_ref().map(rfc3339::format),
        }
    }
}

/// Replays the webhook's deliveries of a time range, in bounded batches paced so that live
/// deliveries keep their latency. Each match is made `pending` and attempted once more, under
/// its own id, listed with the webhook's deliveries as before.
#[utoipa::path(post, operation_id = "replayDeliveries", path = "/projects/{project_code}/webhooks/{id}/replay", tag = "replays",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id"),
        ("Idempotency-Key" = Option<String>, Header, max_length = 255, pattern = "^[ -~]+$",
         description = "The same key on the same webhook answers the replay it made first, \
            and makes no other; with another range or other states it is refused (422)")),
    request_body = ReplayRequestBody,
    responses(
        (status = 202, description = "The replay, running (or finished at once when it matched nothing); \
            the one made before with the same `Idempotency-Key`, as it is now, with `Idempotent-Replayed: true`", body = ReplayView),
        (status = 409, description = "The webhook is disabled", body = ErrorBody)))]
pub async fn create(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let (code, webhook) = (project(code)?, id(&id_text)?);
    let input = ReplayInput::parse(&body, headers.get(KEY_HEADER))?;
    let now = api.clock.now();
    let mut client = api.client().await?;
    let enabled = store::webhook_enabled(&client, &code, webhook)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let key = input.idempotency_key.as_deref();
    if let Some(key) = key
        && let Some(made) = store::by_key(&client, webhook, key).await?
    {
        return repeated(&input, made);
    }
    if !enabled {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "webhook is disabled: enable it before replaying its deliveries",
        ));
    }
    let new = NewReplay {
        id: Uuid::now_v7(),
        webhook,
        idempotency_key: key,
        from: input.from,
        to: input.to,
        states: &input.states,
    };
    let tx = client.transaction().await?;
    if !store::insert(&tx, &new, now).await? {
        // A request with the same key made it meanwhile.
        drop(tx);
        let made = store::by_key(&client, webhook, key.unwrap_or_default())
            .await?
            .ok_or_else(|| {
                ApiError::new(StatusCode::CONFLICT, "Idempotency-Key: in use; try again")
            })?;
        return repeated(&input, made);
    }
    let matched = store::match_items(&tx, &new, MAX_MATCHED + 1).await?;
    let matched = i32::try_from(matched)
        .ok()
        .filter(|n| i64::from(*n) <= MAX_MATCHED)
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "to: the range matches more than {MAX_MATCHED} deliveries; replay it in shorter ranges"
            ))
        })?;
    let row = store::set_matched(&tx, new.id, matched, now).await?;
    tx.commit().await?;
    if row.progress.matched > 0 {
        api.replays.now();
    }
    Ok((StatusCode::ACCEPTED, Json(ReplayView::from(row))).into_response())
}

/// The answer to a key used before: the replay it made, if this request asks for the same.
fn repeated(input: &ReplayInput, made: ReplayRow) -> Result<Response, ApiError> {
    if !input.asks_for(made.from, made.to, &made.states) {
        return Err(ApiError::invalid(format!(
            "Idempotency-Key: already used for replay {} with another range or other states; \
             use a new key for another replay",
            made.id
        )));
    }
    let replayed = [(
        HeaderName::from_static("idempotent-replayed"),
        HeaderValue::from_static("true"),
    )];
    Ok((StatusCode::ACCEPTED, replayed, Json(ReplayView::from(made))).into_response())
}

/// One replay of the webhook, as far as it has got.
#[utoipa::path(get, operation_id = "getReplay", path = "/projects/{project_code}/webhooks/{id}/replays/{replay_id}", tag = "replays",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id"),
        ("replay_id" = Uuid, Path, description = "The replay's id")),
    responses((status = 200, description = "The replay", body = ReplayView)))]
pub async fn get(
    State(api): State<Api>,
    Path((code, id_text, replay_text)): Path<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, webhook, replay) = (project(code)?, id(&id_text)?, id(&replay_text)?);
    let client = api.client().await?;
    let row = store::get(&client, &code, webhook, replay)
        .await?
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(ReplayView::from(row)))
}

/// The webhook's most recent replays, newest first.
#[utoipa::path(get, operation_id = "listReplays", path = "/projects/{project_code}/webhooks/{id}/replays", tag = "replays",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id"), LimitQuery),
    responses((status = 200, description = "Its replays, newest first", body = Vec<ReplayView>)))]
pub async fn list(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
    RawQuery(query): RawQuery,
) -> Result<impl IntoResponse, ApiError> {
    let (code, webhook) = (project(code)?, id(&id_text)?);
    let limit = Params::parse(query.as_deref())?.limit()?;
    let client = api.client().await?;
    if !webhooks::exists(&client, &code, webhook).await? {
        return Err(ApiError::not_found());
    }
    let rows = store::recent(&client, webhook, limit).await?;
    Ok(Json(
        rows.into_iter().map(ReplayView::from).collect::<Vec<_>>(),
    ))
}
