//! The reconnecting client (`switchboard_client::reconnect`) against a hub that restarts: rooms
//! resume with `since` and every seq reaches the caller once, in order; a send made while the hub
//! is down is acknowledged once it is back and stored once; a revoked session (1008) is not
//! reconnected; a bounded client gives up.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use switchboard_client::protocol::close;
use switchboard_client::protocol::Seq;
use switchboard_client::reconnect::{
    new_client_msg_id, Backoff, ClientEvent, ReconnectConfig, ReconnectingClient,
};
use switchboard_client::{ClientError, HistoryQuery};

use crate::support::{post_many, within, within_for, TestServer, TestUser};

/// Bound on waits that span a hub restart (shutdown with its close grace, then a fresh start,
/// which on the scaled backend reconnects to PostgreSQL and Redis).
const RESTART_WAIT: Duration = Duration::from_secs(30);

/// Fast backoff, so that reconnecting takes little of a test's time.
fn fast_backoff() -> Backoff {
    Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(250),
        factor: 2.0,
        max_attempts: None,
    }
}

/// A client for `user` with [`fast_backoff`] and a fixed token.
async fn connect(server: &TestServer, user: &TestUser) -> ReconnectingClient {
    let mut config = ReconnectConfig::with_token(server.ws_url(), Some(user.token()));
    config.backoff = fast_backoff();
    within("connect", ReconnectingClient::connect(config))
        .await
        .expect("connect")
}

/// The next event, which must not be an error.
async fn next(client: &mut ReconnectingClient) -> ClientEvent {
    within("the next event", client.next_event())
        .await
        .expect("an event, not the end of the client")
}

/// Events up to and including `Reconnected`.
async fn until_reconnected(client: &mut ReconnectingClient) -> Vec<ClientEvent> {
    let mut events = Vec::new();
    loop {
        let event = client.next_event().await.expect("an event");
        let done = matches!(event, ClientEvent::Reconnected { .. });
        events.push(event);
        if done {
            return events;
        }
    }
}

/// The seqs of the message events of `room` in `events`, in order.
fn message_seqs(events: &[ClientEvent], room: &str) -> Vec<Seq> {
    events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Message(message) if message.room == room => Some(message.seq),
            _ => None,
        })
        .collect()
}

/// Reads events until a message of `room` with seq `last` (or a later one); returns the seqs of
/// the room's messages read, in order.
async fn seqs_through(client: &mut ReconnectingClient, room: &str, last: Seq) -> Vec<Seq> {
    let mut seqs = Vec::new();
    while seqs.last().is_none_or(|&seq| seq < last) {
        if let ClientEvent::Message(message) = next(client).await {
            if message.room == room {
                seqs.push(message.seq);
            }
        }
    }
    seqs
}

#[tokio::test]
async fn a_subscribed_client_gets_every_seq_once_in_order_across_a_hub_restart() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;

    // A token source that counts how often it is asked: once per connection attempt.
    let asked = Arc::new(AtomicUsize::new(0));
    let tokens = {
        let (asked, token) = (asked.clone(), bob.token().to_owned());
        move || {
            asked.fetch_add(1, Ordering::Relaxed);
            let token = token.clone();
            async move { Ok::<_, ClientError>(Some(token)) }
        }
    };
    let mut config = ReconnectConfig::new(server.ws_url(), tokens);
    config.backoff = fast_backoff();
    let mut client = within("connect", ReconnectingClient::connect(config))
        .await
        .expect("connect");
    within("sub", client.subscribe(&room.id, None))
        .await
        .expect("sub");

    // Three messages; the client reads one and leaves two unread across the restart.
    let before = post_many(&alice, &room.id, 3).await;
    let mut seen = seqs_through(&mut client, &room.id, before[0]).await;
    // The client is not polled during the restart: it notices the 1012 only on its next read,
    // so the messages posted now (hub up, client away) can reach it only by catch-up.
    within_for(RESTART_WAIT, "the restart", server.restart()).await;
    let while_away = post_many(&alice, &room.id, 3).await;

    let resumed = within_for(
        RESTART_WAIT,
        "the reconnect",
        until_reconnected(&mut client),
    )
    .await;
    let reconnecting = resumed
        .iter()
        .position(|event| matches!(event, ClientEvent::Reconnecting { attempt: 1, .. }))
        .unwrap_or_else(|| panic!("a Reconnecting notice in {resumed:?}"));
    match &resumed[reconnecting] {
        ClientEvent::Reconnecting { cause, .. } => assert!(cause.contains("1012"), "{cause}"),
        _ => unreachable!(),
    }
    let caught_up = message_seqs(&resumed[reconnecting..], &room.id);
    assert!(
        caught_up.ends_with(&while_away),
        "the messages posted while away come in the catch-up, before Reconnected: {resumed:?}"
    );
    seen.extend(message_seqs(&resumed, &room.id));

    // Live messages after the resume.
    let after = post_many(&alice, &room.id, 3).await;
    seen.extend(seqs_through(&mut client, &room.id, after[2]).await);
    let expected: Vec<Seq> = [before, while_away, after].concat();
    assert_eq!(seen, expected, "every seq once, in order");

    // Nothing is delivered twice later either: the next message is the next new one.
    let barrier = post_many(&alice, &room.id, 1).await;
    assert_eq!(
        seqs_through(&mut client, &room.id, barrier[0]).await,
        barrier
    );
    assert_eq!(client.last_seq(&room.id), Some(barrier[0]));
    assert_eq!(
        asked.load(Ordering::Relaxed),
        2,
        "the token source is asked at connect and at the (first, successful) reconnect"
    );
}

