//! Attachments end to end, in both configurations (embedded: files under the data dir and the
//! SQLite index; scaled: PostgreSQL blobs and index): upload, send (WebSocket and REST),
//! the `message` event and history carrying the metadata, download with its caching and
//! safety headers (Range, 304, nosniff, sandbox CSP, private cache, disposition), and every
//! refusal: 401/403/404 on upload, 413 over the limit before the body is sent (and as soon as
//! a chunked body passes it), a truncated upload storing nothing, an id of another room, a
//! non-member's download from a private room, more than 10 attachments, an HTML file served
//! as a sandboxed download, the attachment of a deleted message; the bound on uploads at
//! once; and the garbage collector removing a replaced avatar's and a deleted message's files.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde_json::Value;
use switchboard_client::protocol::ws::{AttachmentInfo, ClientFrame, FrameId, ServerFrame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use std::time::Duration;

use crate::support::{next_message, stalled_upload, within, within_for, TestServer, TestUser};

/// A valid 4×3 RGB PNG.
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03, 0x08, 0x02, 0x00, 0x00, 0x00, 0x3b, 0x96, 0x39,
    0x91, 0x00, 0x00, 0x00, 0x2a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x0d, 0xc7, 0x31, 0x01, 0x00,
    0x30, 0x0c, 0xc3, 0x30, 0x03, 0x2b, 0x88, 0xc0, 0xe9, 0x69, 0x28, 0x01, 0x51, 0x80, 0x9b, 0x3e,
    0x01, 0x0e, 0x2e, 0x1e, 0x42, 0x9c, 0xb8, 0xf1, 0xf2, 0x53, 0xa7, 0x6e, 0xbd, 0xfa, 0x00, 0xe3,
    0xb7, 0x0d, 0xf9, 0x6c, 0x6c, 0xcb, 0xd2, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae,
    0x42, 0x60, 0x82,
];

const TEXT: &[u8] = b"first line\nsecond line\n";

/// A PNG whose header claims 100000×100000 RGBA pixels (40 GB decoded): a decompression bomb.
const BOMB: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52,
    0x00, 0x01, 0x86, 0xa0, 0x00, 0x01, 0x86, 0xa0, 0x08, 0x06, 0x00, 0x00, 0x00, 0xa8, 0x52, 0x0b,
    0xc8, 0x00, 0x00, 0x00, 0x02, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x62, 0xa4, 0x91, 0x2b, 0x00,
    0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Uploads `bytes` named `name` (through `Content-Disposition`) as `user` to `room`.
async fn upload(user: &TestUser, room: &str, name: &str, bytes: &[u8]) -> AttachmentInfo {
    within(
        "an upload",
        user.api.upload_attachment(room, name, bytes.to_vec()),
    )
    .await
    .expect("upload")
}

/// A raw upload: the status and the JSON error code (if any).
async fn upload_status(
    server: &TestServer,
    token: Option<&str>,
    room: &str,
    bytes: &[u8],
) -> (StatusCode, Option<String>) {
    let mut request = reqwest::Client::new()
        .post(format!(
            "{}/v1/rooms/{room}/attachments?name=x.bin",
            server.http_url()
        ))
        .body(bytes.to_vec());
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = within("an upload", request.send()).await.expect("answer");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].as_str().map(str::to_owned))
}

/// A GET of `url` (a path) with `token` and extra headers.
async fn get(
    server: &TestServer,
    token: Option<&str>,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let mut request = reqwest::Client::new().get(format!("{}{url}", server.http_url()));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = within("a download", request.send()).await.expect("answer");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
}

/// Sends a message with `attachments` over `conn`; the ack or the error frame.
async fn send_with(
    conn: &mut switchboard_client::Connection,
    room: &str,
    body: &str,
    attachments: Vec<String>,
) -> ServerFrame {
    let frame = ClientFrame::Send {
        id: Some(FrameId::Str("att".into())),
        room: room.to_owned(),
        body: body.to_owned(),
        client_msg_id: None,
        attachments,
    };
    conn.send(&frame).await.expect("send");
    loop {
        match within("the ack", conn.next_event()).await.expect("a frame") {
            frame @ (ServerFrame::Ack { .. } | ServerFrame::Error { .. }) => return frame,
            _ => continue,
        }
    }
}

