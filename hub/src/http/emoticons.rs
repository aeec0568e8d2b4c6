//! Custom emoticons: `GET /v1/emoticons` (anyone), `PUT` and `DELETE
//! /v1/emoticons/{shortcode}` (admins). A change is told to every connection of every node as
//! one `emoticons` frame (see [`crate::fanout::Fanout::broadcast`]), so open pages refetch the
//! list.
//!
//! Invariants and bounds:
//! - **Who may change them:** admins only (the token's `role` claim): 401 without a token, 403
//!   `forbidden` for anyone else, checked before the path or the body is looked at. Room
//!   admins do not exist yet (room roles are a later issue).
//! - **An upload is at most [`Bounds::EMOTICON`] bytes** (256 KiB): refused with 413 at once
//!   when `Content-Length` says more, else as soon as the body passes the bound; never more
//!   than the bound is held in memory. It is then re-encoded on a blocking thread as one
//!   fresh [`SIZE`]-pixel square PNG by `switchboard_media::images` (type sniffed from the
//!   bytes, dimensions checked from the header before decoding): only that PNG is stored.
//! - **Animated GIF/WebP become still images** (their first frame): the `image` crate decodes
//!   frames, but keeping the animation would need an animated encoder path (APNG or GIF) with
//!   bounds of its own (frames × pixels), which is not built.
//! - **At most [`REENCODINGS`] uploads are decoded at once** (each bounded to 1024×1024
//!   pixels, 8 MiB of pixels), on blocking threads; others wait their turn.
//! - **At most `--max-emoticons`** (default 1000) exist: the next upload is 409 `conflict`
//!   (two concurrent uploads may pass the bound by one each: it bounds the list's size, it is
//!   not a quota).
//! - **The list's ETag** is the SHA-256 of its JSON answer: equal lists, equal tags, on every
//!   node, with no state kept.

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_LENGTH, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use switchboard_media::images::{reencode_square, Bounds, ImageError};
use switchboard_media::Hash;
use switchboard_protocol::rest::{Emoticon, EmoticonList};
use switchboard_protocol::ws::ServerFrame;
use switchboard_protocol::ErrorCode;

use super::extract::{AppPath, Caller};
use crate::error::{error_response, Error};
use crate::media::index::{self, EmoticonAdded};
use crate::state::AppState;

/// The side of the stored square PNG, in pixels: sharp when shown at 32 px on a 4× screen.
pub const SIZE: u32 = 128;

/// Uploads decoded and re-encoded at once, on the node (the rest wait): bounds the memory
/// (8 MiB of pixels each) and the cores an admin's burst of uploads takes.
pub const REENCODINGS: usize = 2;

/// The URL of a public image.
fn media_url(hash: &Hash) -> String {
    format!("/v1/media/{}", hash.to_hex())
}

/// Whether `code` is a shortcode: `[a-z0-9_]{2,32}`.
pub fn is_shortcode(code: &str) -> bool {
    (2..=32).contains(&code.len())
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The list's JSON body and its ETag (the body's SHA-256, unquoted).
fn listing(emoticons: &[index::Emoticon]) -> (Bytes, String) {
    let mut list: Vec<Emoticon> = emoticons
        .iter()
        .map(|e| Emoticon {
            shortcode: e.shortcode.clone(),
            url: media_url(&e.hash),
        })
        .collect();
    list.sort_by(|a, b| a.shortcode.cmp(&b.shortcode));
    let body =
        serde_json::to_vec(&EmoticonList { emoticons: list }).expect("a list always serialises");
    let etag = Hash::of(&body).to_hex();
    (Bytes::from(body), etag)
}

/// Whether an `If-None-Match` header names `etag` (or is `*`).
fn matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t.trim_matches('"') == etag)
}

/// `GET /v1/emoticons` → 200 the list (or 304).
#[utoipa::path(
    get,
    path = "/v1/emoticons",
    tag = "media",
    security((), ("bearer" = [])),
    responses(
        (status = 200, description = "Every custom emoticon, sorted by shortcode, with a strong `ETag` (the SHA-256 of this body) and `Cache-Control: no-cache` (revalidate each time). Anyone may call it, without a token.", body = EmoticonList),
        (status = 304, description = "`If-None-Match` names the list's current ETag: no body."),
        (status = 503, description = "`unavailable`: the media index cannot be read now."),
    )
)]
pub(super) async fn list(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let emoticons = match app.media.index.emoticons().await {
        Ok(list) => list,
        Err(e) => return Error::from(e).into_response(),
    };
    let (body, etag) = listing(&emoticons);
    let tag = HeaderValue::from_str(&format!("\"{etag}\"")).expect("hex is a header value");
    let no_cache = HeaderValue::from_static("no-cache");
    if matches(&headers, &etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(ETAG, tag), (CACHE_CONTROL, no_cache)],
        )
            .into_response();
    }
    (
        [
            (ETAG, tag),
            (CACHE_CONTROL, no_cache),
            (
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
        ],
        body,
    )
        .into_response()
}

