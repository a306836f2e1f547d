//! The tests' receiver, on one port of 127.0.0.1: it records every request (headers and body
//! bytes) and answers each path as the test scripts it: a status sequence, a hang, a redirect.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::listen::Listeners;

/// How a path answers.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Answer these statuses in turn, then repeat the last one forever.
    Statuses(Vec<u16>),
    /// Never answer (until the receiver stops).
    Hang,
    /// Answer 429 with this Retry-After (seconds) once, then 200.
    RetryAfterOnce(u64),
    /// Answer 200 after this delay.
    Slow(Duration),
    /// Answer 200 with a body that never ends.
    Endless,
    /// Answer 200 with this many 8 KiB headers.
    HugeHeaders(usize),
    /// Answer 500 to bodies containing this text, 200 to the others.
    FailBodiesContaining(String),
}

/// One received request.
#[derive(Clone, Debug)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Inner {
    /// Where redirects point: this receiver's own `/redirected`, so that a followed redirect
    /// would be seen.
    location: String,
    behaviours: HashMap<String, Behaviour>,
    calls: HashMap<String, usize>,
    received: Vec<Received>,
}

/// Stops serving when the last clone is dropped.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    listeners: Arc<Listeners>,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/{*path}", any(receive))
            .with_state(inner.clone());
        let listeners = Listeners::start(1, app).await.expect("receiver listens");
        let addr = listeners.addrs[0];
        inner.lock().expect("receiver lock").location = format!("http://{addr}/redirected");
        Self {
            addr,
            inner,
            listeners: Arc::new(listeners),
        }
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.listeners.connections()
    }

    /// The URL of `path` on this receiver.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn set(&self, path: &str, behaviour: Behaviour) {
        let mut inner = self.inner.lock().expect("receiver lock");
        inner
            .behaviours
            .insert(format!("/{}", path.trim_start_matches('/')), behaviour);
    }

    /// Everything received on `path` so far, in arrival order.
    pub fn received(&self, path: &str) -> Vec<Received> {
        let path = format!("/{}", path.trim_start_matches('/'));
        let inner = self.inner.lock().expect("receiver lock");
        inner
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The `payload.seq` numbers received on `path`, in arrival order (duplicates included).
    pub fn seqs(&self, path: &str) -> Vec<u64> {
        self.received(path)
            .iter()
            .filter_map(|r| {
                serde_json::from_slice::<serde_json::Value>(&r.body).ok()?["payload"]["seq"]
                    .as_u64()
            })
            .collect()
    }

    /// Waits until every seq in `0..count` has arrived on `path`; returns the number of duplicates.
    pub async fn wait_for_seqs(&self, path: &str, count: u64, deadline: Duration) -> usize {
        crate::wait::until(&format!("seqs 0..{count} on {path}"), deadline, || async {
            let seqs = self.seqs(path);
            let distinct: std::collections::BTreeSet<u64> = seqs.iter().copied().collect();
            (distinct.len() as u64 == count && distinct.iter().all(|s| *s < count))
                .then_some(seqs.len() - distinct.len())
        })
        .await
    }

    pub fn all(&self) -> Vec<Received> {
        self.inner.lock().expect("receiver lock").received.clone()
    }

    /// How many requests `path` has received so far: the path's own count, read without going
    /// through the requests kept, so its cost and the time it holds the lock every request
    /// handler takes do not grow with how many there are.
    pub fn count(&self, path: &str) -> usize {
        let path = format!("/{}", path.trim_start_matches('/'));
        let inner = self.inner.lock().expect("receiver lock");
        inner.calls.get(&path).copied().unwrap_or(0)
    }

    /// Waits until `path` has received at least `count` requests; returns how many it has. Cheap
    /// to poll however many it holds, where [`Receiver::wait_for`] copies them all each time.
    pub async fn wait_for_count(&self, path: &str, count: usize, deadline: Duration) -> usize {
        crate::wait::until(&format!("{count} requests on {path}"), deadline, || async {
            let got = self.count(path);
            (got >= count).then_some(got)
        })
        .await
    }

    /// Waits until `path` has received at least `count` requests; returns them.
    pub async fn wait_for(&self, path: &str, count: usize, deadline: Duration) -> Vec<Received> {
        crate::wait::until(&format!("{count} requests on {path}"), deadline, || async {
            let got = self.received(path);
            (got.len() >= count).then_some(got)
        })
        .await
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = format!("/{path}");
    let body_copy = body.clone();
    let (behaviour, location) = {
        let mut inner = inner.lock().expect("receiver lock");
        inner.received.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        let call = {
            let calls = inner.calls.entry(path.clone()).or_default();
            *calls += 1;
            *calls - 1
        };
        (
            (inner.behaviours.get(&path).cloned(), call),
            inner.location.clone(),
        )
    };
    match behaviour {
        (None, _) => StatusCode::OK.into_response(),
        (Some(Behaviour::Statuses(statuses)), call) => {
            let status = statuses
                .get(call)
                .or(statuses.last())
                .copied()
                .unwrap_or(200);
            let status = StatusCode::from_u16(status).expect("valid status");
            if status.is_redirection() {
                return (status, [("location", location)]).into_response();
            }
            (status, "answer").into_response()
        }
        (Some(Behaviour::Hang), _) => {
            std::future::pending::<()>().await;
            StatusCode::OK.into_response()
        }
        (Some(Behaviour::RetryAfterOnce(seconds)), 0) => (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", seconds.to_string())],
        )
            .into_response(),
        (Some(Behaviour::RetryAfterOnce(_)), _) => StatusCode::OK.into_response(),
        (Some(Behaviour::FailBodiesContaining(text)), _) => {
            let failing = std::str::from_utf8(&body_copy).is_ok_and(|b| b.contains(&text));
            if failing {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::OK
            }
            .into_response()
        }
        (Some(Behaviour::Endless), _) => {
            let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
            let stream =
                futures::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            (StatusCode::OK, axum::body::Body::from_stream(stream)).into_response()
        }
        (Some(Behaviour::HugeHeaders(count)), _) => {
            let mut response = StatusCode::OK.into_response();
            let value = axum::http::HeaderValue::from_str(&"v".repeat(8192)).expect("header");
            for n in 0..count {
                let name = axum::http::HeaderName::from_bytes(format!("x-big-{n}").as_bytes())
                    .expect("name");
                response.headers_mut().insert(name, value.clone());
            }
            response
        }
        (Some(Behaviour::Slow(delay)), _) => {
            tokio::time::sleep(delay).await;
            StatusCode::OK.into_response()
        }
    }
}
