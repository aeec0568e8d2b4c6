//! Seqs out of range: every place a client names a seq refuses one above 2^63 − 1 (the largest a
//! store can hold) with `bad_request`, instead of a 500 or a wrap-around to the start of the
//! room. The largest valid seq is served normally.

use reqwest::Method;
use switchboard_client::protocol::seq::MAX_SEQ;
use switchboard_client::protocol::ws::{ClientFrame, ServerFrame};
use switchboard_client::protocol::ErrorCode;
use switchboard_client::rest::HistoryQuery;
use switchboard_client::ClientError;

use crate::support::{api_err, events_until_pong, post_many, rejected, seqs, TestServer};

/// 2^63: one past the largest seq.
const TOO_BIG: u64 = MAX_SEQ + 1;
/// Out-of-range seqs as they would be written in a URL or JSON.
const TOO_BIG_TEXT: [&str; 2] = ["9223372036854775808", "18446744073709551615"];

/// The status and error code of a raw REST answer.
async fn status_and_code(response: reqwest::Response) -> (u16, ErrorCode) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("a JSON error body");
    let code = serde_json::from_value(body["error"]["code"].clone()).expect("an error code");
    (status, code)
}

#[tokio::test]
async fn rest_refuses_seqs_past_the_range_with_400() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    post_many(&alice, &room.id, 3).await;
    for seq in TOO_BIG_TEXT {
        let path = format!("/v1/rooms/{}/messages/{seq}", room.id);
        let edit = alice
            .api
            .request(Method::PATCH, &path)
            .json(&serde_json::json!({"body": "edited"}))
            .send()
            .await
            .expect("answer");
        assert_eq!(
            status_and_code(edit).await,
            (400, ErrorCode::BadRequest),
            "PATCH {seq}"
        );
        let delete = alice
            .api
            .request(Method::DELETE, &path)
            .send()
            .await
            .expect("answer");
        assert_eq!(
            status_and_code(delete).await,
            (400, ErrorCode::BadRequest),
            "DELETE {seq}"
        );
        let read = alice
            .api
            .request(Method::POST, &format!("/v1/rooms/{}/read", room.id))
            .header("content-type", "application/json")
            .body(format!(r#"{{"seq":{seq}}}"#))
            .send()
            .await
            .expect("answer");
        assert_eq!(
            status_and_code(read).await,
            (400, ErrorCode::BadRequest),
            "read {seq}"
        );
        for param in ["after", "before"] {
            let page = alice
                .api
                .request(
                    Method::GET,
                    &format!("/v1/rooms/{}/messages?{param}={seq}", room.id),
                )
                .send()
                .await
                .expect("answer");
            assert_eq!(
                status_and_code(page).await,
                (400, ErrorCode::BadRequest),
                "{param}={seq}"
            );
        }
    }
    // The typed client says the same, and nothing was changed.
    assert_eq!(
        api_err(alice.api.edit_message(&room.id, TOO_BIG, "x").await),
        (400, ErrorCode::BadRequest)
    );
    let all = alice
        .api
        .messages(&room.id, HistoryQuery::default())
        .await
        .expect("history");
    assert!(all.iter().all(|m| !m.deleted && m.edited_ts.is_none()));
    // The largest seq is in range: nothing after it, everything before it.
    let after_max = HistoryQuery {
        after: Some(MAX_SEQ),
        ..Default::default()
    };
    assert!(alice
        .api
        .messages(&room.id, after_max)
        .await
        .expect("page")
        .is_empty());
    let before_max = HistoryQuery {
        before: Some(MAX_SEQ),
        ..Default::default()
    };
    assert_eq!(
        seqs(
            &alice
                .api
                .messages(&room.id, before_max)
                .await
                .expect("page")
        ),
        [1, 2, 3]
    );
    assert_eq!(
        api_err(alice.api.edit_message(&room.id, MAX_SEQ, "x").await),
        (404, ErrorCode::NotFound)
    );
    alice
        .api
        .mark_read(&room.id, MAX_SEQ)
        .await
        .expect("clamped to last_seq");
    let listed = alice.api.rooms().await.expect("list");
    assert_eq!(listed[0].read_seq, Some(3));
}

#[tokio::test]
async fn websocket_frames_with_seqs_past_the_range_get_bad_request_and_no_replay() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    post_many(&alice, &room.id, 3).await;
    let mut ws = server.connect(&alice).await;
    assert_eq!(
        rejected(ws.mark_read(&room.id, TOO_BIG).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        rejected(ws.history(&room.id, Some(TOO_BIG), None).await),
        ErrorCode::BadRequest
    );
    // `sub` with such a `since` replays nothing (it used to replay the whole room).
    let sub = ClientFrame::Sub {
        id: None,
        room: room.id.clone(),
        since: Some(TOO_BIG),
    };
    let reply = ws.request(sub).await.expect("a reply");
    assert!(
        matches!(
            reply,
            ServerFrame::Error {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{reply:?}"
    );
    let meanwhile = events_until_pong(&mut ws).await;
    assert!(
        meanwhile.is_empty(),
        "nothing replayed or subscribed: {meanwhile:?}"
    );
    // The connection stays usable, and the largest seq is in range.
    let (catch_up, last_seq) = ws.subscribe(&room.id, Some(MAX_SEQ)).await.expect("sub");
    assert_eq!((catch_up.len(), last_seq), (0, 3));
    assert_eq!(ws.mark_read(&room.id, MAX_SEQ).await.expect("read"), 3);
    let page = ws
        .history(&room.id, Some(MAX_SEQ), None)
        .await
        .expect("history");
    assert_eq!(seqs(&page), [1, 2, 3]);
    // An anonymous connection gets the same answer for `sub` and `history`.
    let mut anon = server.connect_anon().await;
    let err = anon.subscribe(&room.id, Some(u64::MAX)).await;
    assert!(
        matches!(
            err,
            Err(ClientError::Rejected {
                code: ErrorCode::BadRequest,
                ..
            })
        ),
        "{err:?}"
    );
}
