//! Who may call which route: every route takes `ADMIN_TOKEN` or a token of its project, but for
//! the few listed here. Both the router ([`super::routes`]) and the OpenAPI document
//! ([`super::spec`]) read it, so neither needs the other to know.

use axum::http::Method;

/// Who may call a route (see [`super::auth`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone, without a token.
    Public,
    /// `ADMIN_TOKEN`, or a token of the route's project (of any, for a route of no project).
    Token,
    /// `ADMIN_TOKEN` only.
    Admin,
}

/// The routes (method, path under `/api/v1`) that are not [`Access::Token`].
pub const EXCEPTIONS: [(Method, &str, Access); 2] = [
    (Method::GET, "/openapi.json", Access::Public),
    (Method::POST, "/tokens", Access::Admin),
];

/// Who may call `method` `path`.
pub fn of(method: &Method, path: &str) -> Access {
    EXCEPTIONS
        .iter()
        .find(|(m, p, _)| m == method && *p == path)
        .map_or(Access::Token, |(_, _, access)| *access)
}
