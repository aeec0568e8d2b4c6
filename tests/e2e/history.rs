//! History and catch-up: paging with `before`/`after`/`limit`, `since` catch-up followed by live
//! messages, edits and tombstones as later readers see them, edit and delete rights.

use switchboard_client::protocol::ws::{Message, ServerFrame};
use switchboard_client::protocol::{ErrorCode, Seq};
use switchboard_client::HistoryQuery;

use crate::support::{
    api_err, events_until_pong, next_event, next_message, post_many, rejected, seqs, within,
    TestServer,
};

#[tokio::test]
async fn history_pages_backwards_and_forwards() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    post_many(&alice, &room.id, 55).await;
    let page = |before, after, limit| HistoryQuery {
        before,
        after,
        limit,
    };
    let get = |query| alice.api.messages(&room.id, query);

    let newest = get(HistoryQuery::default()).await.expect("default page");
    assert_eq!(seqs(&newest), (6..=55).collect::<Vec<_>>(), "the newest 50");
    assert_eq!(newest[0].body, "m6");
    assert_eq!(newest[0].from, alice.username);
    assert_eq!(
        seqs(&get(page(None, None, Some(3))).await.unwrap()),
        [53, 54, 55]
    );
    assert_eq!(
        seqs(&get(page(Some(5), None, Some(3))).await.unwrap()),
        [2, 3, 4]
    );
    assert_eq!(seqs(&get(page(Some(2), None, None)).await.unwrap()), [1]);
    assert!(get(page(Some(1), None, None)).await.unwrap().is_empty());
    assert_eq!(
        seqs(&get(page(None, Some(2), Some(2))).await.unwrap()),
        [3, 4]
    );
    assert_eq!(
        seqs(&get(page(None, Some(53), None)).await.unwrap()),
        [54, 55]
    );
    assert!(get(page(None, Some(55), None)).await.unwrap().is_empty());
    assert_eq!(get(page(None, None, Some(100))).await.unwrap().len(), 55);
    for limit in [0, 101] {
        let result = get(page(None, None, Some(limit))).await;
        assert_eq!(
            api_err(result),
            (400, ErrorCode::BadRequest),
            "limit {limit}"
        );
    }

    // Walking backwards with `before` = the smallest seq seen visits everything once.
    let mut walked = Vec::new();
    let mut before = None;
    loop {
        let chunk = get(page(before, None, Some(20))).await.expect("page");
        if chunk.is_empty() {
            break;
        }
        before = Some(chunk[0].seq);
        walked.splice(0..0, seqs(&chunk));
    }
    assert_eq!(walked, (1..=55).collect::<Vec<_>>());

    // The WebSocket twin.
    let mut ws = server.connect(&alice).await;
    let history = within("history", ws.history(&room.id, None, Some(3))).await;
    assert_eq!(seqs(&history.expect("history")), [53, 54, 55]);
    let history = within("history", ws.history(&room.id, Some(5), Some(3))).await;
    assert_eq!(seqs(&history.expect("history")), [2, 3, 4]);
    let history = within("history", ws.history(&room.id, None, None)).await;
    assert_eq!(history.expect("history").len(), 50);
    for limit in [0, 101] {
        let result = within("history", ws.history(&room.id, None, Some(limit))).await;
        assert_eq!(rejected(result), ErrorCode::BadRequest, "limit {limit}");
    }
}

