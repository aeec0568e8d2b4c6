//! Catch-up on `sub` with `since` (issue 10, item 1): read and queued a page at a time and
//! counted against the connection's byte bound, refused past `--max-catchup-messages`
//! (`catchup_too_large`, and then the reconnecting client pages the gap with `history`), never
//! started twice for a room already subscribed; and the attack it answers, a socket that never
//! reads asking for all history many times, against a hub binary whose RSS is measured.

use std::time::Duration;

use switchboard_client::protocol::ws::{ClientFrame, ServerFrame};
use switchboard_client::protocol::{ErrorCode, Seq};
use switchboard_client::reconnect::{ClientEvent, ReconnectConfig, ReconnectingClient};
use switchboard_client::{Api, Connection};

use crate::support::{
    events_until_pong, next_message, post_many, rejected, seqs, within, within_for, TestServer,
    PASSWORD,
};

#[tokio::test]
async fn a_catch_up_longer_than_a_page_arrives_whole_and_in_order() {
    // No hot window: every page comes from the store. The 230 posts below are past the
    // per-user send burst (100, then 50/s): lifted, as the test is not about it.
    let server = TestServer::start_with(&[
        "--hot-window",
        "0",
        "--user-rate-burst",
        "100000",
        "--user-rate-per-sec",
        "100000",
    ])
    .await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    post_many(&alice, &room.id, 230).await;
    let mut ws = server.connect_anon().await;
    let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, Some(7)))
        .await
        .expect("subscribed");
    assert_eq!(seqs(&caught_up), (8..=230).collect::<Vec<Seq>>());
    assert_eq!(last_seq, 230);
    alice
        .api
        .post_message(&room.id, "live", None)
        .await
        .unwrap();
    assert_eq!(next_message(&mut ws).await.seq, 231, "then live, no gap");
}

#[tokio::test]
async fn a_catch_up_over_the_limit_is_refused_and_subscribes_nothing() {
    let server = TestServer::start_with(&["--max-catchup-messages", "5"]).await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    post_many(&alice, &room.id, 8).await;
    let mut ws = server.connect_anon().await;

    let refused = within("sub", ws.subscribe(&room.id, Some(2))).await;
    assert_eq!(rejected(refused), ErrorCode::CatchupTooLarge, "6 behind");
    alice.api.post_message(&room.id, "m9", None).await.unwrap();
    assert!(
        events_until_pong(&mut ws).await.is_empty(),
        "a refused sub does not subscribe"
    );

    // Five behind is within the limit.
    let (caught_up, last_seq) = within("sub", ws.subscribe(&room.id, Some(4)))
        .await
        .expect("subscribed");
    assert_eq!(seqs(&caught_up), [5, 6, 7, 8, 9]);
    assert_eq!(last_seq, 9);
}

#[tokio::test]
async fn a_repeated_sub_gets_subbed_without_a_second_catch_up() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    post_many(&alice, &room.id, 5).await;
    let mut ws = server.connect_anon().await;
    let (caught_up, _) = within("sub", ws.subscribe(&room.id, Some(0)))
        .await
        .expect("subscribed");
    assert_eq!(seqs(&caught_up), [1, 2, 3, 4, 5]);

    let (again, last_seq) = within("sub again", ws.subscribe(&room.id, Some(0)))
        .await
        .expect("answered");
    assert!(again.is_empty(), "no second catch-up: {again:?}");
    assert_eq!(last_seq, 5, "the room's newest seq");
    assert!(events_until_pong(&mut ws).await.is_empty());

    alice.api.post_message(&room.id, "m6", None).await.unwrap();
    assert_eq!(next_message(&mut ws).await.seq, 6);
    assert!(
        events_until_pong(&mut ws).await.is_empty(),
        "events still arrive once each"
    );
}

