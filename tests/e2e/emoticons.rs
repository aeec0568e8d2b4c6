//! Custom emoticons end to end, in both configurations: an admin uploads one (re-encoded, served
//! at its content-addressed URL with the immutable caching headers), anyone lists them with an
//! ETag (304 when unchanged, a new tag after a change), every refusal (401, 403, 400 shortcode,
//! 409 collision and full list, 413 from `Content-Length` and from a streamed body, 415 SVG and
//! HTML, 400 decompression bomb, truncated image and upload cut short, 404 delete), and the
//! `emoticons` frame that reaches every open WebSocket, anonymous ones and ones subscribed to
//! nothing included.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard_client::protocol::ws::ServerFrame;
use switchboard_client::Api;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::admin::admin;
use crate::support::{next_event, within, TestServer};

/// A real PNG of `size`×`size` pixels (a generated identicon).
fn png(seed: &str, size: u32) -> Vec<u8> {
    switchboard_media::images::identicon(seed, size)
}

/// CRC-32 (ISO-HDLC, as PNG chunks use).
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&u32::try_from(data.len()).unwrap().to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

/// A decompression bomb: a few dozen bytes whose well-formed header claims 50000×50000 RGBA
/// pixels (10 GB decoded).
fn bomb() -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&50_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib of a few zero bytes: the start of rows of zeros.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x60, 0x00, 0x00, 0x00, 0x02, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

