//! The web console in a real (headless) Chromium against the real dispatcher and sender: sign-in,
//! a webhook created through the form (after a refusal shown next to its field), its deliveries
//! appearing as they happen, a failed one retried from the console, the switch, re-enabling and
//! deleting. With `CONSOLE_SCREENSHOTS=1` the main screens are saved to docs/console/.

use reqwest::Method;
use serde_json::json;
use webhooks_tests::browser::{self, Browser, CONTROL, ENTER, ESCAPE, SHIFT, SPACE, TAB};
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::world::{TOKEN, World};

/// The desktop window; the phone one is 360 px wide.
pub(crate) const WIDE: (u32, u32) = (1100, 900);
pub(crate) const PHONE: (u32, u32) = (360, 800);

/// Saves the page as `docs/console/<name>.png` when screenshots are asked for, without the
/// passing status message (it would cover the page), unless `keep_status`.
pub(crate) async fn snap(browser: &Browser, name: &str, keep_status: bool) {
    if !keep_status {
        browser
            .eval(
                "document.getElementById('status').textContent = ''",
                json!([]),
            )
            .await;
    }
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    if let Some(dir) = browser::screenshots() {
        std::fs::create_dir_all(&dir).expect("docs/console");
        std::fs::write(dir.join(format!("{name}.png")), png).expect("screenshot written");
    }
}

/// A wide browser at the console's `route` (e.g. `#/p/DEMO/w/{id}`), signed in there with the
/// admin token.
pub(crate) async fn signed_in(world: &World, route: &str) -> Browser {
    let browser = Browser::start(WIDE.0, WIDE.1).await;
    let console = format!("http://{}/console{route}", world.dispatcher_addr());
    browser.goto(&console).await;
    browser.wait_for("h1", "Sign in").await;
    browser.keys(TOKEN).await;
    browser.press(&[ENTER]).await;
    browser
}

/// Every form control on the page has a label a screen reader reads out.
pub(crate) async fn all_labelled(browser: &Browser) {
    let unlabelled = browser
        .eval(
            "return [...document.querySelectorAll('input, select, textarea')]
                .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
                .map(e => e.outerHTML);",
            json!([]),
        )
        .await;
    assert_eq!(unlabelled, json!([]), "controls without a label");
}

