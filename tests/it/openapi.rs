//! The OpenAPI document the dispatcher serves: without a token, and listing exactly the routes
//! the running router answers.

use reqwest::Method;
use serde_json::Value;
use std::collections::BTreeSet;
use webhooks_dispatcher::api::{routes, spec};
use webhooks_tests::world::World;

/// (method, path) of every operation of `document`.
fn operations(document: &Value) -> BTreeSet<(String, String)> {
    document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .expect("path item")
                .keys()
                .map(|method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// A path of the document with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{project_code}", "DEMO")
        .replace("{id}", &uuid::Uuid::new_v4().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_document_lists_every_route_the_router_answers() {
    let world = World::start().await;
    let (status, document) = world.api_as(None, Method::GET, "/openapi.json", None).await;
    assert_eq!(status, 200, "served without a token");
    assert_eq!(document["openapi"], "3.1.0");
    assert_eq!(
        document["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(document["components"]["schemas"]["Error"].is_object());

    // Every route of the table the router is built from is documented, and nothing else.
    let documented = operations(&document);
    let routed: BTreeSet<(String, String)> = routes::all()
        .into_iter()
        .map(|route| {
            (
                route.method.to_string(),
                format!("{}{}", spec::PREFIX, route.path),
            )
        })
        .collect();
    assert_eq!(documented, routed);

    // And the running router answers each of them: a documented path is routed (a method it
    // does not serve is 405 there, where a path it does not route is 404), and each documented
    // method is served on it.
    let origin = world.api_base.trim_end_matches(spec::PREFIX).to_owned();
    let http = reqwest::Client::new();
    for (method, path) in &documented {
        let url = format!("{origin}{}", concrete(path));
        let call = |method: Method| {
            http.request(method, &url)
                .bearer_auth(webhooks_tests::world::TOKEN)
                .header("content-type", "application/json")
                .body("{}")
                .send()
        };
        let unserved = call(Method::PUT).await.expect("answer").status();
        assert_eq!(unserved, 405, "PUT {path}: the path is routed");
        let method: Method = method.parse().expect("method");
        let served = call(method.clone()).await.expect("answer").status();
        assert_ne!(served, 405, "{method} {path} is served");
        assert!(served.as_u16() < 500, "{method} {path}: {served}");
    }
    let unrouted = http
        .put(format!("{origin}/api/v1/nowhere"))
        .bearer_auth(webhooks_tests::world::TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(unrouted.status(), 404, "an unrouted path is told apart");
    world.finish().await;
}

/// What axum refuses before a handler runs is answered in the API's error shape too, as the
/// document says: a body over the limit, a repeated query parameter, a method a path does not
/// serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_before_a_handler_are_in_the_error_shape() {
    let world = World::start().await;
    let id = world.webhook("DEMO", "r", &["run.started"], None).await;
    let http = reqwest::Client::new();
    let webhooks = format!("{}/projects/DEMO/webhooks", world.api_base);
    let cases = [
        (
            http.post(&webhooks)
                .body(format!(r#"{{"title":"{}"}}"#, "x".repeat(70_000))),
            413,
        ),
        (
            http.get(format!("{webhooks}/{id}/deliveries?limit=1&limit=2")),
            400,
        ),
        (http.put(&webhooks), 405),
    ];
    for (request, expected) in cases {
        let response = request
            .bearer_auth(webhooks_tests::world::TOKEN)
            .header("content-type", "application/json")
            .send()
            .await
            .expect("answer");
        assert_eq!(response.status(), expected);
        let allow = response.headers().get("allow").cloned();
        assert!(
            response
                .headers()
                .get("content-type")
                .is_some_and(|v| v.as_bytes().starts_with(b"application/json")),
            "{expected}: {:?}",
            response.headers()
        );
        let body: Value =
            serde_json::from_str(&response.text().await.expect("body")).expect("JSON body");
        let error = body["error"].as_str().expect("error message");
        match expected {
            400 => assert!(error.starts_with("limit:"), "{error}"),
            405 => assert!(allow.is_some(), "405 keeps its Allow header"),
            _ => {}
        }
    }
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_the_event_catalogue_titled_and_grouped() {
    let world = World::start().await;
    let (status, _) = world.api_as(None, Method::GET, "/events", None).await;
    assert_eq!(status, 401, "the catalogue needs a token like the rest");
    let (status, groups) = world.api(Method::GET, "/events", None).await;
    assert_eq!(status, 200);
    let groups = groups.as_array().expect("groups");
    let titles: Vec<&str> = groups
        .iter()
        .map(|g| g["title"].as_str().expect("group title"))
        .collect();
    assert_eq!(
        titles,
        [
            "Test cases",
            "Test suites",
            "Test plans",
            "Shared steps",
            "Milestones",
            "Custom fields",
            "Test runs",
            "Defects",
            "Test reviews",
            "Results"
        ]
    );
    let events: Vec<(&str, &str)> = groups
        .iter()
        .flat_map(|g| g["events"].as_array().expect("events"))
        .map(|e| {
            (
                e["name"].as_str().expect("name"),
                e["title"].as_str().expect("title"),
            )
        })
        .collect();
    let names: Vec<&str> = events.iter().map(|(name, _)| *name).collect();
    let catalogue: Vec<&str> = webhooks_core::event::EventName::ALL
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(names, catalogue, "all 43, once, in catalogue order");
    assert!(events.contains(&("run.updated", "Test cases added to run")));
    assert!(events.contains(&("review.approval_status_changed", "Approval status change")));
    world.finish().await;
}
