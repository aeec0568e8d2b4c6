//! Users on different nodes chat in real time; every node serves the same history.

use std::collections::BTreeSet;

use switchboard_client::protocol::ws::Message;
use switchboard_client::Connection;

use crate::support::{connect, full_history, next_message, seqs, within, Cluster};

/// Messages each of two users sends at once in the interleaving test.
const BURST: usize = 20;

/// Reads `count` messages of `room` from `conn`.
async fn messages(conn: &mut Connection, room: &str, count: usize) -> Vec<Message> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(next_message(conn, room).await);
    }
    out
}

/// Sends [`BURST`] messages, each awaiting its ack.
async fn send_burst(conn: &mut Connection, room: &str, who: &str) {
    for i in 0..BURST {
        let id = format!("{who}-burst-{i}");
        within("burst ack", conn.send_message(room, &id, Some(&id)))
            .await
            .expect("send");
    }
}

/// Asserts that `seqs` are consecutive and increasing.
#[track_caller]
fn assert_dense(seqs: &[u64]) {
    for pair in seqs.windows(2) {
        assert_eq!(pair[1], pair[0] + 1, "seqs are consecutive: {seqs:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_on_different_nodes_chat_in_real_time() {
    let cluster = Cluster::start(3).await;
    let alice = cluster.user("alice", &cluster.hub_http(0)).await;
    let bob = cluster.user("bob", &cluster.hub_http(1)).await;
    let room = alice.room_with(&[&bob]).await;
    let mut a = connect(&cluster.hub_ws(0), alice.token()).await;
    let mut b = connect(&cluster.hub_ws(1), bob.token()).await;
    within("alice's sub", a.subscribe(&room.id, None))
        .await
        .expect("sub");
    within("bob's sub", b.subscribe(&room.id, None))
        .await
        .expect("sub");

    // One message each way: the sender's node stores it, the other node delivers it.
    let ack = within(
        "ack",
        a.send_message(&room.id, "hello from hub1", Some("a-1")),
    )
    .await
    .expect("alice sends");
    let got = next_message(&mut b, &room.id).await;
    assert_eq!(
        (got.seq, got.from.as_str(), got.body.as_str()),
        (ack.seq, alice.username.as_str(), "hello from hub1")
    );
    assert_eq!(
        next_message(&mut a, &room.id).await,
        got,
        "alice sees her message as bob does"
    );
    let ack = within(
        "ack",
        b.send_message(&room.id, "hello from hub2", Some("b-1")),
    )
    .await
    .expect("bob sends");
    let got = next_message(&mut a, &room.id).await;
    assert_eq!(
        (got.seq, got.from.as_str()),
        (ack.seq, bob.username.as_str())
    );
    assert_eq!(next_message(&mut b, &room.id).await, got);

    // Both at once: two nodes assign seqs in one room; both subscribers see one order.
    tokio::join!(
        send_burst(&mut a, &room.id, "a"),
        send_burst(&mut b, &room.id, "b")
    );
    let seen_by_a = messages(&mut a, &room.id, 2 * BURST).await;
    let seen_by_b = messages(&mut b, &room.id, 2 * BURST).await;
    assert_eq!(
        seen_by_a, seen_by_b,
        "subscribers on two nodes see the same messages in the same order"
    );
    assert_dense(&seqs(&seen_by_a));
    assert_eq!(
        seen_by_a[0].seq,
        got.seq + 1,
        "no seq is skipped after the first exchange"
    );
    let ids: BTreeSet<_> = seen_by_a
        .iter()
        .filter_map(|m| m.client_msg_id.clone())
        .collect();
    assert_eq!(ids.len(), 2 * BURST, "every burst message arrives once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_behind_haproxy_are_spread_over_the_nodes_and_chat() {
    let cluster = Cluster::start(3).await;
    // REST goes straight to a hub: pooled keep-alive connections through HAProxy would count
    // as sessions and skew where the WebSockets land.
    let users = [
        cluster.user("carol", &cluster.hub_http(0)).await,
        cluster.user("dave", &cluster.hub_http(0)).await,
        cluster.user("erin", &cluster.hub_http(0)).await,
    ];
    let room = users[0].room_with(&[&users[1], &users[2]]).await;
    let mut conns = Vec::new();
    for user in &users {
        conns.push(connect(&cluster.lb_ws(), user.token()).await);
    }
    // leastconn puts each new connection on a node with none: one per node.
    cluster
        .await_servers("one WebSocket per hub behind HAProxy", |servers| {
            servers.len() == 3 && servers.iter().all(|s| s.sessions == 1)
        })
        .await;
    for conn in &mut conns {
        within("sub", conn.subscribe(&room.id, None))
            .await
            .expect("sub");
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        let id = format!("via-lb-{i}");
        within("ack", conn.send_message(&room.id, &id, Some(&id)))
            .await
            .expect("send");
    }
    let mut seen = Vec::new();
    for conn in &mut conns {
        seen.push(messages(conn, &room.id, users.len()).await);
    }
    assert!(
        seen.iter().all(|list| *list == seen[0]),
        "every user sees the same three messages in order: {seen:?}"
    );
    assert_dense(&seqs(&seen[0]));
    let authors: BTreeSet<_> = seen[0].iter().map(|m| m.from.clone()).collect();
    assert_eq!(authors.len(), 3, "one message from each node's user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_is_the_same_from_every_node() {
    let cluster = Cluster::start(3).await;
    let alice = cluster.user("alice", &cluster.hub_http(0)).await;
    let bob = cluster.user("bob", &cluster.hub_http(1)).await;
    let carol = cluster.user("carol", &cluster.lb_http()).await;
    let room = alice.room_with(&[&bob, &carol]).await;
    let mut bob_ws = connect(&cluster.hub_ws(1), bob.token()).await;

    // Writes through every path: REST on hub1, WebSocket on hub2, REST through HAProxy.
    let mut bob_seqs = Vec::new();
    for round in 0..5 {
        let body = format!("alice {round}");
        within("post", alice.api.post_message(&room.id, &body, Some(&body)))
            .await
            .expect("alice posts");
        let body = format!("bob {round}");
        let ack = within("ack", bob_ws.send_message(&room.id, &body, Some(&body)))
            .await
            .expect("bob sends");
        bob_seqs.push(ack.seq);
        let body = format!("carol {round}");
        within("post", carol.api.post_message(&room.id, &body, Some(&body)))
            .await
            .expect("carol posts");
    }
    // An edit on hub3 and a delete through HAProxy.
    let bob_on_hub3 = bob.api_at(&cluster.hub_http(2));
    within(
        "edit",
        bob_on_hub3.edit_message(&room.id, bob_seqs[2], "bob 2, edited"),
    )
    .await
    .expect("edit");
    let alice_via_lb = alice.api_at(&cluster.lb_http());
    within("delete", alice_via_lb.delete_message(&room.id, 1))
        .await
        .expect("delete alice's first");

    let reference = full_history(&alice.api, &room.id).await;
    assert_eq!(
        seqs(&reference),
        (1..=15).collect::<Vec<u64>>(),
        "15 messages, seqs 1..=15"
    );
    let edited = reference
        .iter()
        .find(|m| m.seq == bob_seqs[2])
        .expect("the edited message");
    assert_eq!(edited.body, "bob 2, edited");
    assert!(edited.edited_ts.is_some());
    assert!(
        reference[0].deleted && reference[0].body.is_empty(),
        "the deleted message is a tombstone"
    );

    for (name, base) in [
        ("hub2", cluster.hub_http(1)),
        ("hub3", cluster.hub_http(2)),
        ("haproxy", cluster.lb_http()),
    ] {
        let history = full_history(&alice.api_at(&base), &room.id).await;
        assert_eq!(history, reference, "REST history from {name} equals hub1's");
    }
    for i in 0..3 {
        let mut conn = connect(&cluster.hub_ws(i), carol.token()).await;
        let page = within("ws history", conn.history(&room.id, None, Some(100)))
            .await
            .expect("history");
        assert_eq!(
            page,
            reference,
            "WebSocket history from hub{} equals REST history",
            i + 1
        );
    }
}
