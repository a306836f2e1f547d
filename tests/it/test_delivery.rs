//! A test delivery on request: `webhook.test` through the real pipeline, signed, retried and
//! listed with the webhook's deliveries.

use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::Sha256;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_delivery_is_signed_retried_and_listed_like_any_other() {
    let world = World::start().await;
    world
        .receiver
        .set("tested", Behaviour::Statuses(vec![503, 200]));
    let webhook = world
        .webhook("DEMO", "tested", &["run.started"], Some("t3st-s3cret"))
        .await;
    let path = format!("/projects/DEMO/webhooks/{webhook}/test");
    let (status, accepted) = world.api(Method::POST, &path, None).await;
    assert_eq!(status, 202, "{accepted}");
    assert_eq!(accepted["event_name"], "webhook.test");
    assert_eq!(accepted["state"], "pending");
    assert_eq!(accepted["webhook_id"], json!(webhook));
    let delivery = accepted["id"].as_str().expect("delivery id").to_owned();

    // The first attempt fails; the retry waits as any retry does, then succeeds.
    world.receiver.wait_for("tested", 1, SOON).await;
    wait::until("the failed attempt recorded", SOON, || async {
        let newest = world
            .deliveries("DEMO", &webhook)
            .await
            .into_iter()
            .next()?;
        (newest["state"] == "retrying").then_some(())
    })
    .await;
    world
        .advance_to_next_attempt(&webhook)
        .await
        .expect("a retry waits");
    let got = world.receiver.wait_for("tested", 2, SOON).await;
    let listed = crate::wait_state(&world, "DEMO", &webhook, "succeeded").await;
    assert_eq!(listed["id"], json!(delivery), "listed with its deliveries");
    assert_eq!(listed["event_name"], "webhook.test");
    assert_eq!(listed["attempts"].as_array().expect("attempts").len(), 2);
    assert_eq!(listed["attempts"][0]["status_code"], 503);

    let (first, last) = (&got[0], &got[1]);
    assert_eq!(first.body, last.body, "the same bytes on every attempt");
    let body: Value = serde_json::from_slice(&last.body).expect("JSON body");
    assert_eq!(body["event_name"], "webhook.test");
    assert_eq!(body["project_code"], "DEMO");
    assert_eq!(body["team_member_id"], json!(null));
    assert_eq!(body["payload"]["webhook_id"], json!(webhook));
    assert!(body["timestamp"].is_i64());
    assert_eq!(last.header("x-qase-event"), Some("webhook.test"));
    assert_eq!(last.header("x-qase-delivery"), Some(delivery.as_str()));
    assert_eq!(last.header("x-qase-secret"), Some("t3st-s3cret"));
    let timestamp = last.header("webhook-timestamp").expect("timestamp");
    let mut mac = Hmac::<Sha256>::new_from_slice(b"t3st-s3cret").expect("key");
    mac.update(format!("{delivery}.{timestamp}.").as_bytes());
    mac.update(&last.body);
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(
        last.header("webhook-signature"),
        Some(format!("v1,{expected}").as_str())
    );
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_needs_an_enabled_webhook_of_the_project() {
    let world = World::start().await;
    let webhook = world.webhook("DEMO", "off", &["run.started"], None).await;
    for path in [
        format!("/projects/OTHER/webhooks/{webhook}/test"),
        format!("/projects/DEMO/webhooks/{}/test", uuid::Uuid::new_v4()),
        "/projects/DEMO/webhooks/not-a-uuid/test".to_owned(),
    ] {
        let (status, _) = world.api(Method::POST, &path, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{webhook}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, answer) = world
        .api(
            Method::POST,
            &format!("/projects/DEMO/webhooks/{webhook}/test"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{answer}");
    assert!(world.deliveries("DEMO", &webhook).await.is_empty());
    assert!(world.receiver.received("off").is_empty());
    world.finish().await;
}
