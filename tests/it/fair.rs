//! One customer's trouble stays its own: a project whose many webhooks all point at one slow host
//! (the paths differ) holds at most `MAX_PER_HOST` requests there at once, and another project's
//! deliveries keep arriving promptly meanwhile. The slow host is a receiver of its own on port 0
//! that counts the requests it is answering at once.

use axum::Router;
use axum::routing::post;
use reqwest::Method;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::{CancellationToken, DropGuard};
use webhooks_tests::wait;
use webhooks_tests::world::World;

const LONG: Duration = Duration::from_secs(60);
/// How long the slow host takes to answer 200: slow, yet well within `DELIVERY_TIMEOUT`.
const SLOW_ANSWER: Duration = Duration::from_secs(2);
/// The slow project's webhooks, each its own URL on the slow host.
const SLOW_HOOKS: usize = 20;
/// Events of the slow project: each goes to every one of its webhooks.
const SLOW_EVENTS: u64 = 20;
/// The healthy project's webhooks, on the world's receiver (another host).
const HEALTHY_HOOKS: [&str; 3] = ["ok1", "ok2", "ok3"];
const HEALTHY_EVENTS: u64 = 30;
/// The longest a healthy delivery may take from its publish to its arrival. Before hosts and
/// projects had caps of their own, the slow project's 400 deliveries took every request slot of
/// the process for 2 s at a time, and the healthy ones queued behind them for about 12 s.
const HEALTHY_WITHIN: Duration = Duration::from_secs(5);

/// A host that answers every POST with 200 after [`SLOW_ANSWER`], counting the requests it is
/// answering at once and the most it ever answered at once.
struct SlowHost {
    addr: SocketAddr,
    answering: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    answered: Arc<AtomicUsize>,
    _stop: DropGuard,
}

impl SlowHost {
    async fn start() -> Self {
        let answering = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let counters = (answering.clone(), most.clone(), answered.clone());
        let app = Router::new().route(
            "/{*path}",
            post(move || {
                let (answering, most, answered) = counters.clone();
                async move {
                    let now = answering.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(SLOW_ANSWER).await;
                    answering.fetch_sub(1, Ordering::SeqCst);
                    answered.fetch_add(1, Ordering::SeqCst);
                    "slow but fine"
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the slow host");
        let addr = listener.local_addr().expect("address");
        let stop = CancellationToken::new();
        let until = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async move { until.cancelled().await })
                .await;
        });
        Self {
            addr,
            answering,
            most,
            answered,
            _stop: stop.drop_guard(),
        }
    }

    fn now(&self) -> usize {
        self.answering.load(Ordering::SeqCst)
    }

    fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

/// Creates a webhook of `project` for `run.started` at `url`; returns its id.
async fn webhook_at(world: &World, project: &str, url: &str) -> String {
    let (status, answer) = world
        .api(
            Method::POST,
            &format!("/projects/{project}/webhooks"),
            Some(json!({"title": "slow hook", "url": url, "events": ["run.started"]})),
        )
        .await;
    assert_eq!(status, 201, "webhook created: {answer}");
    answer["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_on_a_slow_host_keeps_to_its_share_and_the_others_flow() {
    // Few request slots, so that the slow project's webhooks (8 slots each, 160 in all) could
    // take every one of them; MAX_PER_HOST and MAX_PER_PROJECT keep their defaults, a quarter
    // of MAX_IN_FLIGHT.
    let world = World::start_with(|o| {
        o.sender.max_in_flight = 64;
        o.sender.max_per_endpoint = 8;
    })
    .await;
    let cap = world.sender_config.max_per_host();
    assert_eq!(cap, 16);
    let slow = SlowHost::start().await;
    let mut slow_hooks = Vec::new();
    for n in 0..SLOW_HOOKS {
        let url = format!("http://{}/customer/hook{n}", slow.addr);
        slow_hooks.push(webhook_at(&world, "SLOW", &url).await);
    }
    for path in HEALTHY_HOOKS {
        world.webhook("HEALTHY", path, &["run.started"], None).await;
    }

    for seq in 0..SLOW_EVENTS {
        world
            .publish("SLOW", "run.started", json!({ "seq": seq }))
            .await;
    }
    wait::until("the slow host busy", LONG, || async {
        (slow.now() > 0).then_some(())
    })
    .await;

    // The healthy project's events, paced, while the slow host is busy.
    let mut pace = tokio::time::interval(Duration::from_millis(50));
    let mut published = Vec::new();
    for seq in 0..HEALTHY_EVENTS {
        pace.tick().await;
        published.push(Instant::now());
        world
            .publish("HEALTHY", "run.started", json!({ "seq": seq }))
            .await;
    }
    for path in HEALTHY_HOOKS {
        world
            .receiver
            .wait_for_seqs(path, HEALTHY_EVENTS, LONG)
            .await;
    }
    let busy_meanwhile = slow.now();
    let mut slowest = Duration::ZERO;
    for path in HEALTHY_HOOKS {
        for received in world.receiver.received(path) {
            let body: serde_json::Value = serde_json::from_slice(&received.body).expect("json");
            let seq = body["payload"]["seq"].as_u64().expect("seq") as usize;
            slowest = slowest.max(received.at.saturating_duration_since(published[seq]));
        }
    }
    println!(
        "healthy: slowest {slowest:?} from publish to arrival; slow host: {busy_meanwhile} at \
         the end, at most {} at once, {} answered",
        slow.most(),
        slow.answered()
    );
    assert!(
        busy_meanwhile > 0,
        "the slow host was still busy when the healthy deliveries had all arrived"
    );
    assert!(
        slowest <= HEALTHY_WITHIN,
        "a healthy delivery took {slowest:?} beside the slow project"
    );
    assert!(
        slow.most() <= cap,
        "the slow host answered {} requests at once; MAX_PER_HOST is {cap}",
        slow.most()
    );
    assert_eq!(
        slow.most(),
        cap,
        "the slow project filled its share (else this test proves little)"
    );

    // Slow answers are successes: the deliveries succeed and the webhooks' health is untouched.
    wait::until("slow deliveries recorded as succeeded", LONG, || async {
        let mut succeeded = 0;
        for id in &slow_hooks {
            let deliveries = world.deliveries("SLOW", id).await;
            succeeded += deliveries
                .iter()
                .filter(|d| d["state"] == "succeeded")
                .count();
        }
        (succeeded >= cap).then_some(())
    })
    .await;
    for id in &slow_hooks {
        let webhook = world.get_webhook("SLOW", id).await;
        assert_eq!(webhook["failed_attempts"], 0, "{webhook}");
        assert_eq!(webhook["enabled"], true);
    }
    world.finish().await;
}
