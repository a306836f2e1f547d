//! Hand-off messages the dispatcher did not sign are refused: whoever can publish on the vhost
//! cannot make the sender sign a body of their choosing with a customer's secret.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;
use serde_json::value::RawValue;
use webhooks_core::amqp;
use webhooks_core::event::EventName;
use webhooks_core::handoff_auth::{HandoffKey, SIGNATURE_HEADER};
use webhooks_core::messages::{CARRIED_HANDOFF, CarriedEvent, CarriedHandoff};
use webhooks_core::secret::Secret;
use webhooks_tests::world::{AMQP_URL, HANDOFF_KEY, World};

use crate::SOON;

/// A key the services do not hold.
const OTHER_KEY: &str = "0f8e2d6c4a1b9375e0d2c8f6a4b19e37";

fn key(value: &str) -> HandoffKey {
    HandoffKey::from_setting("HANDOFF_KEY", Some(&Secret::new(value))).expect("a key")
}

/// A carried hand-off of the right shape naming `webhook`, with `body` to sign, leased for a
/// minute on the world's clock.
fn carried(world: &World, webhook: &str, body: &str) -> Vec<u8> {
    let now = world.clock.now();
    let body = RawValue::from_string(body.to_owned()).expect("json");
    let message = CarriedHandoff {
        kind: CARRIED_HANDOFF,
        recorded_at: now + chrono::Duration::seconds(1),
        leased_until: now + chrono::Duration::seconds(60),
        events: vec![CarriedEvent {
            name: EventName::RunStarted,
            body: Some(&body),
            deliveries: vec![uuid::Uuid::now_v7()],
            webhooks: vec![webhook.parse().expect("a webhook id")],
        }],
    };
    serde_json::to_vec(&message).expect("encodes")
}

/// Publishes `body` straight onto the senders' queue, as anyone with the vhost's credentials could.
async fn publish_handoff(world: &World, body: &[u8], signature: Option<String>) {
    let connection = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    let mut properties: BasicProperties = amqp::transient_json().with_type(CARRIED_HANDOFF.into());
    if let Some(signature) = signature {
        properties = amqp::with_header(properties, SIGNATURE_HEADER, &signature);
    }
    let confirm = channel
        .basic_publish(
            "".into(),
            world.topology.deliveries_queue().as_str().into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("publish");
    assert!(confirm.await.expect("confirm").is_ack());
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handoff_not_signed_by_the_dispatcher_is_dead_lettered_and_never_delivered() {
    let world = World::start().await;
    let webhook = world
        .webhook(
            "DEMO",
            "hook",
            &["run.started"],
            Some("customer-secret-0042"),
        )
        .await;
    let queue = world.topology.deliveries_queue();
    let forged = carried(&world, &webhook, r#"{"forged":"by someone on the vhost"}"#);
    let harmless = carried(&world, &webhook, r#"{"harmless":true}"#);
    let cases = [
        (None, "without a signature"),
        (
            Some(key(OTHER_KEY).sign(Some(CARRIED_HANDOFF), &queue, &forged)),
            "matches no HANDOFF_KEY",
        ),
        // The services' key, over another body than the one sent.
        (
            Some(key(HANDOFF_KEY).sign(Some(CARRIED_HANDOFF), &queue, &harmless)),
            "matches no HANDOFF_KEY",
        ),
        (
            Some("v1,not-a-signature".to_owned()),
            "not a v1 HMAC-SHA256",
        ),
    ];
    for (signature, _) in &cases {
        publish_handoff(&world, &forged, signature.clone()).await;
    }

    let dead = world
        .take_n(&world.topology.dead_letter_queue(), cases.len(), SOON)
        .await;
    for (letter, (_, reason)) in dead.iter().zip(&cases) {
        let properties = &letter.delivery.properties;
        assert_eq!(letter.delivery.data, forged, "kept whole");
        let why = amqp::header_string(properties, "x-rejection-reason").expect("a reason");
        assert!(why.contains(reason), "{why:?} should say {reason:?}");
        assert_eq!(
            amqp::header_string(properties, "x-original-routing-key").as_deref(),
            Some(queue.as_str())
        );
    }
    let metrics = world.metrics_text(world.sender_addr).await;
    for (reason, count) in [("missing", 1), ("mismatch", 2), ("malformed", 1)] {
        let line = format!("webhooks_sender_handoffs_refused_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "{line} missing in\n{metrics}");
    }

    // The sender kept going: a genuine event is delivered, and it alone.
    world
        .publish("DEMO", "run.started", json!({"genuine": true}))
        .await;
    world.receiver.wait_for("/hook", 1, SOON).await;
    let received = world.receiver.all();
    assert_eq!(received.len(), 1, "only the genuine event arrives");
    let body = String::from_utf8_lossy(&received[0].body);
    assert!(
        body.contains("genuine") && !body.contains("forged"),
        "{body}"
    );
    assert_eq!(
        world
            .queue_length(&world.topology.dead_letter_queue())
            .await,
        0
    );
    world.finish().await;
}

/// Mid-rotation the senders hold the new key and the old one as previous, while the dispatcher
/// still signs with the old one: hand-offs go through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sender_accepts_hand_offs_signed_with_its_previous_key() {
    let world = World::start_with(|o| {
        o.sender.handoff_key_previous = o.sender.handoff_key.take();
        o.sender.handoff_key = Some(OTHER_KEY.into());
    })
    .await;
    world.webhook("DEMO", "hook", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    world.receiver.wait_for("/hook", 1, SOON).await;
    let refused = world
        .metric(world.sender_addr, "webhooks_sender_handoffs_refused_total")
        .await;
    assert_eq!(refused, 0.0);
    world.finish().await;
}

/// Neither service starts without a strong key, and neither shows the key it refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn neither_service_starts_without_a_strong_key() {
    use webhooks_tests::process::Process;
    let cases = [
        ("webhooks-dispatcher", None, "HANDOFF_KEY is not set"),
        ("webhooks-sender", None, "HANDOFF_KEY is not set"),
        (
            "webhooks-sender",
            Some("short-key-hunter2"),
            "HANDOFF_KEY is too short",
        ),
        (
            "webhooks-dispatcher",
            Some("short-key-hunter2"),
            "HANDOFF_KEY is too short",
        ),
    ];
    for (binary, key, why) in cases {
        let env: Vec<(&str, String)> = key
            .map(|k| ("HANDOFF_KEY", k.to_owned()))
            .into_iter()
            .collect();
        let unset: &[&str] = if key.is_some() { &[] } else { &["HANDOFF_KEY"] };
        let mut process = Process::spawn_without(binary, &[], &env, unset);
        let status = process.exited(SOON).await;
        assert_eq!(status.code(), Some(1), "{binary} with {key:?}");
        let output = process.lines().join("\n");
        assert!(output.contains(why), "{binary}: {output}");
        assert!(
            !output.contains("hunter2"),
            "{binary} shows its key: {output}"
        );
    }
}
