//! The WebSocket transport: upgrade (subprotocol, Origin allowlist, token header), heartbeat and
//! control frames, and the echo endpoint. Close codes are in `closes.rs`.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::protocol::{close, ErrorCode};
use switchboard_client::tungstenite::client::IntoClientRequest;
use switchboard_client::tungstenite::Message as WsMessage;
use switchboard_client::{ClientError, Connection};

use crate::support::{continuation, text_frame, upgrade, within, TestServer};

#[tokio::test]
async fn the_server_selects_the_offered_subprotocol() {
    let server = TestServer::start().await;
    let ws = upgrade(&server).await;
    assert_eq!(
        ws.subprotocol(),
        Some(switchboard_client::protocol::SUBPROTOCOL)
    );

    // A client that offers none is served all the same, without a subprotocol.
    let request = server.ws_url().into_client_request().expect("request");
    let mut plain = Connection::connect_request(request).await.expect("upgrade");
    assert_eq!(plain.subprotocol(), None);
    within("welcome", plain.hello(None)).await.expect("welcome");
}

#[tokio::test]
async fn the_token_may_come_in_the_authorization_header() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bearer = format!("Bearer {}", alice.token());
    let mut ws = Connection::connect_raw(&server.ws_url(), &[("Authorization", &bearer)])
        .await
        .expect("upgrade");
    let welcome = within("welcome", ws.hello(None)).await.expect("welcome");
    assert_eq!(
        welcome.user.map(|u| u.username),
        Some(alice.username.clone())
    );
    let me = alice.api.me().await.expect("me");
    assert_eq!(welcome.session, me.session);

    // A bad token in the header is refused before any WebSocket exists: 401 with the JSON body.
    let Err(err) =
        Connection::connect_raw(&server.ws_url(), &[("Authorization", "Bearer nope")]).await
    else {
        panic!("the upgrade must be refused");
    };
    assert_eq!(err.status(), Some(401), "{err:?}");
    assert_eq!(err.code(), Some(ErrorCode::Unauthorized), "{err:?}");
}

