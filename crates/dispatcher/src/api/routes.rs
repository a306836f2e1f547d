//! Every route of the API in one table, which the router is built from and which the tests hold
//! the OpenAPI document to: a route cannot be served without being listed here.

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use super::access::{self, Access};
use super::state::Api;
use super::{
    deliveries, detail, events, history, replays, secrets, spec, test_delivery, tokens, webhooks,
};

/// A route as the API serves it, its path under `/api/v1`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub method: Method,
    /// With its parameters as the OpenAPI document names them, e.g. `{project_code}`.
    pub path: &'static str,
    pub access: Access,
}

struct Entry {
    route: Route,
    handler: MethodRouter<Api>,
}

fn entry<H, T>(method: Method, path: &'static str, handler: H) -> Entry
where
    H: Handler<T, Api>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
    Entry {
        route: Route {
            access: access::of(&method, path),
            method,
            path,
        },
        handler: on(filter, handler),
    }
}

fn table() -> Vec<Entry> {
    const WEBHOOKS: &str = "/projects/{project_code}/webhooks";
    const WEBHOOK: &str = "/projects/{project_code}/webhooks/{id}";
    vec![
        entry(Method::GET, "/openapi.json", spec::serve),
        entry(Method::GET, "/events", events::list),
        entry(Method::POST, "/tokens", tokens::create),
        entry(Method::GET, WEBHOOKS, webhooks::list),
        entry(Method::POST, WEBHOOKS, webhooks::create),
        entry(Method::GET, WEBHOOK, webhooks::get),
        entry(Method::PATCH, WEBHOOK, webhooks::update),
        entry(Method::DELETE, WEBHOOK, webhooks::delete),
        entry(
            Method::POST,
            "/projects/{project_code}/webhooks/{id}/secret/rotate",
            secrets::rotate,
        ),
        entry(
            Method::POST,
            "/projects/{project_code}/webhooks/{id}/test",
            test_delivery::send,
        ),
        entry(
            Method::GET,
            "/projects/{project_code}/webhooks/{id}/deliveries",
            deliveries::list,
        ),
        entry(
            Method::POST,
            "/projects/{project_code}/webhooks/{id}/replay",
            replays::create,
        ),
        entry(
            Method::GET,
            "/projects/{project_code}/webhooks/{id}/replays",
            replays::list,
        ),
        entry(
            Method::GET,
            "/projects/{project_code}/webhooks/{id}/replays/{replay_id}",
            replays::get,
        ),
        entry(
            Method::GET,
            "/projects/{project_code}/deliveries",
            history::search,
        ),
        entry(
            Method::GET,
            "/projects/{project_code}/deliveries/{id}",
            detail::one,
        ),
        entry(
            Method::POST,
            "/projects/{project_code}/deliveries/{id}/retry",
            deliveries::retry,
        ),
    ]
}

/// Every route the API serves.
pub fn all() -> Vec<Route> {
    table().into_iter().map(|entry| entry.route).collect()
}

/// The routes of each [`Access`]: public, token, admin.
pub(super) fn routers() -> [Router<Api>; 3] {
    let mut routers = [Router::new(), Router::new(), Router::new()];
    for Entry { route, handler } in table() {
        let at = match route.access {
            Access::Public => 0,
            Access::Token => 1,
            Access::Admin => 2,
        };
        routers[at] = std::mem::take(&mut routers[at]).route(route.path, handler);
    }
    routers
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn the_document_has_every_route_and_nothing_else() {
        let documented: BTreeSet<(String, String)> = spec::document()["paths"]
            .as_object()
            .expect("paths")
            .iter()
            .flat_map(|(path, item)| {
                let methods = item.as_object().expect("item").keys();
                methods.map(|method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        let routed: BTreeSet<(String, String)> = all()
            .into_iter()
            .map(|r| (r.method.to_string(), format!("{}{}", spec::PREFIX, r.path)))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn every_exception_to_the_token_rule_is_a_route() {
        let routes = all();
        for (method, path, _) in access::EXCEPTIONS {
            let found = routes.iter().any(|r| r.method == method && r.path == path);
            assert!(found, "{method} {path} is not routed");
        }
    }
}
