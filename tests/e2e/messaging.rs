//! Live messaging: two users chatting, idempotent sends, body limits, typing, unsubscribe.
//! History and catch-up are in `history.rs`.

use std::time::{Duration, Instant};

use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::protocol::ErrorCode;
use switchboard_client::HistoryQuery;

use crate::support::{
    api_err, events_until_pong, next_event, next_message, rejected, seqs, within, TestServer,
};

#[tokio::test]
async fn two_users_chat_live() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, None))
            .await
            .expect("sub");
        assert_eq!((caught_up.len(), last_seq), (0, 0));
    }

    let ack = within(
        "ack",
        alice_ws.send_message(&room.id, "hello bob", Some("c-1")),
    )
    .await
    .expect("ack");
    assert_eq!((ack.room.as_str(), ack.seq), (room.id.as_str(), 1));
    assert_eq!(ack.client_msg_id.as_deref(), Some("c-1"));
    for ws in [&mut alice_ws, &mut bob_ws] {
        let message = next_message(ws).await;
        assert_eq!(message.room, room.id);
        assert_eq!((message.seq, message.ts), (ack.seq, ack.ts));
        assert_eq!(message.from, alice.username);
        assert_eq!(message.body, "hello bob");
        assert_eq!(message.client_msg_id.as_deref(), Some("c-1"));
    }

    let reply = within("ack", bob_ws.send_message(&room.id, "hi alice", None))
        .await
        .expect("ack");
    assert_eq!(reply.seq, 2);
    let message = next_message(&mut alice_ws).await;
    assert_eq!(
        (message.seq, message.from.as_str()),
        (2, bob.username.as_str())
    );

    // A message posted over REST reaches the sockets too.
    let rest = alice
        .api
        .post_message(&room.id, "via rest", None)
        .await
        .expect("post");
    assert_eq!(rest.seq, 3);
    assert_eq!(next_message(&mut bob_ws).await.body, "hi alice");
    assert_eq!(next_message(&mut bob_ws).await.seq, 3);
}

#[tokio::test]
async fn a_repeated_client_msg_id_returns_the_first_ack_and_stores_one_message() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    within("sub", bob_ws.subscribe(&room.id, None))
        .await
        .expect("sub");

    let first = within(
        "ack",
        alice_ws.send_message(&room.id, "once", Some("dup-1")),
    )
    .await
    .expect("ack");
    let second = within(
        "ack",
        alice_ws.send_message(&room.id, "twice?", Some("dup-1")),
    )
    .await
    .expect("ack");
    assert_eq!(second, first, "the first ack again");
    let rest = alice
        .api
        .post_message(&room.id, "thrice?", Some("dup-1"))
        .await;
    assert_eq!(rest.expect("201 with the first ack"), first);

    assert_eq!(next_message(&mut bob_ws).await.seq, first.seq);
    // The key is scoped to (user, room): bob's use of it is a new message.
    let bobs = bob
        .api
        .post_message(&room.id, "mine", Some("dup-1"))
        .await
        .expect("post");
    assert_eq!(bobs.seq, first.seq + 1);
    assert_eq!(
        next_message(&mut bob_ws).await.seq,
        bobs.seq,
        "no event for the repeats"
    );

    let page = alice
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(seqs(&page), [first.seq, bobs.seq]);
    assert_eq!(page[0].body, "once");

    let elsewhere = alice.room_with(false, &[]).await;
    let ack = alice
        .api
        .post_message(&elsewhere.id, "other room", Some("dup-1"))
        .await;
    assert_eq!(ack.expect("post").seq, 1, "another room, another message");
}

#[tokio::test]
async fn bodies_and_client_msg_ids_are_checked_against_their_limits() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let api = &alice.api;

    for empty in ["", "  \n\t "] {
        let result = api.post_message(&room.id, empty, None).await;
        assert_eq!(
            api_err(result),
            (400, ErrorCode::BadRequest),
            "body {empty:?}"
        );
    }
    let max = "x".repeat(4096);
    api.post_message(&room.id, &max, None)
        .await
        .expect("4096 bytes fit");
    let over = api.post_message(&room.id, &"x".repeat(4097), None).await;
    assert_eq!(api_err(over), (413, ErrorCode::TooLarge));
    // The limit is in bytes: 2049 two-byte characters are 4098 bytes.
    let wide = api.post_message(&room.id, &"é".repeat(2049), None).await;
    assert_eq!(api_err(wide), (413, ErrorCode::TooLarge));
    let id_64 = "i".repeat(64);
    api.post_message(&room.id, "ok", Some(&id_64))
        .await
        .expect("64-byte id");
    let id_65 = api
        .post_message(&room.id, "no", Some(&"i".repeat(65)))
        .await;
    assert_eq!(api_err(id_65), (400, ErrorCode::BadRequest));
    let edit = api.edit_message(&room.id, 1, &"x".repeat(4097)).await;
    assert_eq!(api_err(edit), (413, ErrorCode::TooLarge));
    let edit = api.edit_message(&room.id, 1, " ").await;
    assert_eq!(api_err(edit), (400, ErrorCode::BadRequest));

    let mut ws = server.connect(&alice).await;
    let over = within("send", ws.send_message(&room.id, &"x".repeat(4097), None)).await;
    assert_eq!(rejected(over), ErrorCode::TooLarge);
    let empty = within("send", ws.send_message(&room.id, " ", None)).await;
    assert_eq!(rejected(empty), ErrorCode::BadRequest);
    let long_id = within(
        "send",
        ws.send_message(&room.id, "x", Some(&"i".repeat(65))),
    )
    .await;
    assert_eq!(rejected(long_id), ErrorCode::BadRequest);
    within("pong", ws.ping())
        .await
        .expect("the connection stays open");

    let page = api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(
        seqs(&page),
        [1, 2],
        "only the two valid messages are stored"
    );
    assert_eq!(page[0].body, max);
}

