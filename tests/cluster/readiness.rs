//! Readiness in the real topology: a hub's `/readyz` turns 503, naming the failing dependency,
//! while PostgreSQL, Redis or the auth node is down (servers the test owns: private PostgreSQL
//! and Redis, the cluster's own auth node), HAProxy takes the hub out of rotation, and both come
//! back by themselves; the auth node's `/readyz` follows its own database and Redis. And a hub
//! told to stop (SIGTERM) drains: `/readyz` says 503 `draining` and HAProxy marks it down while
//! its clients' sockets stay open, and only then are they closed with 1012. While no hub is
//! ready, HAProxy still sends new clients to the live ones.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use switchboard_client::protocol::close;
use switchboard_client::protocol::ws::{ClientFrame, ServerFrame};
use switchboard_tests::private::{PrivatePostgres, PrivateRedis};

use crate::support::haproxy::hub_name;
use crate::support::{closed_within, connect, within, within_for, Cluster, ClusterOptions};

/// Bound on `/readyz` changing after a dependency stops or returns (the report is cached for
/// 1 s, a check is bounded by 1 s, a restarted PostgreSQL recovers first).
const CHANGE_LIMIT: Duration = Duration::from_secs(30);
/// Pause between two polls of `/readyz`.
const POLL: Duration = Duration::from_millis(50);
/// `--drain-delay-ms` of the drain test: over HAProxy's `inter 1s fall 2`.
const DRAIN: Duration = Duration::from_secs(4);

/// `GET {base}/readyz`: status and body (`None` when nothing answers).
async fn readyz(base: &str) -> Option<(u16, Value)> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .expect("an HTTP client");
    let response = http.get(format!("{base}/readyz")).send().await.ok()?;
    let status = response.status().as_u16();
    Some((status, response.json().await.ok()?))
}

/// Polls `{base}/readyz` until it answers `status`; returns the body.
async fn await_readyz(base: &str, status: u16, what: &str) -> Value {
    within_for(CHANGE_LIMIT, what, async {
        loop {
            match readyz(base).await {
                Some((got, body)) if got == status => return body,
                _ => tokio::time::sleep(POLL).await,
            }
        }
    })
    .await
}

