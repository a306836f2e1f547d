//! Who may call what: the bearer token checked on every route that needs one, and what a token
//! scoped to one project may reach.
//!
//! - `ADMIN_TOKEN` reaches every route.
//! - A project token ([`crate::project_token`]) reaches the routes of its own project and those
//!   of no project (the event catalogue); another project's routes are not found (404), as an id
//!   of another project is; the routes only `ADMIN_TOKEN` reaches (minting tokens) are forbidden
//!   (403).
//! - A missing, wrong, forged or expired token gets 401 and nothing else.

use axum::Json;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{RawPathParams, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use webhooks_core::event::ProjectCode;

use super::error::ApiError;
use super::state::Api;

/// Who a request comes from, once its token is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    Admin,
    /// A token scoped to this project.
    Project(ProjectCode),
}

/// Checks the bearer token; the request goes on with its [`Caller`] among its extensions.
pub async fn authorize(State(api): State<Api>, mut request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "));
    let caller = match presented {
        Some(token) if api.token.constant_time_eq(token) => Caller::Admin,
        Some(token) => match api.token_key.check(token, api.clock.now()) {
            Ok(project) => Caller::Project(project),
            Err(_) => return unauthorized(),
        },
        None => return unauthorized(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(serde_json::json!({"error": "unauthorized"})),
    )
        .into_response()
}

/// On the routes only `ADMIN_TOKEN` reaches: a project token is forbidden.
pub async fn admin_only(request: Request, next: Next) -> Response {
    match request.extensions().get::<Caller>() {
        Some(Caller::Admin) => next.run(request).await,
        _ => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden: only the admin token may do this",
        )
        .into_response(),
    }
}

/// On the routes any token reaches: a project token reaches only its own project's.
pub async fn in_scope(
    params: Result<RawPathParams, RawPathParamsRejection>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(Caller::Project(own)) = request.extensions().get::<Caller>() {
        let asked = params.ok().and_then(|params| {
            params
                .iter()
                .find(|(name, _)| *name == "project_code")
                .map(|(_, code)| code.to_owned())
        });
        if asked.is_some_and(|code| code != own.as_str()) {
            return ApiError::not_found().into_response();
        }
    }
    next.run(request).await
}
