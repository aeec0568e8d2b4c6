//! A hub node killed with SIGKILL in the middle of a stream of messages: no acknowledged
//! message is lost or stored twice, and the node's clients reconnect through HAProxy and resume
//! with `since` without gaps or duplicates.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::protocol::Seq;
use switchboard_client::{ClientError, Connection};
use tokio::sync::watch;

use crate::support::{connect, full_history, seqs, within, within_for, Cluster};

/// Messages the publisher sends in all.
const TOTAL: usize = 300;
/// Acknowledged messages after which the publisher's node is killed (while it keeps sending).
const KILL_AFTER: usize = 100;
/// Messages the publisher keeps unacknowledged at once (so several batches are in flight).
const WINDOW: usize = 16;
/// Bound on the reconnections of one client (one is expected on the killed node).
const MAX_RECONNECTS: usize = 3;
/// Bound on the attempts of one reconnection, and the pause between them.
const CONNECT_ATTEMPTS: usize = 50;
const CONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Bound on the whole stream, from the first send to the last subscriber's last message.
const STREAM_LIMIT: Duration = Duration::from_secs(90);

/// A new connection through HAProxy: a bounded retry, since HAProxy may still be finding out
/// which node died.
async fn reconnect(lb_ws: &str, token: &str) -> Connection {
    let mut last_err = None;
    for _ in 0..CONNECT_ATTEMPTS {
        match tokio::time::timeout(
            crate::support::WAIT,
            Connection::connect(lb_ws, Some(token)),
        )
        .await
        {
            Ok(Ok((conn, _welcome))) => return conn,
            Ok(Err(err)) => last_err = Some(err.to_string()),
            Err(_) => last_err = Some("timed out".into()),
        }
        tokio::time::sleep(CONNECT_BACKOFF).await;
    }
    panic!("no connection through HAProxy after {CONNECT_ATTEMPTS} attempts: {last_err:?}");
}

/// What the publisher saw: each message's client_msg_id with its acknowledged seq.
struct Published {
    acked: BTreeMap<String, Seq>,
    reconnects: usize,
}

/// Sends `p-0` .. `p-{TOTAL-1}`, each with its client_msg_id (also its frame id), keeping
/// [`WINDOW`] unacknowledged at once so that the kill hits batches in flight. When the
/// connection breaks, every unacknowledged message is sent again, with the same id, on a new
/// connection through HAProxy: the store deduplicates those the dead node had committed.
/// `acks` counts acknowledgements for the test to time the kill.
async fn publish(
    mut conn: Connection,
    lb_ws: String,
    token: String,
    room: String,
    acks: watch::Sender<usize>,
) -> Published {
    let mut acked = BTreeMap::new();
    let mut in_flight: BTreeSet<String> = BTreeSet::new();
    let mut next = 0;
    let mut reconnects = 0;
    while acked.len() < TOTAL {
        let mut broken = None;
        while broken.is_none() && in_flight.len() < WINDOW && next < TOTAL {
            let id = format!("p-{next}");
            next += 1;
            broken = send(&mut conn, &room, &id).await.err();
            in_flight.insert(id);
        }
        if broken.is_none() {
            match within("an ack", conn.next_event()).await {
                Ok(ServerFrame::Ack {
                    client_msg_id: Some(id),
                    seq,
                    ..
                }) => {
                    assert!(
                        in_flight.remove(&id),
                        "an ack for {id}, which is not in flight"
                    );
                    assert!(acked.insert(id, seq).is_none(), "one ack per message");
                    acks.send_replace(acked.len());
                }
                Ok(ServerFrame::Error { code, message, id }) => {
                    panic!("send {id:?} refused: {code}: {message}")
                }
                Ok(_) => {}
                Err(err) => broken = Some(err),
            }
        }
        if let Some(err) = broken {
            reconnects += 1;
            assert!(
                reconnects <= MAX_RECONNECTS,
                "the publisher lost its connection {reconnects} times"
            );
            eprintln!(
                "publisher: {err} with {} in flight; resending them through HAProxy",
                in_flight.len()
            );
            conn = reconnect(&lb_ws, &token).await;
            for id in &in_flight {
                send(&mut conn, &room, id)
                    .await
                    .expect("resend on the new connection");
            }
        }
    }
    Published { acked, reconnects }
}

/// Sends message `id` (frame id and client_msg_id) without waiting for its ack.
async fn send(conn: &mut Connection, room: &str, id: &str) -> Result<(), ClientError> {
    let frame = ClientFrame::Send {
        id: Some(FrameId::Str(id.to_owned())),
        room: room.to_owned(),
        body: format!("message {id}"),
        client_msg_id: Some(id.to_owned()),
        attachments: Vec::new(),
    };
    conn.send(&frame).await
}

/// What one subscriber saw: the seqs of the room's messages in arrival order (across its
/// reconnections), and how often it reconnected.
struct Received {
    seqs: Vec<Seq>,
    reconnects: usize,
}

