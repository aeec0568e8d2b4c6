//! Rooms: creation, listing with unread counts and read marks, visibility of private and public
//! rooms, membership changes and their events, direct rooms.

use reqwest::Method;
use switchboard_client::protocol::rest::Room;
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::protocol::ErrorCode;
use switchboard_client::{Api, HistoryQuery};

use crate::support::{
    api_err, events_until_pong, next_event, rejected, within, TestServer, TestUser,
};

#[tokio::test]
async fn creating_a_room_makes_the_creator_its_first_member() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;

    let room = alice
        .api
        .create_room("  general  ", true)
        .await
        .expect("create");
    assert_eq!(room.name, "general", "the name is trimmed");
    assert!(room.public);
    assert_eq!(room.kind, "group");
    assert_eq!(room.created_by, alice.username);
    assert_eq!(room.last_seq, 0);
    let shown = alice.api.room(&room.id).await.expect("get room");
    assert_eq!(shown.members, Some(vec![alice.username.clone()]));

    // `public` defaults to false.
    let response = alice
        .api
        .request(Method::POST, "/v1/rooms")
        .json(&serde_json::json!({"name": "quiet"}))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 201);
    let quiet: Room = response.json().await.expect("a room");
    assert!(!quiet.public);

    alice
        .api
        .create_room(&"n".repeat(80), false)
        .await
        .expect("80 characters is fine");
    for bad in ["", "   ", &"n".repeat(81)] {
        let result = alice.api.create_room(bad, false).await;
        assert_eq!(
            api_err(result),
            (400, ErrorCode::BadRequest),
            "name {bad:?}"
        );
    }
    let anonymous = server.api().create_room("nope", true).await;
    assert_eq!(api_err(anonymous), (401, ErrorCode::Unauthorized));
}

/// Posts to `room` until the stored `ts` is later than `after`, so that "last activity" is
/// strictly ordered even on a fast machine. Returns the last `ts`.
async fn post_later_than(api: &Api, room: &str, after: i64) -> i64 {
    loop {
        let ack = api
            .post_message(room, "activity", None)
            .await
            .expect("post");
        if ack.ts > after {
            return ack.ts;
        }
    }
}

fn ids(rooms: &[Room]) -> Vec<&str> {
    rooms.iter().map(|room| room.id.as_str()).collect()
}

#[tokio::test]
async fn the_room_list_holds_my_rooms_newest_activity_first() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let first = alice.room_with(false, &[]).await;
    let second = alice.room_with(false, &[]).await;
    let _bobs_own = bob.room_with(false, &[]).await;

    let first_ts = post_later_than(&alice.api, &first.id, 0).await;
    let second_ts = post_later_than(&alice.api, &second.id, first_ts).await;
    let rooms = alice.api.rooms().await.expect("list");
    assert_eq!(ids(&rooms), [second.id.as_str(), first.id.as_str()]);

    post_later_than(&alice.api, &first.id, second_ts).await;
    let rooms = alice.api.rooms().await.expect("list");
    assert_eq!(ids(&rooms), [first.id.as_str(), second.id.as_str()]);
    assert_eq!(
        api_err(server.api().rooms().await),
        (401, ErrorCode::Unauthorized)
    );
}

