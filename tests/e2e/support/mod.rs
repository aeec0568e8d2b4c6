//! The harness: the real hub served in-process on `127.0.0.1:0` with a fresh data dir, plus
//! helpers for users, rooms and awaited events.
//!
//! Every wait is bounded by [`WAIT`] through [`within`]: a test that would hang fails instead,
//! naming what it was waiting for. Nothing here sleeps to synchronise.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use switchboard_client::protocol::rest::{Room, TokenPair, User};
use switchboard_client::protocol::ws::{ClientFrame, FrameId, Message, ServerFrame};
use switchboard_client::protocol::Seq;
use switchboard_client::tungstenite::protocol::frame::coding::{Data, OpCode};
use switchboard_client::tungstenite::protocol::frame::Frame;
use switchboard_client::tungstenite::Message as WsMessage;
use switchboard_client::{Api, ClientError, Connection};
use switchboard_tests::inproc::InProcessHub;

/// Upper bound on any single awaited event or reply. Generous, because the machine may be busy
/// (argon2 hashing, parallel tests); a passing test never waits this long.
pub const WAIT: Duration = Duration::from_secs(5);

pub use switchboard_tests::wait::{unique_name, within_for, PASSWORD};

/// Awaits `fut` for at most [`WAIT`]; panics naming `what` when it takes longer.
pub async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
    within_for(WAIT, what, fut).await
}

/// One running hub (and, with the scaled backend, its auth node, database and Redis prefix):
/// the shared [`InProcessHub`] with the e2e helpers (users, sockets) added. Dropping it signals
/// shutdown; [`InProcessHub::shutdown`] also waits for it.
pub struct TestServer(InProcessHub);

impl Deref for TestServer {
    type Target = InProcessHub;

    fn deref(&self) -> &InProcessHub {
        &self.0
    }
}

impl DerefMut for TestServer {
    fn deref_mut(&mut self) -> &mut InProcessHub {
        &mut self.0
    }
}

impl TestServer {
    /// A hub with default flags ([`InProcessHub::start`]).
    pub async fn start() -> Self {
        Self(InProcessHub::start().await)
    }

    /// A hub with extra flags ([`InProcessHub::start_with`]).
    pub async fn start_with(flags: &[&str]) -> Self {
        Self(InProcessHub::start_with(flags).await)
    }

    /// A hub with extra flags and the login limits at their defaults
    /// ([`InProcessHub::start_with_auth_limits`]).
    pub async fn start_with_auth_limits(flags: &[&str]) -> Self {
        Self(InProcessHub::start_with_auth_limits(flags).await)
    }

    /// Registers and logs in a new user whose name starts with `prefix`.
    pub async fn user(&self, prefix: &str) -> TestUser {
        let api = self.api();
        let username = unique_name(prefix);
        let email = format!("{username}@example.com");
        let registered = api
            .register(&username, &email, PASSWORD)
            .await
            .expect("register");
        let tokens = api.login(&username, PASSWORD).await.expect("login");
        TestUser {
            api: api.with_token(&tokens.access_token),
            username,
            user: registered.user,
            tokens,
        }
    }

    /// An authenticated WebSocket for `user`, after `welcome`.
    pub async fn connect(&self, user: &TestUser) -> Connection {
        let (conn, _welcome) = within(
            "welcome",
            Connection::connect(&self.ws_url(), Some(&user.tokens.access_token)),
        )
        .await
        .expect("authenticated connect");
        conn
    }

    /// An anonymous WebSocket, after `welcome`.
    pub async fn connect_anon(&self) -> Connection {
        let (conn, _welcome) = within("welcome", Connection::connect(&self.ws_url(), None))
            .await
            .expect("anonymous connect");
        conn
    }
}

/// A registered, logged-in user.
pub struct TestUser {
    pub username: String,
    pub user: User,
    /// The pair from the login.
    pub tokens: TokenPair,
    /// REST handle with this user's access token.
    pub api: Api,
}

impl TestUser {
    /// The access token from the login.
    pub fn token(&self) -> &str {
        &self.tokens.access_token
    }

    /// Creates a group room and adds `members` to it.
    pub async fn room_with(&self, public: bool, members: &[&TestUser]) -> Room {
        let room = self
            .api
            .create_room(&unique_name("room"), public)
            .await
            .expect("create room");
        for member in members {
            self.api
                .add_member(&room.id, &member.username)
                .await
                .expect("add member");
        }
        room
    }
}

/// The next event on `conn` (queued ones first), within [`WAIT`], skipping `presence` events:
/// they depend on who else subscribed and are asserted on their own (`presence.rs`, with
/// [`next_event_with_presence`]).
pub async fn next_event(conn: &mut Connection) -> ServerFrame {
    loop {
        match next_event_with_presence(conn).await {
            ServerFrame::Presence { .. } => continue,
            other => return other,
        }
    }
}

/// The next event on `conn`, `presence` events included.
pub async fn next_event_with_presence(conn: &mut Connection) -> ServerFrame {
    within("the next event", conn.next_event())
        .await
        .expect("an event, not an error")
}

/// A connection opened without `hello`.
pub async fn upgrade(server: &TestServer) -> Connection {
    within("upgrade", Connection::connect_raw(&server.ws_url(), &[]))
        .await
        .expect("upgrade")
}

/// A hand-built text frame (`fin`: last fragment); the payload need not be UTF-8.
pub fn text_frame(payload: impl Into<Bytes>, fin: bool) -> WsMessage {
    WsMessage::Frame(Frame::message(payload, OpCode::Data(Data::Text), fin))
}

