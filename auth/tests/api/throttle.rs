//! The per-address limits of a node served over real HTTP: `X-Forwarded-For` counts only from
//! a peer in `--trusted-proxies`, so a client cannot claim another address to escape them.
//! (The limits themselves, and the hub in front, are tested end to end in the e2e suite's
//! `auth_hardening`.)

use serde_json::json;

use crate::support::node::Node;
use crate::support::PASSWORD;

/// Registers `name` with `X-Forwarded-For: xff`; returns the status and `Retry-After`.
async fn register(node: &Node, name: &str, xff: &str) -> (u16, Option<String>) {
    let resp = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .post(format!("{}/v1/auth/register", node.url))
        .header("x-forwarded-for", xff)
        .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (resp.status().as_u16(), retry_after)
}

/// A node allowing 2 registrations per address (then one per ~6 s), with extra `flags`.
async fn node(dir: &tempfile::TempDir, flags: &[&str]) -> Node {
    let mut all = vec!["--data-dir", dir.path().to_str().unwrap()];
    all.extend(["--register-ip-burst", "2"]);
    all.extend_from_slice(flags);
    Node::start_with_limits("127.0.0.1:0", &all).await
}

#[tokio::test]
async fn without_trusted_proxies_x_forwarded_for_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir, &[]).await;
    assert_eq!(register(&node, "spoof1", "203.0.113.1").await.0, 201);
    assert_eq!(register(&node, "spoof2", "203.0.113.2").await.0, 201);
    let (status, retry_after) = register(&node, "spoof3", "203.0.113.3").await;
    assert_eq!(status, 429, "the peer's own address is limited");
    let secs: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=7).contains(&secs), "{secs}");
    node.stop().await;
}

#[tokio::test]
async fn from_a_trusted_proxy_the_forwarded_client_is_limited() {
    let dir = tempfile::tempdir().unwrap();
    let node = node(&dir, &["--trusted-proxies", "127.0.0.0/8"]).await;
    assert_eq!(register(&node, "proxied1", "203.0.113.1").await.0, 201);
    // A client-written entry left of the proxy's own is not believed: the client is the last
    // untrusted address.
    assert_eq!(
        register(&node, "proxied2", "198.51.100.1, 203.0.113.1")
            .await
            .0,
        201
    );
    assert_eq!(
        register(&node, "proxied3", "198.51.100.2, 203.0.113.1")
            .await
            .0,
        429
    );
    // Another client behind the same proxy has its own allowance.
    assert_eq!(register(&node, "proxied4", "203.0.113.2").await.0, 201);
    node.stop().await;
}
