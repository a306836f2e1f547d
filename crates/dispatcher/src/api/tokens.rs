//! `POST /api/v1/tokens` (admin token only): a token scoped to one project, with an expiry
//! (see [`crate::project_token`]).

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use utoipa::ToSchema;
use webhooks_core::event::ProjectCode;
use webhooks_core::messages::rfc3339;

use super::error::ApiError;
use super::input::object;
use super::schemas::DurationSchema;
use super::state::Api;

/// Longest a project token may live.
pub const MAX_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);

/// A request for a project token. Unknown fields are refused.
#[derive(ToSchema)]
#[schema(as = NewToken)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Described, not built: the body is parsed field by field.
pub struct NewTokenBody {
    /// The project the token reaches: 1 to 64 characters, none of them control characters.
    #[schema(min_length = 1, max_length = 64, example = "DEMO")]
    project_code: String,
    /// How long the token lives, 1 second to 365 days: a duration (`90d`, `12h`, `30m`) or a
    /// number of seconds.
    #[schema(value_type = DurationSchema, example = "30d")]
    expires_in: String,
}

/// A project token, shown once.
#[derive(Serialize, ToSchema)]
#[schema(as = Token)]
pub struct TokenView {
    /// Sent as `Authorization: Bearer <token>`.
    token: String,
    project_code: String,
    #[schema(format = DateTime)]
    expires_at: String,
}

/// Mints a token that reaches one project's routes until it expires.
#[utoipa::path(post, operation_id = "createToken", path = "/tokens", tag = "tokens",
    request_body = NewTokenBody,
    responses((status = 201, description = "The token, shown once", body = TokenView)))]
pub async fn create(State(api): State<Api>, body: Bytes) -> Result<impl IntoResponse, ApiError> {
    let fields = object(&body, &["project_code", "expires_in"])?;
    let project = match fields.get("project_code") {
        Some(Value::String(code)) => ProjectCode::parse(code.as_str())
            .map_err(|why| ApiError::invalid(format!("project_code: {why}")))?,
        Some(_) => return Err(ApiError::invalid("project_code: must be a string")),
        None => return Err(ApiError::invalid("project_code: required")),
    };
    let lifetime = match fields.get("expires_in") {
        Some(Value::String(text)) => webhooks_core::duration::parse(text).ok(),
        Some(Value::Number(secs)) => secs.as_u64().map(Duration::from_secs),
        Some(_) => None,
        None => return Err(ApiError::invalid("expires_in: required")),
    }
    .filter(|lifetime| (Duration::from_secs(1)..=MAX_LIFETIME).contains(lifetime))
    .ok_or_else(|| {
        ApiError::invalid("expires_in: must be a duration (e.g. 30d, 12h) or seconds, 1 s to 365 d")
    })?;
    // To the second, as the token carries it.
    let expires_at = api.clock.now() + chrono::TimeDelta::seconds(lifetime.as_secs() as i64);
    let expires_at =
        chrono::DateTime::from_timestamp(expires_at.timestamp(), 0).unwrap_or(expires_at);
    let token = api.token_key.mint(&project, expires_at);
    let view = TokenView {
        token,
        project_code: project.into_string(),
        expires_at: rfc3339::format(&expires_at),
    };
    Ok((StatusCode::CREATED, Json(view)))
}
