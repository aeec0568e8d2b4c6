//! [`ReconnectingClient`] against a scripted fake server, for what a real hub does not do on
//! demand: send duplicates and stale catch-up, lose an `ack`, fall silent. (The end-to-end
//! suite covers the real hub: `tests/e2e/resume.rs`.)

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use switchboard_protocol::ws::{ClientFrame, Message, ServerFrame};
use switchboard_protocol::{close, Seq, SUBPROTOCOL};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::header::SEC_WEBSOCKET_PROTOCOL;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

use super::{Backoff, ClientEvent, ReconnectConfig, ReconnectingClient};

/// Bound on every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

async fn within<F: std::future::Future>(fut: F) -> F::Output {
    tokio::time::timeout(WAIT, fut).await.expect("in time")
}

/// A listener standing in for the hub.
struct Fake(TcpListener);

/// One accepted connection, past `hello`.
struct Peer(WebSocketStream<TcpStream>);

impl Fake {
    async fn start() -> (Fake, ReconnectConfig) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("ws://{}/v1/ws", listener.local_addr().expect("address"));
        let mut config = ReconnectConfig::with_token(url, Some("t"));
        config.backoff = Backoff {
            initial: Duration::from_millis(10),
            ..Backoff::default()
        };
        (Fake(listener), config)
    }

    /// Accepts a connection and selects the subprotocol.
    async fn upgrade(&self) -> Peer {
        let (stream, _) = self.0.accept().await.expect("accept");
        #[expect(
            clippy::result_large_err,
            reason = "the signature tungstenite's accept_hdr_async asks for"
        )]
        fn select(_: &Request, mut response: Response) -> Result<Response, ErrorResponse> {
            let value = HeaderValue::from_static(SUBPROTOCOL);
            response.headers_mut().insert(SEC_WEBSOCKET_PROTOCOL, value);
            Ok(response)
        }
        let ws = tokio_tungstenite::accept_hdr_async(stream, select)
            .await
            .expect("upgrade");
        Peer(ws)
    }

    /// Accepts a connection, reads `hello` and answers `welcome`.
    async fn accept(&self, heartbeat_ms: u64) -> Peer {
        let mut peer = self.upgrade().await;
        let ClientFrame::Hello { id, .. } = peer.recv().await else {
            panic!("expected hello");
        };
        peer.send(ServerFrame::Welcome {
            id,
            session: "s".into(),
            user: None,
            heartbeat_ms,
        })
        .await;
        peer
    }
}

impl Fake {
    /// Accepts a connection and refuses its `hello` as the hub does an expired token: an
    /// `unauthorized` error, then close 1008. Returns the token it was given.
    async fn refuse(&self) -> Option<String> {
        let mut peer = self.upgrade().await;
        let ClientFrame::Hello { id, token } = peer.recv().await else {
            panic!("expected hello");
        };
        peer.send(ServerFrame::error(
            id,
            switchboard_protocol::ErrorCode::Unauthorized,
            "token expired",
        ))
        .await;
        peer.close(close::POLICY).await;
        token
    }
}