#[tokio::test]
async fn the_server_pings_at_the_heartbeat_interval_and_answers_pings() {
    let server = TestServer::start_with(&["--heartbeat-ms", "200"]).await;
    let (mut ws, welcome) = crate::support::raw_greeted(&server).await;
    let welcome: ServerFrame = serde_json::from_str(welcome.to_text().expect("text")).unwrap();
    assert!(
        matches!(
            welcome,
            ServerFrame::Welcome {
                heartbeat_ms: 200,
                ..
            }
        ),
        "{welcome:?}"
    );

    ws.send(WsMessage::Ping(Bytes::from_static(b"are you there")))
        .await
        .expect("ping");
    let (mut pinged, mut ponged) = (false, false);
    within("a server ping and our pong's answer", async {
        while !(pinged && ponged) {
            match ws.next().await.expect("open").expect("ok") {
                WsMessage::Ping(_) => pinged = true,
                WsMessage::Pong(payload) => {
                    assert_eq!(&payload[..], b"are you there");
                    ponged = true;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
}

fn refused(result: Result<Connection, ClientError>) -> (u16, ErrorCode) {
    match result {
        Err(ClientError::Api { status, code, .. }) => (status, code),
        Err(other) => panic!("expected a JSON refusal, got {other:?}"),
        Ok(_) => panic!("expected a refusal, got an upgrade"),
    }
}

#[tokio::test]
async fn the_origin_must_be_the_same_origin_by_default() {
    let server = TestServer::start().await;
    let url = server.ws_url();
    let foreign = Connection::connect_raw(&url, &[("Origin", "http://evil.example")]).await;
    assert_eq!(refused(foreign), (403, ErrorCode::Forbidden));
    let other_port = Connection::connect_raw(&url, &[("Origin", "http://127.0.0.1:1")]).await;
    assert_eq!(refused(other_port), (403, ErrorCode::Forbidden));

    for origin in [
        format!("http://{}", server.addr()),
        format!("https://{}", server.addr()),
    ] {
        let mut ws = Connection::connect_raw(&url, &[("Origin", &origin)])
            .await
            .unwrap_or_else(|err| panic!("origin {origin} refused: {err}"));
        within("welcome", ws.hello(None)).await.expect("welcome");
    }
    // No Origin at all: a non-browser client.
    let mut ws = upgrade(&server).await;
    within("welcome", ws.hello(None)).await.expect("welcome");
}

#[tokio::test]
async fn allowed_origins_replace_the_same_origin_rule() {
    let server = TestServer::start_with(&[
        "--allowed-origins",
        "https://chat.example.com,http://localhost:3000",
    ])
    .await;
    let url = server.ws_url();
    for origin in ["https://chat.example.com", "http://localhost:3000"] {
        let mut ws = Connection::connect_raw(&url, &[("Origin", origin)])
            .await
            .unwrap_or_else(|err| panic!("origin {origin} refused: {err}"));
        within("welcome", ws.hello(None)).await.expect("welcome");
    }
    let same_origin = format!("http://{}", server.addr());
    for origin in [
        "https://evil.example",
        "http://chat.example.com",
        same_origin.as_str(),
    ] {
        let result = Connection::connect_raw(&url, &[("Origin", origin)]).await;
        assert_eq!(
            refused(result),
            (403, ErrorCode::Forbidden),
            "origin {origin}"
        );
    }
}

#[tokio::test]
async fn the_echo_endpoint_is_off_by_default() {
    let server = TestServer::start().await;
    let request = server.echo_url().into_client_request().expect("request");
    match Connection::connect_request(request).await {
        Err(ClientError::Api {
            status: 404,
            code: ErrorCode::NotFound,
            ..
        }) => {}
        other => panic!("expected 404 not_found, got {other:?}"),
    }
}

async fn echo_connection(server: &TestServer) -> Connection {
    let request = server.echo_url().into_client_request().expect("request");
    within("echo upgrade", Connection::connect_request(request))
        .await
        .expect("echo upgrade")
}

#[tokio::test]
async fn the_echo_endpoint_echoes_text_and_binary_when_enabled() {
    let server =
        TestServer::start_with(&["--echo-endpoint", "--echo-max-message-bytes", "1048576"]).await;
    let mut ws = echo_connection(&server).await;

    let big = Bytes::from(vec![0xa5; 512 * 1024]); // far over /v1/ws's 64 KiB, under this limit
    let messages = [
        WsMessage::text("hello, echo"),
        WsMessage::text(""),
        WsMessage::Binary(Bytes::from_static(&[0, 1, 2, 0xff])),
        WsMessage::Binary(big),
    ];
    for message in messages {
        ws.send_raw(message.clone()).await.expect("send");
        let echoed = within("echo", ws.next_message()).await.expect("echo");
        assert_eq!(echoed, message);
    }
    // Fragments come back as the reassembled message.
    ws.send_raw(text_frame("frag", false)).await.expect("send");
    ws.send_raw(continuation("men", false)).await.expect("send");
    ws.send_raw(continuation("ted", true)).await.expect("send");
    let echoed = within("echo", ws.next_message()).await.expect("echo");
    assert_eq!(echoed, WsMessage::text("fragmented"));

    // The echo endpoint applies the same transport checks, with its own size limit.
    ws.send_raw(WsMessage::Binary(Bytes::from(vec![0; 1024 * 1024 + 1])))
        .await
        .expect("send");
    let result = within("close", ws.next_message()).await;
    assert_eq!(
        result.err().and_then(|e| e.close_code()),
        Some(close::TOO_BIG)
    );
    let mut ws = echo_connection(&server).await;
    ws.send_raw(text_frame(&b"\xc3\x28"[..], true))
        .await
        .expect("send");
    let result = within("close", ws.next_message()).await;
    assert_eq!(
        result.err().and_then(|e| e.close_code()),
        Some(close::INVALID_UTF8)
    );
}