/// The reconnecting client meets `catchup_too_large`: it subscribes without `since` and pages
/// the gap with `history`, so the caller still gets every message after `since` once, in order,
/// then the live ones.
#[tokio::test]
async fn the_reconnecting_client_pages_a_gap_over_the_catch_up_limit() {
    // The 230 posts below are past the per-user send burst (100, then 50/s): lifted.
    let server = TestServer::start_with(&[
        "--max-catchup-messages",
        "20",
        "--user-rate-burst",
        "100000",
        "--user-rate-per-sec",
        "100000",
    ])
    .await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    post_many(&alice, &room.id, 230).await;

    let config = ReconnectConfig::with_token(server.ws_url(), Some(alice.token()));
    let mut client = within("connect", ReconnectingClient::connect(config))
        .await
        .expect("connect");
    within("subscribe", client.subscribe(&room.id, Some(3)))
        .await
        .expect("subscribed despite the limit");
    alice
        .api
        .post_message(&room.id, "live", None)
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.last() != Some(&231) {
        match within("the next event", client.next_event()).await {
            Ok(ClientEvent::Message(m)) => got.push(m.seq),
            Ok(_) => {}
            Err(e) => panic!("the client ended: {e}"),
        }
    }
    assert_eq!(got, (4..=231).collect::<Vec<Seq>>(), "each once, in order");
    assert_eq!(client.last_seq(&room.id), Some(231));
}

// --- the attack, against a hub binary -------------------------------------------------------

/// `--outbound-queue-bytes` of the attacked hub: the default, a realistic bound.
const QUEUE_BYTES: u64 = 1 << 20;
/// Messages in the attacked room, and their body size (the largest allowed body, about).
const MESSAGES: usize = 2_000;
const BODY_BYTES: usize = 4_000;
/// Attacking sockets, and the `sub since=0` frames each sends without ever reading.
const ATTACKERS: usize = 8;
const SUBS_PER_ATTACKER: usize = 40;
/// The attacked hub's heartbeat: a socket that never reads is dropped within two of them.
const HEARTBEAT_MS: u64 = 500;

/// A hub binary of the test's own (RSS is per process); killed when dropped.
struct HubProcess {
    child: std::process::Child,
    base: String,
    _dir: tempfile::TempDir,
}

