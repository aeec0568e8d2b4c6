//! Delivery against real HTTP receivers on 127.0.0.1 (axum, or raw TCP for misbehaving ones),
//! through `run` directly or through a real [`Pool`] over [`SqliteJobs`].

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

fn pool(store: Arc<SqliteJobs>, h: WebhookHandler) -> Pool {
    Pool::start(
        store,
        vec![Arc::new(h)],
        PoolConfig {
            workers: 2,
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

// ---------------------------------------------------------------------------------------------
// Tests

#[tokio::test]
async fn retries_after_500s_carry_the_same_ids_and_a_valid_signature() {
    let (addr, mut seen) = receiver(|_, n| status(if n < 2 { 500 } else { 200 })).await;
    let registry = registry_with(format!("http://{addr}/hook"));
    let metrics = switchboard_kit::metrics::Registry::new();
    let (h, _) = handler(&registry, cfg(5000));
    let h = h.with_metrics(WebhookMetrics::new(&metrics));
    let (store, _dir) = sqlite_store().await;
    let job = jobs(&registry, json!({"room": "general", "seq": 1})).remove(0);
    let event: Event = serde_json::from_value(job.payload["event"].clone()).unwrap();
    store.enqueue(job.clone()).await.unwrap();
    let pool = pool(Arc::clone(&store), h);

    let attempts: Vec<Seen> = vec![
        next(&mut seen).await,
        next(&mut seen).await,
        next(&mut seen).await,
    ];
    let done = wait_state(&*store, &job.id, State::Done).await;
    assert_eq!(done.attempts, 3);
    for s in &attempts {
        assert_eq!(s.path, "/hook");
        assert!(s.verified, "signature {} verifies", s.signature);
        assert_eq!(s.event_id, event.id);
        assert_eq!(s.delivery_id, job.id);
        assert_eq!(s.event(), event, "the body is the event");
        assert_eq!(s.content_type, "application/json");
        assert_eq!(s.user_agent, USER_AGENT_VALUE);
        assert!(s.user_agent.starts_with("Switchboard-Webhooks/"));
    }
    pool.shutdown().await;
    assert!(seen.try_recv().is_err(), "no fourth request");

    let text = metrics.render();
    assert!(
        text.contains(r#"switchboard_webhook_deliveries_total{outcome="retry"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"switchboard_webhook_deliveries_total{outcome="ok"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("switchboard_webhook_delivery_seconds_count 3"),
        "{text}"
    );
}

#[tokio::test]
async fn events_of_one_lane_arrive_in_order_after_a_retry() {
    let (addr, mut seen) = receiver(|s, n| {
        let seq = s.event().data["seq"].as_u64().unwrap();
        status(if seq == 1 && n == 0 { 500 } else { 200 })
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(5000));
    let (store, _dir) = sqlite_store().await;
    let mut ids = Vec::new();
    for seq in 1..=5 {
        let job = jobs(&registry, json!({"room": "general", "seq": seq})).remove(0);
        assert_eq!(job.lane.as_deref(), Some("webhook:r:general"));
        ids.push(job.id.clone());
        store.enqueue(job).await.unwrap();
    }
    // Two workers: the lane, not a single worker, keeps the order.
    let pool = pool(Arc::clone(&store), h);
    let mut order = Vec::new();
    for _ in 0..6 {
        order.push(next(&mut seen).await.event().data["seq"].as_u64().unwrap());
    }
    assert_eq!(order, [1, 1, 2, 3, 4, 5]);
    for id in &ids {
        wait_state(&*store, id, State::Done).await;
    }
    pool.shutdown().await;
}

#[tokio::test]
async fn a_410_disables_the_endpoint_once_and_is_permanent() {
    let (addr, mut seen) = receiver(|_, _| status(410)).await;
    let registry = registry_with(format!("http://{addr}/"));
    let disables = Arc::new(Disables {
        registry: Some(registry.clone()),
        ..Disables::default()
    });
    let h = WebhookHandler::new(registry.clone(), disables.clone(), cfg(5000));
    let job = jobs(&registry, json!({"seq": 1})).remove(0);
    let why = permanent(h.run(&claimed(&job)).await);
    assert!(why.contains("410"), "{why}");
    assert_eq!(
        *disables.calls.lock().unwrap(),
        [("r".to_owned(), GONE_REASON.to_owned())]
    );
    next(&mut seen).await;
    // A delivery already queued for the endpoint ends without a request.
    assert_eq!(permanent(h.run(&claimed(&job)).await), "endpoint disabled");
    assert_eq!(disables.calls.lock().unwrap().len(), 1, "disabled once");
    assert!(
        seen.try_recv().is_err(),
        "no request to a disabled endpoint"
    );
}

#[tokio::test]
async fn a_410_whose_disabling_fails_is_retried() {
    let (addr, _seen) = receiver(|_, _| status(410)).await;
    let registry = registry_with(format!("http://{addr}/"));
    let disables = Arc::new(Disables {
        fail: true,
        ..Disables::default()
    });
    let h = WebhookHandler::new(registry.clone(), disables.clone(), cfg(5000));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.contains("the auth node is unreachable"), "{why}");
    assert_eq!(disables.calls.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn statuses_map_to_outcomes() {
    let (addr, _seen) = receiver(|s, _| {
        let code: u16 = s.path.trim_start_matches('/').parse().unwrap();
        let mut r = status(code);
        if (300..400).contains(&code) {
            r.headers_mut()
                .insert("location", "/elsewhere".parse().unwrap());
        }
        r
    })
    .await;
    for (code, expect) in [
        (200, "ok"),
        (201, "ok"),
        (204, "ok"),
        (408, "transient"),
        (429, "transient"),
        (500, "transient"),
        (502, "transient"),
        (503, "transient"),
        (504, "transient"),
        (301, "permanent"),
        (307, "permanent"),
        (400, "permanent"),
        (401, "permanent"),
        (403, "permanent"),
        (404, "permanent"),
        (413, "permanent"),
        (422, "permanent"),
    ] {
        let registry = registry_with(format!("http://{addr}/{code}"));
        let (h, disables) = handler(&registry, cfg(5000));
        let result = run_one(&h, &registry).await;
        let got = match &result {
            Ok(()) => "ok",
            Err(JobFailure::Transient(_)) => "transient",
            Err(JobFailure::Permanent(_)) => "permanent",
        };
        assert_eq!(got, expect, "{code}: {result:?}");
        if let Err(JobFailure::Transient(why) | JobFailure::Permanent(why)) = &result {
            assert!(why.contains(&code.to_string()), "{code}: {why}");
        }
        assert!(disables.calls.lock().unwrap().is_empty());
    }
}

#[tokio::test]
async fn a_400_is_permanent_and_quotes_the_body_without_the_secret() {
    let (addr, _seen) = receiver(|_, _| {
        (
            StatusCode::BAD_REQUEST,
            format!("signature mismatch for key {SECRET}\n{}", "x".repeat(5000)),
        )
            .into_response()
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(5000));
    let why = permanent(run_one(&h, &registry).await);
    assert!(
        why.starts_with("receiver answered 400 Bad Request: signature mismatch for key [redacted]"),
        "{why}"
    );
    assert!(!why.contains(SECRET), "{why}");
    assert!(why.len() < 300, "bounded: {} bytes", why.len());
    assert!(why.ends_with("..."), "{why}");
}

#[tokio::test]
async fn a_redirect_is_permanent_and_its_location_is_not_requested() {
    let (addr, mut seen) = receiver(|s, _| {
        if s.path == "/hook" {
            (StatusCode::FOUND, [("location", "/elsewhere")]).into_response()
        } else {
            status(200)
        }
    })
    .await;
    let registry = registry_with(format!("http://{addr}/hook"));
    let (h, _) = handler(&registry, cfg(5000));
    let why = permanent(run_one(&h, &registry).await);
    assert!(why.contains("302 Found"), "{why}");
    assert!(why.contains("redirects are not followed"), "{why}");
    assert_eq!(next(&mut seen).await.path, "/hook");
    assert!(seen.try_recv().is_err(), "/elsewhere was not requested");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_transient_within_the_timeout() {
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let addr = raw_receiver(move |socket| {
        let held_tx = held_tx.clone();
        async move {
            // Keep the connection open, say nothing.
            let _ = held_tx.send(socket);
        }
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(300));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.contains("no answer within 300 ms"), "{why}");
    assert!(held.try_recv().is_ok(), "the receiver got the request");
}

/// A receiver that answers `code` with a chunked body of `x` that never ends, written as fast
/// as the client reads (`pause` zero) or a byte per `pause`; reports how many body bytes it
/// wrote once a write fails (the client dropped the connection).
async fn endless(code: u16, pause: Duration) -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let addr = raw_receiver(move |mut socket| {
        let tx = tx.clone();
        async move {
            let head = format!("HTTP/1.1 {code} X\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n");
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk: &[u8] = if pause.is_zero() {
                b"2000\r\n"
            } else {
                b"1\r\n"
            };
            let len = if pause.is_zero() { 0x2000 } else { 1 };
            let body = vec![b'x'; len];
            let mut written = 0;
            loop {
                let frame = [chunk, &body, b"\r\n"].concat();
                if socket.write_all(&frame).await.is_err() {
                    let _ = tx.send(written);
                    return;
                }
                written += len;
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
            }
        }
    })
    .await;
    (addr, rx)
}

#[tokio::test]
async fn an_endless_body_is_read_only_up_to_the_cap() {
    let (addr, mut closed) = endless(200, Duration::ZERO).await;
    let registry = registry_with(format!("http://{addr}/"));
    let cap = 16 * 1024;
    let (h, _) = handler(
        &registry,
        DeliveryConfig {
            max_response_bytes: cap,
            ..cfg(10_000)
        },
    );
    // The status decided: delivered, without waiting for the body's (absent) end.
    run_one(&h, &registry).await.unwrap();
    // The handler dropped the connection: the receiver's writes fail.
    let written = tokio::time::timeout(Duration::from_secs(20), closed.recv())
        .await
        .expect("the connection was closed")
        .unwrap();
    assert!(written >= cap, "{written}");

    // The reader itself keeps at most the cap.
    let client = reqwest::Client::new();
    let mut response = client.get(format!("http://{addr}/")).send().await.unwrap();
    let read =
        body::read_capped(&mut response, cap, Instant::now() + Duration::from_secs(10)).await;
    assert_eq!(read.bytes.len(), cap);
    assert!(read.truncated && !read.timed_out);
}

#[tokio::test]
async fn an_endless_error_body_is_transient_and_quoted_within_bounds() {
    let (addr, _closed) = endless(503, Duration::ZERO).await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(10_000));
    let why = transient(run_one(&h, &registry).await);
    assert!(
        why.starts_with("receiver answered 503 Service Unavailable: xxx"),
        "{why}"
    );
    assert!(why.len() <= body::QUOTED_BODY_BYTES + 100, "{}", why.len());
}

#[tokio::test]
async fn a_body_that_trickles_forever_ends_at_the_timeout() {
    let (addr, mut closed) = endless(500, Duration::from_millis(20)).await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(300));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.starts_with("receiver answered 500"), "{why}");
    tokio::time::timeout(Duration::from_secs(20), closed.recv())
        .await
        .expect("the connection was closed");
}

#[tokio::test]
async fn a_metadata_address_is_refused_without_a_connection() {
    for url in [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]:8080/",
        "http://metadata.google.internal/computeMetadata/v1/",
    ] {
        let registry = registry_with(url.into());
        let (h, _) = handler(&registry, cfg(10_000));
        let why = permanent(run_one(&h, &registry).await);
        assert!(why.starts_with("endpoint URL refused"), "{url}: {why}");
        assert!(why.contains("forbidden address"), "{url}: {why}");
    }
}

#[tokio::test]
async fn a_name_resolving_only_to_forbidden_addresses_is_permanent_without_a_connection() {
    let (addr, mut seen) = receiver(|_, _| status(200)).await;
    let registry = registry_with(format!("http://localhost:{}/", addr.port()));
    // No name here resolves to a link-local address: refuse loopback instead, through the
    // same resolver path.
    let h = WebhookHandler::with_refusal(
        registry.clone(),
        Arc::new(Disables::default()),
        cfg(10_000),
        |_, addr| addr.is_loopback().then_some("loopback (test)"),
    );
    let why = permanent(run_one(&h, &registry).await);
    assert!(
        why.starts_with("host resolves only to forbidden addresses: localhost"),
        "{why}"
    );
    assert!(seen.try_recv().is_err(), "no request reached the receiver");

    // The same name with the production policy is delivered.
    let (h, _) = handler(&registry, cfg(10_000));
    run_one(&h, &registry).await.unwrap();
    next(&mut seen).await;
}

#[tokio::test]
async fn dns_failures_and_refused_connections_are_transient() {
    let registry = registry_with("http://no-such-host.invalid/hook".into());
    let (h, _) = handler(&registry, cfg(10_000));
    let why = transient(run_one(&h, &registry).await);
    assert!(
        why.starts_with("DNS lookup of no-such-host.invalid failed"),
        "{why}"
    );

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(10_000));
    let why = transient(run_one(&h, &registry).await);
    assert!(why.starts_with("could not connect"), "{why}");
}

#[tokio::test]
async fn removed_endpoints_are_skipped_and_bad_payloads_are_permanent() {
    let registry = registry_with("http://127.0.0.1:9/".into());
    let (h, _) = handler(&registry, cfg(1000));
    let job = jobs(&registry, json!({"seq": 1})).remove(0);
    registry.replace(Vec::new());
    h.run(&claimed(&job)).await.unwrap();

    for payload in [
        json!({}),
        json!({"endpoint": "r"}),
        json!({"endpoint": "r", "event": {"id": "x", "type": "nope", "ts": 1, "data": {}}}),
        json!("webhook"),
    ] {
        let bad = NewJob::new(JOB_KIND, payload.clone());
        let why = permanent(h.run(&claimed(&bad)).await);
        assert!(why.starts_with("bad webhook payload"), "{payload}: {why}");
    }
    assert_eq!(h.kind(), JOB_KIND);
}

#[tokio::test]
async fn the_signed_body_is_exactly_the_sent_body() {
    let (done_tx, done_rx) = oneshot::channel::<Seen>();
    let done_tx = Mutex::new(Some(done_tx));
    let (addr, _seen) = receiver(move |s, _| {
        if let Some(tx) = done_tx.lock().unwrap().take() {
            let _ = tx.send(s.clone());
        }
        status(204)
    })
    .await;
    let registry = registry_with(format!("http://{addr}/"));
    let (h, _) = handler(&registry, cfg(5000));
    let job = jobs(
        &registry,
        json!({"body": "héllo \"quoted\" \u{1F600}", "seq": 1}),
    )
    .remove(0);
    h.run(&claimed(&job)).await.unwrap();
    let s = done_rx.await.unwrap();
    let expected = serde_json::to_vec(&s.event()).unwrap();
    assert_eq!(
        s.body.as_ref(),
        expected.as_slice(),
        "the body is the event's compact JSON"
    );
    let t: i64 = s.signature[2..s.signature.find(',').unwrap()]
        .parse()
        .unwrap();
    assert_eq!(s.signature, sign::signature(SECRET.as_bytes(), t, &s.body));
    assert!((unix_now() - t).abs() <= 5);
}
