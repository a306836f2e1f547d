//! A project's deliveries: one by id with all its attempts, and pages of them filtered by webhook,
//! state, event name and time, newest first, the cursor walking every page exactly once.

use reqwest::Method;
use serde_json::{Value, json};
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;

async fn page(world: &World, project: &str, query: &str) -> Value {
    let (status, answer) = world
        .api(
            Method::GET,
            &format!("/projects/{project}/deliveries?{query}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{query}: {answer}");
    answer
}

fn ids(page: &Value) -> Vec<String> {
    page["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| d["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_of_a_projects_deliveries_filtered_and_one_by_id() {
    let world = World::start().await;
    world
        .receiver
        .set("a", Behaviour::FailBodiesContaining("refuse".into()));
    let before = world.clock.now();
    let a = world
        .webhook("DEMO", "a", &["run.started", "case.created"], None)
        .await;
    let b = world.webhook("DEMO", "b", &["run.started"], None).await;
    let other = world.webhook("OTHER", "o", &["run.started"], None).await;
    for n in 0..5 {
        world.publish("DEMO", "run.started", json!({"n": n})).await;
    }
    world
        .publish("DEMO", "case.created", json!({"refuse": true}))
        .await;
    world.publish("OTHER", "run.started", json!({})).await;
    world.receiver.wait_for("a", 6, SOON).await;
    world.receiver.wait_for("b", 5, SOON).await;
    world.receiver.wait_for("o", 1, SOON).await;
    wait::until("every first attempt recorded", SOON, || async {
        let all = page(&world, "DEMO", "").await;
        all["deliveries"]
            .as_array()?
            .iter()
            .all(|d| d["attempts"].as_array().is_some_and(|a| !a.is_empty()))
            .then_some(())
    })
    .await;

    // Everything of the project, newest first, nothing of another project.
    let all = page(&world, "DEMO", "").await;
    assert_eq!(all["next_cursor"], json!(null));
    let everything = ids(&all);
    assert_eq!(everything.len(), 11);
    let order: Vec<(String, String)> = all["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .map(|d| {
            (
                d["created_at"].as_str().expect("time").to_owned(),
                d["id"].as_str().expect("id").to_owned(),
            )
        })
        .collect();
    let mut newest_first = order.clone();
    newest_first.sort_by(|x, y| y.cmp(x));
    assert_eq!(order, newest_first, "newest first (ties by id)");

    // The cursor walks every page once, in the same order.
    let mut walked = Vec::new();
    let mut query = "limit=4".to_owned();
    let mut pages = 0;
    loop {
        let page = page(&world, "DEMO", &query).await;
        pages += 1;
        walked.extend(ids(&page));
        match page["next_cursor"].as_str() {
            Some(cursor) => query = format!("limit=4&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!((pages, &walked), (3, &everything));

    // Each filter, and filters together.
    let count = |query: String| {
        let world = &world;
        async move { ids(&page(world, "DEMO", &query).await).len() }
    };
    assert_eq!(count(format!("webhook_id={a}")).await, 6);
    assert_eq!(count(format!("webhook_id={b}")).await, 5);
    assert_eq!(
        count(format!("webhook_id={other}")).await,
        0,
        "another project's webhook"
    );
    assert_eq!(count("event_name=case.created".into()).await, 1);
    assert_eq!(
        count(format!("webhook_id={b}&event_name=case.created")).await,
        0
    );
    assert_eq!(count("state=retrying".into()).await, 1);
    assert_eq!(
        count("state=succeeded&event_name=run.started".into()).await,
        10
    );
    let since = before.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(count(format!("since={since}")).await, 11);
    assert_eq!(count(format!("until={since}")).await, 0);
    let later = (world.clock.now() + chrono::TimeDelta::minutes(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(count(format!("since={later}")).await, 0);

    // One delivery, as listed, with all its attempts and what was sent besides.
    let refused = page(&world, "DEMO", "state=retrying").await["deliveries"][0].clone();
    let id = refused["id"].as_str().expect("id");
    let (status, one) = world
        .api(
            Method::GET,
            &format!("/projects/DEMO/deliveries/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    for (key, value) in refused.as_object().expect("a delivery") {
        if key != "attempts" {
            assert_eq!(one[key], *value, "{key}");
        }
    }
    let mut attempts = one["attempts"].clone();
    for attempt in attempts.as_array_mut().expect("attempts") {
        assert!(attempt["response"].is_string(), "{attempt}");
        attempt
            .as_object_mut()
            .expect("an attempt")
            .remove("response");
    }
    assert_eq!(attempts, refused["attempts"]);
    assert!(
        one["body"].is_string() && one["headers"].is_array(),
        "{one}"
    );
    assert_eq!(one["attempts"][0]["status_code"], 500);
    for path in [
        format!("/projects/OTHER/deliveries/{id}"),
        format!("/projects/DEMO/deliveries/{}", uuid::Uuid::now_v7()),
        "/projects/DEMO/deliveries/not-a-uuid".to_owned(),
    ] {
        assert_eq!(world.api(Method::GET, &path, None).await.0, 404, "{path}");
    }
    let (_, others) = world
        .api(Method::GET, "/projects/OTHER/deliveries", None)
        .await;
    assert_eq!(ids(&others).len(), 1);
    assert!(!everything.contains(&ids(&others)[0]));
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_filter_is_a_400_naming_it() {
    let world = World::start().await;
    for (query, name) in [
        ("state=exploded", "state"),
        ("event_name=run.exploded", "event_name"),
        ("webhook_id=42", "webhook_id"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("cursor=not-a-cursor", "cursor"),
        ("state=failed&state=cancelled", "state"),
    ] {
        let (status, answer) = world
            .api(
                Method::GET,
                &format!("/projects/DEMO/deliveries?{query}"),
                None,
            )
            .await;
        assert_eq!(status, 400, "{query}: {answer}");
        let error = answer["error"].as_str().expect("error");
        assert!(error.starts_with(&format!("{name}:")), "{query}: {error}");
    }
    world.finish().await;
}
