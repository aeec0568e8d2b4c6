//! Deleting a user through one hub closes that user's sockets on every hub within a second
//! (the auth node announces each revoked session through Redis), and nobody else's.

use std::time::{Duration, Instant};

use reqwest::Method;
use switchboard_client::protocol::close;

use crate::support::{closed_within, connect, within, Cluster, PASSWORD};

/// How soon every node must close a deleted user's sockets.
const REVOCATION_LIMIT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_user_closes_their_sockets_on_every_node() {
    let cluster = Cluster::start(2).await;
    let root = cluster.user("root", &cluster.hub_http(0)).await;
    cluster.promote(&root.username).await;
    let admin_tokens = within(
        "admin login",
        switchboard_client::Api::new(&cluster.hub_http(0)).login(&root.username, PASSWORD),
    )
    .await
    .expect("login");
    assert_eq!(admin_tokens.user.role, "admin");
    let admin =
        switchboard_client::Api::new(&cluster.hub_http(0)).with_token(&admin_tokens.access_token);

    let alice = cluster.user("alice", &cluster.lb_http()).await;
    let bob = cluster.user("bob", &cluster.lb_http()).await;
    // Two sessions of alice, with sockets on both nodes.
    let other = within(
        "second login",
        switchboard_client::Api::new(&cluster.lb_http()).login(&alice.username, PASSWORD),
    )
    .await
    .expect("second login");
    let mut on_hub1 = connect(&cluster.hub_ws(0), alice.token()).await;
    let mut on_hub2 = connect(&cluster.hub_ws(1), &other.access_token).await;
    let mut bob_on_hub2 = connect(&cluster.hub_ws(1), bob.token()).await;

    let me = within("me", alice.api.me()).await.expect("me");
    let response = within(
        "delete",
        admin
            .request(Method::DELETE, &format!("/v1/admin/users/{}", me.user.id))
            .send(),
    )
    .await
    .expect("delete");
    assert_eq!(response.status().as_u16(), 204);
    let deleted = Instant::now();
    let (code1, code2) = tokio::join!(
        closed_within(&mut on_hub1, REVOCATION_LIMIT),
        closed_within(&mut on_hub2, REVOCATION_LIMIT),
    );
    eprintln!(
        "both sockets closed {:?} after the deletion returned",
        deleted.elapsed()
    );
    assert_eq!(
        code1,
        Some(close::POLICY),
        "hub1 closes the deleted user's socket"
    );
    assert_eq!(
        code2,
        Some(close::POLICY),
        "hub2 closes the deleted user's socket"
    );
    within("ping", bob_on_hub2.ping())
        .await
        .expect("another user's socket stays open");
    for i in 0..2 {
        let err = within("me", alice.api_at(&cluster.hub_http(i)).me())
            .await
            .expect_err("a deleted user's token");
        assert_eq!(err.status(), Some(401), "hub{} refuses the token", i + 1);
    }
}
