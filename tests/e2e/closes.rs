//! Close codes a client can provoke: 1000 (answering the client's close), 1002 (a broken
//! WebSocket frame), 1007, 1008 (no hello, wrong first frame, bad token), 1009, 1012 and 4000.
//! Revocation (1008) is in `auth.rs`. 1011 (internal error) cannot be provoked from outside.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::tungstenite::protocol::frame::coding::CloseCode;
use switchboard_client::tungstenite::protocol::CloseFrame;
use switchboard_client::tungstenite::Message as WsMessage;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::{
    closed, continuation, next_event, text_frame, upgrade, within, TestServer, WAIT,
};

#[tokio::test]
async fn invalid_utf8_closes_with_1007() {
    let server = TestServer::start().await;
    let mut ws = server.connect_anon().await;
    ws.send_raw(text_frame(
        &b"{\"type\":\"ping\",\"id\":\"\xff\xfe\"}"[..],
        true,
    ))
    .await
    .expect("send");
    let (frames, code) = closed(&mut ws).await;
    assert_eq!(code, Some(close::INVALID_UTF8), "after {frames:?}");

    // Split inside a multi-byte character across fragments is fine; the reassembled message is
    // valid UTF-8.
    let mut ws = server.connect_anon().await;
    let text = "{\"type\":\"ping\",\"id\":\"é\"}".as_bytes();
    let cut = text.iter().position(|&b| b == 0xc3).expect("é") + 1;
    ws.send_raw(text_frame(text[..cut].to_vec(), false))
        .await
        .expect("send");
    ws.send_raw(continuation(text[cut..].to_vec(), true))
        .await
        .expect("send");
    let pong = ServerFrame::Pong {
        id: Some(FrameId::Str("é".into())),
    };
    assert_eq!(next_event(&mut ws).await, pong);
}

#[tokio::test]
async fn no_hello_in_time_closes_with_1008() {
    let server = TestServer::start_with(&["--hello-timeout-ms", "300"]).await;
    let started = Instant::now();
    let mut ws = upgrade(&server).await;
    let (_, code) = closed(&mut ws).await;
    assert_eq!(code, Some(close::POLICY));
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed before the timeout"
    );
}

#[tokio::test]
async fn a_first_frame_other_than_hello_closes_with_1008() {
    let server = TestServer::start().await;
    let mut ws = upgrade(&server).await;
    ws.send(&ClientFrame::Ping { id: None })
        .await
        .expect("send");
    let (frames, code) = closed(&mut ws).await;
    assert!(
        matches!(
            frames.as_slice(),
            [ServerFrame::Error {
                code: ErrorCode::BadRequest,
                ..
            }]
        ),
        "{frames:?}"
    );
    assert_eq!(code, Some(close::POLICY));
}

#[tokio::test]
async fn a_bad_token_in_hello_closes_with_1008() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut tampered = alice.token().to_owned();
    tampered.insert(tampered.len() / 2, 'x');
    for token in ["garbage", tampered.as_str()] {
        let mut ws = upgrade(&server).await;
        let result = within("hello", ws.hello(Some(token))).await;
        assert_eq!(
            result.err().and_then(|e| e.code()),
            Some(ErrorCode::Unauthorized)
        );
        let (_, code) = closed(&mut ws).await;
        assert_eq!(code, Some(close::POLICY), "token {token:?}");
    }
}

#[tokio::test]
async fn an_oversized_message_closes_with_1009() {
    let server = TestServer::start().await;
    let mut ws = server.connect_anon().await;
    ws.send_raw(WsMessage::text("x".repeat(70 * 1024)))
        .await
        .expect("send");
    assert_eq!(closed(&mut ws).await.1, Some(close::TOO_BIG));

    // Fragments under the limit that add up to more than it count as one message.
    let mut ws = server.connect_anon().await;
    let half = "x".repeat(40 * 1024);
    ws.send_raw(text_frame(half.clone(), false))
        .await
        .expect("send");
    let _ = ws.send_raw(continuation(half, true)).await;
    assert_eq!(closed(&mut ws).await.1, Some(close::TOO_BIG));
}

#[tokio::test]
async fn the_size_limit_follows_max_frame_bytes() {
    let server = TestServer::start_with(&["--max-frame-bytes", "1024"]).await;
    let mut ws = server.connect_anon().await;
    // Just under the limit: a valid frame padded with white space is served.
    let ping = ClientFrame::Ping { id: None }.to_json();
    let padded = format!("{ping:<1024}");
    ws.send_raw(WsMessage::text(padded)).await.expect("send");
    assert_eq!(next_event(&mut ws).await, ServerFrame::Pong { id: None });
    ws.send_raw(WsMessage::text(format!("{ping:<1025}")))
        .await
        .expect("send");
    assert_eq!(closed(&mut ws).await.1, Some(close::TOO_BIG));
}

#[tokio::test]
async fn shutdown_closes_connections_with_1012() {
    let mut server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut authed = server.connect(&alice).await;
    let mut anon = server.connect_anon().await;
    let ((), (_, authed_code), (_, anon_code)) =
        tokio::join!(server.shutdown(), closed(&mut authed), closed(&mut anon));
    assert_eq!(authed_code, Some(close::RESTARTING));
    assert_eq!(anon_code, Some(close::RESTARTING));
}