#[tokio::test]
async fn since_catches_up_then_goes_live_without_gaps_or_duplicates() {
    const TOTAL: Seq = 30;
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    post_many(&alice, &room.id, 5).await;

    // Messages keep arriving while the subscription is set up.
    let poster = {
        let api = alice.api.clone();
        let room = room.id.clone();
        tokio::spawn(async move {
            for i in 6..=TOTAL {
                api.post_message(&room, &format!("m{i}"), None)
                    .await
                    .expect("post");
            }
        })
    };
    let mut ws = server.connect(&alice).await;
    let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, Some(2)))
        .await
        .expect("sub");
    assert_eq!(
        seqs(&caught_up),
        (3..=last_seq).collect::<Vec<_>>(),
        "catch-up"
    );
    assert!(caught_up.iter().all(|m| m.body == format!("m{}", m.seq)));
    let mut live = Vec::new();
    while live.last().copied().unwrap_or(last_seq) < TOTAL {
        live.push(next_message(&mut ws).await.seq);
    }
    assert_eq!(
        live,
        (last_seq + 1..=TOTAL).collect::<Vec<_>>(),
        "live after catch-up"
    );
    within("poster", poster).await.expect("poster task");

    // `since` at or past the newest message sends nothing; since 0 sends everything.
    let mut other = server.connect(&alice).await;
    let (caught_up, last_seq) = within("sub", other.subscribe(&room.id, Some(TOTAL)))
        .await
        .unwrap();
    assert_eq!((caught_up.len(), last_seq), (0, TOTAL));
    // Subscribed already: no second catch-up (PROTOCOL.md `sub`). A fresh connection gets it all.
    let (again, _) = within("sub", other.subscribe(&room.id, Some(0)))
        .await
        .unwrap();
    assert!(
        again.is_empty(),
        "a repeated sub replays nothing: {again:?}"
    );
    let mut third = server.connect(&alice).await;
    let (caught_up, _) = within("sub", third.subscribe(&room.id, Some(0)))
        .await
        .unwrap();
    assert_eq!(seqs(&caught_up), (1..=TOTAL).collect::<Vec<_>>());
    // Subscribed twice, the connection still gets each event once.
    let ack = alice
        .api
        .post_message(&room.id, "once", None)
        .await
        .expect("post");
    assert_eq!(next_message(&mut other).await.seq, ack.seq);
    let extra = events_until_pong(&mut other).await;
    assert!(extra.is_empty(), "duplicate delivery: {extra:?}");
}

#[tokio::test]
async fn catch_up_and_history_show_edits_and_tombstones() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    post_many(&alice, &room.id, 3).await;
    let edited = alice
        .api
        .edit_message(&room.id, 2, "m2 (edited)")
        .await
        .expect("edit");
    alice.api.delete_message(&room.id, 3).await.expect("delete");

    let check = |messages: &[Message]| {
        assert_eq!(seqs(messages), [1, 2, 3]);
        assert_eq!(
            (messages[0].body.as_str(), messages[0].edited_ts),
            ("m1", None)
        );
        assert!(!messages[0].deleted);
        assert_eq!(messages[1].body, "m2 (edited)");
        assert_eq!(messages[1].edited_ts, edited.edited_ts);
        assert!(messages[2].deleted, "a tombstone");
        assert_eq!(messages[2].body, "");
    };
    let mut ws = server.connect(&alice).await;
    let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, Some(0)))
        .await
        .expect("sub");
    assert_eq!(last_seq, 3, "a deleted seq still counts");
    check(&caught_up);
    check(
        &within("history", ws.history(&room.id, None, None))
            .await
            .expect("history"),
    );
    check(
        &alice
            .api
            .messages(&room.id, HistoryQuery::default())
            .await
            .expect("history"),
    );
    let next = alice
        .api
        .post_message(&room.id, "m4", None)
        .await
        .expect("post");
    assert_eq!(next.seq, 4, "seqs are never reused");
}

#[tokio::test]
async fn only_the_author_edits_and_deletes_and_subscribers_hear_of_it() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let ack = alice
        .api
        .post_message(&room.id, "original", None)
        .await
        .expect("post");
    let mut bob_ws = server.connect(&bob).await;
    within("sub", bob_ws.subscribe(&room.id, None))
        .await
        .expect("sub");

    let edit = bob
        .api
        .edit_message(&room.id, ack.seq, "bob was here")
        .await;
    assert_eq!(api_err(edit), (403, ErrorCode::Forbidden));
    let delete = bob.api.delete_message(&room.id, ack.seq).await;
    assert_eq!(api_err(delete), (403, ErrorCode::Forbidden));
    let anonymous = server.api().edit_message(&room.id, ack.seq, "x").await;
    assert_eq!(api_err(anonymous), (401, ErrorCode::Unauthorized));

    let edited = alice
        .api
        .edit_message(&room.id, ack.seq, "changed")
        .await
        .expect("edit");
    assert_eq!((edited.seq, edited.body.as_str()), (ack.seq, "changed"));
    assert_eq!(
        (edited.from.as_str(), edited.ts),
        (alice.username.as_str(), ack.ts)
    );
    let edited_ts = edited.edited_ts.expect("edited_ts is set");
    let expected = ServerFrame::Edited {
        room: room.id.clone(),
        seq: ack.seq,
        body: "changed".into(),
        edited_ts,
    };
    assert_eq!(next_event(&mut bob_ws).await, expected);

    alice
        .api
        .delete_message(&room.id, ack.seq)
        .await
        .expect("delete");
    let expected = ServerFrame::Deleted {
        room: room.id.clone(),
        seq: ack.seq,
        moderated: false,
    };
    assert_eq!(next_event(&mut bob_ws).await, expected);
    let page = bob
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    assert!(
        page[0].deleted && page[0].body.is_empty(),
        "got {:?}",
        page[0]
    );

    let again = alice.api.edit_message(&room.id, ack.seq, "resurrect").await;
    assert_eq!(
        api_err(again),
        (404, ErrorCode::NotFound),
        "a deleted message"
    );
    let unknown = alice.api.edit_message(&room.id, 99, "x").await;
    assert_eq!(api_err(unknown), (404, ErrorCode::NotFound));
    let unknown = alice.api.delete_message(&room.id, 99).await;
    assert_eq!(api_err(unknown), (404, ErrorCode::NotFound));
}

