//! A webhook's secret rotated with a grace period: deliveries carry both signatures until it
//! ends, then only the new one; the new secret is the one in `X-Qase-Secret` from the start.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use webhooks_tests::receiver::Received;
use webhooks_tests::world::World;

use crate::SOON;

/// The Standard Webhooks signature of `request` with `secret`.
fn signature(secret: &str, request: &Received) -> String {
    let key = match secret.strip_prefix("whsec_") {
        Some(rest) => STANDARD.decode(rest).expect("base64 key"),
        None => secret.as_bytes().to_vec(),
    };
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("key");
    let id = request.header("webhook-id").expect("webhook-id");
    let timestamp = request.header("webhook-timestamp").expect("timestamp");
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn signatures(request: &Received) -> Vec<&str> {
    request
        .header("webhook-signature")
        .expect("signed")
        .split(' ')
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_secrets_sign_during_the_grace_then_only_the_new_one() {
    let world = World::start().await;
    let webhook = world
        .webhook("DEMO", "rot", &["run.started"], Some("old-s3cret"))
        .await;
    let rotate = format!("/projects/DEMO/webhooks/{webhook}/secret/rotate");
    let (status, rotated) = world.api(Method::POST, &rotate, None).await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().expect("secret").to_owned();
    assert!(new.starts_with("whsec_") && STANDARD.decode(&new[6..]).expect("base64").len() == 32);
    let until: chrono::DateTime<chrono::Utc> = rotated["previous_secret_until"]
        .as_str()
        .expect("grace end")
        .parse()
        .expect("time");
    let grace = until - world.clock.now();
    assert!(
        grace > chrono::TimeDelta::hours(23) && grace <= chrono::TimeDelta::hours(24),
        "24 h by default: {grace}"
    );
    let shown = world.get_webhook("DEMO", &webhook).await;
    assert_eq!(
        shown["previous_secret_until"],
        rotated["previous_secret_until"]
    );
    assert!(
        !shown.to_string().contains(&new),
        "the secret is shown once"
    );

    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    let got = world.receiver.wait_for("rot", 1, SOON).await;
    let during = &got[0];
    assert_eq!(during.header("x-qase-secret"), Some(new.as_str()));
    assert_eq!(
        signatures(during),
        [signature(&new, during), signature("old-s3cret", during)],
        "the new signature, then the old one"
    );
    // So too when the scheduler claims the delivery rather than its hand-off carrying it, as
    // it does a test delivery (and every retry).
    let (status, _) = world
        .api(
            Method::POST,
            &format!("/projects/DEMO/webhooks/{webhook}/test"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    let got = world.receiver.wait_for("rot", 2, SOON).await;
    let claimed = &got[1];
    assert_eq!(claimed.header("x-qase-event"), Some("webhook.test"));
    assert_eq!(
        signatures(claimed),
        [signature(&new, claimed), signature("old-s3cret", claimed)]
    );

    // After the grace, on the services' clock: only the new secret signs.
    world.clock.advance(Duration::from_secs(24 * 3600 + 1));
    world.publish("DEMO", "run.started", json!({"n": 2})).await;
    let got = world.receiver.wait_for("rot", 3, SOON).await;
    let after = &got[2];
    assert_eq!(after.header("x-qase-secret"), Some(new.as_str()));
    assert_eq!(signatures(after), [signature(&new, after)]);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_given_secret_without_grace_or_a_patched_one_replaces_the_old_at_once() {
    let world = World::start().await;
    let webhook = world
        .webhook("DEMO", "now", &["run.started"], Some("first-secret"))
        .await;
    let rotate = format!("/projects/DEMO/webhooks/{webhook}/secret/rotate");
    let (status, rotated) = world
        .api(
            Method::POST,
            &rotate,
            Some(json!({"secret": "second-secret", "grace": "0s"})),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    assert_eq!(
        rotated,
        json!({"secret": "second-secret", "previous_secret_until": null})
    );
    world.publish("DEMO", "run.started", json!({})).await;
    let got = world.receiver.wait_for("now", 1, SOON).await;
    assert_eq!(signatures(&got[0]), [signature("second-secret", &got[0])]);

    // A rotation with a grace, then a secret set by PATCH: the grace ends with it.
    let (status, _) = world
        .api(
            Method::POST,
            &rotate,
            Some(json!({"secret": "third-secret", "grace": 3600})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, patched) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{webhook}"),
            Some(json!({"secret": "fourth-secret"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(patched["previous_secret_until"], json!(null));
    world.publish("DEMO", "run.started", json!({})).await;
    let got = world.receiver.wait_for("now", 2, SOON).await;
    assert_eq!(signatures(&got[1]), [signature("fourth-secret", &got[1])]);

    for (body, field) in [
        (json!({"grace": "forever"}), "grace"),
        (json!({"grace": "31d"}), "grace"),
        (json!({"grace": -1}), "grace"),
        (json!({"secret": ""}), "secret"),
        (json!({"secret": "line\nbreak"}), "secret"),
        (json!({"secret": null}), "secret"),
        (json!({"colour": "red"}), "colour"),
    ] {
        let (status, answer) = world.api(Method::POST, &rotate, Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let error = answer["error"].as_str().expect("error");
        assert!(error.starts_with(&format!("{field}:")), "{body}: {error}");
    }
    let (status, _) = world
        .api(
            Method::POST,
            &format!("/projects/OTHER/webhooks/{webhook}/secret/rotate"),
            None,
        )
        .await;
    assert_eq!(status, 404);
    world.finish().await;
}
