//! Error codes that leave the connection open: WebSocket `error` frames (`bad_request`,
//! `unknown_type`, `forbidden`, `not_found`, `unauthorized`, `rate_limited`, `too_large` are
//! also covered in the rooms and messaging tests) and the JSON error bodies of the HTTP API.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;
use switchboard_client::protocol::ws::{ClientFrame, FrameId, ServerFrame};
use switchboard_client::protocol::ErrorCode;
use switchboard_client::tungstenite::Message as WsMessage;
use switchboard_client::{ClientError, Connection, HistoryQuery};

use crate::support::{next_event, rejected, within, TestServer};

/// The next event, which must be an `error`: its `(id, code)`.
async fn next_error(conn: &mut Connection) -> (Option<FrameId>, ErrorCode) {
    match next_event(conn).await {
        ServerFrame::Error { id, code, .. } => (id, code),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

async fn send_text(conn: &mut Connection, text: &str) {
    conn.send_raw(WsMessage::text(text)).await.expect("send");
}

#[tokio::test]
async fn undecodable_frames_get_bad_request_and_the_connection_stays_open() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut ws = server.connect(&alice).await;

    let cases: &[(&str, Option<FrameId>)] = &[
        ("{not json", None),                    // not JSON
        ("[1,2,3]", None),                      // not an object
        (r#"{"id":3}"#, Some(FrameId::Num(3))), // no type
        (
            r#"{"type":"send","id":9,"room":"r"}"#,
            Some(FrameId::Num(9)),
        ), // missing body
        (
            r#"{"type":"sub","id":"s1","room":5}"#,
            Some(FrameId::Str("s1".into())),
        ), // ill-typed
        (r#"{"type":"ping","id":-1}"#, None),   // an id of the wrong type
    ];
    for (text, id) in cases {
        send_text(&mut ws, text).await;
        assert_eq!(
            next_error(&mut ws).await,
            (id.clone(), ErrorCode::BadRequest),
            "{text}"
        );
    }
    // Binary messages are not part of the protocol.
    ws.send_raw(WsMessage::Binary(Bytes::from_static(b"\x00\x01")))
        .await
        .expect("send binary");
    assert_eq!(next_error(&mut ws).await, (None, ErrorCode::BadRequest));
    // An out-of-range value.
    let reply = ws
        .request(ClientFrame::History {
            id: Some(FrameId::Num(4)),
            room: "r".into(),
            before: None,
            limit: Some(0),
        })
        .await
        .expect("reply");
    assert!(
        matches!(
            reply,
            ServerFrame::Error {
                id: Some(FrameId::Num(4)),
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{reply:?}"
    );

    within("pong", ws.ping()).await.expect("still open");
}

#[tokio::test]
async fn an_unknown_type_gets_unknown_type_with_the_id() {
    let server = TestServer::start().await;
    let mut ws = server.connect_anon().await;
    send_text(&mut ws, r#"{"type":"teleport","id":7,"to":"mars"}"#).await;
    assert_eq!(
        next_error(&mut ws).await,
        (Some(FrameId::Num(7)), ErrorCode::UnknownType)
    );
    send_text(&mut ws, r#"{"type":"teleport"}"#).await;
    assert_eq!(next_error(&mut ws).await, (None, ErrorCode::UnknownType));
    within("pong", ws.ping()).await.expect("still open");
}

#[tokio::test]
async fn ids_are_echoed_with_their_json_type() {
    let server = TestServer::start().await;
    let mut ws = server.connect_anon().await;
    for id in [
        FrameId::Num(u64::MAX),
        FrameId::Str("7".into()),
        FrameId::Str("x".into()),
    ] {
        let reply = ws
            .request(ClientFrame::Ping {
                id: Some(id.clone()),
            })
            .await
            .expect("pong");
        assert_eq!(reply, ServerFrame::Pong { id: Some(id) });
    }
    // Without an id, the reply has none.
    ws.send(&ClientFrame::Ping { id: None })
        .await
        .expect("send");
    assert_eq!(next_event(&mut ws).await, ServerFrame::Pong { id: None });
}

#[tokio::test]
async fn a_second_hello_is_refused_and_the_connection_keeps_its_identity() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let mut ws = server.connect(&alice).await;

    let again = within("error", ws.hello(Some(bob.token()))).await;
    assert_eq!(rejected(again), ErrorCode::BadRequest);
    within("ack", ws.send_message(&room.id, "still alice", None))
        .await
        .expect("ack");
    let page = bob
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    assert_eq!(page[0].from, alice.username);
}

#[tokio::test]
async fn unknown_rooms_are_not_found_and_refusals_echo_the_id() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut ws = server.connect(&alice).await;
    let room = || "no-such-room".to_owned();
    let frames = [
        ClientFrame::Sub {
            id: Some(FrameId::Num(1)),
            room: room(),
            since: None,
        },
        ClientFrame::Unsub {
            id: Some(FrameId::Num(2)),
            room: room(),
        },
        ClientFrame::History {
            id: Some(FrameId::Num(3)),
            room: room(),
            before: None,
            limit: None,
        },
        ClientFrame::Send {
            id: Some(FrameId::Str("s".into())),
            room: room(),
            body: "hi".into(),
            client_msg_id: None,
            attachments: Vec::new(),
        },
        ClientFrame::Read {
            id: Some(FrameId::Num(5)),
            room: room(),
            seq: 1,
        },
        ClientFrame::Typing {
            id: Some(FrameId::Num(6)),
            room: room(),
        },
    ];
    for frame in frames {
        let id = frame.id().cloned();
        ws.send(&frame).await.expect("send");
        let reply = next_event(&mut ws).await;
        match reply {
            ServerFrame::Error {
                id: got,
                code: ErrorCode::NotFound,
                ..
            } => {
                assert_eq!(got, id, "the error echoes the id of {frame:?}");
            }
            // Unsubscribing from a room one is not in may be a no-op.
            ServerFrame::Unsubbed { .. } if matches!(frame, ClientFrame::Unsub { .. }) => {}
            other => panic!("{frame:?}: expected not_found, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn frames_over_the_rate_limit_are_dropped_with_rate_limited() {
    const FRAMES: u64 = 8;
    let server = TestServer::start_with(&["--rate-per-sec", "2", "--rate-burst", "2"]).await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let mut ws = server.connect(&alice).await;

    // A burst well over the bucket, written without waiting for replies.
    for n in 1..=FRAMES {
        ws.send(&ClientFrame::Send {
            id: Some(FrameId::Num(n)),
            room: room.id.clone(),
            body: format!("burst {n}"),
            client_msg_id: None,
            attachments: Vec::new(),
        })
        .await
        .expect("send");
    }
    // Every frame is answered once: an ack, or `rate_limited` echoing the frame's id.
    let mut acked = BTreeSet::new();
    let mut limited = Vec::new();
    while acked.len() + limited.len() < FRAMES as usize {
        match next_event(&mut ws).await {
            ServerFrame::Ack {
                id: Some(FrameId::Num(n)),
                ..
            } => assert!(acked.insert(n)),
            ServerFrame::Error {
                id,
                code: ErrorCode::RateLimited,
                ..
            } => limited.push(id),
            other => panic!("expected an ack or rate_limited, got {other:?}"),
        }
    }
    assert!(!limited.is_empty(), "nothing was rate limited");

    // Dropped frames had no effect: exactly the acknowledged messages are stored.
    let page = alice
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    let stored: BTreeSet<u64> = page
        .iter()
        .map(|m| {
            m.body
                .trim_start_matches("burst ")
                .parse()
                .expect("a burst body")
        })
        .collect();
    assert_eq!(stored, acked);

    // The connection stays open: once the bucket refills, a ping is answered. The pause paces
    // the retries (each refused one would be dropped anyway); it synchronises nothing.
    within("a pong after the bucket refills", async {
        loop {
            match ws.ping().await {
                Ok(()) => return,
                Err(ClientError::Rejected {
                    code: ErrorCode::RateLimited,
                    ..
                }) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(other) => panic!("ping failed: {other:?}"),
            }
        }
    })
    .await;

    // Checked last so that a missing id does not hide the checks above: the id of a rate
    // limited frame is readable, so it is echoed (PROTOCOL.md §6.1).
    let limited_ids: BTreeSet<u64> = limited
        .iter()
        .map(|id| match id {
            Some(FrameId::Num(n)) => *n,
            other => panic!("rate_limited must echo the frame's id, got {other:?}"),
        })
        .collect();
    assert!(acked.is_disjoint(&limited_ids));
    assert_eq!(acked.len() + limited_ids.len(), FRAMES as usize);
}

/// Reads a non-2xx answer and checks it is the documented JSON error body with the status that
/// belongs to its code. Returns `(status, code)`.
async fn json_error(response: reqwest::Response) -> (u16, ErrorCode) {
    match ClientError::from_response(response).await {
        ClientError::Api { status, code, .. } => {
            assert_eq!(status, code.http_status(), "status of {code}");
            (status, code)
        }
        other => panic!("expected a JSON error body, got {other:?}"),
    }
}

#[tokio::test]
async fn http_errors_are_json_even_for_malformed_requests_and_unknown_routes() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let api = &alice.api;
    let json_body = |method, path: &str, body: &'static str| {
        api.request(method, path)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };

    let malformed = json_body(Method::POST, "/v1/auth/register", "{not json")
        .await
        .unwrap();
    assert_eq!(json_error(malformed).await, (400, ErrorCode::BadRequest));
    let missing = json_body(Method::POST, "/v1/auth/register", r#"{"username":"zed"}"#).await;
    assert_eq!(
        json_error(missing.unwrap()).await,
        (400, ErrorCode::BadRequest)
    );
    let ill_typed = json_body(
        Method::POST,
        "/v1/auth/login",
        r#"{"username":1,"password":2}"#,
    );
    assert_eq!(
        json_error(ill_typed.await.unwrap()).await,
        (400, ErrorCode::BadRequest)
    );
    let path = format!("/v1/rooms/{}/messages", room.id);
    let missing = json_body(Method::POST, &path, r#"{"client_msg_id":"x"}"#)
        .await
        .unwrap();
    assert_eq!(json_error(missing).await, (400, ErrorCode::BadRequest));
    let malformed = json_body(Method::POST, "/v1/rooms", "{").await.unwrap();
    assert_eq!(json_error(malformed).await, (400, ErrorCode::BadRequest));
    let bad_query = api
        .request(Method::GET, &format!("{path}?limit=lots"))
        .send()
        .await;
    assert_eq!(
        json_error(bad_query.unwrap()).await,
        (400, ErrorCode::BadRequest)
    );
    // Not JSON at all: whatever the code, the answer is a JSON error body.
    let plain = api
        .request(Method::POST, "/v1/auth/login")
        .header("content-type", "text/plain")
        .body("username=alice")
        .send()
        .await
        .unwrap();
    assert!(!plain.status().is_success());
    json_error(plain).await;

    for unknown in ["/v1/nope", "/nope", "/v1/rooms/x/y/z"] {
        let response = api.request(Method::GET, unknown).send().await.unwrap();
        assert_eq!(
            json_error(response).await,
            (404, ErrorCode::NotFound),
            "{unknown}"
        );
    }
    let plain_echo = api.request(Method::GET, "/v1/echo").send().await.unwrap();
    assert_eq!(
        json_error(plain_echo).await,
        (404, ErrorCode::NotFound),
        "echo is off"
    );
}
