//! The management API under `/api/v1` (contract §2): webhooks of a project and their deliveries.
//!
//! Every route but the OpenAPI document needs `Authorization: Bearer <ADMIN_TOKEN>` or a token
//! of one project (see [`auth`]); a wrong, missing or expired token gets 401 and nothing else. Bad input gets 400/422 with `{"error": ...}` naming the field, and stores nothing.
//!
//! A request holds at most one pooled database connection at a time, so requests never wait for
//! each other's connections: with every connection busy a request queues for one for at most
//! [`POOL_WAIT`], then gets 503 with `Retry-After` (see [`ApiError::busy`]), having done nothing.
//!
//! # Layout
//! - this file: the router and the request counter; [`access`]: who may call which route;
//!   [`auth`]: the tokens checked.
//! - [`routes`]: every route, in the table the router is built from.
//! - [`state`]: what every handler is given ([`Api`]), and its one database connection.
//! - [`webhooks`], [`deliveries`], [`history`], [`detail`]: the handlers; their SQL is in [`crate::store`]. [`events`]:
//!   the event catalogue; [`test_delivery`]: a test delivery on request; [`tokens`]:
//!   project tokens; [`secrets`]: a secret rotated with a grace period; [`replays`]: bulk
//!   replays of a webhook's deliveries, and [`replay_input`]: their requests parsed.
//! - [`input`]: request bodies parsed into validated fields; [`views`]: what the API answers.
//! - [`query`]: query parameters, each named in its error; [`error`]: the error answers.
//! - [`spec`]: the OpenAPI document, from the handlers' annotations and [`schemas`].

mod access;
mod auth;
mod deliveries;
mod detail;
mod error;
mod events;
mod history;
pub mod input;
mod query;
mod replay_input;
mod replays;
pub mod routes;
mod schemas;
mod secrets;
pub mod spec;
mod state;
mod test_delivery;
mod tokens;
mod views;
mod webhooks;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;

use crate::metrics::StatusClass;
pub use error::ApiError;
pub use state::{Api, POOL_WAIT};

/// Largest request body the API reads.
const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router(api: Api) -> Router {
    let [open, token, admin] = routes::routers();
    let token = token.route_layer(middleware::from_fn(auth::in_scope));
    let admin = admin.route_layer(middleware::from_fn(auth::admin_only));
    // Any other path is not found, once the token is checked: no path is told apart without one.
    let guarded = token
        .merge(admin)
        .fallback(|| async { ApiError::not_found() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(api.clone(), auth::authorize));
    let routes = open
        .merge(guarded)
        .layer(middleware::from_fn(error::json_rejections))
        .with_state(api.clone());
    Router::new()
        .nest(spec::PREFIX, routes)
        .layer(middleware::from_fn_with_state(api, count))
}

async fn count(State(api): State<Api>, request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let class = StatusClass::of(response.status().as_u16());
    api.metrics.api_requests.with(class).inc();
    response
}
