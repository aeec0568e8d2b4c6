//! Avatars end to end, on both backends: the identicon every user has (deterministic,
//! immutable, 304), the redirect that names the current avatar (and changes after an upload
//! and a delete), uploads re-encoded without the original's metadata, and every refusal (401,
//! 400 for a decompression bomb and a corrupt image, 413 over 2 MiB from `Content-Length` and
//! from a streamed body, 415 for SVG and HTML). The routes live under paths the auth service
//! also serves (`/v1/auth/*`, `/v1/users/*`): these tests show that the hub answers them in
//! both configurations (in-process auth router, or the proxy to an auth node).

use std::io::Cursor;
use std::time::{Duration, Instant};

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgba, RgbaImage};
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use switchboard_client::protocol::rest::AvatarUrls;

use crate::support::{stalled_upload, unique_name, within, TestServer, TestUser};

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const MAX: usize = 2 * 1024 * 1024;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// A 40×30 gradient.
fn picture() -> DynamicImage {
    DynamicImage::ImageRgba8(RgbaImage::from_fn(40, 30, |x, y| {
        Rgba([(x * 6) as u8, (y * 8) as u8, 128, 255])
    }))
}

fn encode(image: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    image.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut out = (data.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let mut crc = crc32fast::Hasher::new();
    crc.update(kind);
    crc.update(data);
    out.extend_from_slice(&crc.finalize().to_be_bytes());
    out
}

/// A valid PNG with a `tEXt` chunk holding `text` right after its header.
fn png_with_text(text: &[u8]) -> Vec<u8> {
    let png = encode(&picture(), ImageFormat::Png);
    // The signature (8) and IHDR (4 + 4 + 13 + 4).
    let mut out = png[..33].to_vec();
    out.extend(chunk(b"tEXt", text));
    out.extend_from_slice(&png[33..]);
    out
}

/// A valid JPEG with an EXIF segment (APP1) holding `secret`.
fn jpeg_with_exif(secret: &[u8]) -> Vec<u8> {
    let jpeg = encode(
        &DynamicImage::ImageRgb8(picture().to_rgb8()),
        ImageFormat::Jpeg,
    );
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08\0\0".to_vec();
    exif.extend_from_slice(secret);
    let mut out = jpeg[..2].to_vec(); // SOI
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&exif);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// A PNG header claiming 100000×100000 RGBA pixels (40 GB decoded).
fn bomb() -> Vec<u8> {
    let mut ihdr = 100_000u32.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    out.extend(chunk(b"IHDR", &ihdr));
    out.extend(chunk(b"IDAT", &[0x78, 0x9c]));
    out.extend(chunk(b"IEND", b""));
    out
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn header(resp: &reqwest::Response, name: reqwest::header::HeaderName) -> &str {
    resp.headers()
        .get(&name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .to_str()
        .expect("an ASCII header")
}

/// `GET` `path` on the hub, anonymously.
async fn get(server: &TestServer, path: &str) -> reqwest::Response {
    within(
        path,
        http().get(format!("{}{path}", server.http_url())).send(),
    )
    .await
    .expect("GET")
}

/// The redirect of `username`'s avatar at `query` (`""` or `?size=N`): its `Location`.
async fn avatar_location(server: &TestServer, username: &str, query: &str) -> String {
    let resp = get(server, &format!("/v1/users/{username}/avatar{query}")).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert_eq!(header(&resp, CACHE_CONTROL), "no-cache");
    header(&resp, LOCATION).to_owned()
}

/// `PUT /v1/auth/me/avatar` with `body` as `user` (`None`: no token): status and JSON body.
async fn put(server: &TestServer, user: Option<&TestUser>, body: Vec<u8>) -> (StatusCode, Value) {
    let mut req = http()
        .put(format!("{}/v1/auth/me/avatar", server.http_url()))
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body);
    if let Some(user) = user {
        req = req.bearer_auth(user.token());
    }
    let resp = within("PUT avatar", req.send()).await.expect("PUT");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

/// A served image: 200, PNG, immutable, nosniff; its bytes and ETag.
async fn image(server: &TestServer, path: &str) -> (Bytes, String) {
    let resp = get(server, path).await;
    assert_eq!(resp.status(), StatusCode::OK, "{path}");
    assert_eq!(header(&resp, CONTENT_TYPE), "image/png");
    assert_eq!(header(&resp, CACHE_CONTROL), IMMUTABLE);
    assert_eq!(
        header(&resp, "x-content-type-options".parse().unwrap()),
        "nosniff"
    );
    let etag = header(&resp, ETAG).to_owned();
    (resp.bytes().await.expect("body"), etag)
}

/// A conditional `GET` of `path` with `etag` is a 304 without a body.
async fn not_modified(server: &TestServer, path: &str, etag: &str) {
    let resp = within(
        "conditional GET",
        http()
            .get(format!("{}{path}", server.http_url()))
            .header(IF_NONE_MATCH, etag)
            .send(),
    )
    .await
    .expect("GET");
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED, "{path}");
    assert_eq!(header(&resp, ETAG), etag);
    assert!(resp.bytes().await.unwrap().is_empty());
}

fn dimensions(png: &[u8]) -> (u32, u32) {
    let decoded = image::load_from_memory_with_format(png, ImageFormat::Png).expect("a PNG");
    (decoded.width(), decoded.height())
}

#[tokio::test]
async fn identicons_are_deterministic_immutable_and_for_any_id() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let path = format!("/v1/identicons/{}", alice.user.id);

    let (first, etag) = image(&server, &format!("{path}?size=64")).await;
    let (again, etag_again) = image(&server, &format!("{path}?size=64")).await;
    assert_eq!(first, again, "the same bytes on every request");
    assert_eq!(etag, etag_again);
    assert_eq!(dimensions(&first), (64, 64));
    let (default, _) = image(&server, &path).await;
    assert_eq!(default, first, "64 by default");
    not_modified(&server, &format!("{path}?size=64"), &etag).await;

    let (large, large_etag) = image(&server, &format!("{path}?size=256")).await;
    assert_eq!(dimensions(&large), (256, 256));
    assert_ne!(large_etag, etag);

    // An id nobody has gets one too (the route does not say who exists), and another one.
    let (nobody, _) = image(
        &server,
        "/v1/identicons/0190a1b2-0000-7000-8000-000000000000",
    )
    .await;
    assert_ne!(nobody, first);

    for bad in [
        format!("{path}?size=65"),
        format!("{path}?size=0"),
        format!("{path}?size=big"),
        "/v1/identicons/a.b?size=64".to_owned(),
        format!("/v1/identicons/{}", "a".repeat(65)),
    ] {
        let resp = get(&server, &bad).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "bad_request", "{bad}");
    }
}