impl Peer {
    async fn recv(&mut self) -> ClientFrame {
        loop {
            match self.0.next().await.expect("open").expect("a message") {
                WsMessage::Text(text) => return serde_json::from_str(&text).expect("a frame"),
                WsMessage::Pong(_) | WsMessage::Ping(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn send(&mut self, frame: ServerFrame) {
        let text = serde_json::to_string(&frame).expect("serialise");
        self.0.send(WsMessage::text(text)).await.expect("send");
    }

    /// Answers a `sub` of `room` with the catch-up `seqs` and `subbed`; returns its `since`.
    async fn answer_sub(&mut self, room: &str, seqs: &[Seq], last_seq: Seq) -> Option<Seq> {
        let ClientFrame::Sub { id, since, .. } = self.recv().await else {
            panic!("expected a sub");
        };
        for &seq in seqs {
            self.send(message(room, seq)).await;
        }
        let room = room.into();
        self.send(ServerFrame::Subbed { id, room, last_seq }).await;
        since
    }

    async fn close(mut self, code: u16) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: "".into(),
        };
        let _ = self.0.close(Some(frame)).await;
    }
}

fn message(room: &str, seq: Seq) -> ServerFrame {
    ServerFrame::Message(Message {
        room: room.into(),
        seq,
        from: "alice".into(),
        body: format!("m{seq}"),
        ts: 0,
        client_msg_id: None,
        edited_ts: None,
        deleted: false,
        bot: false,
        attachments: Vec::new(),
    })
}

#[tokio::test]
async fn duplicates_and_stale_catch_up_are_dropped_and_gaps_pass() {
    let (fake, config) = Fake::start().await;
    let server = async {
        let mut peer = fake.accept(0).await;
        assert_eq!(peer.answer_sub("r", &[], 0).await, None);
        for seq in [1, 2, 2, 1, 5] {
            peer.send(message("r", seq)).await;
        }
        peer.close(close::RESTARTING).await;
        let mut peer = fake.accept(0).await;
        let since = peer.answer_sub("r", &[4, 5, 6], 6).await;
        peer.send(message("r", 7)).await;
        (since, peer)
    };
    let client = async {
        let mut client = ReconnectingClient::connect(config).await.expect("connect");
        client.subscribe("r", None).await.expect("sub");
        let mut seen = Vec::new();
        while seen.last() != Some(&7) {
            match client.next_event().await.expect("event") {
                ClientEvent::Message(message) => seen.push(message.seq),
                ClientEvent::Reconnecting { .. } | ClientEvent::Reconnected { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
        seen
    };
    let ((since, _peer), seen) = within(async { tokio::join!(server, client) }).await;
    assert_eq!(since, Some(5), "resumes after the last seq handed out");
    assert_eq!(seen, [1, 2, 5, 6, 7]);
}

#[tokio::test]
async fn a_send_whose_ack_was_lost_is_resent_with_the_same_client_msg_id() {
    let (fake, config) = Fake::start().await;
    let server = async {
        let mut peer = fake.accept(0).await;
        let first = peer.recv().await;
        peer.close(close::RESTARTING).await; // "stored", but the ack never leaves
        let mut peer = fake.accept(0).await;
        let second = peer.recv().await;
        let ClientFrame::Send {
            id, client_msg_id, ..
        } = second.clone()
        else {
            panic!("expected a send, got {second:?}");
        };
        let (room, seq, ts) = ("r".into(), 1, 0);
        let ack = ServerFrame::Ack {
            id,
            room,
            seq,
            ts,
            client_msg_id,
        };
        peer.send(ack).await;
        (first, second, peer)
    };
    let client = async {
        let mut client = ReconnectingClient::connect(config).await.expect("connect");
        let ack = client.send("r", "hi").await.expect("ack");
        (ack, client.pending_sends())
    };
    let ((first, second, _peer), (ack, pending)) =
        within(async { tokio::join!(server, client) }).await;
    let key = |frame: &ClientFrame| match frame {
        ClientFrame::Send {
            room,
            body,
            client_msg_id,
            ..
        } => (room.clone(), body.clone(), client_msg_id.clone()),
        other => panic!("expected a send, got {other:?}"),
    };
    assert_eq!(
        key(&first),
        key(&second),
        "the same message, same client_msg_id"
    );
    assert_eq!(ack.client_msg_id, key(&first).2);
    assert_eq!(pending, 0);
}

#[tokio::test]
async fn a_silent_server_is_taken_for_dead_but_pings_keep_the_link_alive() {
    let (fake, config) = Fake::start().await;
    // heartbeat 100 ms: the link is dead after 300 ms of silence.
    let server = async {
        let mut peer = fake.accept(100).await;
        // 600 ms of pings and nothing else, then an event, then silence (the socket stays open).
        let mut pings = tokio::time::interval(Duration::from_millis(20));
        for _ in 0..30 {
            pings.tick().await;
            peer.0
                .send(WsMessage::Ping(Vec::new().into()))
                .await
                .expect("ping");
        }
        let (room, user) = ("r".into(), "bob".into());
        peer.send(ServerFrame::Typing { room, user }).await;
        let again = fake.accept(100).await;
        (peer, again)
    };
    let client = async {
        let mut client = ReconnectingClient::connect(config).await.expect("connect");
        let mut events = Vec::new();
        while !matches!(events.last(), Some(ClientEvent::Reconnected { .. })) {
            events.push(client.next_event().await.expect("event"));
        }
        events
    };
    let (_peers, events) = within(async { tokio::join!(server, client) }).await;
    assert!(
        matches!(&events[0], ClientEvent::Server(ServerFrame::Typing { .. })),
        "pings kept the link alive: {events:?}"
    );
    match &events[1] {
        ClientEvent::Reconnecting { cause, .. } => {
            assert!(cause.contains("nothing from the server"), "{cause}");
        }
        other => panic!("expected Reconnecting, got {other:?}"),
    }
}

#[tokio::test]
async fn a_queued_send_is_answered_as_an_event_and_resent_after_a_reconnect() {
    let (fake, config) = Fake::start().await;
    let server = async {
        let mut peer = fake.accept(0).await;
        let first = peer.recv().await;
        peer.close(close::RESTARTING).await; // the ack never leaves
        let mut peer = fake.accept(0).await;
        let ClientFrame::Send {
            id, client_msg_id, ..
        } = peer.recv().await
        else {
            panic!("expected the send again");
        };
        let (room, seq, ts) = ("r".into(), 1, 0);
        let ack = ServerFrame::Ack {
            id,
            room,
            seq,
            ts,
            client_msg_id: client_msg_id.clone(),
        };
        peer.send(ack).await;
        (first, client_msg_id, peer)
    };
    let client = async {
        let mut client = ReconnectingClient::connect(config).await.expect("connect");
        client.queue_send("r", "hi", "k-1").await.expect("queued");
        assert_eq!(client.pending_sends(), 1);
        loop {
            match client.next_event().await.expect("event") {
                ClientEvent::Acked(ack) => return (ack, client.pending_sends()),
                ClientEvent::Reconnecting { .. } | ClientEvent::Reconnected { .. } => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    };
    let ((first, resent_id, _peer), (ack, pending)) =
        within(async { tokio::join!(server, client) }).await;
    assert!(
        matches!(first, ClientFrame::Send { ref client_msg_id, .. } if client_msg_id.as_deref() == Some("k-1")),
        "written at once: {first:?}"
    );
    assert_eq!(
        resent_id.as_deref(),
        Some("k-1"),
        "re-sent with the same id"
    );
    assert_eq!(ack.client_msg_id.as_deref(), Some("k-1"));
    assert_eq!(pending, 0);
}

/// A token refused in `hello` (it expired on its way) is followed at once by one attempt with
/// the token source's newer token; a source that has nothing newer ends the client.
#[tokio::test]
async fn a_refused_token_is_retried_once_with_a_newer_one() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let (fake, mut config) = Fake::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let source = {
        let calls = calls.clone();
        move || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(Some(if n == 0 { "stale" } else { "fresh" }.to_owned())) }
        }
    };
    config.tokens = Arc::new(source);
    let server = async {
        let refused = fake.refuse().await;
        let peer = fake.accept(0).await;
        (refused, peer)
    };
    let client = ReconnectingClient::connect(config);
    let ((refused, _peer), client) = within(async { tokio::join!(server, client) }).await;
    assert_eq!(refused.as_deref(), Some("stale"));
    client.expect("connected with the newer token");
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // A fixed token is the same again: refused, the client ends with the refusal.
    let (fake, config) = Fake::start().await;
    let server = fake.refuse();
    let client = ReconnectingClient::connect(config);
    let (refused, client) = within(async { tokio::join!(server, client) }).await;
    assert_eq!(refused.as_deref(), Some("t"));
    let Err(error) = client else {
        panic!("a refused fixed token ends the client")
    };
    assert_eq!(
        error.code(),
        Some(switchboard_protocol::ErrorCode::Unauthorized)
    );
}

impl Fake {
    /// Accepts a connection and answers its `hello` as a hub that cannot check tokens now (its
    /// auth node's keys are unavailable): an `unavailable` error, then close 1013. Returns the
    /// token it was given.
    async fn unavailable(&self) -> Option<String> {
        let mut peer = self.upgrade().await;
        let ClientFrame::Hello { id, token } = peer.recv().await else {
            panic!("expected hello");
        };
        peer.send(ServerFrame::error(
            id,
            switchboard_protocol::ErrorCode::Unavailable,
            "the token cannot be checked right now; retry later",
        ))
        .await;
        peer.close(close::TRY_AGAIN_LATER).await;
        token
    }
}

/// 1013 (a live connection closed with it, and `hello` refused with `unavailable` + 1013) is
/// retried with backoff and the same token until the server takes it, and the client resumes;
/// a later 1008 ends the client for good.
#[tokio::test]
async fn try_again_later_is_retried_with_the_same_token_and_policy_ends_the_client() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let (fake, mut config) = Fake::start().await;
    let calls = Arc::new(AtomicUsize::new(0));
    let source = {
        let calls = calls.clone();
        move || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(Some("t".to_owned())) }
        }
    };
    config.tokens = Arc::new(source);
    let server = async {
        let mut peer = fake.accept(0).await;
        assert_eq!(peer.answer_sub("r", &[], 0).await, None);
        peer.send(message("r", 1)).await;
        peer.close(close::TRY_AGAIN_LATER).await;
        let mut refused = Vec::new();
        for _ in 0..3 {
            refused.push(fake.unavailable().await);
        }
        let mut peer = fake.accept(0).await;
        let since = peer.answer_sub("r", &[], 1).await;
        peer.send(message("r", 2)).await;
        peer.close(close::POLICY).await;
        (refused, since)
    };
    let client = async {
        let mut client = ReconnectingClient::connect(config).await.expect("connect");
        client.subscribe("r", None).await.expect("sub");
        let mut events = Vec::new();
        let end = loop {
            match client.next_event().await {
                Ok(event) => events.push(event),
                Err(error) => break error,
            }
        };
        let again = client.next_event().await.expect_err("ended for good");
        (events, end, again)
    };
    let ((refused, since), (events, end, again)) =
        within(async { tokio::join!(server, client) }).await;

    assert_eq!(
        refused,
        vec![Some("t".to_owned()); 3],
        "the same token every time"
    );
    assert_eq!(since, Some(1), "resumed after the last seq");
    // One token per attempt: the first connection, three refused ones, the one that worked.
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    let (attempts, delays): (Vec<u32>, Vec<Duration>) = events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Reconnecting { attempt, delay, .. } => Some((*attempt, *delay)),
            _ => None,
        })
        .unzip();
    assert_eq!(attempts, [1, 2, 3, 4], "one attempt after each 1013");
    assert!(
        delays.windows(2).all(|pair| pair[0] <= pair[1]),
        "the backoff grows: {delays:?}"
    );
    let seqs: Vec<Seq> = events
        .iter()
        .filter_map(|event| match event {
            ClientEvent::Message(message) => Some(message.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, [1, 2]);
    assert!(
        matches!(events.last(), Some(ClientEvent::Message(_))),
        "1008 is not followed by a reconnect: {events:?}"
    );
    for error in [end, again] {
        assert_eq!(error.close_code(), Some(close::POLICY), "{error:?}");
    }
}
