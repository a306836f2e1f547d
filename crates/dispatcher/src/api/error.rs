//! API errors: a status and a message, answered as `{"error": "<message>"}`.

use axum::Json;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Seconds a client is told to wait (`Retry-After`) when every database connection stayed busy.
pub const RETRY_AFTER_SECS: u64 = 1;

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Answered as `Retry-After` (seconds).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Every database connection stayed busy for as long as a request may wait for one: the
    /// request did nothing, and may be sent again shortly.
    pub fn busy() -> Self {
        Self {
            retry_after: Some(RETRY_AFTER_SECS),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy: no database connection became free in time; retry later",
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, message)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not found")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        match self.retry_after {
            Some(secs) => {
                (self.status, [(header::RETRY_AFTER, secs.to_string())], body).into_response()
            }
            None => (self.status, body).into_response(),
        }
    }
}

/// Storage failures are logged with their cause and answered as a bare 500, except a wait for a
/// pooled connection that ran out, which is answered as [`ApiError::busy`] (503).
impl<E: Into<anyhow::Error>> From<E> for ApiError {
    fn from(error: E) -> Self {
        let error = error.into();
        if is_pool_timeout(&error) {
            tracing::warn!(
                error = format!("{error:#}"),
                "API request found the database pool busy"
            );
            return Self::busy();
        }
        tracing::error!(error = format!("{error:#}"), "API request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

/// Most a rejection's own text that [`json_rejections`] keeps.
const MAX_REJECTION_TEXT: usize = 1024;

/// Answers in the API's error shape what axum itself refuses before a handler runs (a path or a
/// body it cannot read, a body over the limit, a method the path does not serve), which it
/// answers in plain text or with no body at all; every other answer passes untouched.
pub async fn json_rejections(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_REJECTION_TEXT)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("refused")
            .to_lowercase()
    } else {
        text
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::CONTENT_TYPE);
    let mut answer = ApiError::new(status, message).into_response();
    for (name, value) in parts.headers {
        if let Some(name) = name {
            answer.headers_mut().insert(name, value);
        }
    }
    answer
}

/// Whether `error`, or any cause of it, is a pooled connection that did not come in time.
fn is_pool_timeout(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<deadpool_postgres::PoolError>(),
            Some(deadpool_postgres::PoolError::Timeout(_))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use deadpool_postgres::{PoolError, TimeoutType};
    use webhooks_core::db::StoreError;

    async fn answer(error: ApiError) -> (StatusCode, Option<String>, serde_json::Value) {
        let response = error.into_response();
        let status = response.status();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .map(|v| v.to_str().expect("ascii").to_owned());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("body");
        (
            status,
            retry_after,
            serde_json::from_slice(&body).expect("json"),
        )
    }

    #[tokio::test]
    async fn a_pool_that_stays_busy_is_a_503_with_retry_after_not_a_500() {
        for error in [
            ApiError::from(PoolError::Timeout(TimeoutType::Wait)),
            ApiError::from(StoreError::Pool(PoolError::Timeout(TimeoutType::Create))),
        ] {
            let (status, retry_after, body) = answer(error).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(retry_after.as_deref(), Some("1"));
            assert!(
                body["error"]
                    .as_str()
                    .expect("error message")
                    .starts_with("busy"),
                "{body}"
            );
        }
    }

    #[tokio::test]
    async fn other_storage_failures_stay_a_bare_500() {
        let (status, retry_after, body) = answer(ApiError::from(PoolError::Closed)).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(retry_after, None);
        assert_eq!(body, serde_json::json!({"error": "internal error"}));
        let (status, retry_after, _) = answer(ApiError::not_found()).await;
        assert_eq!((status, retry_after), (StatusCode::NOT_FOUND, None));
    }
}
