//! Presence ends with membership (issue 10, item 8): a user who leaves a private room is no
//! longer present there, at once, while their socket stays open; rejoining makes them present
//! again, and the bookkeeping stays balanced. Deleting an account ends it too (its sessions are
//! revoked, so its sockets close).

use switchboard_client::protocol::ws::ServerFrame;

use crate::support::{next_event_with_presence, within, TestServer};

/// The next `presence` event on `conn`, skipping everything else.
async fn next_presence(conn: &mut switchboard_client::Connection) -> (String, bool) {
    loop {
        if let ServerFrame::Presence { user, online, .. } = next_event_with_presence(conn).await {
            return (user, online);
        }
    }
}

#[tokio::test]
async fn leaving_a_private_room_ends_presence_while_the_socket_stays_open() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;

    let mut a = server.connect(&alice).await;
    a.subscribe(&room.id, None).await.expect("alice subscribes");
    assert_eq!(next_presence(&mut a).await, (alice.username.clone(), true));
    // Two connections of bob's: both must stop counting.
    let mut b1 = server.connect(&bob).await;
    b1.subscribe(&room.id, None).await.expect("bob subscribes");
    assert_eq!(next_presence(&mut a).await, (bob.username.clone(), true));
    let mut b2 = server.connect(&bob).await;
    b2.subscribe(&room.id, None).await.expect("bob again");

    bob.api.leave(&room.id).await.expect("bob leaves");
    assert_eq!(
        next_presence(&mut a).await,
        (bob.username.clone(), false),
        "the presence event"
    );
    assert_eq!(
        alice.api.presence(&room.id).await.unwrap(),
        vec![alice.username.clone()],
        "the presence list"
    );
    for b in [&mut b1, &mut b2] {
        let ended = within("unsubbed", async {
            loop {
                if let ServerFrame::Unsubbed { id: None, room: r } =
                    next_event_with_presence(b).await
                {
                    return r;
                }
            }
        })
        .await;
        assert_eq!(ended, room.id, "the subscription ended");
    }

    // Added back, bob is present again through the same socket; closing it then makes him go,
    // once (the eviction's leave is not counted twice).
    alice
        .api
        .add_member(&room.id, &bob.username)
        .await
        .expect("add bob");
    b1.subscribe(&room.id, None)
        .await
        .expect("bob subscribes again");
    assert_eq!(next_presence(&mut a).await, (bob.username.clone(), true));
    b2.close().await.expect("close b2");
    b1.close().await.expect("close b1");
    assert_eq!(next_presence(&mut a).await, (bob.username.clone(), false));
    assert_eq!(
        alice.api.presence(&room.id).await.unwrap(),
        vec![alice.username.clone()]
    );
}

/// Deleting an account keeps its memberships but revokes every session: the sockets close
/// (1008) and presence ends with them, at once.
#[tokio::test]
async fn deleting_the_account_ends_presence_at_once() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let mut a = server.connect(&alice).await;
    a.subscribe(&room.id, None).await.expect("alice subscribes");
    assert_eq!(next_presence(&mut a).await, (alice.username.clone(), true));
    let mut b = server.connect(&bob).await;
    b.subscribe(&room.id, None).await.expect("bob subscribes");
    assert_eq!(next_presence(&mut a).await, (bob.username.clone(), true));

    let deleted = bob
        .api
        .request(reqwest::Method::DELETE, "/v1/auth/me")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status(), 204);
    assert_eq!(next_presence(&mut a).await, (bob.username.clone(), false));
    assert_eq!(
        alice.api.presence(&room.id).await.unwrap(),
        vec![alice.username.clone()]
    );
}