#[tokio::test]
async fn files_are_uploaded_sent_listed_and_downloaded_with_safe_headers() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;

    let image = upload(&alice, &room.id, "photo.png", PNG).await;
    assert_eq!(
        (image.name.as_str(), image.size, image.content_type.as_str()),
        ("photo.png", PNG.len() as u64, "image/png")
    );
    assert_eq!(image.id.len(), 32, "128 random bits in hex: {}", image.id);
    assert_eq!(
        image.url,
        format!("/v1/rooms/{}/attachments/{}", room.id, image.id)
    );
    assert_eq!(
        image.thumbnail_url.as_deref(),
        Some(format!("{}/thumbnail", image.url).as_str())
    );
    // A path and a type claimed by the client change nothing: the name is cleaned, the type
    // sniffed.
    let text = upload(&alice, &room.id, "../../notes été.txt", TEXT).await;
    assert_eq!(text.name, "notes été.txt");
    assert_eq!(text.content_type, "text/plain; charset=utf-8");
    assert_eq!(text.thumbnail_url, None);
    assert_ne!(text.id, image.id);

    let mut watcher = server.connect(&bob).await;
    watcher.subscribe(&room.id, None).await.expect("subscribe");
    let mut sender = server.connect(&alice).await;
    let ack = send_with(
        &mut sender,
        &room.id,
        "",
        vec![text.id.clone(), image.id.clone()],
    )
    .await;
    let ServerFrame::Ack { seq, .. } = ack else {
        panic!("expected an ack, got {ack:?}");
    };
    let live = next_message(&mut watcher).await;
    assert_eq!((live.seq, live.body.as_str()), (seq, ""));
    // In upload order.
    assert_eq!(live.attachments, vec![image.clone(), text.clone()]);

    let history = bob
        .api
        .messages(&room.id, Default::default())
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().attachments, live.attachments);
    let ws_history = watcher.history(&room.id, None, None).await.unwrap();
    assert_eq!(ws_history.last().unwrap().attachments, live.attachments);

    // The text: a download, whole, ranged, and revalidated.
    let (status, headers, body) = get(&server, Some(bob.token()), &text.url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, TEXT);
    assert_eq!(
        header(&headers, "content-type"),
        "text/plain; charset=utf-8"
    );
    assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    assert!(header(&headers, "content-security-policy").starts_with("sandbox"));
    assert!(header(&headers, "cache-control").starts_with("private"));
    assert_eq!(
        header(&headers, "content-disposition"),
        "attachment; filename=\"notes _t_.txt\"; filename*=UTF-8''notes%20%C3%A9t%C3%A9.txt"
    );
    let etag = header(&headers, "etag").to_owned();
    let (status, headers, body) = get(
        &server,
        Some(bob.token()),
        &text.url,
        &[("range", "bytes=0-4")],
    )
    .await;
    assert_eq!(status, 206);
    assert_eq!(body, &TEXT[..5]);
    assert_eq!(
        header(&headers, "content-range"),
        format!("bytes 0-4/{}", TEXT.len())
    );
    let (status, _, body) = get(
        &server,
        Some(bob.token()),
        &text.url,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());

    // The image: inline, and its thumbnail.
    let (status, headers, body) = get(&server, Some(bob.token()), &image.url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body, PNG);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(header(&headers, "content-disposition").starts_with("inline; filename=\"photo.png\""));
    let thumb_url = image.thumbnail_url.as_deref().unwrap();
    let (status, headers, body) = get(&server, Some(bob.token()), thumb_url, &[]).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), "image/png");
    assert!(header(&headers, "cache-control").starts_with("private"));
    assert!(body.starts_with(b"\x89PNG\r\n\x1a\n"));
    // Text has no thumbnail.
    let (status, _, _) = get(
        &server,
        Some(bob.token()),
        &format!("{}/thumbnail", text.url),
        &[],
    )
    .await;
    assert_eq!(status, 404);

    // A message over REST may carry one too.
    let doc = upload(&alice, &room.id, "doc.pdf", b"%PDF-1.7\n%%EOF\n").await;
    assert_eq!(doc.content_type, "application/pdf");
    let posted = alice
        .api
        .post_message_with(&room.id, "the doc", None, std::slice::from_ref(&doc.id))
        .await
        .expect("post with an attachment");
    let live = next_message(&mut watcher).await;
    assert_eq!(
        (live.seq, live.attachments),
        (posted.seq, vec![doc.clone()])
    );
    // An edit keeps them, and its answer shows them.
    let edited = alice
        .api
        .edit_message(&room.id, posted.seq, "the doc, v2")
        .await
        .unwrap();
    assert_eq!(edited.attachments, vec![doc]);
}

