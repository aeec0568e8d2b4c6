//! Presence: who is online in a room (subscribed with an authenticated connection), with
//! `presence` events on the transitions and `GET /v1/rooms/{id}/presence`.

use switchboard_client::protocol::ws::ServerFrame;

use crate::support::{next_event_with_presence, TestServer};

/// The next `presence` event on `conn`, skipping everything else.
async fn next_presence(conn: &mut switchboard_client::Connection) -> (String, bool) {
    loop {
        if let ServerFrame::Presence { user, online, .. } = next_event_with_presence(conn).await {
            return (user, online);
        }
    }
}

#[tokio::test]
async fn users_come_online_and_go_offline_in_a_room() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;

    let mut a = server.connect(&alice).await;
    a.subscribe(&room.id, None).await.expect("alice subscribes");
    assert_eq!(
        next_presence(&mut a).await,
        (alice.username.clone(), true),
        "her own arrival"
    );
    assert_eq!(
        alice.api.presence(&room.id).await.unwrap(),
        vec![alice.username.clone()]
    );

    // Bob's first connection makes him present; his second changes nothing.
    let mut b1 = server.connect(&bob).await;
    b1.subscribe(&room.id, None).await.expect("bob subscribes");
    assert_eq!(next_presence(&mut a).await, (bob.username.clone(), true));
    let mut b2 = server.connect(&bob).await;
    b2.subscribe(&room.id, None).await.expect("bob again");
    let mut expected = vec![alice.username.clone(), bob.username.clone()];
    expected.sort();
    assert_eq!(bob.api.presence(&room.id).await.unwrap(), expected);

    // Closing one of two connections keeps him present; unsubscribing the last makes him go.
    b2.close().await.expect("close");
    b1.unsubscribe(&room.id).await.expect("unsub");
    assert_eq!(
        next_presence(&mut a).await,
        (bob.username.clone(), false),
        "one offline event, after the last"
    );
    assert_eq!(
        alice.api.presence(&room.id).await.unwrap(),
        vec![alice.username.clone()]
    );

    // Outsiders cannot see a private room's presence.
    let carol = server.user("carol").await;
    let err = carol.api.presence(&room.id).await.expect_err("forbidden");
    assert_eq!(err.status(), Some(403));
}
