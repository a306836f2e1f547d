//! The management API: auth, validation that names the field and stores nothing, project scoping,
//! the secret never echoed, and the lifecycle of a webhook.

use reqwest::Method;
use serde_json::json;
use webhooks_tests::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requires_the_bearer_token() {
    let world = World::start().await;
    for token in [None, Some("wrong"), Some("")] {
        let (status, body) = world
            .api_as(token, Method::GET, "/projects/DEMO/webhooks", None)
            .await;
        assert_eq!(status, 401, "token {token:?}");
        assert_eq!(
            body,
            json!({"error": "unauthorized"}),
            "nothing else revealed"
        );
    }
    let (status, _) = world
        .api_as(
            Some("wrong"),
            Method::POST,
            "/projects/DEMO/webhooks",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(status, 200);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validation_errors_name_the_field_and_store_nothing() {
    let world = World::start().await;
    let url = world.receiver.url("x");
    let good = json!({"title": "CI", "url": url, "events": ["run.started"]});
    let cases = [
        (json!({"url": url, "events": ["run.started"]}), "title"),
        (
            json!({"title": "", "url": url, "events": ["run.started"]}),
            "title",
        ),
        (json!({"title": "CI", "events": ["run.started"]}), "url"),
        (
            json!({"title": "CI", "url": "not a url", "events": ["run.started"]}),
            "url",
        ),
        (
            json!({"title": "CI", "url": "ftp://example.com/x", "events": ["run.started"]}),
            "url",
        ),
        (
            json!({"title": "CI", "url": "http://u:p@example.com/", "events": ["run.started"]}),
            "url",
        ),
        (json!({"title": "CI", "url": url, "events": []}), "events"),
        (
            json!({"title": "CI", "url": url, "events": ["run.exploded"]}),
            "events",
        ),
        (json!({"title": "CI", "url": url}), "events"),
        (
            json!({"title": "CI", "url": url, "events": ["run.started"], "enabled": "yes"}),
            "enabled",
        ),
        (
            json!({"title": "CI", "url": url, "events": ["run.started"], "created_by": "me"}),
            "created_by",
        ),
        (
            json!({"title": "CI", "url": url, "events": ["run.started"], "secret": 7}),
            "secret",
        ),
        (
            json!({"title": "CI", "url": url, "events": ["run.started"], "colour": "red"}),
            "colour",
        ),
        (
            json!({"title": "x".repeat(300), "url": url, "events": ["run.started"]}),
            "title",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = world
            .api(Method::POST, "/projects/DEMO/webhooks", Some(body.clone()))
            .await;
        assert!(status == 400 || status == 422, "{body}: {status}");
        let error = answer["error"].as_str().expect("error message");
        assert!(error.starts_with(&format!("{field}:")), "{body}: {error}");
    }
    // Not JSON at all.
    let response = reqwest::Client::new()
        .post(format!("{}/projects/DEMO/webhooks", world.api_base))
        .bearer_auth(webhooks_tests::world::TOKEN)
        .body("{not json")
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 400);
    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(list, json!([]), "nothing stored");

    // The same body, valid, is stored; a bad PATCH changes nothing.
    let (status, created) = world
        .api(Method::POST, "/projects/DEMO/webhooks", Some(good))
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().expect("id");
    let (status, answer) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{id}"),
            Some(json!({"title": "New", "events": []})),
        )
        .await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(world.get_webhook("DEMO", id).await["title"], "CI");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_literal_private_addresses_at_creation() {
    // No ALLOWED_TARGETS here: loopback and private addresses are refused.
    let world = World::start_with(|o| o.dispatcher.allowed_targets.clear()).await;
    for url in [
        "http://127.0.0.1:8080/x",
        "http://10.1.2.3/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[fd00:ec2::254]/",
        "http://[::ffff:192.168.0.1]/",
        "http://0.0.0.0/",
    ] {
        let body = json!({"title": "x", "url": url, "events": ["run.started"]});
        let (status, answer) = world
            .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
            .await;
        assert_eq!(status, 422, "{url}: {answer}");
        assert!(
            answer["error"].as_str().expect("error").starts_with("url:"),
            "{answer}"
        );
    }
    let body =
        json!({"title": "x", "url": "https://hooks.example.com/x", "events": ["run.started"]});
    let (status, _) = world
        .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
        .await;
    assert_eq!(status, 201);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_every_call_to_its_project() {
    let world = World::start().await;
    let id = world.webhook("DEMO", "p", &["run.started"], None).await;
    for (method, path) in [
        (Method::GET, format!("/projects/OTHER/webhooks/{id}")),
        (Method::PATCH, format!("/projects/OTHER/webhooks/{id}")),
        (Method::DELETE, format!("/projects/OTHER/webhooks/{id}")),
        (
            Method::GET,
            format!("/projects/OTHER/webhooks/{id}/deliveries"),
        ),
        (Method::GET, "/projects/DEMO/webhooks/not-a-uuid".to_owned()),
        (
            Method::GET,
            format!("/projects/DEMO/webhooks/{}", uuid::Uuid::new_v4()),
        ),
        (
            Method::POST,
            format!("/projects/DEMO/deliveries/{}/retry", uuid::Uuid::new_v4()),
        ),
    ] {
        let body = (method == Method::PATCH).then(|| json!({"title": "stolen"}));
        let (status, _) = world.api(method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}");
    }
    let (_, other) = world
        .api(Method::GET, "/projects/OTHER/webhooks", None)
        .await;
    assert_eq!(other, json!([]));
    assert_eq!(world.get_webhook("DEMO", &id).await["title"], "hook p");

    // A delivery of DEMO cannot be retried through another project.
    world.publish("DEMO", "run.started", json!({})).await;
    world.receiver.wait_for("p", 1, crate::SOON).await;
    let delivery = crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    let (status, _) = world
        .api(
            Method::POST,
            &format!(
                "/projects/OTHER/deliveries/{}/retry",
                delivery["id"].as_str().expect("id")
            ),
            None,
        )
        .await;
    assert_eq!(status, 404);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_returns_the_secret_and_manages_the_lifecycle() {
    let world = World::start().await;
    let secret = "super-secret-value-123";
    let body = json!({"title": "CI hook", "url": world.receiver.url("life"), "secret": secret,
                      "events": ["run.started", "case.created"], "created_by": 40});
    let (status, created) = world
        .api(Method::POST, "/projects/DEMO/webhooks", Some(body))
        .await;
    assert_eq!(status, 201);
    let id = created["id"].as_str().expect("id").to_owned();
    assert_eq!(created["has_secret"], true);
    assert_eq!(created["enabled"], true);
    assert_eq!(created["created_by"], 40);
    assert_eq!(created["project_code"], "DEMO");
    assert_eq!(created["failing_since"], json!(null));
    let mut answers = vec![created.to_string()];

    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(list.as_array().expect("array").len(), 1);
    answers.push(list.to_string());
    answers.push(world.get_webhook("DEMO", &id).await.to_string());
    let (status, patched) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{id}"),
            Some(json!({"title": "Renamed", "events": ["run.completed"]})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["title"], "Renamed");
    assert_eq!(patched["events"], json!(["run.completed"]));
    assert_eq!(patched["has_secret"], true, "secret kept when not given");
    answers.push(patched.to_string());

    world.publish("DEMO", "run.completed", json!({})).await;
    world.receiver.wait_for("life", 1, crate::SOON).await;
    answers.push(serde_json::to_string(&world.deliveries("DEMO", &id).await).expect("json"));
    for answer in &answers {
        assert!(!answer.contains(secret), "secret leaked in {answer}");
    }

    let (status, cleared) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{id}"),
            Some(json!({"secret": null})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(cleared["has_secret"], false);

    let status = world.delete_webhook("DEMO", &id).await;
    assert_eq!(status, 204);
    let (status, _) = world
        .api(Method::GET, &format!("/projects/DEMO/webhooks/{id}"), None)
        .await;
    assert_eq!(status, 404);
    let status = world.delete_webhook("DEMO", &id).await;
    assert_eq!(status, 404);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_readiness_and_metrics() {
    let world = World::start().await;
    world.webhook("DEMO", "m", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    world.receiver.wait_for("m", 1, crate::SOON).await;
    let dispatcher = world.api_base.trim_end_matches("/api/v1").to_owned();
    let http = reqwest::Client::new();
    for base in [dispatcher.clone(), format!("http://{}", world.sender_addr)] {
        assert_eq!(
            http.get(format!("{base}/healthz"))
                .send()
                .await
                .expect("healthz")
                .status(),
            200
        );
        assert_eq!(
            http.get(format!("{base}/readyz"))
                .send()
                .await
                .expect("readyz")
                .status(),
            200
        );
    }
    let addr: std::net::SocketAddr = dispatcher
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    webhooks_tests::wait::until("dispatcher metrics", crate::SOON, || async {
        (world.metric(addr, "webhooks_dispatcher_events_total").await >= 1.0).then_some(())
    })
    .await;
    webhooks_tests::wait::until("sender metrics", crate::SOON, || async {
        (world
            .metric(world.sender_addr, "webhooks_sender_attempts_total")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    world.finish().await;
}
