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
        // No project has an impossible code, so none is found (nor created).
        (Method::GET, "/projects/DE%01MO/webhooks".to_owned()),
        (Method::POST, "/projects/DE%00MO/webhooks".to_owned()),
        (
            Method::GET,
            format!("/projects/{}/webhooks", "P".repeat(65)),
        ),
    ] {
        let body = match method {
            Method::PATCH => Some(json!({"title": "stolen"})),
            Method::POST if path.ends_with("/webhooks") => Some(
                json!({"title": "x", "url": "https://hooks.example.com/x", "events": ["run.started"]}),
            ),
            _ => None,
        };
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

/// One API call of the concurrency test: what it was, its status (0: no answer) and how long it took.
struct Call {
    what: &'static str,
    status: u16,
    took: std::time::Duration,
}

/// Calls the API as a client of its own would, timing the call; a call with no answer (a
/// connection error or 30 s of silence) has status 0.
async fn timed(
    http: &reqwest::Client,
    world: &World,
    what: &'static str,
    method: Method,
    path: &str,
    body: Option<serde_json::Value>,
) -> (Call, serde_json::Value) {
    let started = std::time::Instant::now();
    let mut request = http
        .request(method, format!("{}{path}", world.api_base))
        .bearer_auth(webhooks_tests::world::TOKEN);
    if let Some(body) = body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let (status, value) = match request.send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let text = response.text().await.unwrap_or_default();
            let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
            (status, value)
        }
        Err(_) => (0, serde_json::Value::Null),
    };
    let call = Call {
        what,
        status,
        took: started.elapsed(),
    };
    (call, value)
}

/// Many more concurrent clients than the dispatcher has database connections, mixing every kind
/// of call that writes or reads: all are answered, none with a 5xx, and promptly. (A request that
/// held its connection while asking the pool for a second one let 4 such requests on a pool of 4
/// wait for each other until the pool's 10 s timeout, then answer 500.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_concurrent_clients_than_pool_connections_get_prompt_answers_and_no_5xx() {
    const CLIENTS: usize = 48;
    const ROUNDS: usize = 4;
    // 4 connections (the default is 16) so that 48 clients are 12 per connection, with little load.
    let world = World::start_with(|o| o.dispatcher.common.database_pool_size = 4).await;
    let shared = world
        .webhook("DEMO", "shared", &["run.started"], None)
        .await;
    for _ in 0..8 {
        world.publish("DEMO", "run.started", json!({})).await;
    }
    world.receiver.wait_for("shared", 8, crate::SOON).await;
    let deliveries: Vec<String> = world
        .deliveries("DEMO", &shared)
        .await
        .iter()
        .map(|d| d["id"].as_str().expect("delivery id").to_owned())
        .collect();
    assert_eq!(deliveries.len(), 8);

    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .expect("client");
    let started = std::time::Instant::now();
    let clients = (0..CLIENTS).map(|client| {
        let (http, world, shared, deliveries) = (&http, &world, &shared, &deliveries);
        async move {
            let mut calls = Vec::new();
            for round in 0..ROUNDS {
                let body = json!({"title": format!("bulk {client}/{round}"),
                                  "url": world.receiver.url(&format!("bulk{client}")),
                                  "events": ["case.created"]});
                let (call, created) = timed(
                    http,
                    world,
                    "create",
                    Method::POST,
                    "/projects/DEMO/webhooks",
                    Some(body),
                )
                .await;
                calls.push(call);
                let Some(id) = created["id"].as_str().map(str::to_owned) else {
                    continue;
                };
                let path = format!("/projects/DEMO/webhooks/{id}");
                let patch = json!({"title": "renamed", "events": ["case.created", "run.aborted"]});
                calls.push(
                    timed(http, world, "update", Method::PATCH, &path, Some(patch))
                        .await
                        .0,
                );
                let list = format!("/projects/DEMO/webhooks/{shared}/deliveries");
                calls.push(
                    timed(http, world, "deliveries", Method::GET, &list, None)
                        .await
                        .0,
                );
                let delivery = &deliveries[(client + round) % deliveries.len()];
                let retry = format!("/projects/DEMO/deliveries/{delivery}/retry");
                calls.push(
                    timed(http, world, "retry", Method::POST, &retry, None)
                        .await
                        .0,
                );
                calls.push(
                    timed(http, world, "delete", Method::DELETE, &path, None)
                        .await
                        .0,
                );
            }
            calls
        }
    });
    let calls: Vec<Call> = futures::future::join_all(clients)
        .await
        .into_iter()
        .flatten()
        .collect();
    let wall = started.elapsed();

    let unexpected: Vec<String> = calls
        .iter()
        .filter(|c| {
            let expected: &[u16] = match c.what {
                "create" => &[201],
                "update" | "deliveries" => &[200],
                // 409: the sender is attempting that delivery right now.
                "retry" => &[202, 409],
                _ => &[204],
            };
            !expected.contains(&c.status)
        })
        .map(|c| format!("{} {} after {:?}", c.what, c.status, c.took))
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} unexpected answers (0: none at all), the first: {:?}",
        unexpected.len(),
        &unexpected[..unexpected.len().min(8)]
    );
    assert_eq!(calls.len(), CLIENTS * ROUNDS * 5, "every call made");
    let mut took: Vec<std::time::Duration> = calls.iter().map(|c| c.took).collect();
    took.sort();
    let p99 = took[took.len() * 99 / 100];
    eprintln!(
        "{} calls from {CLIENTS} clients in {wall:?}: p50 {:?}, p99 {p99:?}, slowest {:?}",
        calls.len(),
        took[took.len() / 2],
        took.last()
    );
    // Generous: on 2 busy cores these take milliseconds; the deadlock made them 10 s.
    assert!(
        p99 < std::time::Duration::from_secs(2),
        "p99 {p99:?}, slowest {:?}, {} calls in {wall:?}",
        took.last(),
        calls.len()
    );

    // Every bulk webhook was deleted and the index followed: only the shared one is left.
    let dispatcher: std::net::SocketAddr = world
        .api_base
        .trim_start_matches("http://")
        .trim_end_matches("/api/v1")
        .parse()
        .expect("addr");
    webhooks_tests::wait::until(
        "the index to hold the shared webhook only",
        crate::SOON,
        || async {
            (world
                .metric(dispatcher, "webhooks_dispatcher_index_webhooks")
                .await
                == 1.0)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        world
            .metric(
                dispatcher,
                "webhooks_dispatcher_api_requests_total{status=\"5xx\"}"
            )
            .await,
        0.0
    );
    world.finish().await;
}