/// Waits until HAProxy reports hub 0 in a state starting with `state` (`UP`, `DOWN`).
async fn await_hub0(cluster: &Cluster, state: &str) {
    let name = hub_name(0);
    within_for(
        CHANGE_LIMIT,
        &format!("HAProxy to see {name} {state}"),
        async {
            loop {
                let servers = cluster.servers().await;
                if servers
                    .iter()
                    .any(|s| s.name == name && s.status.starts_with(state))
                {
                    return;
                }
                tokio::time::sleep(POLL).await;
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_makes_the_hub_and_the_auth_node_unready_until_it_returns() {
    let pg = PrivatePostgres::start().await;
    let database_url = pg.create_database("switchboard").await;
    let cluster = Cluster::start_with(ClusterOptions {
        hubs: 1,
        database_url: Some(database_url),
        ..ClusterOptions::default()
    })
    .await;
    let (hub, auth) = (cluster.hub_http(0), cluster.auth_http());
    assert_eq!(
        await_readyz(&hub, 200, "the hub ready").await,
        json!({"status": "ready", "checks": {
            "store": {"ok": true}, "broker": {"ok": true}, "auth": {"ok": true}}})
    );

    pg.stop_immediately().await;
    let body = await_readyz(&hub, 503, "the hub unready without PostgreSQL").await;
    assert_eq!(body["status"], "unready", "{body}");
    assert_eq!(body["checks"]["store"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["broker"], json!({"ok": true}), "{body}");
    assert_eq!(body["checks"]["auth"], json!({"ok": true}), "{body}");
    let body = await_readyz(&auth, 503, "the auth node unready without PostgreSQL").await;
    assert_eq!(body["checks"]["store"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["redis"], json!({"ok": true}), "{body}");
    await_hub0(&cluster, "DOWN").await;
    // Alive all along.
    let health = reqwest::get(format!("{hub}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);

    pg.start_again().await;
    await_readyz(&hub, 200, "the hub ready again").await;
    await_readyz(&auth, 200, "the auth node ready again").await;
    await_hub0(&cluster, "UP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_makes_the_hub_and_the_auth_node_unready_until_it_returns() {
    let mut redis = PrivateRedis::start().await;
    let cluster = Cluster::start_with(ClusterOptions {
        hubs: 1,
        redis_url: Some(redis.url()),
        ..ClusterOptions::default()
    })
    .await;
    let (hub, auth) = (cluster.hub_http(0), cluster.auth_http());
    await_readyz(&hub, 200, "the hub ready").await;
    assert_eq!(
        await_readyz(&auth, 200, "the auth node ready").await,
        json!({"status": "ready", "checks": {"store": {"ok": true}, "redis": {"ok": true}}})
    );

    redis.kill();
    let body = await_readyz(&hub, 503, "the hub unready without Redis").await;
    assert_eq!(body["checks"]["broker"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["store"], json!({"ok": true}), "{body}");
    let body = await_readyz(&auth, 503, "the auth node unready without Redis").await;
    assert_eq!(body["checks"]["redis"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["store"], json!({"ok": true}), "{body}");
    await_hub0(&cluster, "DOWN").await;

    redis.start_again().await;
    await_readyz(&hub, 200, "the hub ready again").await;
    await_readyz(&auth, 200, "the auth node ready again").await;
    await_hub0(&cluster, "UP").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_node_down_makes_the_hub_unready_until_it_returns() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        hubs: 1,
        ..ClusterOptions::default()
    })
    .await;
    let hub = cluster.hub_http(0);
    await_readyz(&hub, 200, "the hub ready").await;
    // A first connection makes the hub fetch and cache the auth node's keys.
    let alice = cluster.user("unready", &cluster.lb_http()).await;
    drop(connect(&cluster.lb_ws(), alice.token()).await);

    cluster.kill_auth();
    let body = await_readyz(&hub, 503, "the hub unready without its auth node").await;
    assert_eq!(body["checks"]["auth"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["store"], json!({"ok": true}), "{body}");
    assert_eq!(body["checks"]["broker"], json!({"ok": true}), "{body}");
    await_hub0(&cluster, "DOWN").await;
    // No hub is ready, so HAProxy falls back to the live one, which verifies the token with
    // its cached key: a new client still gets in.
    drop(connect(&cluster.lb_ws(), alice.token()).await);

    cluster.restart_auth().await;
    await_readyz(&hub, 200, "the hub ready again").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_hub_leaves_haproxy_before_it_closes_its_sockets_with_1012() {
    let mut cluster = Cluster::start_with(ClusterOptions {
        hubs: 2,
        drain_delay: DRAIN,
        ..ClusterOptions::default()
    })
    .await;
    let hub = cluster.hub_http(0);
    let alice = cluster.user("drain", &hub).await;
    let mut conn = connect(&cluster.hub_ws(0), alice.token()).await;

    let started = Instant::now();
    cluster.sigterm_hub(0);
    let body = await_readyz(&hub, 503, "/readyz to say draining").await;
    assert_eq!(body, json!({"status": "draining", "checks": {}}));
    await_hub0(&cluster, "DOWN").await;
    // Out of rotation, and the client's socket still works.
    let pong = within(
        "a pong from the draining hub",
        conn.request(ClientFrame::Ping { id: None }),
    )
    .await
    .expect("the socket is open while the hub drains");
    assert!(matches!(pong, ServerFrame::Pong { .. }), "{pong:?}");
    assert!(
        started.elapsed() < DRAIN,
        "HAProxy took the hub out after {:?}, not within the {DRAIN:?} drain delay",
        started.elapsed()
    );
    // New clients go to the other hub meanwhile.
    let bob = cluster.user("drain", &cluster.lb_http()).await;
    drop(connect(&cluster.lb_ws(), bob.token()).await);

    assert_eq!(
        closed_within(&mut conn, DRAIN + Duration::from_secs(5)).await,
        Some(close::RESTARTING)
    );
    assert!(
        started.elapsed() >= DRAIN,
        "closed after {:?}, before the drain delay",
        started.elapsed()
    );
    let status = cluster.await_hub_exit(0, Duration::from_secs(10)).await;
    assert!(status.success(), "the hub exits cleanly: {status}");
}