/// A hand-built continuation frame.
pub fn continuation(payload: impl Into<Bytes>, fin: bool) -> WsMessage {
    WsMessage::Frame(Frame::message(payload, OpCode::Data(Data::Continue), fin))
}

/// Posts `count` messages `m1`, `m2`, ... over REST; returns their seqs.
pub async fn post_many(user: &TestUser, room: &str, count: usize) -> Vec<Seq> {
    let mut seqs = Vec::with_capacity(count);
    for i in 1..=count {
        let ack = user.api.post_message(room, &format!("m{i}"), None).await;
        seqs.push(ack.expect("post").seq);
    }
    seqs
}

/// The seqs of `messages`, in order.
pub fn seqs(messages: &[Message]) -> Vec<Seq> {
    messages.iter().map(|message| message.seq).collect()
}

/// The next event on `conn`, which must be a `message`.
pub async fn next_message(conn: &mut Connection) -> Message {
    match next_event(conn).await {
        ServerFrame::Message(message) => message,
        other => panic!("expected a message event, got {other:?}"),
    }
}

/// Reads until the server closes `conn`, within [`WAIT`]. Returns the frames that came before
/// the close and the close code (`None`: the connection ended without a close frame).
pub async fn closed(conn: &mut Connection) -> (Vec<ServerFrame>, Option<u16>) {
    let mut frames = Vec::new();
    let code = within("the server to close the connection", async {
        loop {
            match conn.next_event().await {
                Ok(frame) => frames.push(frame),
                Err(ClientError::Closed { code, .. }) => return code,
                Err(other) => panic!("expected a close, got {other:?}"),
            }
        }
    })
    .await;
    (frames, code)
}

/// A barrier on one connection: sends a `ping` and returns every event that arrives before its
/// `pong`. The server handles one connection's frames in order, so whatever it queued to this
/// connection before the ping is among them: a test can assert that something was *not* sent
/// without sleeping.
pub async fn events_until_pong(conn: &mut Connection) -> Vec<ServerFrame> {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let id = FrameId::Str(format!("barrier-{}", NEXT.fetch_add(1, Ordering::Relaxed)));
    conn.send(&ClientFrame::Ping {
        id: Some(id.clone()),
    })
    .await
    .expect("send ping");
    let mut events = Vec::new();
    loop {
        match next_event(conn).await {
            ServerFrame::Pong { id: Some(got) } if got == id => return events,
            other => events.push(other),
        }
    }
}

/// Unwraps an API error's `(status, code)`; panics on success or a non-API error.
#[track_caller]
pub fn api_err<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
) -> (u16, switchboard_client::protocol::ErrorCode) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Unwraps a WebSocket `error` reply's code; panics on success or another error.
#[track_caller]
pub fn rejected<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
) -> switchboard_client::protocol::ErrorCode {
    match result {
        Err(ClientError::Rejected { code, .. }) => code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

/// A raw tokio-tungstenite socket (which answers pings only while it is read) after an
/// anonymous `hello`, with the `welcome` message.
pub async fn raw_greeted(
    server: &TestServer,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsMessage,
) {
    use futures_util::{SinkExt, StreamExt};
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url())
        .await
        .expect("upgrade");
    let hello = ClientFrame::Hello {
        id: None,
        token: None,
    };
    ws.send(WsMessage::text(hello.to_json()))
        .await
        .expect("hello");
    let welcome = within("welcome", ws.next())
        .await
        .expect("a frame")
        .expect("ok");
    (ws, welcome)
}

/// Flags that lift the per-connection and per-user rate limits, for floods.
pub const NO_RATE_LIMITS: [&str; 8] = [
    "--rate-per-sec",
    "100000",
    "--rate-burst",
    "100000",
    "--user-rate-per-sec",
    "100000",
    "--user-rate-burst",
    "100000",
];

/// A slow reader: an anonymous raw socket with a tiny receive buffer (so the hub's writes back
/// up quickly), subscribed to `room`, returned after `subbed`; the test decides when it reads.
pub async fn slow_subscriber(
    server: &TestServer,
    room: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    use futures_util::{SinkExt, StreamExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(server.addr()).await.expect("connect");
    let (mut ws, _) = tokio_tungstenite::client_async(server.ws_url(), stream)
        .await
        .expect("upgrade");
    let sub = ClientFrame::Sub {
        id: None,
        room: room.to_owned(),
        since: None,
    };
    for frame in [
        ClientFrame::Hello {
            id: None,
            token: None,
        },
        sub,
    ] {
        ws.send(WsMessage::text(frame.to_json()))
            .await
            .expect("send");
    }
    loop {
        let msg = within("subbed", ws.next())
            .await
            .expect("open")
            .expect("ok");
        // The hub's pings may come first on a loaded machine (short test heartbeats).
        if !msg.is_text() {
            continue;
        }
        let frame: ServerFrame =
            serde_json::from_str(msg.to_text().expect("text")).expect("a frame");
        if matches!(frame, ServerFrame::Subbed { .. }) {
            return ws;
        }
    }
}

/// An upload held open: `method path` as `token` with `Content-Length: 1000`, sent once the
/// hub's `100 Continue` says its handler is reading the body, 10 bytes of it and no more. The
/// upload stays under way until the socket is dropped.
pub async fn stalled_upload(
    server: &TestServer,
    method: &str,
    path: &str,
    token: &str,
) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let mut socket = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 1000\r\nExpect: 100-continue\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    within("100 Continue", async {
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        got.starts_with(b"HTTP/1.1 100"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    socket.write_all(&[0x89; 10]).await.expect("a part");
    socket
}