/// When every connection stays busy (here: behind a lock), a request queues for one for a bounded
/// time and then gets 503 with `Retry-After` in the API's error shape, never a 500; the requests
/// holding the connections finish once the lock goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_pool_answers_503_with_retry_after() {
    const POOL: usize = 4;
    // A small pool, so that few requests take every connection.
    let world = World::start_with(|o| o.dispatcher.common.database_pool_size = POOL).await;
    let mut db = world.db().await;
    let lock = db.transaction().await.expect("begin");
    lock.batch_execute("LOCK TABLE webhooks IN ACCESS EXCLUSIVE MODE")
        .await
        .expect("lock");
    let holders: Vec<_> = (0..POOL)
        .map(|_| {
            let http = reqwest::Client::new();
            let url = format!("{}/projects/DEMO/webhooks", world.api_base);
            tokio::spawn(async move {
                let response = http
                    .get(url)
                    .bearer_auth(webhooks_tests::world::TOKEN)
                    .send()
                    .await
                    .expect("answer");
                response.status().as_u16()
            })
        })
        .collect();
    let watcher = world.db().await;
    webhooks_tests::wait::until(
        "every pooled connection to wait on the lock",
        crate::SOON,
        || async {
            let waiting: i64 = watcher
                .query_one(
                    "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'
                   AND query LIKE '%ORDER BY created_at, id'",
                    &[],
                )
                .await
                .expect("activity")
                .get(0);
            (waiting == POOL as i64).then_some(())
        },
    )
    .await;

    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .get(format!("{}/projects/DEMO/webhooks", world.api_base))
        .bearer_auth(webhooks_tests::world::TOKEN)
        .send()
        .await
        .expect("answer");
    let waited = started.elapsed();
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().expect("ascii")),
        Some("1")
    );
    let body: serde_json::Value =
        serde_json::from_str(&response.text().await.expect("body")).expect("json body");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("busy")),
        "{body}"
    );
    assert!(
        waited >= webhooks_dispatcher::api::POOL_WAIT - std::time::Duration::from_millis(100)
            && waited < webhooks_dispatcher::api::POOL_WAIT * 2,
        "queued {waited:?} before the 503"
    );

    lock.rollback().await.expect("unlock");
    for holder in holders {
        assert_eq!(holder.await.expect("holder"), 200);
    }
    world.finish().await;
}