impl HubProcess {
    async fn start(flags: &[&str]) -> Self {
        let bin = switchboard_tests::binary::binary("switchboard-hub", "switchboard-hub");
        let dir = tempfile::tempdir().expect("temp dir");
        let port = switchboard_tests::private::free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = std::process::Command::new(bin)
            // Several tests run at once: no metrics listener, whose default address is fixed.
            .args(["--metrics-listen", "off", "--listen", &listen, "--data-dir"])
            .arg(dir.path())
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn the hub");
        let hub = HubProcess {
            child,
            base: format!("http://{listen}"),
            _dir: dir,
        };
        let health = format!("{}/healthz", hub.base);
        within_for(Duration::from_secs(20), "the hub to answer", async {
            loop {
                if let Ok(r) = reqwest::get(&health).await {
                    if r.status().is_success() {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        hub
    }

    fn ws_url(&self) -> String {
        format!("{}/v1/ws", self.base.replacen("http", "ws", 1))
    }

    /// Resident set size, in bytes (`VmRSS` of `/proc/<pid>/status`).
    fn rss(&self) -> u64 {
        switchboard_tests::binary::rss_bytes(self.child.id())
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Posts `count` messages of `BODY_BYTES` over one socket, pipelined, and waits for every ack.
async fn fill_room(ws_url: &str, token: &str, room: &str, count: usize) {
    let (mut ws, _) = Connection::connect(ws_url, Some(token)).await.expect("ws");
    let body = "x".repeat(BODY_BYTES);
    for i in 0..count {
        let frame = ClientFrame::Send {
            id: Some(switchboard_client::protocol::ws::FrameId::Num(i as u64 + 1)),
            room: room.to_owned(),
            body: body.clone(),
            client_msg_id: None,
            attachments: Vec::new(),
        };
        ws.send(&frame).await.expect("send");
    }
    let mut acked = 0;
    within_for(Duration::from_secs(120), "every ack", async {
        while acked < count {
            match ws.next_event().await.expect("an ack") {
                ServerFrame::Ack { .. } => acked += 1,
                ServerFrame::Error { code, message, .. } => {
                    panic!("send refused: {code} {message}")
                }
                _ => {}
            }
        }
    })
    .await;
}

/// The probe's attack (issue 10, hole 1): sockets that never read send `sub since=0` for a
/// room of 2,000 × 4 KB messages, 40 times each. Before paging, each `sub` read the whole room
/// into one queued item, uncounted by the byte bound: hundreds of MiB, kept. Now a catch-up
/// waits for its socket to drain before it queues the next page, and the write timeout frees
/// the socket: the hub grows by less than twice the byte bound per attacking connection.
#[tokio::test]
async fn a_never_reading_socket_cannot_pin_memory_with_catch_up() {
    let queue = QUEUE_BYTES.to_string();
    let heartbeat = HEARTBEAT_MS.to_string();
    let flags = [
        &[
            "--outbound-queue-bytes",
            &queue,
            "--heartbeat-ms",
            &heartbeat,
            // The attack must reach the paging path, not the refusal.
            "--max-catchup-messages",
            "100000",
            "--hot-window",
            "0",
        ][..],
        &crate::support::NO_RATE_LIMITS[..],
    ]
    .concat();
    let hub = HubProcess::start(&flags).await;
    let api = Api::new(&hub.base);
    let name = crate::support::unique_name("owner");
    api.register(&name, &format!("{name}@example.com"), PASSWORD)
        .await
        .expect("register");
    let token = api
        .login(&name, PASSWORD)
        .await
        .expect("login")
        .access_token;
    let api = api.with_token(&token);
    let room = api.create_room("big", true).await.expect("room").id;
    fill_room(&hub.ws_url(), &token, &room, MESSAGES).await;

    // Warm up what a legitimate reader also costs (the store's caches): one full catch-up that
    // is read to the end. It takes longer than two heartbeats here (a debug build), during
    // which the hub reads none of the reader's pongs: the pages it writes keep it alive.
    let (mut reader, _) = Connection::connect(&hub.ws_url(), None).await.expect("ws");
    reader.set_timeout(Duration::from_secs(60));
    let (all, _) = reader.subscribe(&room, Some(0)).await.expect("catch-up");
    assert_eq!(all.len(), MESSAGES);
    drop(reader);
    let before = hub.rss();

    let mut attackers = Vec::new();
    for _ in 0..ATTACKERS {
        let (mut ws, _) = Connection::connect(&hub.ws_url(), None).await.expect("ws");
        for _ in 0..SUBS_PER_ATTACKER {
            let frame = ClientFrame::Sub {
                id: None,
                room: room.clone(),
                since: Some(0),
            };
            ws.send(&frame).await.expect("send sub");
        }
        attackers.push(ws); // never read
    }
    // Sample while the hub works through the attack, until the write timeout (two heartbeats)
    // has freed the sockets and a little after.
    let mut peak = before;
    let until = tokio::time::Instant::now() + Duration::from_millis(4 * HEARTBEAT_MS + 1_000);
    while tokio::time::Instant::now() < until {
        peak = peak.max(hub.rss());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let growth = peak.saturating_sub(before);
    let allowed = 2 * QUEUE_BYTES * ATTACKERS as u64;
    eprintln!(
        "RSS before {} KiB, peak {} KiB, growth {} KiB (allowed {} KiB)",
        before / 1024,
        peak / 1024,
        growth / 1024,
        allowed / 1024
    );
    assert!(
        growth < allowed,
        "RSS grew by {} KiB under the attack; allowed {} KiB ({ATTACKERS} connections × 2 × \
         --outbound-queue-bytes)",
        growth / 1024,
        allowed / 1024
    );
    drop(attackers);
}
