//! Bulk replay (`POST …/webhooks/{id}/replay`): the deliveries of a range in the states asked for
//! are sent again, once each, under their own ids; the others are not; a key names one replay;
//! the counts reach their ends; bad input is refused naming its field; other projects see nothing.

use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use webhooks_tests::receiver::Behaviour;
use webhooks_tests::wait;
use webhooks_tests::world::{TOKEN, World};

use crate::SOON;

/// Posts a replay of `webhook` of DEMO, with `key` as `Idempotency-Key`; returns the status, the
/// answer and its `Idempotent-Replayed` header.
async fn replay(
    world: &World,
    webhook: &str,
    body: Value,
    key: Option<&str>,
) -> (u16, Value, Option<String>) {
    let url = format!("{}/projects/DEMO/webhooks/{webhook}/replay", world.api_base);
    let mut request = reqwest::Client::new()
        .post(url)
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    let response = request.send().await.expect("API answers");
    let status = response.status().as_u16();
    let replayed = response
        .headers()
        .get("idempotent-replayed")
        .map(|v| v.to_str().expect("ascii").to_owned());
    let text = response.text().await.expect("API body");
    let answer = serde_json::from_str(&text).expect("JSON answer");
    (status, answer, replayed)
}

/// Waits until replay `id` of `webhook` is finished; returns it.
async fn finished(world: &World, webhook: &str, id: &str) -> Value {
    let path = format!("/projects/DEMO/webhooks/{webhook}/replays/{id}");
    wait::until("the replay finished", SOON, || async {
        let (status, answer) = world.api(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{answer}");
        (answer["state"] == "finished").then_some(answer)
    })
    .await
}

/// Publishes one `run.started` of DEMO with payload `{"seq": seq, "kind": kind}`.
async fn publish(world: &World, seq: u64, kind: &str) {
    world
        .publish("DEMO", "run.started", json!({"seq": seq, "kind": kind}))
        .await;
}

/// Waits until `webhook` has `count` deliveries, none of them pending; returns them by seq.
async fn settled(world: &World, webhook: &str, count: usize) -> BTreeMap<u64, Value> {
    wait::until(&format!("{count} deliveries attempted"), SOON, || async {
        let deliveries = world.deliveries("DEMO", webhook).await;
        let attempted = deliveries
            .iter()
            .filter(|d| !d["attempts"].as_array().is_some_and(Vec::is_empty))
            .count();
        (deliveries.len() == count && attempted == count).then_some(deliveries)
    })
    .await;
    let db = world.db().await;
    let mut by_seq = BTreeMap::new();
    for delivery in world.deliveries("DEMO", webhook).await {
        let id: uuid::Uuid = delivery["id"].as_str().expect("id").parse().expect("uuid");
        let body: Vec<u8> = db
            .query_one(
                "SELECT e.body FROM deliveries d JOIN events e ON e.id = d.event_id WHERE d.id = $1",
                &[&id],
            )
            .await
            .expect("body")
            .get(0);
        let body: Value = serde_json::from_slice(&body).expect("json body");
        by_seq.insert(body["payload"]["seq"].as_u64().expect("seq"), delivery);
    }
    by_seq
}

/// Gives up the webhook's deliveries waiting for a retry, as the sender does once `DISABLE_AFTER`
/// has passed since their first attempt (moving the clock that far would disable the webhook
/// and cancel them instead).
async fn give_up(world: &World, webhook: &str) {
    world
        .db()
        .await
        .execute(
            "UPDATE deliveries SET state = 'failed', next_attempt_at = NULL, leased_until = NULL
             WHERE webhook_id = $1::text::uuid AND state = 'retrying'",
            &[&webhook],
        )
        .await
        .expect("given up");
}

fn rfc3339(at: chrono::DateTime<chrono::Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_the_failed_deliveries_of_a_range_once_each_under_one_key() {
    let world = World::start().await;
    world
        .receiver
        .set("r", Behaviour::FailBodiesContaining("\"fail\"".into()));
    let webhook = world.webhook("DEMO", "r", &["run.started"], None).await;
    // Before the range: a failure.
    publish(&world, 0, "fail").await;
    settled(&world, &webhook, 1).await;
    world.clock.advance(Duration::from_secs(3600));
    // In the range: three failures and a success.
    let from = world.clock.now();
    for seq in 1..=3 {
        publish(&world, seq, "fail").await;
    }
    publish(&world, 4, "ok").await;
    settled(&world, &webhook, 5).await;
    let to = world.clock.now();
    // After the range: a failure.
    world.clock.advance(Duration::from_secs(3600));
    publish(&world, 5, "fail").await;
    let before = settled(&world, &webhook, 6).await;
    give_up(&world, &webhook).await;
    // The endpoint is fixed.
    world.receiver.set("r", Behaviour::Statuses(vec![200]));
    let sent_before = world.receiver.count("r");

    let body = json!({"from": rfc3339(from), "to": rfc3339(to), "states": ["failed"]});
    let (status, created, replayed) = replay(&world, &webhook, body.clone(), Some("fixed-1")).await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(replayed, None);
    assert_eq!(created["matched"], 3, "{created}");
    assert_eq!(created["webhook_id"], webhook.as_str());
    assert_eq!(created["states"], json!(["failed"]));
    assert_eq!(created["from"], rfc3339(from));
    assert_eq!(created["replay_id"], created["id"]);
    let id = created["id"].as_str().expect("id");

    let done = finished(&world, &webhook, id).await;
    for (count, n) in [("matched", 3), ("queued", 3), ("done", 3), ("skipped", 0)] {
        assert_eq!(done[count], n, "{count}: {done}");
    }
    assert_eq!(done["stopped_reason"], json!(null));
    assert!(done["finished_at"].is_string(), "{done}");

    // The three failures of the range arrived once more each, under their own ids; nothing else.
    let sent = world.receiver.received("r");
    let mut again: Vec<(u64, String)> = sent[sent_before..]
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("json");
            let seq = body["payload"]["seq"].as_u64().expect("seq");
            (seq, r.header("x-qase-delivery").expect("id").to_owned())
        })
        .collect();
    again.sort();
    let expected: Vec<(u64, String)> = (1..=3)
        .map(|seq| (seq, before[&seq]["id"].as_str().expect("id").to_owned()))
        .collect();
    assert_eq!(again, expected);
    let after = settled(&world, &webhook, 6).await;
    for seq in 1..=3 {
        let attempts = after[&seq]["attempts"].as_array().expect("attempts");
        assert_eq!(after[&seq]["state"], "succeeded", "{}", after[&seq]);
        assert_eq!(
            attempts.len(),
            2,
            "its first attempt, then the replayed one"
        );
    }
    for seq in [0, 5] {
        assert_eq!(after[&seq]["state"], "failed", "outside the range");
    }
    assert_eq!(after[&4]["attempts"].as_array().map(Vec::len), Some(1));
    let addr = world.dispatcher_addr();
    assert_eq!(
        world
            .metric(addr, "webhooks_dispatcher_deliveries_replayed_total")
            .await,
        3.0
    );

    // The same key: the same replay, as it is now, and nothing made or sent again.
    let (status, again, replayed) = replay(&world, &webhook, body.clone(), Some("fixed-1")).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(replayed.as_deref(), Some("true"));
    assert_eq!(again, done);
    // In the body instead of the header, it is the same key.
    let mut keyed = body.clone();
    keyed["idempotency_key"] = json!("fixed-1");
    let (status, again, _) = replay(&world, &webhook, keyed, None).await;
    assert_eq!((status, &again["id"]), (202, &done["id"]), "{again}");
    // The same key with another request is refused.
    let other = json!({"from": rfc3339(from), "to": rfc3339(to)});
    let (status, refused, _) = replay(&world, &webhook, other, Some("fixed-1")).await;
    assert_eq!(status, 422, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .starts_with("Idempotency-Key:"),
        "{refused}"
    );
    let (status, list) = world
        .api(
            Method::GET,
            &format!("/projects/DEMO/webhooks/{webhook}/replays"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list, json!([done]), "one replay only");
    assert_eq!(world.unfinished_deliveries().await, 0);
    assert_eq!(world.receiver.count("r"), sent_before + 3);
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_goes_on_after_a_restart_of_the_dispatcher() {
    // One delivery a second: the dispatcher stops with most of the replay still to do.
    let mut world = World::start_with(|o| {
        o.dispatcher.replay_rate = 1;
        o.dispatcher.replay_batch = 1;
    })
    .await;
    world
        .receiver
        .set("r", Behaviour::FailBodiesContaining("\"fail\"".into()));
    let webhook = world.webhook("DEMO", "r", &["run.started"], None).await;
    let from = world.clock.now();
    for seq in 0..4 {
        publish(&world, seq, "fail").await;
    }
    settled(&world, &webhook, 4).await;
    give_up(&world, &webhook).await;
    world.receiver.set("r", Behaviour::Statuses(vec![200]));
    let sent_before = world.receiver.count("r");
    let to = world.clock.now() + chrono::Duration::seconds(1);
    let body = json!({"from": rfc3339(from), "to": rfc3339(to)});
    let (status, created, _) = replay(&world, &webhook, body, None).await;
    assert_eq!((status, &created["matched"]), (202, &json!(4)), "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    world
        .receiver
        .wait_for_count("r", sent_before + 1, SOON)
        .await;
    world.stop_dispatcher().await;
    let sent_while_stopped = world.receiver.count("r");
    assert!(sent_while_stopped < sent_before + 4, "stopped mid-way");

    world.start_dispatcher().await;
    let done = finished(&world, &webhook, &id).await;
    assert_eq!(
        (&done["queued"], &done["done"]),
        (&json!(4), &json!(4)),
        "{done}"
    );
    let seqs = world.receiver.seqs("r");
    let mut again = seqs[sent_before..].to_vec();
    again.sort_unstable();
    assert_eq!(again, [0, 1, 2, 3], "each once, across the restart");
    world.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_naming_the_field_and_other_projects_see_nothing() {
    let world = World::start().await;
    let webhook = world.webhook("DEMO", "r", &["run.started"], None).await;
    let other = world.webhook("OTHER", "o", &["run.started"], None).await;
    let (from, to) = ("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z");
    let long_key = "k".repeat(256);
    for (body, key, field) in [
        (json!({"to": to}), None, "from:"),
        (json!({"from": from}), None, "to:"),
        (json!({"from": "today", "to": to}), None, "from:"),
        (json!({"from": to, "to": from}), None, "to:"),
        (
            json!({"from": "2026-10-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}),
            None,
            "to:",
        ),
        (
            json!({"from": from, "to": to, "states": ["lost"]}),
            None,
            "states:",
        ),
        (
            json!({"from": from, "to": to, "states": ["retrying"]}),
            None,
            "states:",
        ),
        (
            json!({"from": from, "to": to, "states": "failed"}),
            None,
            "states:",
        ),
        (
            json!({"from": from, "to": to, "colour": "red"}),
            None,
            "colour:",
        ),
        (
            json!({"from": from, "to": to}),
            Some(long_key.as_str()),
            "Idempotency-Key:",
        ),
    ] {
        let (status, answer, _) = replay(&world, &webhook, body.clone(), key).await;
        assert_eq!(status, 422, "{body}: {answer}");
        let error = answer["error"].as_str().expect("error");
        assert!(error.starts_with(field), "{body}: {error}");
    }
    let (status, list) = world
        .api(
            Method::GET,
            &format!("/projects/DEMO/webhooks/{webhook}/replays"),
            None,
        )
        .await;
    assert_eq!((status, list), (200, json!([])), "nothing stored");

    // A range with nothing in it: finished at once.
    let (status, empty, _) = replay(&world, &webhook, json!({"from": from, "to": to}), None).await;
    assert_eq!(status, 202, "{empty}");
    assert_eq!(
        (&empty["matched"], &empty["state"]),
        (&json!(0), &json!("finished"))
    );
    assert_eq!(
        empty["states"],
        json!(["cancelled", "failed", "succeeded"]),
        "every finished state unless told"
    );
    let replay_id = empty["id"].as_str().expect("id");

    // Another project's webhook, or its token, finds nothing.
    let (status, _, _) = replay(&world, &other, json!({"from": from, "to": to}), None).await;
    assert_eq!(status, 404, "OTHER's webhook under DEMO");
    let (status, minted) = world
        .api(
            Method::POST,
            "/tokens",
            Some(json!({"project_code": "OTHER", "expires_in": "1h"})),
        )
        .await;
    assert_eq!(status, 201, "{minted}");
    let token = minted["token"].as_str();
    for (method, path) in [
        (
            Method::POST,
            format!("/projects/DEMO/webhooks/{webhook}/replay"),
        ),
        (
            Method::GET,
            format!("/projects/DEMO/webhooks/{webhook}/replays"),
        ),
        (
            Method::GET,
            format!("/projects/DEMO/webhooks/{webhook}/replays/{replay_id}"),
        ),
    ] {
        let body = (method == Method::POST).then(|| json!({"from": from, "to": to}));
        let (status, answer) = world.api_as(token, method.clone(), &path, body).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    let (status, _) = world
        .api(
            Method::GET,
            &format!("/projects/OTHER/webhooks/{other}/replays/{replay_id}"),
            None,
        )
        .await;
    assert_eq!(status, 404, "a replay of another webhook");

    // A disabled webhook is refused until it is enabled again.
    let (status, _) = world
        .api(
            Method::PATCH,
            &format!("/projects/DEMO/webhooks/{webhook}"),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, refused, _) =
        replay(&world, &webhook, json!({"from": from, "to": to}), None).await;
    assert_eq!(status, 409, "{refused}");
    assert!(
        refused["error"]
            .as_str()
            .expect("error")
            .contains("disabled"),
        "{refused}"
    );
    world.finish().await;
}
