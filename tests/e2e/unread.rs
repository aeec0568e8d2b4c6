//! Read marks and unread counts: the room list's `unread`/`read_seq`, marks that never move
//! back and are clamped to `last_seq`, `read_ok` and `read` events.

use switchboard_client::protocol::rest::Room;
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::protocol::ErrorCode;

use crate::support::{api_err, next_event, within, TestServer};

fn listed<'a>(rooms: &'a [Room], id: &str) -> &'a Room {
    rooms
        .iter()
        .find(|room| room.id == id)
        .unwrap_or_else(|| panic!("room {id} not in {rooms:?}"))
}

#[tokio::test]
async fn unread_counts_follow_the_read_mark_which_never_moves_back() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    for i in 1..=3 {
        bob.api
            .post_message(&room.id, &format!("m{i}"), None)
            .await
            .expect("post");
    }

    let unread = |rooms: Vec<Room>| {
        let room = listed(&rooms, &room.id);
        (room.unread, room.read_seq, room.last_seq)
    };
    let list = alice.api.rooms().await.expect("list");
    assert_eq!(unread(list), (Some(3), Some(0), 3));

    alice.api.mark_read(&room.id, 2).await.expect("read 2");
    assert_eq!(
        unread(alice.api.rooms().await.expect("list")),
        (Some(1), Some(2), 3)
    );
    alice.api.mark_read(&room.id, 1).await.expect("read 1");
    assert_eq!(
        unread(alice.api.rooms().await.expect("list")),
        (Some(1), Some(2), 3),
        "the mark never moves back"
    );
    alice.api.mark_read(&room.id, 99).await.expect("read 99");
    assert_eq!(
        unread(alice.api.rooms().await.expect("list")),
        (Some(0), Some(3), 3),
        "a mark beyond last_seq is clamped"
    );
    bob.api
        .post_message(&room.id, "m4", None)
        .await
        .expect("post");
    assert_eq!(
        unread(alice.api.rooms().await.expect("list")),
        (Some(1), Some(3), 4)
    );

    let outsider = server.user("carol").await;
    let result = outsider.api.mark_read(&room.id, 1).await;
    assert_eq!(api_err(result), (403, ErrorCode::Forbidden));
    let result = server.api().mark_read(&room.id, 1).await;
    assert_eq!(api_err(result), (401, ErrorCode::Unauthorized));
}

#[tokio::test]
async fn read_marks_are_confirmed_and_announced_to_subscribers() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    for body in ["one", "two", "three"] {
        alice
            .api
            .post_message(&room.id, body, None)
            .await
            .expect("post");
    }
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    within("sub", alice_ws.subscribe(&room.id, None))
        .await
        .expect("sub");

    let confirmed = within("read_ok", bob_ws.mark_read(&room.id, 2)).await;
    assert_eq!(confirmed.expect("read_ok"), 2);
    let expected = ServerFrame::Read {
        room: room.id.clone(),
        user: bob.username.clone(),
        seq: 2,
    };
    assert_eq!(next_event(&mut alice_ws).await, expected);

    let confirmed = within("read_ok", bob_ws.mark_read(&room.id, 1)).await;
    assert_eq!(
        confirmed.expect("read_ok"),
        2,
        "read_ok reports the unchanged mark"
    );

    // The REST twin announces too.
    bob.api.mark_read(&room.id, 3).await.expect("read 3");
    let expected = ServerFrame::Read {
        room: room.id.clone(),
        user: bob.username.clone(),
        seq: 3,
    };
    let mut seen = Vec::new();
    loop {
        let event = next_event(&mut alice_ws).await;
        if event == expected {
            break;
        }
        seen.push(event);
        assert!(seen.len() < 5, "no read event for seq 3; got {seen:?}");
    }
    let rooms = bob.api.rooms().await.expect("list");
    assert_eq!(listed(&rooms, &room.id).read_seq, Some(3));
}