/// Why a change of the emoticons was refused, or failed.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    /// What the hub's errors say (401, 403, 400, 404, 409, 413, 503).
    #[error(transparent)]
    Hub(#[from] Error),
    /// The upload is not an accepted image: 413, 415 or 400 (see `ImageError::status`).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The re-encoding panicked (a bug of the decoder): 500.
    #[error("the image could not be processed")]
    Panicked,
}

impl From<crate::store::StoreError> for Refusal {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Hub(Error::from(e))
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Self::Hub(e) => e.into_response(),
            Self::Image(e) => {
                let code = match e {
                    ImageError::TooLarge { .. } => ErrorCode::TooLarge,
                    ImageError::UnsupportedType => ErrorCode::UnsupportedMediaType,
                    ImageError::TooManyPixels { .. } | ImageError::Corrupt(_) => {
                        ErrorCode::BadRequest
                    }
                };
                error_response(code, e.to_string())
            }
            Self::Panicked => error_response(ErrorCode::Internal, self.to_string()),
        }
    }
}

/// The caller, if an admin; 403 otherwise.
fn admin(caller: &Caller) -> Result<(), Error> {
    if caller.0.role == switchboard_auth::tokens::ROLE_ADMIN {
        Ok(())
    } else {
        Err(Error::Forbidden("only an admin may change the emoticons"))
    }
}

/// The shortcode of the path, or 400.
fn shortcode(code: &str) -> Result<(), Error> {
    if is_shortcode(code) {
        Ok(())
    } else {
        Err(Error::BadRequest(
            "a shortcode is 2 to 32 of a-z, 0-9 and _".into(),
        ))
    }
}

fn too_large() -> Error {
    Error::TooLarge(format!(
        "an emoticon is at most {} bytes",
        Bounds::EMOTICON.max_bytes
    ))
}

/// The whole body, if it is at most `max` bytes: 413 `too_large` at once when its
/// `Content-Length` says more, or as soon as more has arrived (nothing past the bound is read
/// or kept); 400 when the body breaks off.
async fn bounded_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Vec<u8>, Error> {
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let mut stream = body.into_data_stream();
    while let Some(piece) = stream.next().await {
        let piece =
            piece.map_err(|_| Error::BadRequest("the upload broke off before its end".into()))?;
        if out.len() + piece.len() > max {
            return Err(too_large());
        }
        out.extend_from_slice(&piece);
    }
    Ok(out)
}

/// Tells every connection of every node that the list changed, with its new ETag.
async fn announce(app: &AppState) {
    match app.media.index.emoticons().await {
        Ok(list) => {
            let (_, etag) = listing(&list);
            app.service.broadcast(&ServerFrame::Emoticons { etag });
        }
        Err(e) => tracing::warn!(error = %e, "the emoticons changed but cannot be re-read"),
    }
}

