//! One delivery as it was sent (`GET …/deliveries/{id}`): the body, the headers of its latest
//! attempt rebuilt as the sender builds them, the secret masked, and each answer's first bytes.

use reqwest::Method;
use serde_json::{Value, json};
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;

fn header<'a>(delivery: &'a Value, name: &str) -> Option<&'a str> {
    delivery["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h["name"] == name)
        .and_then(|h| h["value"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_shows_the_request_sent_with_the_secret_masked() {
    let world = World::start().await;
    let secret = "s3cret-value-never-shown";
    let id = world
        .webhook("DEMO", "detail", &["run.started"], Some(secret))
        .await;
    world
        .receiver
        .set("detail", Behaviour::Statuses(vec![500, 200]));
    world.publish("DEMO", "run.started", json!({"n": 7})).await;
    let failed = crate::wait_state(&world, "DEMO", &id, "retrying").await;
    let delivery = failed["id"].as_str().expect("id").to_owned();
    let path = format!("/projects/DEMO/deliveries/{delivery}");

    let (status, shown) = world.api(Method::GET, &path, None).await;
    assert_eq!(status, 200, "{shown}");
    let text = shown.to_string();
    assert!(!text.contains(secret), "the secret is never shown: {text}");
    assert_eq!(header(&shown, "x-qase-secret"), Some("********"));
    // The headers are the ones the receiver got, but for the masked secret.
    let got = world.receiver.received("detail");
    let sent = got.last().expect("one attempt received");
    for name in [
        "content-type",
        "x-qase-event",
        "x-qase-delivery",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    ] {
        assert_eq!(header(&shown, name), sent.header(name), "{name}");
    }
    let body: Value = serde_json::from_str(shown["body"].as_str().expect("body")).expect("JSON");
    assert_eq!(
        body,
        serde_json::from_slice::<Value>(&sent.body).expect("sent JSON")
    );
    assert_eq!(shown["attempts"][0]["status_code"], 500);
    assert_eq!(shown["attempts"][0]["response"], "answer");

    // The answers' bytes only here, not in lists.
    let (_, list) = world
        .api(
            Method::GET,
            &format!("/projects/DEMO/webhooks/{id}/deliveries"),
            None,
        )
        .await;
    assert!(list[0]["attempts"][0].get("response").is_none(), "{list}");

    // After the retry, the headers are those of the latest attempt.
    world.advance_to_next_attempt(&id).await;
    crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    let (_, shown) = world.api(Method::GET, &path, None).await;
    let got = world.receiver.received("detail");
    let latest = got.last().expect("two attempts");
    assert_eq!(
        header(&shown, "webhook-timestamp"),
        latest.header("webhook-timestamp")
    );
    assert_eq!(
        header(&shown, "webhook-signature"),
        latest.header("webhook-signature")
    );
    wait::until("both attempts listed", SOON, || async {
        let (_, shown) = world.api(Method::GET, &path, None).await;
        (shown["attempts"].as_array()?.len() == 2).then_some(())
    })
    .await;
    world.finish().await;
}