#[tokio::test]
async fn a_send_made_while_the_hub_is_down_is_acknowledged_once_it_is_back_and_stored_once() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let mut client = connect(&server, &alice).await;
    within("sub", client.subscribe(&room.id, None))
        .await
        .expect("sub");

    within_for(RESTART_WAIT, "the shutdown", server.shutdown()).await;
    // The hub is down when the send starts: it meets the 1012 close, then refused connections,
    // until the hub is back; then it is re-sent and acknowledged.
    let client_msg_id = new_client_msg_id();
    let send = client.send_with_id(&room.id, "sent while the hub was down", &client_msg_id);
    let (ack, ()) = within_for(RESTART_WAIT, "the ack after the restart", async {
        tokio::join!(send, server.restart())
    })
    .await;
    let ack = ack.expect("acknowledged once the hub is back");
    assert_eq!(ack.client_msg_id.as_deref(), Some(client_msg_id.as_str()));
    assert_eq!(client.pending_sends(), 0);

    // Sending the same client_msg_id again is a retry: the first ack, nothing new stored.
    let again = within(
        "the repeat's ack",
        client.send_with_id(&room.id, "again", &client_msg_id),
    )
    .await
    .expect("repeat acknowledged");
    assert_eq!(again, ack);

    // The subscriber sees the message once: its seq, then a later message's, and nothing else.
    let barrier = within("ack", client.send(&room.id, "barrier"))
        .await
        .expect("ack");
    assert_eq!(
        seqs_through(&mut client, &room.id, barrier.seq).await,
        [ack.seq, barrier.seq]
    );

    let history = alice
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    let stored: Vec<_> = history
        .iter()
        .filter(|message| message.client_msg_id.as_deref() == Some(client_msg_id.as_str()))
        .collect();
    assert_eq!(stored.len(), 1, "stored exactly once: {history:?}");
    assert_eq!(stored[0].seq, ack.seq);
    assert_eq!(stored[0].body, "sent while the hub was down");
}

#[tokio::test]
async fn a_revoked_session_1008_is_reported_and_not_reconnected() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let mut client = connect(&server, &alice).await;
    within("sub", client.subscribe(&room.id, None))
        .await
        .expect("sub");

    alice.api.logout().await.expect("logout");
    let mut before_end = Vec::new();
    let error = within("the end of the client", async {
        loop {
            match client.next_event().await {
                Ok(event) => before_end.push(event),
                Err(error) => return error,
            }
        }
    })
    .await;
    assert_eq!(error.close_code(), Some(close::POLICY), "{error}");
    assert!(
        !before_end
            .iter()
            .any(|event| matches!(event, ClientEvent::Reconnecting { .. })),
        "no reconnection attempt: {before_end:?}"
    );

    // It stays ended: every call reports the close at once instead of reconnecting.
    assert!(!client.is_connected());
    let again = within("next_event after the end", client.next_event()).await;
    assert_eq!(again.expect_err("ended").close_code(), Some(close::POLICY));
    let send = within("send after the end", client.send(&room.id, "hello?")).await;
    assert_eq!(send.expect_err("ended").close_code(), Some(close::POLICY));
}

#[tokio::test]
async fn a_client_with_bounded_attempts_gives_up_while_the_hub_stays_down() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut config = ReconnectConfig::with_token(server.ws_url(), Some(alice.token()));
    config.backoff = Backoff {
        max_attempts: Some(2),
        ..fast_backoff()
    };
    let mut client = within("connect", ReconnectingClient::connect(config))
        .await
        .expect("connect");

    within_for(RESTART_WAIT, "the shutdown", server.shutdown()).await;
    let mut attempts = Vec::new();
    let error = within("giving up", async {
        loop {
            match client.next_event().await {
                Ok(ClientEvent::Reconnecting { attempt, .. }) => attempts.push(attempt),
                Ok(other) => panic!("unexpected {other:?}"),
                Err(error) => return error,
            }
        }
    })
    .await;
    assert_eq!(attempts, [1, 2]);
    match error {
        ClientError::GaveUp { attempts: 2, .. } => {}
        other => panic!("expected GaveUp after 2 attempts, got {other:?}"),
    }
    assert!(matches!(
        within("next_event after giving up", client.next_event()).await,
        Err(ClientError::Closed { .. })
    ));
}

#[tokio::test]
async fn a_client_in_more_rooms_than_the_frame_burst_still_resumes() {
    // hello + 3 subs fit in the burst; a resume of 6 rooms does not, at once.
    let mut server = TestServer::start_with(&["--rate-per-sec", "20", "--rate-burst", "4"]).await;
    let alice = server.user("alice").await;
    let mut rooms = Vec::new();
    for _ in 0..6 {
        rooms.push(alice.room_with(false, &[]).await.id);
    }
    let mut client = connect(&server, &alice).await;
    for room in &rooms {
        within("sub", client.subscribe(room, None))
            .await
            .expect("sub, paced past rate_limited");
    }

    within_for(RESTART_WAIT, "the restart", server.restart()).await;
    let mut posted = Vec::new();
    for room in &rooms {
        posted.push(post_many(&alice, room, 1).await[0]);
    }
    let resumed = within_for(
        RESTART_WAIT,
        "the reconnect",
        until_reconnected(&mut client),
    )
    .await;
    for (room, seq) in rooms.iter().zip(posted) {
        assert_eq!(message_seqs(&resumed, room), [seq], "caught up in {room}");
    }
}