#[tokio::test]
async fn uploads_and_downloads_are_refused_to_whoever_may_not_use_the_room() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let private = alice.room_with(false, &[&bob]).await;
    let public = alice.room_with(true, &[]).await;

    // Upload: 401 without a token, 404 an unknown or another's private room, 403 public.
    let refused = [
        (None, private.id.as_str(), 401, "unauthorized"),
        (Some(carol.token()), private.id.as_str(), 404, "not_found"),
        (Some(carol.token()), "no-such-room", 404, "not_found"),
        (Some(carol.token()), public.id.as_str(), 403, "forbidden"),
    ];
    for (token, room, status, code) in refused {
        let (got, got_code) = upload_status(&server, token, room, b"data").await;
        assert_eq!(
            (got.as_u16(), got_code.as_deref()),
            (status, Some(code)),
            "{room}"
        );
    }

    let secret = upload(&alice, &private.id, "secret.txt", b"secret").await;
    // Not yet sent: its uploader's only.
    let (status, _, _) = get(&server, Some(bob.token()), &secret.url, &[]).await;
    assert_eq!(status, 404, "unsent, another member");
    let (status, _, _) = get(&server, Some(alice.token()), &secret.url, &[]).await;
    assert_eq!(status, 200, "unsent, its uploader");
    alice
        .api
        .post_message_with(&private.id, "here", None, std::slice::from_ref(&secret.id))
        .await
        .unwrap();
    let (status, _, _) = get(&server, Some(bob.token()), &secret.url, &[]).await;
    assert_eq!(status, 200, "sent, a member");
    // A non-member and anonymous: 404 for a private room.
    for token in [Some(carol.token()), None] {
        let (status, _, body) = get(&server, token, &secret.url, &[]).await;
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
    }
    // An id of another room: looked up with the room in the URL, so not found.
    let elsewhere = alice.room_with(false, &[]).await;
    let wrong = format!("/v1/rooms/{}/attachments/{}", elsewhere.id, secret.id);
    let (status, _, _) = get(&server, Some(alice.token()), &wrong, &[]).await;
    assert_eq!(status, 404);
    let (status, _, _) = get(
        &server,
        Some(alice.token()),
        &format!("/v1/rooms/{}/attachments/{}", private.id, "0".repeat(32)),
        &[],
    )
    .await;
    assert_eq!(status, 404, "an unknown id");

    // A public room: anyone downloads, even anonymous.
    let open = upload(&alice, &public.id, "open.txt", b"for all").await;
    alice
        .api
        .post_message_with(&public.id, "", None, std::slice::from_ref(&open.id))
        .await
        .unwrap();
    for token in [Some(carol.token()), None] {
        let (status, _, body) = get(&server, token, &open.url, &[]).await;
        assert_eq!((status.as_u16(), body.as_slice()), (200, &b"for all"[..]));
    }
}