/// With a subscriber on the node (so the room's recent messages are held in memory), a resume
/// with a recent `since` is served from that hot window; an edit or delete must never be
/// served stale from it.
#[tokio::test]
async fn a_resume_from_the_hot_window_never_serves_stale_edits() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let mut watcher = server.connect(&alice).await;
    watcher.subscribe(&room.id, None).await.expect("sub");
    let seqs = post_many(&alice, &room.id, 4).await;
    for _ in &seqs {
        next_message(&mut watcher).await;
    }
    // A resume from seq 1: served from memory, exact.
    let mut late = server.connect(&alice).await;
    let (caught, last) = late
        .subscribe(&room.id, Some(seqs[0]))
        .await
        .expect("resume");
    assert_eq!(crate::support::seqs(&caught), seqs[1..].to_vec());
    assert_eq!(last, seqs[3]);
    // Edit and delete, then resume again: the changes show.
    alice
        .api
        .edit_message(&room.id, seqs[1], "edited")
        .await
        .expect("edit");
    alice
        .api
        .delete_message(&room.id, seqs[2])
        .await
        .expect("delete");
    // The watcher has seen both events, so they went through this node's delivery path.
    for _ in 0..2 {
        match next_event(&mut watcher).await {
            ServerFrame::Edited { .. } | ServerFrame::Deleted { .. } => {}
            other => panic!("expected edited/deleted, got {other:?}"),
        }
    }
    let mut again = server.connect(&alice).await;
    let (caught, _) = again
        .subscribe(&room.id, Some(seqs[0]))
        .await
        .expect("resume");
    assert_eq!(caught[0].body, "edited");
    assert!(caught[1].deleted && caught[1].body.is_empty());
    assert_eq!(crate::support::seqs(&caught), seqs[1..].to_vec());
}

/// With retention, messages older than it are deleted; resuming from before the retained
/// history is refused with `history_expired` (no silent gap), resuming after it works.
#[tokio::test]
async fn a_since_older_than_retention_gets_history_expired() {
    let server =
        TestServer::start_with(&["--retention-secs", "1", "--retention-sweep-ms", "100"]).await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let old = post_many(&alice, &room.id, 3).await;
    // Wait (bounded) until the sweeper deleted them: retention is about wall-clock age.
    let mut purged = false;
    for _ in 0..100 {
        let page = alice
            .api
            .messages(&room.id, HistoryQuery::default())
            .await
            .expect("history");
        if page.is_empty() {
            purged = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(purged, "old messages were deleted");
    let fresh = post_many(&alice, &room.id, 1).await;
    assert_eq!(fresh[0], old[2] + 1, "seqs are never reused");

    let mut ws = server.connect(&alice).await;
    let err = ws
        .subscribe(&room.id, Some(old[0]))
        .await
        .expect_err("expired");
    assert_eq!(err.code(), Some(ErrorCode::HistoryExpired), "{err:?}");
    // Resuming from the last purged seq leaves no gap: allowed.
    let (caught, last) = ws.subscribe(&room.id, Some(old[2])).await.expect("resume");
    assert_eq!((seqs(&caught), last), (fresh.clone(), fresh[0]));
}
