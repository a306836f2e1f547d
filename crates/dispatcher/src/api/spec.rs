//! The API's OpenAPI 3.1 document, derived from the handlers' annotations and the types they
//! answer with, served at `GET /api/v1/openapi.json` without a token.
//!
//! The answers every route shares are added to each operation here rather than repeated on every
//! handler: `401` on the routes that need the token, `404` and `503` on those that read a
//! project, `400`, `413` and `422` on those that take a body, `408` and `500` on all.

use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use utoipa::OpenApi;

use super::access::{self, Access};
use super::error::RETRY_AFTER_SECS;
use super::schemas::{ErrorBody, ProjectCodeParam};
use super::{
    deliveries, detail, events, history, replays, secrets, test_delivery, tokens, webhooks,
};

/// Where the API's paths are, as the document names them.
pub const PREFIX: &str = "/api/v1";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Webhooks management API",
        version = "1",
        description = "Webhooks of a project, their deliveries and the event catalogue. Every call \
            but this document's needs `Authorization: Bearer <token>`."
    ),
    paths(
        serve,
        events::list,
        webhooks::list,
        webhooks::create,
        webhooks::get,
        webhooks::update,
        webhooks::delete,
        test_delivery::send,
        secrets::rotate,
        tokens::create,
        deliveries::list,
        history::search,
        detail::one,
        deliveries::retry,
        replays::create,
        replays::list,
        replays::get,
    ),
    components(schemas(ErrorBody, ProjectCodeParam)),
    tags(
        (name = "events", description = "The events a webhook can subscribe to"),
        (name = "tokens", description = "Tokens scoped to one project"),
        (name = "webhooks", description = "A project's webhooks"),
        (name = "deliveries", description = "What was sent to a webhook, and when"),
        (name = "replays", description = "A webhook's deliveries of a time range, sent again"),
        (name = "meta", description = "This document"),
    )
)]
struct Document;

/// The document, as served.
pub fn document() -> &'static Value {
    static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
        let mut document = serde_json::to_value(Document::openapi()).expect("a JSON document");
        complete(&mut document);
        document
    });
    &DOCUMENT
}

/// This document.
#[utoipa::path(get, operation_id = "getOpenApi", path = "/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI document of this API", body = Object)))]
pub async fn serve() -> impl IntoResponse {
    static TEXT: LazyLock<String> = LazyLock::new(|| document().to_string());
    ([(header::CONTENT_TYPE, "application/json")], TEXT.as_str())
}

/// Prefixes the paths, adds the bearer scheme, the shared error answers and the answers every
/// operation shares.
fn complete(document: &mut Value) {
    let paths = document["paths"].take();
    let paths: Map<String, Value> = paths
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| (format!("{PREFIX}{path}"), item.clone()))
        .collect();
    document["paths"] = Value::Object(paths);
    document["security"] = json!([{"bearer": []}]);
    let components = document["components"].as_object_mut().expect("components");
    components.insert(
        "securitySchemes".into(),
        json!({"bearer": {"type": "http", "scheme": "bearer",
            "description": "The ADMIN_TOKEN, or a token of one project (`POST /api/v1/tokens`)."}}),
    );
    components.insert("responses".into(), shared_responses());
    let admin_only: Vec<(String, String)> = access::EXCEPTIONS
        .iter()
        .filter(|(_, _, access)| *access == Access::Admin)
        .map(|(method, path, _)| (method.as_str().to_lowercase(), format!("{PREFIX}{path}")))
        .collect();
    for (path, item) in document["paths"].as_object_mut().expect("paths") {
        for (method, operation) in item.as_object_mut().expect("path item") {
            add_shared(operation);
            if admin_only.contains(&(method.clone(), path.clone())) {
                operation["responses"]["403"] = json!({"$ref": "#/components/responses/Forbidden"});
            }
        }
    }
}

fn error(description: &str) -> Value {
    json!({"description": description,
           "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

fn shared_responses() -> Value {
    let mut busy = error(
        "No database connection came free in time: the request did nothing and may be sent again",
    );
    busy["headers"] = json!({"Retry-After": {
        "description": "Seconds to wait", "schema": {"type": "integer", "const": RETRY_AFTER_SECS}}});
    let mut unauthorized = error("The token is missing, wrong or expired");
    unauthorized["headers"] = json!({"WWW-Authenticate": {"schema": {"type": "string"}}});
    json!({
        "BadRequest": error("The body is not a JSON object, or a query parameter is wrong"),
        "Unauthorized": unauthorized,
        "Forbidden": error("A project's token may not do this: only the admin token may"),
        "NotFound": error("No such path, project, webhook or delivery (or one of another project than the token's)"),
        "Timeout": error("The request took longer than HTTP_REQUEST_TIMEOUT"),
        "TooLarge": error("The body is over 64 KiB"),
        "Invalid": error("A field breaks a rule; the message starts with its name"),
        "Internal": error("The request failed; the cause is logged"),
        "Busy": busy,
    })
}

/// Adds to `operation` the answers it shares with others, unless it documents them itself.
fn add_shared(operation: &mut Value) {
    let public = operation["security"] == json!([{}]);
    let has_body = operation.get("requestBody").is_some();
    let has_project = operation["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["name"] == "project_code"));
    let has_query = operation["parameters"]
        .as_array()
        .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
    let mut shared = vec![("408", "Timeout"), ("500", "Internal")];
    if !public {
        shared.push(("401", "Unauthorized"));
    }
    if has_project {
        shared.extend([("404", "NotFound"), ("503", "Busy")]);
    }
    if has_body {
        shared.extend([
            ("400", "BadRequest"),
            ("413", "TooLarge"),
            ("422", "Invalid"),
        ]);
    }
    if has_query {
        shared.push(("400", "BadRequest"));
    }
    let responses = operation["responses"].as_object_mut().expect("responses");
    for (status, name) in shared {
        responses
            .entry(status)
            .or_insert_with(|| json!({"$ref": format!("#/components/responses/{name}")}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_openapi_3_1_with_the_bearer_scheme_and_the_error_shape() {
        let document = document();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(
            document["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        assert_eq!(
            document["components"]["schemas"]["Error"]["required"],
            json!(["error"])
        );
        let list = &document["paths"]["/api/v1/projects/{project_code}/webhooks"]["get"];
        assert_eq!(
            list["responses"]["401"]["$ref"],
            "#/components/responses/Unauthorized"
        );
        let spec = &document["paths"]["/api/v1/openapi.json"]["get"];
        assert_eq!(spec["security"], json!([{}]), "served without a token");
        assert!(spec["responses"].get("401").is_none());
    }

    #[test]
    fn the_body_limits_are_the_ones_input_checks() {
        use super::super::input::{MAX_SECRET, MAX_TITLE, MAX_URL};
        let schemas = &document()["components"]["schemas"];
        for body in ["NewWebhook", "WebhookChange"] {
            let fields = &schemas[body]["properties"];
            assert_eq!(fields["title"]["maxLength"], MAX_TITLE, "{body}");
            assert_eq!(fields["url"]["maxLength"], MAX_URL, "{body}");
            assert_eq!(fields["secret"]["maxLength"], MAX_SECRET, "{body}");
            assert_eq!(schemas[body]["additionalProperties"], false, "{body}");
        }
        assert_eq!(
            schemas["NewWebhook"]["required"],
            json!(["title", "url", "events"])
        );
    }
}