#[tokio::test]
async fn sends_name_only_their_rooms_unsent_attachments_and_at_most_ten() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let other = alice.room_with(false, &[&bob]).await;
    let code = |e: switchboard_client::ClientError| match e {
        switchboard_client::ClientError::Api { status, code, .. } => (status, code.to_string()),
        other => panic!("expected an API error, got {other:?}"),
    };
    let send = |room: &str, ids: Vec<String>| {
        let api = alice.api.clone();
        let room = room.to_owned();
        async move { api.post_message_with(&room, "x", None, &ids).await }
    };

    let mut ids = Vec::new();
    for i in 0..11 {
        ids.push(
            upload(&alice, &room.id, &format!("f{i}.txt"), b"x")
                .await
                .id,
        );
    }
    let err = send(&room.id, ids.clone()).await.unwrap_err();
    assert_eq!(code(err), (400, "bad_request".into()), "11 attachments");
    let err = send(&room.id, vec![ids[0].clone(), ids[0].clone()])
        .await
        .unwrap_err();
    assert_eq!(code(err), (400, "bad_request".into()), "one id twice");
    let err = send(&other.id, vec![ids[0].clone()]).await.unwrap_err();
    assert_eq!(code(err), (404, "not_found".into()), "another room's");
    let bobs = upload(&bob, &room.id, "bob.txt", b"b").await;
    let err = send(&room.id, vec![bobs.id.clone()]).await.unwrap_err();
    assert_eq!(
        code(err),
        (404, "not_found".into()),
        "another user's unsent upload"
    );
    // Without attachments, a body is still required.
    let err = alice
        .api
        .post_message(&room.id, " ", None)
        .await
        .unwrap_err();
    assert_eq!(code(err), (400, "bad_request".into()));

    // Ten go, once; the same over the WebSocket.
    let sent = send(&room.id, ids[..10].to_vec())
        .await
        .expect("ten attachments");
    let page = alice
        .api
        .messages(&room.id, Default::default())
        .await
        .unwrap();
    let last = page.last().unwrap();
    assert_eq!(last.seq, sent.seq);
    assert_eq!(last.attachments.len(), 10);
    let err = send(&room.id, vec![ids[0].clone()]).await.unwrap_err();
    assert_eq!(code(err), (400, "bad_request".into()), "already sent");
    // A retry (same client_msg_id) of a send with attachments gets the first answer.
    let keyed = upload(&alice, &room.id, "keyed.txt", b"k").await;
    let first = alice
        .api
        .post_message_with(
            &room.id,
            "keyed",
            Some("retry-1"),
            std::slice::from_ref(&keyed.id),
        )
        .await
        .unwrap();
    let again = alice
        .api
        .post_message_with(
            &room.id,
            "keyed",
            Some("retry-1"),
            std::slice::from_ref(&keyed.id),
        )
        .await
        .expect("a retry is answered like the first send");
    assert_eq!(again.seq, first.seq);
    let err = alice
        .api
        .post_message_with(
            &room.id,
            "other",
            Some("retry-2"),
            std::slice::from_ref(&keyed.id),
        )
        .await
        .unwrap_err();
    assert_eq!(
        code(err),
        (400, "bad_request".into()),
        "another key: already sent"
    );
    let mut conn = server.connect(&alice).await;
    let reply = send_with(&mut conn, &other.id, "", vec![ids[10].clone()]).await;
    assert!(
        matches!(&reply, ServerFrame::Error { code, .. } if code.to_string() == "not_found"),
        "{reply:?}"
    );
    let reply = send_with(&mut conn, &room.id, "", vec![ids[10].clone()]).await;
    assert!(matches!(reply, ServerFrame::Ack { .. }), "{reply:?}");
}

#[tokio::test]
async fn html_bombs_and_corrupt_images_are_downloads_and_a_deleted_messages_files_are_gone() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let room = alice.room_with(true, &[]).await;
    let html = b"<!DOCTYPE html><html><script>alert(document.cookie)</script></html>";
    let page = upload(&alice, &room.id, "page.html", html).await;
    assert_eq!(page.content_type, "text/plain; charset=utf-8");
    let svg = upload(
        &alice,
        &room.id,
        "x.svg",
        b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
    )
    .await;
    let sent = alice
        .api
        .post_message_with(&room.id, "", None, &[page.id.clone(), svg.id.clone()])
        .await
        .unwrap();
    for file in [&page, &svg] {
        let (status, headers, body) = get(&server, None, &file.url, &[]).await;
        assert_eq!(status, 200);
        assert!(body.starts_with(b"<"));
        let content_type = header(&headers, "content-type");
        assert!(
            !content_type.contains("html") && !content_type.contains("svg"),
            "{content_type}"
        );
        assert!(header(&headers, "content-disposition").starts_with("attachment;"));
        assert!(header(&headers, "content-security-policy").starts_with("sandbox"));
        assert_eq!(header(&headers, "x-content-type-options"), "nosniff");
    }

    // A decompression bomb (or a corrupt image) is stored as a file, without a thumbnail, and
    // served as a download, never decoded.
    let bomb = upload(&alice, &room.id, "bomb.png", BOMB).await;
    assert_eq!(
        (bomb.content_type.as_str(), bomb.thumbnail_url.as_deref()),
        ("image/png", None)
    );
    let corrupt = upload(&alice, &room.id, "half.png", &PNG[..50]).await;
    assert_eq!(corrupt.thumbnail_url, None);
    alice
        .api
        .post_message_with(&room.id, "", None, &[bomb.id.clone(), corrupt.id.clone()])
        .await
        .unwrap();
    for file in [&bomb, &corrupt] {
        let (status, headers, _) = get(&server, None, &file.url, &[]).await;
        assert_eq!(status, 200);
        assert!(header(&headers, "content-disposition").starts_with("attachment;"));
    }

    alice.api.delete_message(&room.id, sent.seq).await.unwrap();
    for file in [&page, &svg] {
        let (status, _, _) = get(&server, Some(alice.token()), &file.url, &[]).await;
        assert_eq!(status, 404, "the attachment of a deleted message");
    }
    let history = alice
        .api
        .messages(&room.id, Default::default())
        .await
        .unwrap();
    let tombstone = history.iter().find(|m| m.seq == sent.seq).unwrap();
    assert!(tombstone.deleted && tombstone.attachments.is_empty());
}