#[tokio::test]
async fn a_private_room_is_invisible_to_outsiders() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let eve = server.user("eve").await;
    let room = alice.room_with(false, &[]).await;
    alice
        .api
        .post_message(&room.id, "secret", None)
        .await
        .expect("post");

    // Existence does not leak: the same 404 as for an unknown room.
    assert_eq!(
        api_err(eve.api.room(&room.id).await),
        (404, ErrorCode::NotFound)
    );
    assert_eq!(
        api_err(server.api().room(&room.id).await),
        (404, ErrorCode::NotFound)
    );
    assert_eq!(
        api_err(eve.api.room("no-such-room").await),
        (404, ErrorCode::NotFound)
    );
    assert!(!ids(&eve.api.rooms().await.expect("list")).contains(&room.id.as_str()));

    let history = eve.api.messages(&room.id, HistoryQuery::default()).await;
    assert_eq!(api_err(history), (403, ErrorCode::Forbidden));
    let post = eve.api.post_message(&room.id, "hi", None).await;
    assert_eq!(api_err(post), (403, ErrorCode::Forbidden));
    let unknown = eve
        .api
        .messages("no-such-room", HistoryQuery::default())
        .await;
    assert_eq!(api_err(unknown), (404, ErrorCode::NotFound));

    let mut ws = server.connect(&eve).await;
    let sub = within("sub", ws.subscribe(&room.id, Some(0))).await;
    assert_eq!(rejected(sub), ErrorCode::Forbidden);
    let history = within("history", ws.history(&room.id, None, None)).await;
    assert_eq!(rejected(history), ErrorCode::Forbidden);
    let send = within("send", ws.send_message(&room.id, "hi", None)).await;
    assert_eq!(rejected(send), ErrorCode::Forbidden);
    assert_eq!(
        events_until_pong(&mut ws).await,
        [],
        "nothing of the room leaked"
    );
    let mut anon = server.connect_anon().await;
    let sub = within("sub", anon.subscribe(&room.id, None)).await;
    assert_eq!(rejected(sub), ErrorCode::Forbidden);
}

#[tokio::test]
async fn a_public_room_is_readable_without_an_account_but_not_writable() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(true, &[]).await;
    alice
        .api
        .post_message(&room.id, "first", None)
        .await
        .expect("post");

    let anon = server.api();
    let shown = anon.room(&room.id).await.expect("anonymous GET room");
    assert_eq!(shown.members, Some(vec![alice.username.clone()]));
    let page = anon.messages(&room.id, HistoryQuery::default()).await;
    assert_eq!(page.expect("anonymous history")[0].body, "first");
    let post = anon.post_message(&room.id, "hi", None).await;
    assert_eq!(api_err(post), (401, ErrorCode::Unauthorized));
    // An invalid token is refused even where none is needed.
    let bad = anon.with_token("not-a-token").room(&room.id).await;
    assert_eq!(api_err(bad), (401, ErrorCode::Unauthorized));

    // A non-member may read but not write, even in a public room.
    bob.api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("read");
    let post = bob.api.post_message(&room.id, "hi", None).await;
    assert_eq!(api_err(post), (403, ErrorCode::Forbidden));

    let (mut ws, welcome) = within(
        "welcome",
        switchboard_client::Connection::connect(&server.ws_url(), None),
    )
    .await
    .expect("anonymous connect");
    assert_eq!(welcome.user, None);
    assert!(welcome.session.starts_with("anon-"), "{}", welcome.session);
    let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, Some(0)))
        .await
        .expect("sub");
    assert_eq!((caught_up.len(), last_seq), (1, 1));
    let history = within("history", ws.history(&room.id, None, None)).await;
    assert_eq!(history.expect("history").len(), 1);

    let ack = alice
        .api
        .post_message(&room.id, "live", None)
        .await
        .expect("post");
    match next_event(&mut ws).await {
        ServerFrame::Message(message) => {
            assert_eq!((message.seq, message.body.as_str()), (ack.seq, "live"))
        }
        other => panic!("expected the live message, got {other:?}"),
    }

    let send = within("send", ws.send_message(&room.id, "hi", None)).await;
    assert_eq!(rejected(send), ErrorCode::Unauthorized);
    let read = within("read", ws.mark_read(&room.id, 1)).await;
    assert_eq!(rejected(read), ErrorCode::Unauthorized);

    let mut bob_ws = server.connect(&bob).await;
    let send = within("send", bob_ws.send_message(&room.id, "hi", None)).await;
    assert_eq!(rejected(send), ErrorCode::Forbidden);
    let stored = anon
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(stored.len(), 2, "nothing was stored by the refused sends");
}

