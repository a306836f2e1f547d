//! Replaying a time range from the console: a refusal shown next to the field it names with what
//! was typed kept, then the replay followed by its progress line until it has finished, and the
//! deliveries received again.

use serde_json::json;
use webhooks_tests::browser::{Browser, ENTER};
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::{TOKEN, World};

use crate::SOON;
use crate::console::{WIDE, all_labelled, snap};

/// Sets the replay range to `from_hours` .. `to_hours` from now, in the browser's time zone.
async fn range(browser: &Browser, from_hours: i64, to_hours: i64) {
    browser
        .eval(
            "const local = (hours) => {
                 const d = new Date(Date.now() + hours * 3600e3);
                 const p = (n) => String(n).padStart(2, '0');
                 return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
             };
             document.getElementById('replay-from').value = local(arguments[0]);
             document.getElementById('replay-to').value = local(arguments[1]);
             return null;",
            json!([from_hours, to_hours]),
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_replays_a_time_range_and_follows_it() {
    let world = World::start().await;
    let id = world.webhook("DEMO", "again", &["run.started"], None).await;
    world.receiver.set("again", Behaviour::Statuses(vec![200]));
    for n in 0..2 {
        world.publish("DEMO", "run.started", json!({"n": n})).await;
    }
    wait::until("both delivered", SOON, || async {
        (world.receiver.received("again").len() == 2).then_some(())
    })
    .await;
    crate::wait_state(&world, "DEMO", &id, "succeeded").await;

    let browser = Browser::start(WIDE.0, WIDE.1).await;
    let console = format!("http://{}/console#/p/DEMO/w/{id}", world.dispatcher_addr());
    browser.goto(&console).await;
    browser.wait_for("h1", "Sign in").await;
    browser.keys(TOKEN).await;
    browser.press(&[ENTER]).await;
    browser.wait_for("h1", "Deliveries of").await;
    browser
        .click(".replay summary", "Replay a time range")
        .await;
    all_labelled(&browser).await;
    browser.click("#replay-succeeded", "").await;

    // A range that ends before it starts: refused next to `to`, nothing typed lost.
    range(&browser, 24, -24).await;
    let typed = browser.property("#replay-from", "value").await;
    browser.click(".replay button[type=submit]", "Replay").await;
    browser
        .wait_for("#replay-to-error", "must be after from")
        .await;
    assert_eq!(browser.property("#replay-from", "value").await, typed);
    assert_eq!(browser.property("#replay-succeeded", "checked").await, true);
    assert_eq!(browser.focused().await["id"], "replay-to");

    // The right range: the replay runs, its progress followed until it has finished.
    range(&browser, -24, 24).await;
    browser.click(".replay button[type=submit]", "Replay").await;
    browser
        .wait_for(
            "#replay-progress[data-state=finished]",
            "2 matched, 2 queued, 2 done",
        )
        .await;
    assert_eq!(world.receiver.received("again").len(), 4);
    browser
        .eval(
            "document.getElementById('replay-progress').scrollIntoView({block: 'start'}); return null",
            json!([]),
        )
        .await;
    snap(&browser, "replay", false).await;

    browser.close().await;
    world.finish().await;
}