/// Writes `head` on a fresh connection to `server`, then `body` (if any), and reads the
/// answer's status line and body (until the server closes or answers with a length).
async fn raw_exchange(server: &TestServer, head: String, body: &[u8], close_write: bool) -> String {
    let mut socket = TcpStream::connect(server.addr()).await.expect("connect");
    socket.write_all(head.as_bytes()).await.unwrap();
    socket.write_all(body).await.unwrap();
    if close_write {
        socket.shutdown().await.unwrap();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    within("the answer", async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&answer);
                    if let Some((headers, rest)) = text.split_once("\r\n\r\n") {
                        let length = headers.lines().find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        });
                        if length.is_some_and(|n| rest.len() >= n) {
                            break;
                        }
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn over_the_limit_is_refused_early_and_a_truncated_upload_stores_nothing() {
    let server = TestServer::start_with(&["--max-attachment-bytes", "1024"]).await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let path = format!("/v1/rooms/{}/attachments?name=big.bin", room.id);
    let auth = format!("Authorization: Bearer {}\r\n", alice.token());

    // A Content-Length over the limit: 413 at once, although not a byte of the body was sent.
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 100000000\r\n\r\n");
    let answer = raw_exchange(&server, head, b"", false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too_large\""), "{answer}");

    // A chunked body with no length: 413 as soon as it passes the limit, while the body has
    // not ended (its last chunk is never sent).
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Transfer-Encoding: chunked\r\n\r\n");
    let chunk = format!("400\r\n{}\r\n", "a".repeat(0x400));
    let answer = raw_exchange(&server, head, format!("{chunk}{chunk}").as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");

    // Exactly the limit is taken.
    let at_limit = upload(&alice, &room.id, "edge.bin", &[7u8; 1024]).await;
    assert_eq!(at_limit.size, 1024);
    assert_eq!(at_limit.content_type, "application/octet-stream");

    // A body that breaks off: 400, and nothing is kept (no spool file, no new blob or row).
    let before = stored(&server).await;
    let head = format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 1000\r\n\r\n");
    let answer = raw_exchange(&server, head, &[1u8; 300], true).await;
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    // The handler ends (and drops its spool) when the body fails, before the answer goes out;
    // without an answer (the server closed first), wait for it within the bound.
    within("the spool to be emptied", async {
        while spooled(&server) != 0 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(stored(&server).await, before, "nothing new stored");
}

/// Files in the hub's upload spool.
fn spooled(server: &TestServer) -> usize {
    std::fs::read_dir(server.data_dir().join("uploads"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// (blobs, attachment rows) stored: blob files under the media directory (embedded), or rows
/// of the PostgreSQL tables (scaled; the embedded count of rows is not looked at: a row is
/// only ever written after its blob).
async fn stored(server: &TestServer) -> (usize, i64) {
    match server.database_url() {
        Some(url) => {
            let client = switchboard_testkit::services::connect(url).await;
            let blobs: i64 = client
                .query_one("SELECT count(*) FROM blobs", &[])
                .await
                .unwrap()
                .get(0);
            let rows: i64 = client
                .query_one("SELECT count(*) FROM attachments", &[])
                .await
                .unwrap()
                .get(0);
            (usize::try_from(blobs).unwrap(), rows)
        }
        None => {
            let media = server.data_dir().join("media");
            let mut files = 0;
            for dir in std::fs::read_dir(&media).unwrap() {
                let dir = dir.unwrap();
                if dir.file_name() != "tmp" && dir.path().is_dir() {
                    files += std::fs::read_dir(dir.path()).unwrap().count();
                }
            }
            (files, 0)
        }
    }
}

#[tokio::test]
async fn uploads_count_against_the_send_limit() {
    let server =
        TestServer::start_with(&["--user-rate-per-sec", "0", "--user-rate-burst", "2"]).await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    upload(&alice, &room.id, "one.txt", b"1").await;
    upload(&alice, &room.id, "two.txt", b"2").await;
    let (status, code) = upload_status(&server, Some(alice.token()), &room.id, b"3").await;
    assert_eq!(
        (status.as_u16(), code.as_deref()),
        (429, Some("rate_limited"))
    );
}

/// At most 64 attachment uploads are received at once by a hub: with 64 bodies under way (16
/// users, 4 each, the most one user may have), one more is `503 unavailable` with
/// `Retry-After`, before its body is read; once they end, uploads are taken again.
#[tokio::test]
async fn uploads_at_once_are_bounded() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let mut uploaders = Vec::new();
    for _ in 0..16 {
        uploaders.push(server.user("uploader").await);
    }
    let room = alice
        .room_with(false, &uploaders.iter().collect::<Vec<_>>())
        .await;
    let path = format!("/v1/rooms/{}/attachments?name=slow.bin", room.id);
    let mut stalled = Vec::new();
    for user in &uploaders {
        for _ in 0..4 {
            stalled.push(stalled_upload(&server, "POST", &path, user.token()).await);
        }
    }
    let token = alice.token().to_owned();
    let (status, code) = upload_status(&server, Some(&token), &room.id, TEXT).await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("unavailable"))
    );
    drop(stalled);
    // The stalled uploads end (their clients went away) and free their slots.
    within("a slot again", async {
        loop {
            let (status, _) = upload_status(&server, Some(&token), &room.id, TEXT).await;
            if status == StatusCode::CREATED {
                return;
            }
            // Still full, or (the retries count as sends) over the send limit for a moment.
            assert!(
                status == StatusCode::SERVICE_UNAVAILABLE
                    || status == StatusCode::TOO_MANY_REQUESTS,
                "{status}"
            );
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// One user may have 4 uploads under way on a hub: a fifth is `429 rate_limited` with
/// `Retry-After` before its body is read, while another user still uploads; when one of the
/// four ends, the user may upload again.
#[tokio::test]
async fn a_user_has_at_most_four_uploads_under_way() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let path = format!("/v1/rooms/{}/attachments?name=slow.bin", room.id);
    let mut stalled = Vec::new();
    for _ in 0..4 {
        stalled.push(stalled_upload(&server, "POST", &path, alice.token()).await);
    }
    let response = within(
        "a fifth upload",
        reqwest::Client::new()
            .post(format!("{}{path}", server.http_url()))
            .bearer_auth(alice.token())
            .body(TEXT.to_vec())
            .send(),
    )
    .await
    .expect("answer");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let (status, _) = upload_status(&server, Some(bob.token()), &room.id, TEXT).await;
    assert_eq!(status, StatusCode::CREATED, "bob is not held up");
    stalled.pop();
    within("alice's turn again", async {
        loop {
            let (status, _) = upload_status(&server, Some(alice.token()), &room.id, TEXT).await;
            if status == StatusCode::CREATED {
                return;
            }
            assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
            tokio::task::yield_now().await;
        }
    })
    .await;
}

/// `--upload-bytes-per-day`: what a user uploaded in the last 24 hours counts, on every node
/// (it is read from the store). An upload that does not fit is `429 rate_limited` with the
/// wait until the oldest upload leaves the day, from its `Content-Length` or, for a streamed
/// body, as it passes what is left; nothing of it is kept. A file over the whole allowance is
/// `413 too_large`. Another user has an allowance of their own.
#[tokio::test]
async fn uploads_past_the_daily_allowance_are_refused() {
    let server = TestServer::start_with(&["--upload-bytes-per-day", "1000"]).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = alice.room_with(false, &[&bob]).await;
    let (status, _) = upload_status(&server, Some(alice.token()), &room.id, &[b'a'; 600]).await;
    assert_eq!(status, StatusCode::CREATED);

    // 600 more do not fit: refused from the Content-Length, with a day's wait at most.
    let response = within(
        "an upload past the allowance",
        reqwest::Client::new()
            .post(format!(
                "{}/v1/rooms/{}/attachments?name=b.bin",
                server.http_url(),
                room.id
            ))
            .bearer_auth(alice.token())
            .body(vec![b'b'; 600])
            .send(),
    )
    .await
    .expect("answer");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((86_000..=86_400).contains(&wait), "Retry-After {wait}");
    let body: serde_json::Value = response.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");

    // Streamed (chunked, no length): cut off as it passes the 400 bytes left.
    let mut socket = TcpStream::connect(server.addr()).await.expect("connect");
    let head = format!(
        "POST /v1/rooms/{}/attachments?name=c.bin HTTP/1.1\r\nHost: hub\r\n\
         Authorization: Bearer {}\r\nTransfer-Encoding: chunked\r\n\r\n",
        room.id,
        alice.token()
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    socket
        .write_all(format!("{:x}\r\n", 500).as_bytes())
        .await
        .expect("chunk size");
    socket.write_all(&[b'c'; 500]).await.expect("chunk");
    socket.write_all(b"\r\n").await.expect("chunk end");
    // The body does not end; the answer comes anyway.
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    within("the refusal of a streamed body", async {
        while !answer.windows(4).any(|w| w == b"\r\n\r\n") || !answer.contains(&b'}') {
            let n = socket.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&answer));
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 429"), "{text}");
    assert!(text.contains("\"rate_limited\""), "{text}");
    drop(socket);

    // Over the whole allowance: waiting would not help.
    let (status, code) = upload_status(&server, Some(bob.token()), &room.id, &[b'd'; 1001]).await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::PAYLOAD_TOO_LARGE, Some("too_large"))
    );
    // Bob's own allowance is whole; alice's 400 bytes left are hers still (nothing refused
    // was counted).
    let (status, _) = upload_status(&server, Some(bob.token()), &room.id, &[b'e'; 1000]).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = upload_status(&server, Some(alice.token()), &room.id, &[b'f'; 400]).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = upload_status(&server, Some(alice.token()), &room.id, b"g").await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
}

/// The garbage collector of a running hub (`--media-gc-grace-secs 1`, a sweep every second):
/// a replaced avatar's files, and a deleted message's attachment (row and file), are removed;
/// the current avatar's two files stay.
#[tokio::test]
async fn the_sweep_removes_what_nothing_refers_to() {
    let server = TestServer::start_with(&[
        "--media-gc-grace-secs",
        "1",
        "--media-gc-interval-secs",
        "1",
    ])
    .await;
    let alice = server.user("alice").await;
    let room = alice.room_with(false, &[]).await;
    let first = switchboard_media::images::identicon("first", 300);
    let second = switchboard_media::images::identicon("second", 300);
    within("an avatar", alice.api.set_avatar(first))
        .await
        .expect("first avatar");
    within("an avatar", alice.api.set_avatar(second))
        .await
        .expect("second avatar");
    let file = upload(&alice, &room.id, "notes.txt", TEXT).await;
    let sent = within(
        "a send",
        alice
            .api
            .post_message_with(&room.id, "", None, std::slice::from_ref(&file.id)),
    )
    .await
    .expect("send");
    within("a delete", alice.api.delete_message(&room.id, sent.seq))
        .await
        .expect("delete");
    // Awaited: sweeps run every second; each one is looked at through the store.
    let left = within_for(Duration::from_secs(20), "the sweep", async {
        loop {
            let left = stored(&server).await;
            if left == (2, 0) || (server.database_url().is_none() && left.0 == 2) {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    assert_eq!(left.0, 2, "the current avatar's two files");
    // The current avatar is still served (the redirect is followed to its file).
    let status = within(
        "the avatar",
        reqwest::get(format!(
            "{}/v1/users/{}/avatar?size=256",
            server.http_url(),
            alice.username
        )),
    )
    .await
    .expect("avatar")
    .status();
    assert_eq!(status, StatusCode::OK);
}
