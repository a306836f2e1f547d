//! One delivery as it was sent: its attempts with the first bytes of each answer, the body, and
//! the headers of its latest attempt, rebuilt as the senders build them
//! ([`webhooks_core::headers`]) with the secret masked.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use webhooks_core::headers::{self, Stamp};
use webhooks_core::secret::Secret;
use webhooks_core::signing::PreviousSecret;

use super::deliveries::with_attempts;
use super::error::ApiError;
use super::schemas::ProjectCodeParam;
use super::state::Api;
use super::views::DeliveryView;
use super::webhooks::{id, project};
use crate::store::listing::{self, Sent};

/// What the value of the header that carries the secret is shown as.
pub const MASK: &str = "********";

/// A delivery with what its attempts sent.
#[derive(Serialize, ToSchema)]
#[schema(as = DeliveryDetail)]
pub struct DetailView {
    #[serde(flatten)]
    delivery: DeliveryView,
    /// The body every attempt sends, as text; `null` once the event is no longer stored.
    body: Option<String>,
    /// The headers of its latest attempt (or of its first, before it is made), in the order
    /// sent. `x-qase-secret` is masked; `webhook-signature` is computed with the webhook's
    /// secrets as they are now, so after a rotation it differs from the one sent.
    headers: Vec<HeaderView>,
}

/// One header of a request.
#[derive(Serialize, ToSchema)]
#[schema(as = Header)]
pub struct HeaderView {
    #[schema(example = "x-qase-event")]
    name: String,
    value: String,
}

/// One delivery of the project, with all its attempts and what they sent.
#[utoipa::path(get, operation_id = "getDelivery", path = "/projects/{project_code}/deliveries/{id}", tag = "deliveries",
    params(("project_code" = ProjectCodeParam, Path), ("id" = Uuid, Path, description = "The delivery's id")),
    responses((status = 200, description = "The delivery", body = DetailView)))]
pub async fn one(
    State(api): State<Api>,
    Path((code, id_text)): Path<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (code, delivery) = (project(code)?, id(&id_text)?);
    let client = api.client().await?;
    let row = listing::one(&client, &code, delivery)
        .await?
        .ok_or_else(ApiError::not_found)?;
    let sent = listing::sent(&client, &row).await?;
    let (id, event_name) = (row.id.to_string(), row.event_name.clone());
    let view = with_attempts(&client, vec![row], true)
        .await?
        .pop()
        .expect("the one delivery");
    let at = view.latest_attempt().unwrap_or_else(|| api.clock.now());
    let headers = shown_headers(&id, &event_name, at, &sent);
    Ok(Json(DetailView {
        body: sent
            .body
            .map(|body| String::from_utf8_lossy(&body).into_owned()),
        delivery: view,
        headers,
    }))
}

/// The headers an attempt at `at` sends, the secret masked.
fn shown_headers(id: &str, event_name: &str, at: DateTime<Utc>, sent: &Sent) -> Vec<HeaderView> {
    let secret = sent.secret.clone().map(Secret::new);
    let previous = sent
        .previous_secret
        .clone()
        .zip(sent.previous_secret_until)
        .map(|(secret, until)| PreviousSecret {
            secret: Secret::new(secret),
            until,
        });
    let stamp = Stamp {
        delivery_id: id,
        event_name,
        timestamp: at.timestamp(),
        secret: secret.as_ref(),
        previous: previous.as_ref(),
        body: sent.body.as_deref().unwrap_or_default(),
    };
    headers::attempt(&stamp)
        .into_iter()
        .map(|(name, value)| HeaderView {
            name: name.to_owned(),
            value: if name == headers::SECRET {
                MASK.to_owned()
            } else {
                value
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_is_masked_and_the_signature_shown() {
        let sent = Sent {
            body: Some(b"{}".to_vec()),
            secret: Some("s3cr3t-value".to_owned()),
            previous_secret: None,
            previous_secret_until: None,
        };
        let at = DateTime::from_timestamp(1_650_540_069, 0).expect("time");
        let shown = shown_headers("d1", "run.started", at, &sent);
        let value = |name: &str| {
            shown
                .iter()
                .find(|h| h.name == name)
                .map(|h| h.value.clone())
        };
        assert_eq!(value("x-qase-secret").as_deref(), Some(MASK));
        assert_eq!(value("webhook-timestamp").as_deref(), Some("1650540069"));
        assert!(
            value("webhook-signature")
                .expect("signed")
                .starts_with("v1,")
        );
        assert!(shown.iter().all(|h| !h.value.contains("s3cr3t")));
    }
}
