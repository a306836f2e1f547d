//! `POST …/webhooks/{id}/secret/rotate`: a new secret for a webhook, the old one still signing
//! its deliveries for a grace period so that its receiver can switch without refusing any.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use base64::Engine;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use utoipa::ToSchema;
use webhooks_core::messages::rfc3339;

use super::error::ApiError;
use super::input::{object, secret};
use super::schemas::{DurationSchema, ProjectCodeParam};
use super::state::Api;
use super::webhooks::{id, project};
use crate::store::secrets::rotate as store_rotate;

/// How long the replaced secret keeps signing when the request does not say.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(24 * 3600);
/// The longest grace a request may ask for.
pub const MAX_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

/// A rotation; both fields may be left out, as may the whole body (or be `null`). Unknown fields
/// are refused.
#[derive(ToSchema)]
#[schema(as = SecretRotation)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // Described, not built: the body is parsed field by field.
pub struct RotationBody {
    /// The new secret, by the rules of a webhook's `secret`; a `whsec_` one with 32 random bytes
    /// is generated when not given.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 256)]
    secret: String,
    /// How long the replaced secret keeps signing, 0 to 30 days: a duration (`24h`, `90m`) or a
    /// number of seconds; 24 hours when not given, none at all with `0`.
    #[serde(default)]
    #[schema(value_type = DurationSchema, example = "24h")]
    grace: String,
}

/// The new secret, shown once.
#[derive(Serialize, ToSchema)]
#[schema(as = RotatedSecret)]
pub struct RotatedView {
    secret: String,
    /// Until when the replaced secret still signs, beside the new one; `null` when it does not
    /// (no grace, or the webhook had no secret).
    #[schema(format = DateTime)]
    previous_secret_until: Option<String>,
}

/// Replaces a webhook's secret; the old one keeps signing for a grace period.
#[utoipa::path(post, operation_id = "rotateSecret", path = "/projects/{project_code}/webhooks/{id}/secret/rotate", tag = "webhooks",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The webhook's id")),
    request_body(content = Option<RotationBody>, description = "May be empty"),
    responses((status = 200, description = "The new secret, shown once", body = RotatedView)))]
pub async fn rotate(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    let (code, webhook) = (project(code)?, id(&id_text)?);
    let fields = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
        serde_json::Map::new()
    } else {
        object(&body, &["secret", "grace"])?
    };
    let new_secret = match fields.get("secret") {
        None => generated(),
        Some(value) => secret(value).map_err(|why| ApiError::invalid(format!("secret: {why}")))?,
    };
    let grace = match fields.get("grace") {
        None => Some(DEFAULT_GRACE),
        Some(Value::String(text)) => webhooks_core::duration::parse(text).ok(),
        Some(Value::Number(secs)) => secs.as_u64().map(Duration::from_secs),
        Some(_) => None,
    }
    .filter(|grace| *grace <= MAX_GRACE)
    .ok_or_else(|| {
        ApiError::invalid("grace: must be a duration (e.g. 24h) or seconds, 0 to 30 days")
    })?;
    let now = api.clock.now();
    let grace_until =
        (!grace.is_zero()).then(|| now + chrono::TimeDelta::milliseconds(grace.as_millis() as i64));
    let mut client = api.client().await?;
    let tx = client.transaction().await?;
    let previous_until = store_rotate(&tx, &code, webhook, &new_secret, grace_until, now)
        .await?
        .ok_or_else(ApiError::not_found)?;
    tx.commit().await?;
    Ok(Json(RotatedView {
        secret: new_secret,
        previous_secret_until: previous_until.as_ref().map(rfc3339::format),
    }))
}

/// A Standard Webhooks secret: `whsec_` and 32 random bytes in base64.
fn generated() -> String {
    let key: [u8; 32] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}
