//! Per-user send limits and the per-node connection cap. (The byte bound of a connection's
//! outbound queue is tested deterministically in the hub's registry tests.)

use switchboard_client::protocol::ErrorCode;
use switchboard_client::Connection;

use crate::support::{api_err, TestServer};

#[tokio::test]
async fn a_user_over_the_send_limit_gets_rate_limited_on_every_connection() {
    let server =
        TestServer::start_with(&["--user-rate-per-sec", "1", "--user-rate-burst", "2"]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(true, &[&bob]).await;
    alice
        .api
        .post_message(&room.id, "one", None)
        .await
        .expect("within the burst");
    let mut ws = server.connect(&alice).await;
    ws.send_message(&room.id, "two", None)
        .await
        .expect("within the burst, on another channel");
    // The third send in the same instant, over REST or the socket, is refused and not stored.
    let (status, code) = api_err(alice.api.post_message(&room.id, "three", None).await);
    assert_eq!((status, code), (429, ErrorCode::RateLimited));
    let err = ws
        .send_message(&room.id, "three", None)
        .await
        .expect_err("limited");
    assert_eq!(err.code(), Some(ErrorCode::RateLimited));
    // Bob has his own budget.
    bob.api
        .post_message(&room.id, "bob's", None)
        .await
        .expect("bob is not limited by alice");
    let stored = alice
        .api
        .messages(&room.id, Default::default())
        .await
        .expect("history");
    let bodies: Vec<&str> = stored.iter().map(|m| m.body.as_str()).collect();
    assert_eq!(bodies, ["one", "two", "bob's"]);
}

#[tokio::test]
async fn a_node_at_its_connection_limit_refuses_upgrades_with_503() {
    let server = TestServer::start_with(&["--max-connections", "1"]).await;
    let first = server.connect_anon().await;
    let Err(err) = Connection::connect(&server.ws_url(), None).await else {
        panic!("the second connection must be refused");
    };
    assert_eq!(
        (err.status(), err.code()),
        (Some(503), Some(ErrorCode::Unavailable)),
        "{err:?}"
    );
    // Capacity comes back when a connection goes.
    first.close().await.expect("close");
    let mut admitted = false;
    for _ in 0..50 {
        if Connection::connect(&server.ws_url(), None).await.is_ok() {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(admitted, "a freed slot is usable again");
}
