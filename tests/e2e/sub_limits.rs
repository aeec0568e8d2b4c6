//! Limits on `sub` (issue 10, items 5 and 6): only a successful first `sub` of a room is free
//! of the per-connection rate limit, and a connection holds at most `--max-subscriptions` rooms.

use std::time::Instant;

use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::protocol::ErrorCode;

use crate::support::{events_until_pong, next_event, rejected, within, TestServer};

/// The probe's flood: 1,000 `sub`s to rooms that do not exist, from one anonymous socket. Each
/// `not_found` answer is a store lookup; after the burst they become `rate_limited`, which the
/// server answers without touching the store.
#[tokio::test]
async fn refused_subs_cost_tokens_and_an_empty_bucket_refuses_them_unlooked() {
    const SUBS: u64 = 1_000;
    const BURST: u64 = 40;
    let server = TestServer::start_with(&["--rate-per-sec", "1", "--rate-burst", "40"]).await;
    let mut ws = server.connect_anon().await;
    let started = Instant::now();
    for i in 0..SUBS {
        let frame = ClientFrame::Sub {
            id: Some(FrameId::Num(i)),
            room: format!("no-such-room-{i}"),
            since: None,
        };
        ws.send(&frame).await.expect("send");
    }
    let (mut not_found, mut limited) = (0, 0);
    while not_found + limited < SUBS {
        match next_event(&mut ws).await {
            ServerFrame::Error {
                code: ErrorCode::NotFound,
                ..
            } => not_found += 1,
            ServerFrame::Error {
                code: ErrorCode::RateLimited,
                ..
            } => limited += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    // The bucket refills at 1 token a second while the flood is answered.
    let refilled = started.elapsed().as_secs() + 1;
    assert!(
        not_found <= BURST + refilled,
        "{not_found} store lookups for {SUBS} refused subs (burst {BURST}, refilled {refilled})"
    );
    assert_eq!(not_found + limited, SUBS);

    // A successful first sub is still free, but not while the bucket is empty.
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let refused = within("sub", ws.subscribe(&room.id, None)).await;
    assert_eq!(rejected(refused), ErrorCode::RateLimited);
}

/// Resuming many rooms never meets the rate limit: successful first subs are free.
#[tokio::test]
async fn successful_first_subs_stay_free() {
    let server = TestServer::start_with(&["--rate-per-sec", "1", "--rate-burst", "3"]).await;
    let alice = server.user("alice").await;
    let mut rooms = Vec::new();
    for _ in 0..8 {
        rooms.push(alice.room_with(true, &[]).await.id);
    }
    let mut ws = server.connect_anon().await;
    for room in &rooms {
        within("sub", ws.subscribe(room, None))
            .await
            .expect("a free first sub");
    }
}

#[tokio::test]
async fn a_connection_holds_at_most_max_subscriptions() {
    let server = TestServer::start_with(&["--max-subscriptions", "3"]).await;
    let alice = server.user("alice").await;
    let mut rooms = Vec::new();
    for _ in 0..4 {
        rooms.push(alice.room_with(true, &[]).await.id);
    }
    let mut ws = server.connect_anon().await;
    for room in &rooms[..3] {
        within("sub", ws.subscribe(room, None)).await.expect("sub");
    }
    // Subscribing again to one of them is no new subscription.
    within("sub again", ws.subscribe(&rooms[0], None))
        .await
        .expect("a repeated sub is answered");
    let refused = within("sub", ws.subscribe(&rooms[3], None)).await;
    assert_eq!(rejected(refused), ErrorCode::TooManySubscriptions);
    alice.api.post_message(&rooms[3], "hi", None).await.unwrap();
    assert!(
        events_until_pong(&mut ws).await.is_empty(),
        "the refused room is not subscribed"
    );

    ws.unsubscribe(&rooms[0]).await.expect("unsub");
    within("sub", ws.subscribe(&rooms[3], None))
        .await
        .expect("room again after an unsub");
}
