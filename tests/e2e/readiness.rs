//! Liveness and readiness: `/healthz` answers while the process lives; `/readyz` answers 200
//! only when every dependency answers (its JSON names each check), probes them at most once per
//! interval however many ask, and turns 503 `draining` when shutdown starts, while sockets stay
//! open until the drain delay ends and they close with 1012. Outages of PostgreSQL, Redis and a
//! real auth node are in the cluster suite (`tests/cluster/readiness.rs`), on private servers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_client::protocol::close;
use switchboard_client::protocol::ws::{ClientFrame, ServerFrame};
use switchboard_client::ClientError;
use switchboard_tests::jwks::{Answer, FakeJwks};

use crate::support::{within, within_for, TestServer};

/// Concurrent `/readyz` requests of the flood test.
const FLOOD: usize = 200;
/// The hub's readiness cache interval (`switchboard_kit::http::ready::DEFAULT_CACHE_FOR`).
const CACHE_FOR: Duration = Duration::from_secs(1);
/// `--drain-delay-ms` of the drain test.
const DRAIN: Duration = Duration::from_millis(1_500);
/// Pause between two polls of `/readyz` while waiting for a change.
const POLL: Duration = Duration::from_millis(20);

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client")
}

/// `GET {base}/readyz`: the status and the JSON body.
async fn readyz(http: &reqwest::Client, base: &str) -> (u16, Value) {
    let response = http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .expect("GET /readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

/// Polls `/readyz` (bounded) until `done` holds for its answer; returns that answer.
async fn readyz_until(
    http: &reqwest::Client,
    base: &str,
    what: &str,
    done: impl Fn(u16, &Value) -> bool,
) -> (u16, Value) {
    within_for(Duration::from_secs(10), what, async {
        loop {
            let (status, body) = readyz(http, base).await;
            if done(status, &body) {
                return (status, body);
            }
            tokio::time::sleep(POLL).await;
        }
    })
    .await
}

#[tokio::test]
async fn a_serving_hub_is_alive_and_ready_and_names_its_checks() {
    let server = TestServer::start().await;
    let http = http();
    let base = server.http_url();

    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200);
    assert!(
        health.headers().contains_key("x-request-id"),
        "every answer names its request"
    );
    let body: Value = health.json().await.expect("JSON");
    assert_eq!(body["status"], "ok");
    assert!(body["connections"].is_u64(), "{body}");

    let (status, body) = readyz(&http, &base).await;
    assert_eq!(status, 200, "{body}");
    let mut want = json!({
        "status": "ready",
        "checks": {"store": {"ok": true}, "broker": {"ok": true}},
    });
    if switchboard_tests::backend::scaled() {
        want["checks"]["auth"] = json!({"ok": true});
    }
    assert_eq!(body, want);
}

#[tokio::test]
async fn a_flood_of_readyz_probes_the_auth_node_once_per_interval_and_names_its_failure() {
    let jwks = FakeJwks::start(Answer::Body(r#"{"keys":[{"kid":"k1"}]}"#.into())).await;
    let server = TestServer::start_with(&["--auth-url", &jwks.url]).await;
    let http = http();
    let base = server.http_url();

    let started = Instant::now();
    let mut asking = tokio::task::JoinSet::new();
    for _ in 0..FLOOD {
        let (http, base) = (http.clone(), base.clone());
        asking.spawn(async move { readyz(&http, &base).await });
    }
    while let Some(answer) = asking.join_next().await {
        let (status, body) = answer.expect("no panic");
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["checks"]["auth"], json!({"ok": true}));
    }
    let elapsed = started.elapsed();
    let fetched = jwks.requests().len();
    // Probe k starts at least k intervals after the first.
    let bound = (elapsed.as_millis() / CACHE_FOR.as_millis()) as usize + 1;
    assert!(
        (1..=bound).contains(&fetched),
        "{FLOOD} concurrent /readyz in {elapsed:?} fetched the JWKS {fetched} times (at most {bound})"
    );
    assert!(
        jwks.requests()
            .iter()
            .all(|line| line.starts_with("GET /.well-known/jwks.json ")),
        "{:?}",
        jwks.requests()
    );

    // An answer that is not a JWKS: unready, naming the auth check alone.
    jwks.answer(Answer::Body("<html>maintenance</html>".into()));
    let (status, body) =
        readyz_until(&http, &base, "/readyz to see the bad JWKS", |s, _| s == 503).await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unready", "{body}");
    assert_eq!(
        body["checks"]["auth"],
        json!({"ok": false, "error": "failed"})
    );
    assert_eq!(body["checks"]["store"], json!({"ok": true}));
    assert_eq!(body["checks"]["broker"], json!({"ok": true}));
    assert!(
        !body.to_string().contains("maintenance") && !body.to_string().contains("127.0.0.1"),
        "the body names the failure, never the dependency's answer or address: {body}"
    );

    // Back to a JWKS: ready again once the cached report expires.
    jwks.answer(Answer::Body(r#"{"keys":[{"kid":"k2"}]}"#.into()));
    readyz_until(&http, &base, "/readyz to recover", |s, _| s == 200).await;

    // Nothing listens any more: still a named failure, and the liveness URL is unaffected.
    jwks.answer(Answer::Refuse);
    let (_, body) = readyz_until(&http, &base, "/readyz to see the refusal", |s, _| s == 503).await;
    assert_eq!(body["checks"]["auth"]["ok"], false, "{body}");
    let health = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .expect("GET /healthz");
    assert_eq!(health.status(), 200, "alive, though not ready");
}

#[tokio::test]
async fn a_draining_hub_answers_503_while_its_sockets_stay_open_then_closes_them_with_1012() {
    let drain = DRAIN.as_millis().to_string();
    let mut server = TestServer::start_with(&["--drain-delay-ms", &drain]).await;
    let alice = server.user("drainer").await;
    let mut conn = server.connect(&alice).await;
    let http = http();
    let base = server.http_url();
    assert_eq!(readyz(&http, &base).await.0, 200);

    let observed = async {
        let started = Instant::now();
        let (status, body) =
            readyz_until(&http, &base, "/readyz to say draining", |s, _| s == 503).await;
        assert_eq!(status, 503);
        assert_eq!(body, json!({"status": "draining", "checks": {}}));
        // The node still serves: the socket answers a ping, REST answers, /healthz is 200.
        let pong = within(
            "a pong while draining",
            conn.request(ClientFrame::Ping { id: None }),
        )
        .await
        .expect("the socket is still open while the node drains");
        assert!(matches!(pong, ServerFrame::Pong { .. }), "{pong:?}");
        let rooms = within("a REST call while draining", alice.api.rooms())
            .await
            .expect("REST is served while the node drains");
        drop(rooms);
        let health = http.get(format!("{base}/healthz")).send().await;
        assert_eq!(health.expect("GET /healthz").status(), 200);
        // Then, after the delay, 1012.
        let code = within_for(DRAIN + Duration::from_secs(5), "the 1012 close", async {
            loop {
                match conn.next_event().await {
                    Ok(_) => {}
                    Err(ClientError::Closed { code, .. }) => return code,
                    Err(other) => panic!("expected a close, got {other}"),
                }
            }
        })
        .await;
        assert_eq!(code, Some(close::RESTARTING));
        started.elapsed()
    };
    let ((), closed_after) = tokio::join!(server.shutdown(), observed);
    // The draining answer came at once; the close waited for the delay (less the first poll).
    assert!(
        closed_after + POLL >= DRAIN,
        "the sockets were closed after {closed_after:?}, before the {DRAIN:?} drain delay"
    );
}
