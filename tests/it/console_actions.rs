//! The console's actions on one webhook: a test event sent and seen arriving, the secret rotated
//! (the new one shown once, then sent), and a secret generated in the form, kept through a
//! refusal and sent once saved.

use serde_json::json;
use webhooks_tests::browser::Browser;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;
use crate::console::{signed_in, snap};

/// Sends a test event from the deliveries screen and waits for it to be received; returns the
/// secret it carried.
async fn test_event(world: &World, browser: &Browser, received: usize) -> String {
    browser.click(".about button", "Send test event").await;
    let got = wait::until("the test event received", SOON, || async {
        let got = world.receiver.received("acts");
        (got.len() == received).then_some(got)
    })
    .await;
    let last = got.last().expect("received");
    assert_eq!(last.header("x-qase-event"), Some("webhook.test"));
    last.header("x-qase-secret").expect("a secret").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sends_a_test_event_rotates_and_generates_secrets() {
    let world = World::start().await;
    let id = world
        .webhook("DEMO", "acts", &["run.started"], Some("first-secret"))
        .await;
    world.receiver.set("acts", Behaviour::Statuses(vec![200]));
    let browser = signed_in(&world, &format!("#/p/DEMO/w/{id}")).await;
    browser.wait_for("h1", "Deliveries of").await;

    // A test event: sent, then listed with its 200 without a reload.
    assert_eq!(test_event(&world, &browser, 1).await, "first-secret");
    browser
        .wait_for("tr[data-state=succeeded] code", "webhook.test")
        .await;
    browser
        .wait_for("tr[data-state=succeeded] .code.ok", "200")
        .await;
    let status = browser.property("#status", "textContent").await;
    assert!(
        status
            .as_str()
            .is_some_and(|s| s.contains("Test event sent")),
        "the answer to the action stays while its delivery is listed: {status}"
    );

    // Rotation asks first, then shows the new secret once, focused to copy; it is sent next.
    browser.click(".about button", "Rotate secret").await;
    browser.click("dialog button", "Cancel").await;
    assert_eq!(test_event(&world, &browser, 2).await, "first-secret");
    browser.click(".about button", "Rotate secret").await;
    browser.click("dialog button.danger", "Rotate secret").await;
    browser.wait_for(".secret-once", "shown once").await;
    let rotated = browser.property("#new-secret", "value").await;
    let rotated = rotated.as_str().expect("secret").to_owned();
    assert!(rotated.starts_with("whsec_"), "{rotated}");
    assert_eq!(browser.focused().await["id"], "new-secret");
    assert!(
        world.get_webhook("DEMO", &id).await["previous_secret_until"].is_string(),
        "the old one still signs for a while"
    );
    snap(&browser, "rotated", false).await;
    assert_eq!(test_event(&world, &browser, 3).await, rotated);

    // A generated secret survives a refusal of another field, and is the one sent once saved.
    browser.click(".about a.button", "Edit").await;
    browser.wait_for("h1", "Edit").await;
    browser.click(".with-button button", "Generate").await;
    let generated = browser.property("#secret", "value").await;
    let generated = generated.as_str().expect("secret").to_owned();
    assert!(
        generated.starts_with("whsec_") && generated.len() == 50,
        "{generated}"
    );
    browser.clear("#url").await;
    browser.type_into("#url", "ftp://example.com/hook").await;
    browser.click("button[type=submit]", "Save changes").await;
    browser.wait_for("#url-error", "http or https").await;
    assert_eq!(browser.property("#secret", "value").await, json!(generated));
    browser.clear("#url").await;
    browser.type_into("#url", &world.receiver.url("acts")).await;
    browser.click("button[type=submit]", "Save changes").await;
    browser.wait_for("h1", "Webhooks of DEMO").await;
    browser.click(".webhook a.button", "Deliveries").await;
    browser.wait_for("h1", "Deliveries of").await;
    assert_eq!(test_event(&world, &browser, 4).await, generated);

    browser.close().await;
    world.finish().await;
}
