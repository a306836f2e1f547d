//! Tokens scoped to one project: minted by the admin token only, reaching their own project's
//! routes and the catalogue, nothing of another project, and refused once expired or forged.

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use webhooks_core::event::ProjectCode;
use webhooks_core::secret::Secret;
use webhooks_dispatcher::project_token::TokenKey;
use webhooks_tests::world::World;

async fn mint(world: &World, project: &str, expires_in: Value) -> String {
    let (status, answer) = world
        .api(
            Method::POST,
            "/tokens",
            Some(json!({"project_code": project, "expires_in": expires_in})),
        )
        .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(answer["project_code"], project);
    answer["token"].as_str().expect("token").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_token_reaches_its_own_project_only_until_it_expires() {
    let world = World::start().await;
    let other = world.webhook("OTHER", "o", &["run.started"], None).await;
    let token = mint(&world, "DEMO", json!("1h")).await;
    let token = Some(token.as_str());
    let body =
        json!({"title": "mine", "url": world.receiver.url("mine"), "events": ["run.started"]});

    // Its own project: everything, as the admin token would.
    let (status, created) = world
        .api_as(
            token,
            Method::POST,
            "/projects/DEMO/webhooks",
            Some(body.clone()),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let mine = created["id"].as_str().expect("id");
    for (method, path, expected) in [
        (Method::GET, "/projects/DEMO/webhooks".to_owned(), 200),
        (Method::GET, format!("/projects/DEMO/webhooks/{mine}"), 200),
        (
            Method::GET,
            format!("/projects/DEMO/webhooks/{mine}/deliveries"),
            200,
        ),
        (
            Method::POST,
            format!("/projects/DEMO/webhooks/{mine}/test"),
            202,
        ),
        (Method::GET, "/events".to_owned(), 200),
    ] {
        let (status, answer) = world.api_as(token, method.clone(), &path, None).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
    }
    world.receiver.wait_for("mine", 1, crate::SOON).await;

    // Another project's routes are not found, whatever they hold; minting is forbidden.
    for (method, path) in [
        (Method::GET, "/projects/OTHER/webhooks".to_owned()),
        (Method::POST, "/projects/OTHER/webhooks".to_owned()),
        (Method::GET, format!("/projects/OTHER/webhooks/{other}")),
        (Method::PATCH, format!("/projects/OTHER/webhooks/{other}")),
        (Method::DELETE, format!("/projects/OTHER/webhooks/{other}")),
        (
            Method::POST,
            format!("/projects/OTHER/webhooks/{other}/test"),
        ),
        (
            Method::GET,
            format!("/projects/OTHER/webhooks/{other}/deliveries"),
        ),
        (
            Method::POST,
            format!("/projects/OTHER/deliveries/{}/retry", uuid::Uuid::new_v4()),
        ),
        // Percent-encoded, the project is still OTHER.
        (Method::GET, "/projects/OTH%45R/webhooks".to_owned()),
    ] {
        let body = matches!(method, Method::POST | Method::PATCH).then(|| body.clone());
        let (status, answer) = world.api_as(token, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (status, answer) = world
        .api_as(
            token,
            Method::POST,
            "/tokens",
            Some(json!({"project_code": "OTHER", "expires_in": "1h"})),
        )
        .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(world.get_webhook("OTHER", &other).await["title"], "hook o");

    // Once expired (on the services' clock), nothing.
    world.clock.advance(Duration::from_secs(3600));
    let (status, answer) = world
        .api_as(token, Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(status, 401);
    assert_eq!(answer, json!({"error": "unauthorized"}));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tokens_are_refused_and_bad_requests_name_the_field() {
    let world = World::start().await;
    let token = mint(&world, "DEMO", json!(600)).await;
    let demo = ProjectCode::parse("DEMO").expect("code");
    let far = chrono::Utc::now() + chrono::TimeDelta::days(30);
    // Signed with another ADMIN_TOKEN's key, or changed in any part.
    let foreign =
        TokenKey::derive(&Secret::new("a-different-admin-token-0123456789ab")).mint(&demo, far);
    let (signed, _) = token.rsplit_once('.').expect("signature");
    let (project, _) = signed.split_once('.').expect("expiry");
    let longer = format!(
        "{project}.{}.{}",
        far.timestamp(),
        token.rsplit_once('.').expect("sig").1
    );
    for forged in [
        foreign.as_str(),
        longer.as_str(),
        &format!("{signed}.AAAA"),
        &token[..token.len() - 1],
        "whp_",
    ] {
        let (status, _) = world
            .api_as(Some(forged), Method::GET, "/projects/DEMO/webhooks", None)
            .await;
        assert_eq!(status, 401, "{forged}");
    }
    let (status, _) = world
        .api_as(Some(&token), Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(status, 200, "the token itself is good");

    for (body, field) in [
        (json!({"expires_in": "1h"}), "project_code"),
        (
            json!({"project_code": "", "expires_in": "1h"}),
            "project_code",
        ),
        (
            json!({"project_code": 7, "expires_in": "1h"}),
            "project_code",
        ),
        (json!({"project_code": "DEMO"}), "expires_in"),
        (
            json!({"project_code": "DEMO", "expires_in": "forever"}),
            "expires_in",
        ),
        (
            json!({"project_code": "DEMO", "expires_in": 0}),
            "expires_in",
        ),
        (
            json!({"project_code": "DEMO", "expires_in": "400d"}),
            "expires_in",
        ),
        (
            json!({"project_code": "DEMO", "expires_in": -5}),
            "expires_in",
        ),
        (
            json!({"project_code": "DEMO", "expires_in": "1h", "scope": "all"}),
            "scope",
        ),
    ] {
        let (status, answer) = world.api(Method::POST, "/tokens", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let error = answer["error"].as_str().expect("error");
        assert!(error.starts_with(&format!("{field}:")), "{body}: {error}");
    }
    world.finish().await;
}
