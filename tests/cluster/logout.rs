//! Logging out on one node closes that session's sockets on the other nodes within a second
//! (the auth node announces the revocation through Redis), and nothing else.

use std::time::{Duration, Instant};

use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::{Api, ClientError, Connection};

use crate::support::{closed_within, connect, within, Cluster};

/// How soon every node must close a revoked session's sockets.
const REVOCATION_LIMIT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_node_closes_the_session_on_the_others() {
    let cluster = Cluster::start(3).await;
    let alice = cluster.user("alice", &cluster.lb_http()).await;
    // A second session of the same user: it must survive the logout of the first.
    let other = within(
        "login",
        Api::new(&cluster.lb_http()).login(&alice.username, crate::support::PASSWORD),
    )
    .await
    .expect("second login");

    let mut on_hub1 = connect(&cluster.hub_ws(0), alice.token()).await;
    let mut on_hub3 = connect(&cluster.hub_ws(2), alice.token()).await;
    let mut other_on_hub1 = connect(&cluster.hub_ws(0), &other.access_token).await;

    within(
        "logout on hub2",
        alice.api_at(&cluster.hub_http(1)).logout(),
    )
    .await
    .expect("logout");
    let revoked = Instant::now();
    let (code1, code3) = tokio::join!(
        closed_within(&mut on_hub1, REVOCATION_LIMIT),
        closed_within(&mut on_hub3, REVOCATION_LIMIT),
    );
    eprintln!(
        "both sockets closed {:?} after the logout returned",
        revoked.elapsed()
    );
    assert_eq!(
        code1,
        Some(close::POLICY),
        "hub1 closes the revoked session with 1008"
    );
    assert_eq!(
        code3,
        Some(close::POLICY),
        "hub3 closes the revoked session with 1008"
    );

    // The other session is untouched.
    within("ping", other_on_hub1.ping())
        .await
        .expect("the other session stays open");

    // The revoked token is refused everywhere afterwards.
    for i in 0..3 {
        let err = within("me", alice.api_at(&cluster.hub_http(i)).me())
            .await
            .expect_err("revoked token");
        assert_eq!(
            err.status(),
            Some(401),
            "hub{} refuses the revoked token over REST",
            i + 1
        );
        let refused = within(
            "hello",
            Connection::connect(&cluster.hub_ws(i), Some(alice.token())),
        )
        .await;
        match refused {
            Err(ClientError::Rejected { code, .. }) => assert_eq!(code, ErrorCode::Unauthorized),
            Err(ClientError::Api { status, .. }) => assert_eq!(status, 401),
            other => panic!(
                "hub{} accepted a revoked token on a WebSocket: {other:?}",
                i + 1
            ),
        }
    }
}