/// Nothing on the page is wider than the window (no sideways scrolling at phone width).
pub(crate) async fn fits_a_phone(browser: &Browser, page: &str) {
    let overflow = browser
        .eval(
            "return document.documentElement.scrollWidth - innerWidth",
            json!([]),
        )
        .await;
    assert_eq!(overflow, 0, "{page}: nothing wider than a phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_manages_a_webhook_and_its_deliveries() {
    let world = World::start().await;
    let console = format!("http://{}/console", world.dispatcher_addr());
    let browser = Browser::start(WIDE.0, WIDE.1).await;

    // Sign-in: a wrong token is refused next to the field; the right one opens the projects.
    browser.goto(&console).await;
    browser.wait_for("h1", "Sign in").await;
    browser.type_into("#token", "not-the-token").await;
    browser.click("button[type=submit]", "Sign in").await;
    browser.wait_for("#token-error", "refused").await;
    snap(&browser, "signin", false).await;
    browser.clear("#token").await;
    browser.type_into("#token", TOKEN).await;
    browser.click("button[type=submit]", "Sign in").await;
    browser.wait_for("h1", "Projects").await;
    let stored = browser
        .eval("return sessionStorage.length", json!([]))
        .await;
    assert_eq!(stored, 1, "the token is kept for the tab");
    let url = browser.eval("return location.href", json!([])).await;
    assert!(
        !url.as_str().expect("url").contains(TOKEN),
        "never in the URL"
    );

    // The project, then the form: a URL the API refuses keeps everything typed.
    browser.type_into("#project", "DEMO").await;
    browser.click("button[type=submit]", "Open").await;
    browser.wait_for("h1", "Webhooks of DEMO").await;
    browser.click("a.button", "New webhook").await;
    browser.type_into("#title", "CI hook").await;
    browser.type_into("#url", "ftp://example.com/hook").await;
    browser.type_into("#secret", "s3cret-value").await;
    browser.click("#group-run", "").await;
    browser.click("[id='event-case.created']", "").await;
    all_labelled(&browser).await;
    browser.click("button[type=submit]", "Create webhook").await;
    browser
        .wait_for("#url-error", "must be an http or https URL")
        .await;
    assert_eq!(
        browser.property("#url", "value").await,
        "ftp://example.com/hook"
    );
    assert_eq!(browser.property("#title", "value").await, "CI hook");
    assert_eq!(browser.property("#secret", "value").await, "s3cret-value");
    assert_eq!(browser.property("#group-run", "checked").await, true);
    assert_eq!(browser.property("#url", "ariaInvalid").await, "true");
    let focused = browser
        .eval("return document.activeElement.id", json!([]))
        .await;
    assert_eq!(focused, "url", "focus on the field to fix");
    browser.wait_for("#status", "Not saved").await;
    snap(&browser, "form", true).await;
    browser.clear("#url").await;
    browser
        .type_into("#url", &world.receiver.url("console"))
        .await;
    browser.click("button[type=submit]", "Create webhook").await;
    browser.wait_for(".webhook h2", "CI hook").await;
    browser.wait_for("#status", "created").await;

    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    let webhook = &list[0];
    let id = webhook["id"].as_str().expect("id").to_owned();
    assert_eq!(webhook["has_secret"], true);
    let mut events: Vec<&str> = webhook["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    events.sort_unstable();
    assert_eq!(
        events,
        [
            "case.created",
            "run.aborted",
            "run.completed",
            "run.deleted",
            "run.report_changed",
            "run.started",
            "run.updated"
        ]
    );
    browser
        .wait_for(
            ".webhook .health.last-success",
            "No successful delivery yet",
        )
        .await;
    snap(&browser, "webhooks", false).await;

    // Its deliveries: one appears with its 200 without a reload.
    browser.click(".webhook a.button", "Deliveries").await;
    browser.wait_for("h1", "Deliveries of").await;
    browser.wait_for(".empty", "No deliveries yet").await;
    world.publish("DEMO", "run.started", json!({"n": 1})).await;
    browser
        .wait_for("tr[data-state=succeeded] .code.ok", "200")
        .await;
    // The webhook above its deliveries shows its last success, kept current by the polling.
    browser
        .wait_for(".about .health.last-success time", "")
        .await;

    // A failure, then a retry from the console once the receiver is back.
    world
        .receiver
        .set("console", Behaviour::Statuses(vec![500]));
    world
        .publish("DEMO", "run.completed", json!({"n": 2}))
        .await;
    browser
        .wait_for("tr[data-state=retrying] .code.failing", "500")
        .await;
    world
        .receiver
        .set("console", Behaviour::Statuses(vec![200]));
    browser
        .click("tr[data-state=retrying] button", "Retry")
        .await;
    browser.wait_for("#status", "queued").await;
    let retried = browser
        .wait_until(
            "the retried delivery succeeded",
            "return [...document.querySelectorAll('tr[data-state=succeeded]')]
                .find(r => r.textContent.includes('run.completed'))?.textContent ?? null;",
            json!([]),
        )
        .await;
    assert!(
        retried.as_str().expect("row").contains("2 · last 200"),
        "{retried}"
    );
    assert_eq!(world.receiver.received("console").len(), 3);
    browser
        .eval(
            "document.querySelector('tr details')?.setAttribute('open', '')",
            json!([]),
        )
        .await;
    snap(&browser, "deliveries", false).await;
    browser.set_size(PHONE.0, PHONE.1).await;
    browser
        .wait_until("the phone layout", "return innerWidth <= 360", json!([]))
        .await;
    fits_a_phone(&browser, "deliveries").await;
    snap(&browser, "deliveries-phone", false).await;
    browser.click("#crumbs a", "DEMO").await;
    browser.wait_for("h1", "Webhooks of DEMO").await;
    // The list shows when its endpoint last answered with success.
    browser
        .wait_for(".webhook .health.last-success", "Last success")
        .await;
    fits_a_phone(&browser, "webhooks").await;
    browser.click(".webhook a.button", "Edit").await;
    browser.wait_for("h1", "Edit").await;
    fits_a_phone(&browser, "the form").await;
    browser.set_size(WIDE.0, WIDE.1).await;
    browser.click("#crumbs a", "DEMO").await;

    // The switch turns it off; Re-enable on its deliveries turns it on again.
    browser.click("input[role=switch]", "").await;
    browser.wait_for(".webhook .badge", "Disabled").await;
    assert_eq!(world.get_webhook("DEMO", &id).await["enabled"], false);
    browser.click(".webhook a.button", "Deliveries").await;
    browser.click("tr button", "Retry").await;
    browser
        .wait_for("#status", "enable it before retrying")
        .await;
    browser.click(".about button", "Re-enable").await;
    browser.wait_for(".about .badge", "Enabled").await;
    assert_eq!(world.get_webhook("DEMO", &id).await["enabled"], true);

    // Delete asks first; Cancel keeps it, confirming deletes it.
    browser.click("#crumbs a", "DEMO").await;
    browser.click(".webhook button.danger", "Delete").await;
    browser.click("dialog button", "Cancel").await;
    browser
        .wait_until(
            "the dialog closed",
            "return !document.querySelector('dialog')",
            json!([]),
        )
        .await;
    browser.click(".webhook button.danger", "Delete").await;
    browser
        .click("dialog button.danger", "Delete webhook")
        .await;
    browser.wait_for(".empty", "No webhooks yet").await;
    let (_, list) = world
        .api(Method::GET, "/projects/DEMO/webhooks", None)
        .await;
    assert_eq!(list, json!([]));

    browser.close().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_pages_forbid_inline_script_and_framing() {
    let world = World::start().await;
    let base = format!("http://{}", world.dispatcher_addr());
    for path in ["/console", "/console/app.js", "/console/api.js"] {
        let response = reqwest::get(format!("{base}{path}")).await.expect("answer");
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        let csp = headers["content-security-policy"].to_str().expect("csp");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self';"),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
    world.finish().await;
}

/// Presses Tab until the focus is on an element whose text is `text` (at most `limit` times).
async fn tab_to(browser: &Browser, text: &str, limit: usize) -> serde_json::Value {
    for _ in 0..limit {
        browser.press(&[TAB]).await;
        let focused = browser.focused().await;
        if focused["text"] == text {
            return focused;
        }
    }
    panic!(
        "{text:?} not reached with Tab; focus is on {}",
        browser.focused().await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_works_from_the_keyboard_alone() {
    let world = World::start().await;
    let id = world
        .webhook(
            "KEYS",
            "keys",
            &["run.started", "case.created"],
            Some("s3cret"),
        )
        .await;
    let browser = Browser::start(WIDE.0, WIDE.1).await;
    browser
        .goto(&format!("http://{}/console", world.dispatcher_addr()))
        .await;

    // Sign-in and the project: the focus starts in the token field; Enter submits.
    browser.wait_for("h1", "Sign in").await;
    assert_eq!(browser.focused().await["id"], "token");
    browser.keys(TOKEN).await;
    browser.press(&[ENTER]).await;
    browser.wait_for("h1", "Projects").await;
    assert_eq!(
        browser.focused().await["tag"],
        "H1",
        "a new screen's heading has the focus"
    );
    browser.press(&[TAB]).await;
    assert_eq!(browser.focused().await["id"], "project");
    browser.keys("KEYS").await;
    browser.press(&[ENTER]).await;
    browser.wait_for("h1", "Webhooks of KEYS").await;

    // Tab reaches every action, each with a visible focus ring; Space flips the switch, which
    // keeps the focus.
    let new = tab_to(&browser, "New webhook", 3).await;
    assert_eq!(new["ring"], true, "visible focus: {new}");
    browser.press(&[TAB]).await;
    assert_eq!(browser.focused().await["text"], "hook keys");
    let mut switch = browser.focused().await;
    for _ in 0..3 {
        browser.press(&[TAB]).await;
        switch = browser.focused().await;
        if switch["role"] == "switch" {
            break;
        }
    }
    assert_eq!(switch["role"], "switch", "{switch}");
    browser.press(&[SPACE]).await;
    browser.wait_for(".webhook .badge", "Disabled").await;
    assert_eq!(browser.focused().await["role"], "switch", "focus kept");
    assert_eq!(world.get_webhook("KEYS", &id).await["enabled"], false);
    browser.press(&[SPACE]).await;
    browser.wait_for(".webhook .badge", "Enabled").await;

    // Delete opens a dialog focused on Cancel; Escape closes it, the focus back on Delete.
    let delete = tab_to(&browser, "Delete", 4).await;
    assert_eq!(delete["ring"], true, "{delete}");
    browser.press(&[ENTER]).await;
    browser.wait_for("dialog", "Delete the webhook").await;
    assert_eq!(browser.focused().await["text"], "Cancel");
    browser.press(&[ESCAPE]).await;
    browser
        .wait_until(
            "the dialog closed",
            "return !document.querySelector('dialog')",
            json!([]),
        )
        .await;
    assert_eq!(browser.focused().await["text"], "Delete");
    assert_eq!(world.get_webhook("KEYS", &id).await["title"], "hook keys");

    // Shift+Tab back to Edit; a new title typed over the old one, Enter saves.
    browser.press(&[SHIFT, TAB]).await;
    assert_eq!(browser.focused().await["text"], "Edit");
    browser.press(&[ENTER]).await;
    browser.wait_for("h1", "Edit").await;
    browser.press(&[TAB]).await;
    assert_eq!(browser.focused().await["id"], "title");
    browser.press(&[CONTROL, "a"]).await;
    browser.keys("Renamed by keyboard").await;
    browser.press(&[ENTER]).await;
    browser.wait_for(".webhook h2", "Renamed by keyboard").await;
    let webhook = world.get_webhook("KEYS", &id).await;
    assert_eq!(webhook["title"], "Renamed by keyboard");
    assert_eq!(
        webhook["events"],
        json!(["case.created", "run.started"]),
        "events kept"
    );
    assert_eq!(webhook["has_secret"], true, "secret kept");

    // A token the API refuses (the dispatcher's changed) leads back to sign-in, saying why;
    // signing out forgets the token.
    browser
        .eval(
            "sessionStorage.setItem('webhooks.console.token', 'stale'); location.reload();",
            json!([]),
        )
        .await;
    browser.wait_for("h1", "Sign in").await;
    browser.wait_for("#status", "token was refused").await;
    browser.keys(TOKEN).await;
    browser.press(&[ENTER]).await;
    browser.wait_for("h1", "Webhooks of KEYS").await;
    browser.click("#signout", "Sign out").await;
    browser.wait_for("h1", "Sign in").await;
    let stored = browser
        .eval("return sessionStorage.length", json!([]))
        .await;
    assert_eq!(stored, 0, "the token is forgotten");

    browser.close().await;
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_counts_the_attempts_the_api_leaves_out() {
    let world = World::start().await;
    let id = world.webhook("DEMO", "many", &["run.started"], None).await;
    world.publish("DEMO", "run.started", json!({})).await;
    let delivery = crate::wait_state(&world, "DEMO", &id, "succeeded").await;
    // 40 failed attempts stored before the success: the API lists the first and the 24 latest.
    world
        .db()
        .await
        .execute(
            "INSERT INTO attempts (delivery_id, at, success, status_code, error, duration_ms)
             SELECT $1::text::uuid, now() - make_interval(mins => n), false, 500, 'HTTP 500', 3
             FROM generate_series(1, 40) AS n",
            &[&delivery["id"].as_str().expect("id")],
        )
        .await
        .expect("older attempts");

    let browser = signed_in(&world, &format!("#/p/DEMO/w/{id}")).await;
    browser.click("tr summary", "41 · last 200").await;
    browser
        .wait_for("tr .omitted", "16 more attempts, not kept")
        .await;
    let numbers = browser
        .eval(
            "return [...document.querySelectorAll('tr .attempts li:not(.omitted)')].map(li => li.value)",
            json!([]),
        )
        .await;
    let expected: Vec<i64> = std::iter::once(1).chain(18..=41).collect();
    assert_eq!(numbers, json!(expected), "numbered as made");

    browser.close().await;
    world.finish().await;
}