#[tokio::test]
async fn members_join_and_leave_with_events_to_subscribers() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = alice.room_with(false, &[]).await;
    let mut ws = server.connect(&alice).await;
    within("sub", ws.subscribe(&room.id, None))
        .await
        .expect("sub");

    alice
        .api
        .add_member(&room.id, &bob.username)
        .await
        .expect("add bob");
    let joined = ServerFrame::MemberJoined {
        room: room.id.clone(),
        user: bob.username.clone(),
    };
    assert_eq!(next_event(&mut ws).await, joined);
    alice
        .api
        .add_member(&room.id, &bob.username)
        .await
        .expect("adding again is fine");
    let members = alice.api.room(&room.id).await.expect("room").members;
    let mut members = members.expect("members");
    members.sort();
    let mut expected = vec![alice.username.clone(), bob.username.clone()];
    expected.sort();
    assert_eq!(members, expected, "bob is a member once");

    // Any member may add; outsiders may not; unknown users and rooms are reported.
    let by_outsider = carol.api.add_member(&room.id, &carol.username).await;
    assert_eq!(api_err(by_outsider), (403, ErrorCode::Forbidden));
    bob.api
        .add_member(&room.id, &carol.username)
        .await
        .expect("bob adds carol");
    let unknown = bob.api.add_member(&room.id, "nobody_here").await;
    assert_eq!(api_err(unknown), (404, ErrorCode::UserNotFound));
    let no_room = bob.api.add_member("no-such-room", &carol.username).await;
    assert_eq!(api_err(no_room), (404, ErrorCode::NotFound));

    bob.api.leave(&room.id).await.expect("leave");
    let left = ServerFrame::MemberLeft {
        room: room.id.clone(),
        user: bob.username.clone(),
    };
    let mut seen = Vec::new();
    loop {
        let event = next_event(&mut ws).await;
        if event == left {
            break;
        }
        seen.push(event);
        assert!(seen.len() < 5, "no member_left; got {seen:?}");
    }
    let members = alice.api.room(&room.id).await.expect("room").members;
    assert!(!members.expect("members").contains(&bob.username));
    assert_eq!(
        api_err(bob.api.leave(&room.id).await),
        (403, ErrorCode::Forbidden)
    );
    assert_eq!(
        api_err(bob.api.room(&room.id).await),
        (404, ErrorCode::NotFound)
    );
    let history = bob.api.messages(&room.id, HistoryQuery::default()).await;
    assert_eq!(api_err(history), (403, ErrorCode::Forbidden));
    assert_eq!(
        api_err(bob.api.leave("no-such-room").await),
        (404, ErrorCode::NotFound)
    );
}

fn sorted_pair(a: &TestUser, b: &TestUser) -> String {
    let mut names = [a.username.as_str(), b.username.as_str()];
    names.sort();
    names.join(",")
}

#[tokio::test]
async fn a_direct_room_is_the_one_room_of_two_users() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;

    let room = alice.api.direct(&bob.username).await.expect("direct");
    assert_eq!(room.kind, "direct");
    assert!(!room.public);
    assert_eq!(room.name, sorted_pair(&alice, &bob));
    let again = alice.api.direct(&bob.username).await.expect("direct again");
    assert_eq!(again.id, room.id, "idempotent");
    let from_bob = bob.api.direct(&alice.username).await.expect("bob's side");
    assert_eq!(from_bob.id, room.id, "the same room whoever asks");
    let other = alice
        .api
        .direct(&carol.username)
        .await
        .expect("another pair");
    assert_ne!(other.id, room.id);
    assert!(ids(&bob.api.rooms().await.expect("list")).contains(&room.id.as_str()));

    let ack = bob
        .api
        .post_message(&room.id, "psst", None)
        .await
        .expect("post");
    let page = alice
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(page.last().map(|m| m.seq), Some(ack.seq));

    let own = alice.api.direct(&alice.username).await;
    assert_eq!(api_err(own), (409, ErrorCode::Conflict));
    let unknown = alice.api.direct("nobody_here").await;
    assert_eq!(api_err(unknown), (404, ErrorCode::UserNotFound));
    let add = alice.api.add_member(&room.id, &carol.username).await;
    assert_eq!(api_err(add), (403, ErrorCode::Forbidden));
    assert_eq!(
        api_err(carol.api.room(&room.id).await),
        (404, ErrorCode::NotFound)
    );
    let anonymous = server.api().direct(&bob.username).await;
    assert_eq!(api_err(anonymous), (401, ErrorCode::Unauthorized));
}