#[tokio::test]
async fn a_subscriber_that_does_not_read_is_closed_with_4000() {
    let mut flags = vec!["--outbound-queue-len", "8"];
    flags.extend(crate::support::NO_RATE_LIMITS);
    let server = TestServer::start_with(&flags).await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;

    // The slow reader: a tiny receive buffer, so that the server's socket backs up quickly.
    let mut slow = crate::support::slow_subscriber(&server, &room.id).await;

    // Flood the room in pipelined batches (reading the acks, so the sender keeps up).
    let mut fast = server.connect(&alice).await;
    let body = "x".repeat(4000);
    for batch in 0..40 {
        for _ in 0..25 {
            let frame = ClientFrame::Send {
                id: None,
                room: room.id.clone(),
                body: body.clone(),
                client_msg_id: None,
                attachments: Vec::new(),
            };
            fast.send(&frame).await.expect("send");
        }
        for _ in 0..25 {
            match next_event(&mut fast).await {
                ServerFrame::Ack { .. } => {}
                other => panic!("batch {batch}: expected an ack, got {other:?}"),
            }
        }
    }

    // The slow reader finds what was queued before the server gave up, then the close.
    let code = tokio::time::timeout(WAIT * 2, async {
        while let Some(message) = slow.next().await {
            match message {
                Ok(WsMessage::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(err) => panic!("read failed: {err}"),
            }
        }
        None
    })
    .await
    .expect("the slow reader is closed, not left to grow the queue");
    assert_eq!(code, Some(close::SLOW_CONSUMER));
}

#[tokio::test]
async fn a_client_close_is_answered_with_1000() {
    let server = TestServer::start().await;
    let (mut ws, _welcome) = crate::support::raw_greeted(&server).await;
    let bye = CloseFrame {
        code: CloseCode::Normal,
        reason: "bye".into(),
    };
    ws.send(WsMessage::Close(Some(bye))).await.expect("close");
    let code = within("the close answer", async {
        loop {
            match ws.next().await {
                Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(code, Some(close::NORMAL));
}

// --- raw frames, for what tungstenite refuses to send ----------------------------------------

/// Opens `/v1/ws` by hand and completes `hello`, returning the raw stream.
async fn raw_connection(server: &TestServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("write upgrade");
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        head.push(
            within("upgrade answer", stream.read_u8())
                .await
                .expect("read"),
        );
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let hello = ClientFrame::Hello {
        id: None,
        token: None,
    }
    .to_json();
    stream
        .write_all(&raw_frame(0x81, Some([1, 2, 3, 4]), hello.as_bytes()))
        .await
        .expect("write hello");
    let (opcode, payload) = read_raw_frame(&mut stream).await;
    assert_eq!(opcode, 0x1, "a text frame");
    let welcome: ServerFrame = serde_json::from_slice(&payload).expect("a server frame");
    assert!(
        matches!(welcome, ServerFrame::Welcome { .. }),
        "{welcome:?}"
    );
    stream
}

/// One frame: `first` is the first header byte (FIN, RSV bits, opcode); masked with `mask` if
/// given. Payloads here are short (< 126 bytes).
fn raw_frame(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let len = u8::try_from(payload.len()).expect("short payload");
    assert!(len < 126);
    let mut frame = vec![first];
    match mask {
        Some(key) => {
            frame.push(0x80 | len);
            frame.extend_from_slice(&key);
            frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => {
            frame.push(len);
            frame.extend_from_slice(payload);
        }
    }
    frame
}

/// Reads one (unmasked) server frame: `(opcode, payload)`.
async fn read_raw_frame(stream: &mut TcpStream) -> (u8, Vec<u8>) {
    within("a frame", async {
        let mut head = [0u8; 2];
        stream.read_exact(&mut head).await.expect("frame header");
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        let len = match head[1] & 0x7f {
            126 => u64::from(stream.read_u16().await.expect("length")),
            127 => stream.read_u64().await.expect("length"),
            n => u64::from(n),
        };
        let mut payload = vec![0; usize::try_from(len).expect("length")];
        stream.read_exact(&mut payload).await.expect("payload");
        (head[0] & 0x0f, payload)
    })
    .await
}

/// Reads frames until a close frame; returns its code.
async fn raw_close_code(stream: &mut TcpStream) -> Option<u16> {
    loop {
        let (opcode, payload) = read_raw_frame(stream).await;
        if opcode == 0x8 {
            return payload
                .get(..2)
                .map(|code| u16::from_be_bytes([code[0], code[1]]));
        }
    }
}

#[tokio::test]
async fn broken_websocket_framing_closes_with_1002() {
    let server = TestServer::start().await;
    let ping = ClientFrame::Ping { id: None }.to_json();
    let cases: [(&str, Vec<u8>); 3] = [
        ("an unmasked frame", raw_frame(0x81, None, ping.as_bytes())),
        (
            "a reserved opcode",
            raw_frame(0x83, Some([9, 8, 7, 6]), ping.as_bytes()),
        ),
        (
            "RSV1 without an extension",
            raw_frame(0xc1, Some([9, 8, 7, 6]), ping.as_bytes()),
        ),
    ];
    for (what, frame) in cases {
        let mut stream = raw_connection(&server).await;
        stream.write_all(&frame).await.expect("write");
        assert_eq!(
            raw_close_code(&mut stream).await,
            Some(close::PROTOCOL_ERROR),
            "{what}"
        );
    }
}
