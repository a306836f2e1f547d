//! A webhook's deliveries in the console: a page at a time, filtered by event, state and time,
//! and one delivery opened with its body, the headers sent (the secret masked) and its attempts.

use serde_json::json;
use webhooks_tests::browser::Browser;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::World;

use crate::SOON;
use crate::console::{PHONE, WIDE, all_labelled, fits_a_phone, signed_in, snap};

const SECRET: &str = "s3cret-value-never-shown";

/// How many rows the deliveries' table shows.
async fn rows(browser: &Browser) -> serde_json::Value {
    browser
        .eval(
            "return document.querySelectorAll('table.deliveries tbody tr').length",
            json!([]),
        )
        .await
}

async fn wait_rows(browser: &Browser, count: usize) {
    browser
        .wait_until(
            &format!("{count} rows"),
            "return document.querySelectorAll('table.deliveries tbody tr').length === arguments[0] || null",
            json!([count]),
        )
        .await;
}

/// Sets a filter control's value and applies the filters.
async fn filter(browser: &Browser, id: &str, value: &str) {
    browser
        .eval(
            "document.getElementById(arguments[0]).value = arguments[1]; return null",
            json!([id, value]),
        )
        .await;
    browser.click(".filters button[type=submit]", "Apply").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_filters_and_opens_a_delivery() {
    let world = World::start().await;
    let id = world
        .webhook(
            "DEMO",
            "pages",
            &["run.started", "run.completed"],
            Some(SECRET),
        )
        .await;
    world.receiver.set("pages", Behaviour::Statuses(vec![200]));
    for n in 0..21 {
        world.publish("DEMO", "run.started", json!({"n": n})).await;
    }
    world
        .publish("DEMO", "run.completed", json!({"n": "last"}))
        .await;
    wait::until("22 deliveries made", SOON, || async {
        (world.receiver.received("pages").len() == 22).then_some(())
    })
    .await;

    let browser = signed_in(&world, &format!("#/p/DEMO/w/{id}")).await;
    browser.wait_for("h1", "Deliveries of").await;
    all_labelled(&browser).await;

    // Replaying is offered where this dispatcher's API serves it.
    let (_, document) = world.api(reqwest::Method::GET, "/openapi.json", None).await;
    let served = document["paths"]
        .get("/api/v1/projects/{project_code}/webhooks/{id}/replay")
        .is_some();
    let offered = browser
        .wait_until(
            "the replay section decided",
            "const replay = document.querySelector('.replay');
             return replay && (replay.hidden ? 'hidden' : 'shown');",
            json!([]),
        )
        .await;
    assert_eq!(offered, if served { "shown" } else { "hidden" });

    // Pages of 20, newest first; Older and Newer move between them.
    wait_rows(&browser, 20).await;
    browser.click("#page-older", "Older").await;
    wait_rows(&browser, 2).await;
    browser.wait_for("#page-number", "Page 2").await;
    assert_eq!(browser.property("#page-older", "disabled").await, true);
    browser.click("#page-newer", "Newer").await;
    wait_rows(&browser, 20).await;

    // Filters: by event, then by a state none is in, then by a time none was created after.
    filter(&browser, "filter-event", "run.completed").await;
    wait_rows(&browser, 1).await;
    browser
        .wait_for("table.deliveries tbody tr", "run.completed")
        .await;
    snap(&browser, "filters", false).await;
    filter(&browser, "filter-state", "failed").await;
    browser.wait_for(".empty", "No deliveries match").await;
    browser.click(".filters button[type=reset]", "Clear").await;
    wait_rows(&browser, 20).await;
    filter(&browser, "filter-since", "2099-01-01T00:00:00").await;
    browser.wait_for(".empty", "No deliveries match").await;
    browser.click(".filters button[type=reset]", "Clear").await;
    wait_rows(&browser, 20).await;

    // Where a browser shows a plain text field for a time, the API's refusal of what was typed
    // goes next to it, and the text stays.
    browser
        .eval(
            "document.getElementById('filter-since').type = 'text'; return null",
            json!([]),
        )
        .await;
    filter(&browser, "filter-since", "yesterday").await;
    browser
        .wait_for("#filter-since-error", "must be an RFC 3339 time")
        .await;
    assert_eq!(
        browser.property("#filter-since", "value").await,
        "yesterday"
    );
    assert_eq!(browser.focused().await["id"], "filter-since");
    browser.click(".filters button[type=reset]", "Clear").await;
    browser
        .wait_until(
            "the error gone",
            "return document.getElementById('filter-since-error').hidden || null",
            json!([]),
        )
        .await;
    wait_rows(&browser, 20).await;
    assert_eq!(rows(&browser).await, 20);

    // One delivery: the body, the headers sent with the secret masked, and its attempt.
    browser
        .click("table.deliveries tbody tr a", "run.completed")
        .await;
    browser.wait_for("h1", "Delivery of run.completed").await;
    browser
        .wait_for("tr[data-name=x-qase-secret] td", "********")
        .await;
    browser
        .wait_for("tr[data-name=webhook-signature] td", "v1,")
        .await;
    browser
        .wait_for("tr[data-name=x-qase-event] td", "run.completed")
        .await;
    browser.wait_for("pre.body", "\"last\"").await;
    browser.wait_for(".attempt-list li .code.ok", "200").await;
    browser
        .wait_for(".attempt-list pre.snippet", "answer")
        .await;
    let page = browser
        .eval("return document.body.innerHTML", json!([]))
        .await;
    assert!(
        !page.as_str().expect("page").contains(SECRET),
        "secret shown"
    );
    snap(&browser, "delivery", false).await;
    browser.set_size(PHONE.0, PHONE.1).await;
    browser
        .wait_until("the phone layout", "return innerWidth <= 360", json!([]))
        .await;
    fits_a_phone(&browser, "a delivery").await;
    browser.set_size(WIDE.0, WIDE.1).await;
    browser.click("#crumbs a", "hook pages").await;
    browser.wait_for("h1", "Deliveries of").await;

    browser.close().await;
    world.finish().await;
}