/// `PUT /v1/emoticons/{shortcode}` (admin, the image as the body) → 201 `{shortcode, url}`.
#[utoipa::path(
    put,
    path = "/v1/emoticons/{shortcode}",
    tag = "admin",
    security(("bearer" = [])),
    params(("shortcode" = String, Path, pattern = "^[a-z0-9_]{2,32}$", description = "The new emoticon's shortcode, `[a-z0-9_]{2,32}` (written `:shortcode:` in messages).")),
    request_body(content = Vec<u8>, description = "The image itself: PNG, JPEG, WebP or GIF (sniffed from its bytes; the `Content-Type` is not consulted), at most 256 KiB and 1024×1024 pixels. It is re-encoded as a 128 px square PNG (the centre, cropped); an animated GIF or WebP keeps its first frame only.", content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "The emoticon exists; every open WebSocket gets an `emoticons` frame.", body = Emoticon),
        (status = 400, description = "`bad_request`: a shortcode that is not `[a-z0-9_]{2,32}`, an image over 1024×1024 pixels (refused from its header, before decoding), a corrupt or truncated image, or a body that broke off."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 409, description = "`conflict`: the shortcode is taken, or the hub already has `--max-emoticons` (default 1000)."),
        (status = 413, description = "`too_large`: the body is over 256 KiB (refused from `Content-Length` at once, or as soon as the body passes the bound)."),
        (status = 415, description = "`unsupported_media_type`: not a PNG, JPEG, WebP or GIF image by its bytes (SVG and HTML are refused)."),
        (status = 503, description = "`unavailable`: the media index or the blob store cannot be written now."),
    )
)]
pub(super) async fn put(
    State(app): State<AppState>,
    caller: Caller,
    AppPath(code): AppPath<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match put_inner(&app, &caller, code, &headers, body).await {
        Ok(created) => (StatusCode::CREATED, Json(created)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

fn full() -> Error {
    Error::Conflict("the hub holds as many emoticons as --max-emoticons allows; remove one first")
}

async fn put_inner(
    app: &AppState,
    caller: &Caller,
    code: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Emoticon, Refusal> {
    admin(caller)?;
    shortcode(&code)?;
    let index = &app.media.index;
    // Refused before the body is read: a taken shortcode, a full list.
    let existing = index.emoticons().await?;
    if existing.iter().any(|e| e.shortcode == code) {
        return Err(Error::Conflict("this shortcode is taken").into());
    }
    if existing.len() >= app.cfg.media.max_emoticons {
        return Err(full().into());
    }
    let bytes = bounded_body(headers, body, Bounds::EMOTICON.max_bytes).await?;
    static TURNS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(REENCODINGS);
    let _turn = TURNS.acquire().await.map_err(|_| Refusal::Panicked)?;
    let mut png =
        tokio::task::spawn_blocking(move || reencode_square(&bytes, &Bounds::EMOTICON, &[SIZE]))
            .await
            .map_err(|_| Refusal::Panicked)??;
    let png = png.pop().expect("one size asked, one rendition").png;
    let stored = app.media.store().put(Bytes::from(png)).await.map_err(|e| {
        tracing::warn!(error = %e, "storing an emoticon failed");
        Error::Unavailable("the image cannot be stored now")
    })?;
    let emoticon = index::Emoticon {
        shortcode: code.clone(),
        hash: stored.hash,
        created_by: caller.0.username.to_string(),
        created_ts: crate::service::now_ms(),
    };
    // The blob of a lost race is swept by the garbage collector (nothing refers to it).
    match index
        .add_emoticon(&emoticon, app.cfg.media.max_emoticons)
        .await?
    {
        EmoticonAdded::Added => {}
        EmoticonAdded::Taken => return Err(Error::Conflict("this shortcode is taken").into()),
        EmoticonAdded::Full => return Err(full().into()),
    }
    tracing::info!(shortcode = %code, by = %caller.0.username, "emoticon added");
    announce(app).await;
    Ok(Emoticon {
        shortcode: code,
        url: media_url(&stored.hash),
    })
}

/// `DELETE /v1/emoticons/{shortcode}` (admin) → 204.
#[utoipa::path(
    delete,
    path = "/v1/emoticons/{shortcode}",
    tag = "admin",
    security(("bearer" = [])),
    params(("shortcode" = String, Path, pattern = "^[a-z0-9_]{2,32}$", description = "The emoticon's shortcode.")),
    responses(
        (status = 204, description = "Removed; every open WebSocket gets an `emoticons` frame. Its image stays at its URL until the garbage collector's sweep (messages that name the shortcode then show it as text)."),
        (status = 400, description = "`bad_request`: a shortcode that is not `[a-z0-9_]{2,32}`."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 404, description = "`not_found`: no emoticon has this shortcode."),
        (status = 503, description = "`unavailable`: the media index cannot be written now."),
    )
)]
pub(super) async fn remove(
    State(app): State<AppState>,
    caller: Caller,
    AppPath(code): AppPath<String>,
) -> Result<StatusCode, Error> {
    admin(&caller)?;
    shortcode(&code)?;
    if !app.media.index.remove_emoticon(&code).await? {
        return Err(Error::NotFound("no emoticon has this shortcode"));
    }
    tracing::info!(shortcode = %code, by = %caller.0.username, "emoticon removed");
    announce(&app).await;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcodes_are_2_to_32_of_lowercase_digits_and_underscores() {
        for ok in ["ok", "party_parrot", "a1", &"x".repeat(32)] {
            assert!(is_shortcode(ok), "{ok}");
        }
        for bad in [
            "a",
            "",
            "Party",
            "a-b",
            "a b",
            "é_x",
            &"x".repeat(33),
            ":ok:",
        ] {
            assert!(!is_shortcode(bad), "{bad}");
        }
    }

    #[test]
    fn the_etag_follows_the_content_and_if_none_match_is_read_loosely() {
        let e = |code: &str, byte: u8| index::Emoticon {
            shortcode: code.into(),
            hash: Hash::of(&[byte]),
            created_by: "root".into(),
            created_ts: 0,
        };
        let (body, a) = listing(&[e("b", 1), e("a", 2)]);
        let (_, same) = listing(&[e("a", 2), e("b", 1)]);
        let (_, other) = listing(&[e("a", 2)]);
        assert_eq!(a, same, "the order of the index does not matter");
        assert_ne!(a, other);
        let text = std::str::from_utf8(&body).unwrap();
        assert!(
            text.find("\"a\"").unwrap() < text.find("\"b\"").unwrap(),
            "{text}"
        );

        let mut headers = HeaderMap::new();
        assert!(!matches(&headers, &a));
        headers.insert(
            IF_NONE_MATCH,
            HeaderValue::from_str(&format!("\"x\", W/\"{a}\"")).unwrap(),
        );
        assert!(matches(&headers, &a));
        assert!(!matches(&headers, &other));
    }
}
