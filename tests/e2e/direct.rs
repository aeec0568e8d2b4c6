//! Direct rooms are never left, only hidden: the leaver's list drops the room and their
//! subscriptions end, the other side can still write to them, and opening the room again or a
//! new message in it brings it back with every message.

use switchboard_client::protocol::rest::Room;
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::HistoryQuery;

use crate::support::{events_until_pong, next_event, seqs, within, TestServer, TestUser};

/// The caller's listed room with this id, if listed.
async fn listed(user: &TestUser, room: &str) -> Option<Room> {
    let rooms = user.api.rooms().await.expect("room list");
    rooms.into_iter().find(|r| r.id == room)
}

#[tokio::test]
async fn leaving_a_direct_room_hides_it_until_reopened_or_written_to() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.api.direct(&bob.username).await.expect("direct").id;
    alice
        .api
        .post_message(&room, "hi bob", None)
        .await
        .expect("post");
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    within("alice subs", alice_ws.subscribe(&room, None))
        .await
        .expect("sub");
    within("bob subs", bob_ws.subscribe(&room, None))
        .await
        .expect("sub");

    bob.api.leave(&room).await.expect("leave");
    // Bob's own connections are told and unsubscribed; alice hears nothing of it.
    let left = ServerFrame::MemberLeft {
        room: room.clone(),
        user: bob.username.clone(),
    };
    assert_eq!(next_event(&mut bob_ws).await, left);
    assert!(
        matches!(next_event(&mut bob_ws).await, ServerFrame::Unsubbed { id: None, room: ref r } if *r == room),
        "bob's subscription ends"
    );
    assert!(
        events_until_pong(&mut alice_ws).await.is_empty(),
        "alice is not told"
    );
    assert!(listed(&bob, &room).await.is_none(), "gone from bob's list");
    assert!(
        listed(&alice, &room).await.is_some(),
        "still in alice's list"
    );
    // Leaving again changes nothing.
    bob.api.leave(&room).await.expect("leave again");

    // Alice can still write to him, and that brings the room back to his list, unread.
    alice
        .api
        .post_message(&room, "are you there?", None)
        .await
        .expect("post after leave");
    let back = listed(&bob, &room)
        .await
        .expect("a new message shows the room again");
    assert_eq!((back.last_seq, back.unread), (2, Some(2)));
    let events = events_until_pong(&mut bob_ws).await;
    assert!(events.is_empty(), "still unsubscribed: {events:?}");

    // Hidden again, then opened by bob himself: the same room, every message in it.
    bob.api.leave(&room).await.expect("leave");
    assert!(listed(&bob, &room).await.is_none());
    let reopened = bob.api.direct(&alice.username).await.expect("reopen");
    assert_eq!(reopened.id, room);
    assert!(listed(&bob, &room).await.is_some(), "opening it shows it");
    let all = bob
        .api
        .messages(&room, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(seqs(&all), [1, 2]);
    let (_, last_seq) = within("bob subs again", bob_ws.subscribe(&room, None))
        .await
        .expect("sub");
    assert_eq!(last_seq, 2);
    // Bob writes back; alice, who never left, has had every message live.
    bob.api
        .post_message(&room, "here", None)
        .await
        .expect("bob posts");
    for (seq, body) in [(2, "are you there?"), (3, "here")] {
        match next_event(&mut alice_ws).await {
            ServerFrame::Message(m) => assert_eq!((m.seq, m.body.as_str()), (seq, body)),
            other => panic!("expected message {seq}, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_direct_room_hidden_by_both_comes_back_for_both_on_a_message() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = bob.api.direct(&alice.username).await.expect("direct").id;
    alice.api.leave(&room).await.expect("alice hides it");
    bob.api.leave(&room).await.expect("bob hides it");
    assert!(listed(&alice, &room).await.is_none() && listed(&bob, &room).await.is_none());
    // Alice writes without reopening (say, from a client that kept the id): both see it again.
    alice
        .api
        .post_message(&room, "hello again", None)
        .await
        .expect("a hidden member may write");
    assert_eq!(
        listed(&alice, &room).await.expect("alice's list").unread,
        Some(0)
    );
    assert_eq!(
        listed(&bob, &room).await.expect("bob's list").unread,
        Some(1)
    );
}