#[tokio::test]
async fn the_redirect_follows_uploads_and_deletes() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let name = &alice.username;
    let identicon = format!("/v1/identicons/{}?size=64", alice.user.id);

    // Anyone may ask, without a token.
    assert_eq!(avatar_location(&server, name, "").await, identicon);
    assert_eq!(
        avatar_location(&server, name, "?size=256").await,
        format!("/v1/identicons/{}?size=256", alice.user.id)
    );
    image(&server, &identicon).await;

    let (status, body) = put(
        &server,
        Some(&alice),
        png_with_text(b"Comment\0gps 48.85,2.35"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let urls: AvatarUrls = serde_json::from_value(body).expect("{small_url, large_url}");
    assert!(urls.small_url.starts_with("/v1/media/"), "{urls:?}");
    assert_eq!(avatar_location(&server, name, "").await, urls.small_url);
    assert_eq!(
        avatar_location(&server, name, "?size=64").await,
        urls.small_url
    );
    assert_eq!(
        avatar_location(&server, name, "?size=256").await,
        urls.large_url
    );

    let (small, etag) = image(&server, &urls.small_url).await;
    assert_eq!(dimensions(&small), (64, 64));
    assert!(!contains(&small, b"tEXt") && !contains(&small, b"gps 48.85"));
    assert_eq!(
        etag,
        format!("\"{}\"", urls.small_url.trim_start_matches("/v1/media/"))
    );
    not_modified(&server, &urls.small_url, &etag).await;
    let (large, _) = image(&server, &urls.large_url).await;
    assert_eq!(dimensions(&large), (256, 256));
    assert!(!contains(&large, b"gps 48.85"));

    // Another picture: another URL.
    let other = encode(
        &DynamicImage::ImageRgba8(RgbaImage::from_pixel(8, 8, Rgba([255, 0, 0, 255]))),
        ImageFormat::Png,
    );
    let next = alice.api.set_avatar(other).await.expect("set_avatar");
    assert_ne!(next.small_url, urls.small_url);
    assert_eq!(avatar_location(&server, name, "").await, next.small_url);

    // DELETE: the identicon again (idempotent).
    let resp = within(
        "DELETE avatar",
        alice
            .api
            .request(Method::DELETE, "/v1/auth/me/avatar")
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(avatar_location(&server, name, "").await, identicon);
    alice.api.clear_avatar().await.expect("a second DELETE");

    // Unknown users and bad sizes.
    let resp = get(
        &server,
        &format!("/v1/users/{}/avatar", unique_name("nobody")),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert_eq!(code(&resp.json().await.unwrap()), "user_not_found");
    let resp = get(&server, &format!("/v1/users/{name}/avatar?size=32")).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(code(&resp.json().await.unwrap()), "bad_request");

    // The auth routes beside these ones still reach the auth service.
    let me = alice.api.me().await.expect("GET /v1/auth/me");
    assert_eq!(me.user.id, alice.user.id);
    let resp = within(
        "GET /v1/users/{username}",
        alice
            .api
            .request(Method::GET, &format!("/v1/users/{name}"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_jpeg_loses_its_exif() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    let jpeg = jpeg_with_exif(b"SECRET-GPS-48.85");
    assert!(contains(&jpeg, b"SECRET-GPS-48.85"));
    let urls = bob.api.set_avatar(jpeg).await.expect("a JPEG is accepted");
    for url in [&urls.small_url, &urls.large_url] {
        let (png, _) = image(&server, url).await;
        assert!(!contains(&png, b"SECRET-GPS") && !contains(&png, b"Exif"));
    }
}

#[tokio::test]
async fn refusals() {
    let server = TestServer::start().await;
    let carol = server.user("carol").await;

    // No token, or a bad one: 401, before the body is looked at.
    let (status, body) = put(&server, None, png_with_text(b"a\0b")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNAUTHORIZED, "unauthorized")
    );
    let resp = within(
        "DELETE without a token",
        http()
            .delete(format!("{}/v1/auth/me/avatar", server.http_url()))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = within(
        "PUT with a bad token",
        http()
            .put(format!("{}/v1/auth/me/avatar", server.http_url()))
            .bearer_auth("not-a-token")
            .body(png_with_text(b"a\0b"))
            .send(),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    // Not images: 415, whatever the Content-Type says.
    for text in [
        &b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"></svg>"[..],
        b"<?xml version=\"1.0\"?><svg xmlns=\"http://www.w3.org/2000/svg\"/>",
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        b"",
    ] {
        let (status, body) = put(&server, Some(&carol), text.to_vec()).await;
        assert_eq!(
            (status, code(&body)),
            (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            "{}",
            String::from_utf8_lossy(text)
        );
    }

    // A decompression bomb: 400 at once, from the header alone.
    let started = Instant::now();
    let (status, body) = put(&server, Some(&carol), bomb()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // Corrupt: a PNG cut in half.
    let png = png_with_text(b"a\0b");
    let (status, body) = put(&server, Some(&carol), png[..png.len() / 2].to_vec()).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "bad_request"),
        "{body}"
    );

    // Over 2 MiB, with a Content-Length: 413 before the body is read.
    let (status, body) = put(&server, Some(&carol), vec![0u8; MAX + 1]).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        "{body}"
    );

    // Nothing of these changed the avatar.
    assert_eq!(
        avatar_location(&server, &carol.username, "").await,
        format!("/v1/identicons/{}?size=64", carol.user.id)
    );
}

/// A streamed (chunked) body, without `Content-Length`, that passes 2 MiB and then never
/// ends: the hub answers 413 as the bound is passed, without waiting for the rest. (Raw HTTP
/// on a socket, so that the body can stall after the bound.)
#[tokio::test]
async fn a_streamed_upload_is_stopped_at_the_bound() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start().await;
    let dave = server.user("dave").await;
    let mut socket = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let head = format!(
        "PUT /v1/auth/me/avatar HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {}\r\n\
         Content-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n",
        dave.token()
    );
    socket.write_all(head.as_bytes()).await.expect("head");
    let piece = vec![0x89u8; 64 * 1024];
    let (mut read, mut write) = socket.into_split();
    let writer = tokio::spawn(async move {
        for _ in 0..=MAX / piece.len() {
            write
                .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                .await?;
            write.write_all(&piece).await?;
            write.write_all(b"\r\n").await?;
        }
        // The body never ends: the writer half stays open.
        std::future::pending::<()>().await;
        Ok::<_, std::io::Error>(write)
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    within("the 413 of a body that never ends", async {
        while !contains(&answer, b"\r\n\r\n") || !contains(&answer, b"}") {
            let n = read.read(&mut buf).await.expect("read");
            assert!(n > 0, "closed without an answer");
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    writer.abort();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"too_large\""), "{text}");
}

/// Exactly 2 MiB is allowed: a valid PNG padded with a `tEXt` chunk to the byte.
#[tokio::test]
async fn exactly_two_mib_is_accepted() {
    let server = TestServer::start().await;
    let erin = server.user("erin").await;
    let base = png_with_text(b"k\0");
    let padding = MAX - base.len();
    let mut text = b"k\0".to_vec();
    text.resize(2 + padding, b'x');
    let png = png_with_text(&text);
    assert_eq!(png.len(), MAX);
    let (status, body) = put(&server, Some(&erin), png).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// At most 16 uploads are received at once by a hub: with 16 bodies under way (16 users, one
/// each, the most one user may have), one more is `503 unavailable` with `Retry-After`,
/// before its body is read.
#[tokio::test]
async fn uploads_at_once_are_bounded() {
    let server = TestServer::start().await;
    let mut stalled = Vec::new();
    for _ in 0..16 {
        let user = server.user("frank").await;
        stalled.push(stalled_upload(&server, "PUT", "/v1/auth/me/avatar", user.token()).await);
    }
    let grace = server.user("grace").await;
    let resp = within(
        "the 17th upload",
        http()
            .put(format!("{}/v1/auth/me/avatar", server.http_url()))
            .bearer_auth(grace.token())
            .body(png_with_text(b"a\0b"))
            .send(),
    )
    .await
    .expect("PUT");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(header(&resp, "retry-after".parse().unwrap()), "1");
    assert_eq!(code(&resp.json().await.unwrap()), "unavailable");
    drop(stalled);
}

/// One avatar upload per user is under way at a time (a second is `429` with `Retry-After:
/// 1`, while another user uploads); and a user may send five images in a row, then one every
/// 10 s: the sixth is `429 rate_limited` with the wait. What is not an image is refused
/// (415) without counting.
#[tokio::test]
async fn avatar_uploads_are_bounded_per_user() {
    let server = TestServer::start().await;
    let heidi = server.user("heidi").await;
    let ivan = server.user("ivan").await;
    let held = stalled_upload(&server, "PUT", "/v1/auth/me/avatar", heidi.token()).await;
    let (status, body) = put(&server, Some(&heidi), png_with_text(b"a\0b")).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        "{body}"
    );
    let (status, body) = put(&server, Some(&ivan), png_with_text(b"a\0b")).await;
    assert_eq!(status, StatusCode::OK, "ivan is not held up: {body}");
    drop(held);

    for n in 0..5u8 {
        let (status, body) = within("heidi's turn", async {
            loop {
                match put(&server, Some(&heidi), png_with_text(&[b'k', 0, b'a' + n])).await {
                    // The dropped upload may not have ended yet.
                    (StatusCode::TOO_MANY_REQUESTS, body) if n == 0 => {
                        assert_eq!(code(&body), "rate_limited");
                        tokio::task::yield_now().await;
                    }
                    other => return other,
                }
            }
        })
        .await;
        assert_eq!(status, StatusCode::OK, "upload {n}: {body}");
        let (status, _) = put(&server, Some(&heidi), b"<svg/>".to_vec()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "not counted");
    }
    let resp = within(
        "a sixth avatar",
        http()
            .put(format!("{}/v1/auth/me/avatar", server.http_url()))
            .bearer_auth(heidi.token())
            .body(png_with_text(b"k\0z"))
            .send(),
    )
    .await
    .expect("PUT");
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = header(&resp, "retry-after".parse().unwrap())
        .parse()
        .unwrap();
    assert!((1..=10).contains(&wait), "Retry-After {wait}");
    assert_eq!(code(&resp.json().await.unwrap()), "rate_limited");
}