#[tokio::test]
async fn typing_reaches_the_other_subscribers_and_is_throttled() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let mut alice_ws = server.connect(&alice).await;
    let mut bob_ws = server.connect(&bob).await;
    for ws in [&mut alice_ws, &mut bob_ws] {
        within("sub", ws.subscribe(&room.id, None))
            .await
            .expect("sub");
    }

    let started = Instant::now();
    alice_ws.typing(&room.id).await.expect("typing");
    let expected = ServerFrame::Typing {
        room: room.id.clone(),
        user: alice.username.clone(),
    };
    assert_eq!(next_event(&mut bob_ws).await, expected);
    let own = events_until_pong(&mut alice_ws).await;
    assert!(own.is_empty(), "the typist's own connection got {own:?}");

    // More typing within 2 s is dropped silently; a message sent after it is the next event.
    alice_ws.typing(&room.id).await.expect("typing");
    alice_ws.typing(&room.id).await.expect("typing");
    let throttle_window_open = started.elapsed() < Duration::from_secs(2);
    let ack = within("ack", alice_ws.send_message(&room.id, "done typing", None))
        .await
        .expect("ack");
    let mut before_message = Vec::new();
    loop {
        match next_event(&mut bob_ws).await {
            ServerFrame::Message(message) if message.seq == ack.seq => break,
            other => before_message.push(other),
        }
    }
    if throttle_window_open {
        assert!(
            before_message.is_empty(),
            "not throttled: {before_message:?}"
        );
    }
    let errors = events_until_pong(&mut alice_ws).await;
    assert!(
        errors
            .iter()
            .all(|frame| matches!(frame, ServerFrame::Message(_))),
        "typing is never answered unless it fails: {errors:?}"
    );

    // Typing is refused like sending: outsiders `forbidden`, anonymous `unauthorized`.
    let carol = server.user("carol").await;
    let mut carol_ws = server.connect(&carol).await;
    let typing = |id: u64| ClientFrame::Typing {
        id: Some(FrameId::Num(id)),
        room: room.id.clone(),
    };
    let reply = within("error", carol_ws.request(typing(1)))
        .await
        .expect("reply");
    assert!(
        matches!(
            reply,
            ServerFrame::Error {
                code: ErrorCode::Forbidden,
                ..
            }
        ),
        "{reply:?}"
    );
    let mut anon_ws = server.connect_anon().await;
    let reply = within("error", anon_ws.request(typing(2)))
        .await
        .expect("reply");
    assert!(
        matches!(
            reply,
            ServerFrame::Error {
                code: ErrorCode::Unauthorized,
                ..
            }
        ),
        "{reply:?}"
    );
}

#[tokio::test]
async fn an_unsubscribed_connection_gets_no_more_events() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let mut leaver = server.connect(&alice).await;
    let mut witness = server.connect(&alice).await;
    for ws in [&mut leaver, &mut witness] {
        within("sub", ws.subscribe(&room.id, None))
            .await
            .expect("sub");
    }

    within("unsubbed", leaver.unsubscribe(&room.id))
        .await
        .expect("unsub");
    let ack = alice
        .api
        .post_message(&room.id, "after unsub", None)
        .await
        .expect("post");
    // Once the witness has the message, the fanout is done: the leaver's copy would be queued.
    assert_eq!(next_message(&mut witness).await.seq, ack.seq);
    let leaked = events_until_pong(&mut leaver).await;
    assert!(leaked.is_empty(), "events after unsubbed: {leaked:?}");
}

/// A client may send without waiting for acks: 150 sends (more than the 64 a connection may
/// have awaiting acks) to one room are all acknowledged, numbered in the order they were sent,
/// and delivered in that order; a refused send among them fails alone.
#[tokio::test]
async fn pipelined_sends_are_stored_in_the_order_sent() {
    let server = TestServer::start_with(&crate::support::NO_RATE_LIMITS).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[]).await;
    let theirs = bob.room_with(false, &[]).await;
    let mut reader = server.connect(&alice).await;
    within("sub", reader.subscribe(&room.id, None))
        .await
        .expect("sub");
    let mut ws = server.connect(&alice).await;
    const N: u64 = 150;
    for i in 0..N {
        // Number 77 goes to a room alice is not in.
        let target = if i == 77 { &theirs.id } else { &room.id };
        ws.send(&ClientFrame::Send {
            id: Some(FrameId::Num(i)),
            room: target.clone(),
            body: format!("m{i}"),
            client_msg_id: None,
            attachments: Vec::new(),
        })
        .await
        .expect("send");
    }
    let mut seq_of = vec![None; N as usize];
    let mut refused = None;
    for _ in 0..N {
        match next_event(&mut ws).await {
            ServerFrame::Ack {
                id: Some(FrameId::Num(i)),
                seq,
                ..
            } => seq_of[i as usize] = Some(seq),
            ServerFrame::Error {
                id: Some(FrameId::Num(i)),
                code,
                ..
            } => refused = Some((i, code)),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(refused, Some((77, ErrorCode::Forbidden)));
    let acked: Vec<u64> = seq_of.iter().flatten().copied().collect();
    assert_eq!(
        acked,
        (1..N).collect::<Vec<u64>>(),
        "seqs follow the order sent"
    );
    for (expected, i) in (1..N).zip((0..N).filter(|&i| i != 77)) {
        let m = next_message(&mut reader).await;
        assert_eq!((m.seq, m.body), (expected, format!("m{i}")));
    }
}
