//! The web console at `/console`: a few static files, compiled into the binary, that call the
//! management API from the browser with the token the user signs in with: the admin token, or a
//! project token, which reaches that project's webhooks only.
//!
//! Nothing here needs the token: the pages hold no data, and every call they make goes to
//! `/api/v1`, which checks it. Every answer carries a strict Content-Security-Policy (scripts
//! and styles from this origin only, nothing inline, no framing), so a value shown on a page
//! cannot run as script, and no other host is ever asked for anything.
//!
//! # Layout
//! - this file: the routes, the files and their headers.
//! - `assets/`: the HTML, the CSS and the ES modules (`assets/app.js` is the entry point,
//!   `assets/api.js` the only one that talks to the API).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// Where the console is served.
pub const BASE: &str = "/console";

/// Scripts, styles, images and API calls from this origin only; no inline script or style, no
/// plugins, no framing, no form posted anywhere (forms are handled by script).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One file of the console: its name under `/console/`, type and content.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! assets {
    ($($name:literal => $type:expr,)*) => {
        &[$(Asset { name: $name, content_type: $type, body: include_str!(concat!("assets/", $name)) },)*]
    };
}

const JS: &str = "text/javascript; charset=utf-8";

const ASSETS: &[Asset] = assets! {
    "index.html" => "text/html; charset=utf-8",
    "console.css" => "text/css; charset=utf-8",
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "signin.js" => JS,
    "projects.js" => JS,
    "webhooks.js" => JS,
    "form.js" => JS,
    "events.js" => JS,
    "deliveries.js" => JS,
    "poll.js" => JS,
    "rows.js" => JS,
    "about.js" => JS,
    "filters.js" => JS,
    "replay.js" => JS,
    "delivery.js" => JS,
};

/// The console's routes; merged next to the API's.
pub fn router() -> Router {
    Router::new()
        .route(BASE, get(index))
        .route(
            "/console/",
            get(|| async { Redirect::permanent(BASE).into_response() }),
        )
        .route("/console/{file}", get(asset))
        .layer(axum::middleware::map_response(secure))
}

async fn index() -> Response {
    serve("index.html")
}

async fn asset(Path(file): Path<String>) -> Response {
    serve(&file)
}

fn serve(name: &str) -> Response {
    match ASSETS.iter().find(|a| a.name == name) {
        Some(asset) => (
            [
                (header::CONTENT_TYPE, asset.content_type),
                // Small files: always revalidated, so a new binary's console is seen at once.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            asset.body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "not found").into_response(),
    }
}

/// The security headers of every console answer.
async fn secure(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            "same-origin",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    async fn get(path: &str) -> Response {
        router()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("answer")
    }

    #[tokio::test]
    async fn serves_every_file_with_its_type_and_the_security_headers() {
        for path in [
            "/console",
            "/console/app.js",
            "/console/console.css",
            "/console/api.js",
        ] {
            let response = get(path).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            let headers = response.headers();
            let csp = headers[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("csp");
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
            assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
            assert_eq!(headers[header::REFERRER_POLICY], "no-referrer");
        }
        let js = get("/console/api.js").await;
        assert!(
            js.headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("type")
                .starts_with("text/javascript")
        );
        assert_eq!(
            get("/console/nothing.js").await.status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get("/console/").await.status(),
            StatusCode::PERMANENT_REDIRECT
        );
    }

    #[test]
    fn no_page_has_inline_script_or_style() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".html")) {
            assert!(!asset.body.contains("<script>"), "{}", asset.name);
            assert!(!asset.body.contains("style="), "{}", asset.name);
            assert!(!asset.body.contains("onclick"), "{}", asset.name);
        }
    }

    #[test]
    fn every_module_imported_is_served() {
        for asset in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
            for line in asset.body.lines().filter(|l| l.starts_with("import ")) {
                let from = line.rsplit("from \"./").next().expect("import path");
                let file = from.trim_end_matches(['"', ';']);
                assert!(
                    ASSETS.iter().any(|a| a.name == file),
                    "{}: {line}",
                    asset.name
                );
            }
        }
    }
}