/// Reads the room's messages until one at or past the final seq (sent on `last` once known).
/// A broken connection is replaced by one through HAProxy that resubscribes with `since` = the
/// last seq seen.
async fn subscribe_until(
    mut conn: Connection,
    lb_ws: String,
    token: String,
    room: String,
    mut last: watch::Receiver<Option<Seq>>,
) -> Received {
    let mut seqs: Vec<Seq> = Vec::new();
    let mut reconnects = 0;
    loop {
        if let (Some(target), Some(&seen)) = (*last.borrow_and_update(), seqs.last()) {
            if seen >= target {
                return Received { seqs, reconnects };
            }
        }
        let event = tokio::select! {
            event = conn.next_event() => Some(event),
            _ = last.changed() => None,
        };
        match event {
            None => {}
            Some(Ok(ServerFrame::Message(message))) if message.room == room => {
                seqs.push(message.seq)
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => {
                reconnects += 1;
                assert!(
                    reconnects <= MAX_RECONNECTS,
                    "a subscriber lost its connection {reconnects} times"
                );
                let since = seqs.last().copied().unwrap_or(0);
                eprintln!("subscriber: {err} after seq {since}; resuming through HAProxy");
                conn = reconnect(&lb_ws, &token).await;
                let (catch_up, _last_seq) =
                    within("resubscribe with since", conn.subscribe(&room, Some(since)))
                        .await
                        .expect("resubscribe");
                seqs.extend(catch_up.iter().map(|m| m.seq));
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_killed_mid_stream_loses_no_acknowledged_message() {
    let mut cluster = Cluster::start(3).await;
    // REST straight to hub1 (never through HAProxy), so that HAProxy's only client session is
    // the publisher's and its stats tell which node the publisher is on.
    let alice = cluster.user("alice", &cluster.hub_http(0)).await;
    let bob = cluster.user("bob", &cluster.hub_http(0)).await;
    let room = alice.room_with(&[&bob]).await;

    // A subscriber on every node, connected directly, subscribed before the first message.
    let mut subscribers = Vec::new();
    for i in 0..3 {
        let mut conn = connect(&cluster.hub_ws(i), bob.token()).await;
        let (catch_up, _) = within("sub", conn.subscribe(&room.id, Some(0)))
            .await
            .expect("sub");
        assert!(catch_up.is_empty());
        subscribers.push(conn);
    }
    let publisher = connect(&cluster.lb_ws(), alice.token()).await;
    let victim = cluster.sole_session_hub().await;
    eprintln!(
        "the publisher is on hub{}: that node will be killed",
        victim + 1
    );

    let (last_tx, last_rx) = watch::channel(None);
    let tasks: Vec<_> = subscribers
        .into_iter()
        .map(|conn| {
            let args = (
                cluster.lb_ws(),
                bob.token().to_owned(),
                room.id.clone(),
                last_rx.clone(),
            );
            tokio::spawn(subscribe_until(conn, args.0, args.1, args.2, args.3))
        })
        .collect();
    let (acks_tx, mut acks_rx) = watch::channel(0);
    let publishing = tokio::spawn(publish(
        publisher,
        cluster.lb_ws(),
        alice.token().to_owned(),
        room.id.clone(),
        acks_tx,
    ));

    within_for(
        STREAM_LIMIT,
        "the first acknowledgements",
        acks_rx.wait_for(|n| *n >= KILL_AFTER),
    )
    .await
    .expect("the publisher is running");
    cluster.kill_hub(victim);

    let published = within_for(STREAM_LIMIT, "the publisher to finish", publishing)
        .await
        .expect("publisher");
    assert!(
        published.reconnects >= 1,
        "the publisher was on the killed node, so it reconnected"
    );

    // The store: every message once, each acknowledged one at its acknowledged seq.
    let survivor = (0..3).find(|&i| i != victim).expect("a surviving node");
    let stored = full_history(&alice.api_at(&cluster.hub_http(survivor)), &room.id).await;
    let stored_seqs = seqs(&stored);
    assert_eq!(
        stored.len(),
        TOTAL,
        "every message is stored once (no loss, no duplicate)"
    );
    assert_eq!(
        stored_seqs,
        (1..=TOTAL as u64).collect::<Vec<_>>(),
        "seqs are dense"
    );
    let by_seq: BTreeMap<Seq, Option<&str>> = stored
        .iter()
        .map(|m| (m.seq, m.client_msg_id.as_deref()))
        .collect();
    for (id, seq) in &published.acked {
        assert_eq!(
            by_seq.get(seq).copied().flatten(),
            Some(id.as_str()),
            "acknowledged {id} is stored at seq {seq}"
        );
    }
    let mut ids: Vec<&str> = stored
        .iter()
        .filter_map(|m| m.client_msg_id.as_deref())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), TOTAL, "no client_msg_id is stored twice");

    // Every subscriber saw exactly the stored list, the killed node's after resuming.
    last_tx.send_replace(stored_seqs.last().copied());
    for (i, task) in tasks.into_iter().enumerate() {
        let received = within_for(STREAM_LIMIT, "a subscriber to reach the last seq", task)
            .await
            .expect("subscriber");
        assert_eq!(
            received.seqs,
            stored_seqs,
            "hub{}'s subscriber saw every stored seq once, in order",
            i + 1
        );
        if i == victim {
            assert!(
                received.reconnects >= 1,
                "the killed node's subscriber reconnected"
            );
        } else {
            assert_eq!(
                received.reconnects,
                0,
                "hub{}'s subscriber kept its connection",
                i + 1
            );
        }
    }

    // The surviving nodes and HAProxy serve the same history.
    for i in (0..3).filter(|&i| i != victim) {
        let history = full_history(&alice.api_at(&cluster.hub_http(i)), &room.id).await;
        assert_eq!(history, stored, "hub{} serves the same history", i + 1);
    }
    let history = full_history(&alice.api_at(&cluster.lb_http()), &room.id).await;
    assert_eq!(history, stored, "HAProxy serves the same history");
}
