//! Liveness and backpressure: a dead peer's resources are freed within the heartbeat timeout,
//! and a publish flood with slow readers keeps the hub's queued bytes under its bound while a
//! reading subscriber gets everything.

use switchboard_client::protocol::ws::{ClientFrame, ServerFrame};
use switchboard_client::Connection;

use crate::support::{next_message, TestServer};

/// The hub's `/healthz` figures.
async fn health(server: &TestServer) -> serde_json::Value {
    reqwest::get(format!("{}/healthz", server.http_url()))
        .await
        .expect("healthz")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_peer_that_stops_answering_is_dropped_and_its_slot_freed() {
    // One connection allowed, pings every 200 ms, a peer silent for two intervals is dead.
    let server = TestServer::start_with(&["--max-connections", "1", "--heartbeat-ms", "200"]).await;
    // A peer that says hello and then never reads again (so it never answers a ping).
    let (dead, _welcome) = crate::support::raw_greeted(&server).await;
    assert_eq!(health(&server).await["connections"], 1);
    let err = Connection::connect(&server.ws_url(), None)
        .await
        .err()
        .map(|e| e.status());
    assert_eq!(
        err,
        Some(Some(503)),
        "the node is full while the silent peer holds the slot"
    );
    // Within a few heartbeats the hub gives the silent peer up and the slot is free again.
    let mut freed = false;
    for _ in 0..100 {
        if health(&server).await["connections"] == 0 {
            freed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(freed, "the silent peer's connection was freed");
    server.connect_anon().await;
    drop(dead);
}

#[tokio::test]
async fn a_flood_with_slow_readers_keeps_queued_bytes_under_the_bound() {
    const BOUND: usize = 32 * 1024;
    const SLOW: usize = 8;
    let bound = BOUND.to_string();
    let server = TestServer::start_with(
        &[
            "--outbound-queue-bytes",
            &bound,
            // A reader that stops reading blocks the hub's writes; it is dropped within two
            // heartbeats.
            "--heartbeat-ms",
            "500",
        ]
        .into_iter()
        .chain(crate::support::NO_RATE_LIMITS)
        .collect::<Vec<_>>(),
    )
    .await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;

    // Slow readers: tiny receive buffers, and they never read after `subbed`.
    let mut slow = Vec::new();
    for _ in 0..SLOW {
        slow.push(crate::support::slow_subscriber(&server, &room.id).await);
    }
    // A subscriber that reads everything.
    let mut fast_reader = server.connect(&alice).await;
    fast_reader.subscribe(&room.id, None).await.expect("sub");

    // The flood: batches of 3 KB messages until the slow readers' kernel buffers are full and
    // the hub has closed them (at most 12,000 messages), sampling the queued bytes throughout.
    let mut publisher = server.connect(&alice).await;
    let body = "z".repeat(3000);
    let mut peak = 0usize;
    // A batch's sends may be committed together and their events published in one burst
    // (pipelined sends, group commit), so a batch stays under the bound: a burst bigger than
    // the bound closes even a reader that keeps up, by definition of the bound.
    let (max_batches, per_batch) = (1500, 8);
    let mut batches = 0;
    let mut delivered = 0;
    let mut slow_closed = false;
    while batches < max_batches && !slow_closed {
        batches += 1;
        for _ in 0..per_batch {
            let frame = ClientFrame::Send {
                id: None,
                room: room.id.clone(),
                body: body.clone(),
                client_msg_id: None,
                attachments: Vec::new(),
            };
            publisher.send(&frame).await.expect("send");
        }
        let mut acked = 0;
        while acked < per_batch {
            if let ServerFrame::Ack { .. } = crate::support::next_event(&mut publisher).await {
                acked += 1;
            }
        }
        let h = health(&server).await;
        peak = peak.max(h["queued_bytes"].as_u64().unwrap() as usize);
        slow_closed = h["connections"].as_u64().unwrap() <= 2;
        // The reading subscriber keeps up, as a live client would, and misses nothing.
        for _ in 0..per_batch {
            let m = next_message(&mut fast_reader).await;
            delivered += 1;
            assert_eq!(m.seq, delivered as u64);
        }
    }
    // Each connection is bounded by BOUND (plus the one event that crossed it, refused); the
    // slow ones were closed rather than allowed to grow.
    assert!(peak <= (SLOW + 2) * BOUND, "queued bytes peaked at {peak}");
    assert!(
        slow_closed,
        "the slow readers were closed (after {batches} batches)"
    );
    assert_eq!(delivered, batches * per_batch);
}
