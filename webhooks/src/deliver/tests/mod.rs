//! Delivery against real HTTP receivers on 127.0.0.1 (axum, or raw TCP for misbehaving ones),
//! through `run` directly or through a real [`Pool`] over [`SqliteJobs`]. This module holds the
//! receivers and fixtures; the tests are in its children.

mod bounds;
mod outcomes;
mod pool;
mod ssrf;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use switchboard_jobs::metrics::JobMetrics;
use switchboard_jobs::{Job, JobStore, NewJob, Pool, PoolConfig, SqliteJobs, State, SQLITE_SCHEMA};
use switchboard_kit::backoff::Backoff;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

use super::*;
use crate::{EventType, Registry};

const SECRET: &str = "whsec_test";

// ---------------------------------------------------------------------------------------------
// Receivers

/// One request as a receiver saw it.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    event_id: String,
    delivery_id: String,
    signature: String,
    user_agent: String,
    content_type: String,
    /// `sign::verify` with [`SECRET`] over the raw body.
    verified: bool,
    body: Bytes,
}

impl Seen {
    fn event(&self) -> Event {
        serde_json::from_slice(&self.body).unwrap()
    }
}

type Answer = Arc<dyn Fn(&Seen, usize) -> Response + Send + Sync>;

#[derive(Clone)]
struct Recv {
    answer: Answer,
    count: Arc<AtomicUsize>,
    seen: mpsc::UnboundedSender<Seen>,
}

/// An axum receiver on 127.0.0.1:0 answering every request with `answer(request, n)` (`n`
/// counts from 0), and reporting each request.
async fn receiver(
    answer: impl Fn(&Seen, usize) -> Response + Send + Sync + 'static,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let state = Recv {
        answer: Arc::new(answer),
        count: Arc::new(AtomicUsize::new(0)),
        seen: tx,
    };
    let app = axum::Router::new().fallback(receive).with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, rx)
}

async fn receive(
    AxumState(state): AxumState<Recv>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let signature = header(SIGNATURE_HEADER);
    let seen = Seen {
        path: uri.path().to_owned(),
        event_id: header(EVENT_ID_HEADER),
        delivery_id: header(DELIVERY_ID_HEADER),
        verified: sign::verify(SECRET.as_bytes(), &signature, &body, unix_now(), 300),
        signature,
        user_agent: header("user-agent"),
        content_type: header("content-type"),
        body,
    };
    let n = state.count.fetch_add(1, Ordering::SeqCst);
    let response = (state.answer)(&seen, n);
    let _ = state.seen.send(seen);
    response
}

fn status(code: u16) -> Response {
    StatusCode::from_u16(code).unwrap().into_response()
}

/// A raw TCP receiver: reads the request head, then hands the socket to `serve`.
async fn raw_receiver<F, Fut>(serve: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => head.extend_from_slice(&buf[..n]),
                }
            }
            tokio::spawn(serve(socket));
        }
    });
    addr
}

// ---------------------------------------------------------------------------------------------
// Fixtures

#[derive(Default)]
struct Disables {
    calls: Mutex<Vec<(String, String)>>,
    fail: bool,
    /// Disabled here too, as the auth store's would be seen by the node.
    registry: Option<Registry>,
}

#[async_trait::async_trait]
impl Disabler for Disables {
    async fn disable(&self, endpoint: &str, reason: &str) -> Result<(), String> {
        self.calls
            .lock()
            .unwrap()
            .push((endpoint.to_owned(), reason.to_owned()));
        if self.fail {
            return Err("the auth node is unreachable".into());
        }
        if let Some(registry) = &self.registry {
            let mut list = registry.snapshot().to_vec();
            for e in list.iter_mut().filter(|e| e.id == endpoint) {
                e.enabled = false;
            }
            registry.replace(list);
        }
        Ok(())
    }
}

fn endpoint(id: &str, url: String) -> Endpoint {
    Endpoint {
        id: id.into(),
        url,
        secret: SECRET.into(),
        events: EventType::ALL.into_iter().collect(),
        enabled: true,
    }
}

fn registry_with(url: String) -> Registry {
    let registry = Registry::new();
    registry.replace(vec![endpoint("r", url)]);
    registry
}

fn cfg(timeout_ms: u64) -> DeliveryConfig {
    DeliveryConfig {
        timeout: Duration::from_millis(timeout_ms),
        connect_timeout: Duration::from_millis(timeout_ms.min(1000)),
        ..DeliveryConfig::default()
    }
}

fn handler(registry: &Registry, cfg: DeliveryConfig) -> (WebhookHandler, Arc<Disables>) {
    let disables = Arc::new(Disables::default());
    let h = WebhookHandler::new(registry.clone(), disables.clone(), cfg);
    (h, disables)
}

/// The delivery jobs of a `message.created` in room `general` with `data`.
fn jobs(registry: &Registry, data: serde_json::Value) -> Vec<NewJob> {
    registry.jobs_for(
        EventType::MessageCreated,
        "general",
        1_733_400_000_000,
        || data,
    )
}

/// A claimed job as the pool would pass it to `run`.
fn claimed(job: &NewJob) -> Job {
    Job {
        id: job.id.clone(),
        kind: job.kind.clone(),
        payload: job.payload.clone(),
        lane: job.lane.clone(),
        state: State::Running,
        attempts: 1,
        max_attempts: job.max_attempts,
        run_at: job.run_at,
        lease_until: None,
        leased_by: None,
        last_error: None,
        created_at: job.created_at,
        finished_at: None,
    }
}

async fn run_one(h: &WebhookHandler, registry: &Registry) -> Result<(), JobFailure> {
    let job = jobs(registry, json!({"seq": 1})).remove(0);
    // Bound the test itself: a delivery must end on its own, well within this.
    tokio::time::timeout(Duration::from_secs(20), h.run(&claimed(&job)))
        .await
        .expect("run returned")
}

/// A job store on a fresh SQLite file (the directory lives as long as the returned guard).
async fn sqlite_store() -> (Arc<SqliteJobs>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch(SQLITE_SCHEMA)
        .unwrap();
    (Arc::new(SqliteJobs::open(&path).await.unwrap()), dir)
}

/// A pool of `workers` running `h` on `store`, retrying after 20 ms doubling to 100 ms.
fn pool(store: Arc<SqliteJobs>, h: WebhookHandler, workers: usize) -> Pool {
    Pool::start(
        store,
        vec![Arc::new(h)],
        PoolConfig {
            workers,
            poll: Duration::from_millis(20),
            backoff: Backoff::doubling(Duration::from_millis(20), Duration::from_millis(100)),
            ..PoolConfig::default()
        },
        JobMetrics::new(&switchboard_kit::metrics::Registry::disabled()),
    )
}

/// Waits until the job is in `state` (the pool records it just after the receiver answered).
async fn wait_state(store: &dyn JobStore, id: &str, state: State) -> Job {
    for _ in 0..500 {
        let job = store.get(id).await.unwrap().unwrap();
        if job.state == state {
            return job;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("job {id} never reached {state:?}");
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("a request within 20 s")
        .expect("the receiver runs")
}

fn permanent(r: Result<(), JobFailure>) -> String {
    match r {
        Err(JobFailure::Permanent(why)) => why,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

fn transient(r: Result<(), JobFailure>) -> String {
    match r {
        Err(JobFailure::Transient(why)) => why,
        other => panic!("expected a transient failure, got {other:?}"),
    }
}