/// `PUT /v1/emoticons/{code}` with `body`: the status and the JSON answer.
async fn put(api: &Api, code: &str, body: Vec<u8>) -> (StatusCode, Value) {
    let response = within(
        "the upload's answer",
        api.request(Method::PUT, &format!("/v1/emoticons/{code}"))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(body)
            .send(),
    )
    .await
    .expect("the upload is answered");
    let status = response.status();
    let bytes = response.bytes().await.expect("a body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, json)
}

async fn delete(api: &Api, code: &str) -> (StatusCode, Value) {
    let response = within(
        "the delete's answer",
        api.request(Method::DELETE, &format!("/v1/emoticons/{code}"))
            .send(),
    )
    .await
    .expect("the delete is answered");
    let status = response.status();
    let bytes = response.bytes().await.expect("a body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The error code of a JSON error answer.
fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no code>")
}

/// `GET /v1/emoticons` without a token: the status, the ETag and the list.
async fn list(server: &TestServer, if_none_match: Option<&str>) -> (StatusCode, String, Value) {
    let mut request = reqwest::Client::new().get(format!("{}/v1/emoticons", server.http_url()));
    if let Some(tag) = if_none_match {
        request = request.header(IF_NONE_MATCH, tag);
    }
    let response = within("the list", request.send()).await.expect("listed");
    let status = response.status();
    let headers = response.headers().clone();
    if status == StatusCode::OK {
        assert_eq!(headers[CACHE_CONTROL], "no-cache");
    }
    let etag = headers
        .get(ETAG)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let bytes = response.bytes().await.expect("a body");
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, etag, json)
}

/// The shortcodes of a list answer.
fn shortcodes(list: &Value) -> Vec<String> {
    list["emoticons"]
        .as_array()
        .expect("an emoticons array")
        .iter()
        .map(|e| e["shortcode"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn admins_add_and_remove_emoticons_listed_with_an_etag_and_served_immutable() {
    let server = TestServer::start().await;
    let root = admin(&server).await;

    let (status, empty_tag, empty) = list(&server, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty, serde_json::json!({"emoticons": []}));
    assert!(
        empty_tag.starts_with('"') && empty_tag.ends_with('"'),
        "a strong tag: {empty_tag}"
    );

    let (status, party) = put(&root.api, "party", png("party", 300)).await;
    assert_eq!(status, StatusCode::CREATED, "{party}");
    assert_eq!(party["shortcode"], "party");
    let url = party["url"].as_str().expect("a url").to_owned();
    assert!(url.starts_with("/v1/media/"), "{url}");

    // Listed, with a new tag; the tag revalidates to 304.
    let (status, tag, listed) = list(&server, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(tag, empty_tag);
    assert_eq!(listed["emoticons"], serde_json::json!([party]));
    let (status, again, _) = list(&server, Some(&tag)).await;
    assert_eq!(status, StatusCode::NOT_MODIFIED);
    assert_eq!(again, tag);
    let (status, _, _) = list(&server, Some(&empty_tag)).await;
    assert_eq!(status, StatusCode::OK, "an old tag gets the list");

    // The image: a fresh 128 px PNG at its content-addressed URL, cached forever.
    let image = within(
        "the image",
        reqwest::get(format!("{}{url}", server.http_url())),
    )
    .await
    .expect("served");
    assert_eq!(image.status(), StatusCode::OK);
    let headers = image.headers().clone();
    assert_eq!(headers[CONTENT_TYPE], "image/png");
    assert_eq!(
        headers[CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let hash = url.trim_start_matches("/v1/media/");
    assert_eq!(headers[ETAG].to_str().unwrap(), format!("\"{hash}\""));
    let bytes = image.bytes().await.expect("the image's bytes");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"));
    let (width, height) = (&bytes[16..20], &bytes[20..24]);
    assert_eq!(
        (width, height),
        (&128u32.to_be_bytes()[..], &128u32.to_be_bytes()[..])
    );

    // A second one: sorted by shortcode, another tag.
    let (status, _) = put(&root.api, "ok_2", png("ok", 16)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, two_tag, two) = list(&server, None).await;
    assert_eq!(shortcodes(&two), ["ok_2", "party"]);
    assert_ne!(two_tag, tag);

    // Removed: gone from the list, the tag changes again; a second delete is 404.
    let (status, body) = delete(&root.api, "party").await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (_, after, listed) = list(&server, Some(&two_tag)).await;
    assert_eq!(shortcodes(&listed), ["ok_2"]);
    assert_ne!(after, two_tag);
    let (status, body) = delete(&root.api, "party").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    // The shortcode is free again.
    let (status, _) = put(&root.api, "party", png("party", 64)).await;
    assert_eq!(status, StatusCode::CREATED);
}

#[tokio::test]
async fn every_bad_upload_and_caller_is_refused_and_nothing_is_stored() {
    let server = TestServer::start_with(&["--max-emoticons", "2"]).await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    let good = png("good", 64);

    // Who: 401 without a token, 403 for a user (upload and delete).
    let (status, body) = put(&server.api(), "nope", good.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = put(&bob.api, "nope", good.clone()).await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));
    let (status, body) = delete(&server.api(), "nope").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let (status, body) = delete(&bob.api, "nope").await;
    assert_eq!((status, code(&body)), (StatusCode::FORBIDDEN, "forbidden"));

    // Shortcodes: `[a-z0-9_]{2,32}`.
    let long = "x".repeat(33);
    for bad in ["a", "Party", "bad-code", "%3Aok%3A", long.as_str()] {
        let (status, body) = put(&root.api, bad, good.clone()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::BAD_REQUEST, "bad_request"),
            "{bad}"
        );
    }
    let (status, body) = delete(&root.api, "Bad").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request")
    );

    // Not an accepted image: SVG (with script), HTML, text.
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>"#;
    let html = b"<!doctype html><html><script>alert(1)</script></html>";
    for (what, body) in [("svg", &svg[..]), ("html", &html[..]), ("text", b"hello")] {
        let (status, answer) = put(&root.api, "evil", body.to_vec()).await;
        assert_eq!(
            (status, code(&answer)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{what}"
        );
    }

    // A decompression bomb (refused from its header) and a truncated image.
    let (status, body) = put(&root.api, "bomb", bomb()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{body}"
    );
    let big = png("big", 512);
    let (status, body) = put(&root.api, "cut", big[..big.len() / 2].to_vec()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{body}"
    );

    // Over 256 KiB, with its Content-Length.
    let mut huge = png("huge", 64);
    huge.resize(256 * 1024 + 1, 0);
    let (status, body) = put(&root.api, "huge", huge).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large")
    );

    // Nothing of all that was stored.
    let (_, _, listed) = list(&server, None).await;
    assert_eq!(shortcodes(&listed), Vec::<String>::new());

    // A collision, then a full list (`--max-emoticons 2`).
    assert_eq!(
        put(&root.api, "one", good.clone()).await.0,
        StatusCode::CREATED
    );
    let (status, body) = put(&root.api, "one", png("other", 64)).await;
    assert_eq!((status, code(&body)), (StatusCode::CONFLICT, "conflict"));
    assert_eq!(
        put(&root.api, "two", good.clone()).await.0,
        StatusCode::CREATED
    );
    let (status, body) = put(&root.api, "three", good.clone()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
    let (_, _, listed) = list(&server, None).await;
    assert_eq!(shortcodes(&listed), ["one", "two"]);

    // Deleting what does not exist.
    let (status, body) = delete(&root.api, "nine").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
}

/// Sends a raw request head on a fresh connection, then `body` (ignoring a write the hub cut
/// off), and reads the answer without ever finishing the body: the hub must answer on its own.
/// With `hang_up`, the client's side is shut after the body (an upload cut short).
async fn raw_upload(
    server: &TestServer,
    token: &str,
    head: &str,
    body: &[u8],
    hang_up: bool,
) -> String {
    let mut socket = TcpStream::connect(server.addr()).await.expect("connect");
    let request = format!(
        "PUT /v1/emoticons/raw HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/octet-stream\r\n{head}\r\n"
    );
    socket
        .write_all(request.as_bytes())
        .await
        .expect("the head");
    let _ = socket.write_all(body).await;
    if hang_up {
        let _ = socket.shutdown().await;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    within("the hub's answer", async {
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buf[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn an_upload_over_the_bound_is_refused_before_its_end() {
    let server = TestServer::start().await;
    let root = admin(&server).await;

    // A Content-Length over the bound: 413 at once, with none of the body sent.
    let answer = raw_upload(
        &server,
        root.token(),
        "Content-Length: 10485760\r\n",
        b"",
        false,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");

    // A chunked body without a length: 413 as soon as it passes 256 KiB, though it never ends.
    let mut chunks = Vec::new();
    let piece = vec![0x89u8; 32 * 1024];
    for _ in 0..10 {
        chunks.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunks.extend_from_slice(&piece);
        chunks.extend_from_slice(b"\r\n");
    }
    let answer = raw_upload(
        &server,
        root.token(),
        "Transfer-Encoding: chunked\r\n",
        &chunks,
        false,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("too_large"), "{answer}");

    // Cut short: half of a real image, then the client hangs up: 400, nothing is stored.
    let image = png("cut", 256);
    let head = format!("Content-Length: {}\r\n", image.len());
    let answer = raw_upload(
        &server,
        root.token(),
        &head,
        &image[..image.len() / 2],
        true,
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("bad_request"), "{answer}");

    let (_, _, listed) = list(&server, None).await;
    assert_eq!(shortcodes(&listed), Vec::<String>::new());
}

/// The next `emoticons` frame on `conn` (other events, if any, are skipped).
async fn next_emoticons(conn: &mut switchboard_client::Connection) -> String {
    loop {
        if let ServerFrame::Emoticons { etag } = next_event(conn).await {
            return etag;
        }
    }
}

#[tokio::test]
async fn every_open_socket_hears_that_the_emoticons_changed() {
    let server = TestServer::start().await;
    let root = admin(&server).await;
    let bob = server.user("bob").await;
    // Subscribed to nothing: an anonymous socket and a user's.
    let mut anon = server.connect_anon().await;
    let mut user = server.connect(&bob).await;

    let (status, _) = put(&root.api, "wave", png("wave", 32)).await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, tag, _) = list(&server, None).await;
    for conn in [&mut anon, &mut user] {
        let etag = next_emoticons(conn).await;
        assert_eq!(
            format!("\"{etag}\""),
            tag,
            "the frame names the list's new tag"
        );
    }

    let (status, _) = delete(&root.api, "wave").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, tag, _) = list(&server, None).await;
    for conn in [&mut anon, &mut user] {
        let etag = next_emoticons(conn).await;
        assert_eq!(format!("\"{etag}\""), tag);
    }
    // A refused upload changes nothing and tells nobody: the next frame is the next change.
    assert_eq!(
        put(&bob.api, "nope", png("n", 8)).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&root.api, "back", png("b", 8)).await.0,
        StatusCode::CREATED
    );
    let (_, tag, _) = list(&server, None).await;
    let etag = next_emoticons(&mut anon).await;
    assert_eq!(format!("\"{etag}\""), tag);
}
