//! The console signed in with a project token: straight to that project's webhooks, never the
//! projects screen nor another project, whatever URL is opened; the API refuses the rest. The
//! list's health is kept current.

use reqwest::Method;
use serde_json::json;
use webhooks_tests::browser::{Browser, ENTER};
use webhooks_tests::world::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_with_a_project_token_shows_that_project_only() {
    let world = World::start().await;
    world.webhook("DEMO", "mine", &["run.started"], None).await;
    let other = world
        .webhook("OTHER", "theirs", &["run.started"], None)
        .await;
    let (status, minted) = world
        .api(
            Method::POST,
            "/tokens",
            Some(json!({"project_code": "DEMO", "expires_in": "1h"})),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str().expect("token");

    // Opened at another project's deliveries: sign-in, then that token's own project.
    let base = format!("http://{}/console", world.dispatcher_addr());
    let browser = Browser::start(1100, 900).await;
    browser.goto(&format!("{base}#/p/OTHER/w/{other}")).await;
    browser.wait_for("h1", "Sign in").await;
    browser.keys(token).await;
    browser.press(&[ENTER]).await;
    browser.wait_for("h1", "Webhooks of DEMO").await;
    browser.wait_for(".webhook h2", "hook mine").await;
    browser.wait_for("#crumbs", "DEMO").await;
    let crumbs = browser
        .eval(
            "return document.getElementById('crumbs').textContent",
            json!([]),
        )
        .await;
    let crumbs = crumbs.as_str().expect("crumbs");
    assert!(
        !crumbs.contains("Projects"),
        "no projects to go to: {crumbs}"
    );

    // The list keeps its health current: a failure shows without a reload.
    world.receiver.set(
        "mine",
        webhooks_tests::receiver::Behaviour::Statuses(vec![500]),
    );
    world.publish("DEMO", "run.started", json!({})).await;
    browser
        .wait_for(".webhook .health.failing", "Failing since")
        .await;

    // Neither the projects screen nor another project, by any URL.
    for hash in ["#/", "#/p/OTHER", &format!("#/p/OTHER/w/{other}/edit")] {
        browser
            .eval("location.hash = arguments[0]; return null", json!([hash]))
            .await;
        browser
            .wait_until(
                "back at its own project",
                "return location.hash === '#/p/DEMO' && document.querySelector('h1')?.textContent === 'Webhooks of DEMO' || null",
                json!([]),
            )
            .await;
        let text = browser
            .eval("return document.body.textContent", json!([]))
            .await;
        let text = text.as_str().expect("text");
        assert!(
            !text.contains("hook theirs") && !text.contains("OTHER"),
            "{hash}: {text}"
        );
    }

    // What the API answers that token, asked from the page: another project is not found.
    let answers = browser
        .eval(
            "const token = sessionStorage.getItem('webhooks.console.token');
             const ask = (path) => fetch('/api/v1' + path, {headers: {Authorization: 'Bearer ' + token}})
                 .then(r => r.status);
             return Promise.all([ask('/projects/DEMO/webhooks'), ask('/projects/OTHER/webhooks'),
                                 ask(`/projects/OTHER/webhooks/${arguments[0]}`)]);",
            json!([other]),
        )
        .await;
    assert_eq!(answers, json!([200, 404, 404]));

    browser.close().await;
    world.finish().await;
}
