//! Avatars: every user has one (a generated identicon until they upload their own).
//!
//! - `GET /v1/identicons/{user_id}?size=64|256` (anyone): the identicon of a user id, a pure
//!   function of the URL, so it is served `public, immutable` like any content-addressed
//!   media. Any well-formed id gets one, whether or not a user has it: the route says nothing
//!   about who exists. The algorithm is frozen for this path (`/v1/`); a new one would be a
//!   new path, never new bytes at this URL.
//! - `GET /v1/users/{username}/avatar?size=64|256` (anyone): a `302` to the current URL, the
//!   uploaded avatar's `/v1/media/{hash}` or the identicon's, with `Cache-Control: no-cache`
//!   so that a change shows at once while the target itself is cached forever.
//! - `PUT /v1/auth/me/avatar` (the caller): a raw image body (PNG, JPEG, WebP or GIF by its
//!   magic bytes, at most 2 MiB), re-encoded at 64 and 256 px (`images::reencode_square`:
//!   no byte or metadata of the upload survives, dimensions checked from the header before
//!   decoding). `DELETE` goes back to the identicon.
//!
//! **Bounds** (`media::slots`). An upload is refused from its `Content-Length` before a byte
//! is read when that is over 2 MiB, else as the body passes 2 MiB: at most the bound (and one
//! network chunk) is ever held. At most `UPLOADS` (16) uploads are under way at once per hub,
//! from the first byte to the end of their decode (one more is `503 unavailable` with
//! `Retry-After`), each body within `BODY_DEADLINE` (30 s), and at most `DECODES` (2) of them
//! are decoded at once, on the blocking pool (a 4096×4096 image is
//! 64 MiB of pixels): the memory and CPU of uploads are bounded whatever the number of
//! callers. Avatar uploads are also bounded per user: one under way at a time, and five in a
//! row, then one every 10 s (`ratelimit::avatar_changes`; 429 `rate_limited` beyond).
//!
//! **Caches.** Uploaded avatars are blobs, cached in the hot cache under their content hash
//! by `CachedBlobs` (served by `GET /v1/media/{hash}`). Identicons are not blobs and never
//! enter the hot cache: `media::identicons` keeps them in a small cache of their own, since
//! anyone may ask for any id. Their `ETag` is the hash of their bytes.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use switchboard_media::images::{self, Bounds, ImageError};
use switchboard_media::{Blob, Hash};
use switchboard_protocol::rest::AvatarUrls;
use switchboard_protocol::ErrorCode;

use super::extract::{AppPath, AppQuery, Caller};
use crate::error::error_response;
use crate::media::index::Avatar;
use crate::media::serve::{respond, Caching, Served};
use crate::media::slots::BODY_DEADLINE;
use crate::state::AppState;

/// The sizes served, in pixels: the small one beside messages, the large one for a profile.
pub const SIZES: [u32; 2] = [SMALL, LARGE];
const SMALL: u32 = 64;
const LARGE: u32 = 256;

/// `?size=64|256`, 64 when absent.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SizeQuery {
    /// 64 (the default) or 256 pixels; anything else is `400 bad_request`.
    size: Option<u32>,
}

impl SizeQuery {
    #[allow(
        clippy::result_large_err,
        reason = "the error is the finished response"
    )]
    fn size(&self) -> Result<u32, Response> {
        match self.size {
            None => Ok(SMALL),
            Some(size) if SIZES.contains(&size) => Ok(size),
            Some(size) => Err(error_response(
                ErrorCode::BadRequest,
                format!("size {size} is not served: ask for 64 or 256"),
            )),
        }
    }
}

/// Whether `id` may name a user in a URL: 1–64 ASCII letters, digits, `-` or `_` (user ids
/// are UUIDs). Anything else is refused before any work.
fn valid_user_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The URL of the identicon of `user_id` (a valid id: see [`valid_user_id`]).
pub fn identicon_url(user_id: &str, size: u32) -> String {
    format!("/v1/identicons/{user_id}?size={size}")
}

/// The URL of a public blob.
fn media_url(hash: &Hash) -> String {
    format!("/v1/media/{}", hash.to_hex())
}

/// `GET /v1/identicons/{user_id}?size=64|256` → 200 the PNG (or 206, 304, 416).
#[utoipa::path(
    get,
    path = "/v1/identicons/{user_id}",
    tag = "media",
    params(
        ("user_id" = String, Path, description = "A user id (1–64 characters of `A-Z a-z 0-9 - _`). Any such id gets an identicon, whether or not a user has it."),
        SizeQuery,
    ),
    responses(
        (status = 200, description = "The generated identicon (`image/png`), a pure function of the URL: `Cache-Control: public, max-age=31536000, immutable`, a strong `ETag` (the SHA-256 of the bytes), `X-Content-Type-Options: nosniff`, a `sandbox` CSP.", content_type = "image/png"),
        (status = 206, description = "The `Range` asked for (one range), with `Content-Range`."),
        (status = 304, description = "`If-None-Match` names this ETag: no body."),
        (status = 400, description = "`bad_request`: a `size` other than 64 or 256, or a user id that is not 1–64 characters of `A-Z a-z 0-9 - _`."),
        (status = 416, description = "`range_not_satisfiable`: the `Range` is outside the file (with `Content-Range: bytes */<size>`)."),
    )
)]
pub(super) async fn identicon(
    State(app): State<AppState>,
    headers: HeaderMap,
    AppPath(user_id): AppPath<String>,
    AppQuery(query): AppQuery<SizeQuery>,
) -> Response {
    let size = match query.size() {
        Ok(size) => size,
        Err(resp) => return resp,
    };
    if !valid_user_id(&user_id) {
        return error_response(
            ErrorCode::BadRequest,
            "a user id is 1-64 characters of A-Z, a-z, 0-9, - and _",
        );
    }
    let Some(bytes) = app.media.identicons.get(&user_id, size).await else {
        return error_response(ErrorCode::Unavailable, "shutting down");
    };
    let served = Served {
        hash: Hash::of(&bytes),
        size: bytes.len() as u64,
        content_type: "image/png".into(),
        caching: Caching::Public,
        disposition: None,
    };
    respond(&headers, served, |range| async move {
        Ok(Some(match range {
            None => Blob::from_bytes(bytes),
            Some(r) => {
                let size = bytes.len() as u64;
                let part = bytes.slice(r.start as usize..r.end as usize);
                Blob {
                    size,
                    range: r,
                    chunks: Box::pin(futures_util::stream::iter([Ok(part)])),
                }
            }
        }))
    })
    .await
}

/// `GET /v1/users/{username}/avatar?size=64|256` → 302 to the current avatar's URL.
#[utoipa::path(
    get,
    path = "/v1/users/{username}/avatar",
    tag = "media",
    params(
        ("username" = String, Path, description = "The user's username."),
        SizeQuery,
    ),
    responses(
        (status = 302, description = "`Location` is the current avatar at this size: `/v1/media/{hash}` of the uploaded one, else `/v1/identicons/{user_id}?size=N`. `Cache-Control: no-cache`: the redirect is asked again each time, its target is cached forever."),
        (status = 400, description = "`bad_request`: a `size` other than 64 or 256."),
        (status = 404, description = "`user_not_found`: nobody has this username."),
        (status = 503, description = "`unavailable`: the user directory or the media index cannot be read now."),
    )
)]
pub(super) async fn redirect(
    State(app): State<AppState>,
    AppPath(username): AppPath<String>,
    AppQuery(query): AppQuery<SizeQuery>,
) -> Response {
    let size = match query.size() {
        Ok(size) => size,
        Err(resp) => return resp,
    };
    let user = match app.service.user_named(&username).await {
        Ok(user) => user,
        Err(e) => return e.into_response(),
    };
    let location = match app.media.index.avatar(&user.id).await {
        Ok(Some(avatar)) => media_url(if size == LARGE {
            &avatar.large
        } else {
            &avatar.small
        }),
        Ok(None) if valid_user_id(&user.id) => identicon_url(&user.id, size),
        Ok(None) => {
            tracing::error!(user = %user.id, "a user id that no URL can carry");
            return error_response(ErrorCode::Internal, "internal error");
        }
        Err(e) => return crate::error::Error::from(e).into_response(),
    };
    let mut resp = StatusCode::FOUND.into_response();
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&location) {
        headers.insert(header::LOCATION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    resp
}

/// The raw bytes of an uploaded image, as the document describes them (a binary string).
#[derive(utoipa::ToSchema)]
#[schema(value_type = String, format = Binary)]
#[allow(
    dead_code,
    reason = "documentation only: the handler reads the body as a stream"
)]
pub(super) struct ImageBytes(Vec<u8>);

/// Why an upload is refused before decoding.
#[derive(Debug, thiserror::Error)]
enum UploadError {
    #[error("an avatar is at most {} bytes", Bounds::AVATAR.max_bytes)]
    TooLarge,
    #[error("the upload was cut short")]
    Truncated,
    #[error("the upload did not arrive within {} s", BODY_DEADLINE.as_secs())]
    TooSlow,
}

impl IntoResponse for UploadError {
    fn into_response(self) -> Response {
        let code = match self {
            Self::TooLarge => ErrorCode::TooLarge,
            Self::Truncated | Self::TooSlow => ErrorCode::BadRequest,
        };
        error_response(code, self.to_string())
    }
}

/// The whole body, refused from `Content-Length` when that is over `limit`, else as soon as
/// more than `limit` bytes have arrived (the rest is never read).
async fn read_bounded(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, UploadError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(UploadError::TooLarge);
    }
    let mut out = Vec::with_capacity(declared.map_or(0, |n| n as usize));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| UploadError::Truncated)?;
        if out.len() + chunk.len() > limit {
            return Err(UploadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// An image refusal as its answer: 413 `too_large`, 415 `unsupported_media_type`, 400
/// `bad_request`.
fn image_refusal(e: &ImageError) -> Response {
    let code = match e {
        ImageError::TooLarge { .. } => ErrorCode::TooLarge,
        ImageError::UnsupportedType => ErrorCode::UnsupportedMediaType,
        ImageError::TooManyPixels { .. } | ImageError::Corrupt(_) => ErrorCode::BadRequest,
    };
    error_response(code, e.to_string())
}

/// `PUT /v1/auth/me/avatar` (the caller) → 200 `{small_url, large_url}`.
#[utoipa::path(
    put,
    path = "/v1/auth/me/avatar",
    tag = "media",
    security(("bearer" = [])),
    request_body(content = inline(ImageBytes), description = "The image itself (PNG, JPEG, WebP or GIF, recognised by its bytes; `Content-Type` is not consulted), at most 2 MiB and 4096×4096 pixels. It is cropped to its centre square and re-encoded as PNG at 64 and 256 px: no byte or metadata of the upload is kept; an animation keeps its first frame.", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "The new avatar's URLs (content-addressed: a new upload is a new URL).", body = AvatarUrls),
        (status = 400, description = "`bad_request`: a corrupt or truncated image, one whose header claims more than 4096×4096 pixels (refused without decoding), or a body that took over 30 s to arrive."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 413, description = "`too_large`: over 2 MiB (from `Content-Length` before reading, else as the body passes 2 MiB)."),
        (status = 415, description = "`unsupported_media_type`: not a PNG, JPEG, WebP or GIF image (SVG and HTML are refused)."),
        (status = 429, description = "`rate_limited` with `Retry-After`: an avatar upload of the caller's is already under way on this hub, or the caller sent 5 images in a row (one more every 10 s; counted once the body is in and looks like an image, before it is decoded)."),
        (status = 503, description = "`unavailable`: 16 uploads are being received by this hub already (with `Retry-After`), or the blob store or the media index cannot be written now."),
    )
)]
pub(super) async fn upload(State(app): State<AppState>, caller: Caller, req: Request) -> Response {
    let slots = app.media.slots.clone();
    let Some(_turn) = slots.avatars_per_user.try_enter(&caller.0.id) else {
        return super::retry_soon(
            ErrorCode::RateLimited,
            "an avatar upload of yours is under way; wait for it to finish",
        );
    };
    let Ok(receiving) = slots.uploads.try_acquire() else {
        return super::retry_soon(
            ErrorCode::Unavailable,
            "too many uploads at once; retry in a moment",
        );
    };
    let (parts, body) = req.into_parts();
    let read = read_bounded(&parts.headers, body, Bounds::AVATAR.max_bytes);
    let bytes = match tokio::time::timeout(BODY_DEADLINE, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return e.into_response(),
        Err(_) => return UploadError::TooSlow.into_response(),
    };
    // What is not an image is refused before it costs a decode or the caller's allowance.
    if images::sniff(&bytes).is_none() {
        return image_refusal(&ImageError::UnsupportedType);
    }
    if let Err(e) = app.service.take_avatar_change(&caller.0) {
        return e.into_response();
    }
    // The upload slot is held until the decode is done, so that at most `UPLOADS` bodies are
    // in memory, received or waiting for a decode.
    let Ok(permit) = slots.decodes.acquire().await else {
        return error_response(ErrorCode::Unavailable, "shutting down");
    };
    let renditions = tokio::task::spawn_blocking(move || {
        images::reencode_square(&bytes, &Bounds::AVATAR, &SIZES)
    })
    .await;
    let renditions = match renditions {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return image_refusal(&e),
        Err(e) => {
            tracing::error!(error = %e, "re-encoding an avatar panicked");
            return error_response(ErrorCode::Internal, "internal error");
        }
    };
    drop((permit, receiving));
    let mut hashes = Vec::with_capacity(renditions.len());
    for rendition in renditions {
        match app.media.store().put(Bytes::from(rendition.png)).await {
            Ok(blob) => hashes.push(blob.hash),
            Err(e) => {
                tracing::warn!(error = %e, "storing an avatar failed");
                return error_response(ErrorCode::Unavailable, "the avatar cannot be stored now");
            }
        }
    }
    let [small, large] = hashes[..] else {
        tracing::error!(
            count = hashes.len(),
            "re-encoding gave another number of sizes"
        );
        return error_response(ErrorCode::Internal, "internal error");
    };
    let avatar = Avatar {
        small,
        large,
        updated_ts: crate::service::now_ms(),
    };
    if let Err(e) = app.media.index.set_avatar(&caller.0.id, &avatar).await {
        return crate::error::Error::from(e).into_response();
    }
    Json(AvatarUrls {
        small_url: media_url(&small),
        large_url: media_url(&large),
    })
    .into_response()
}

/// `DELETE /v1/auth/me/avatar` (the caller) → 204; the identicon again.
#[utoipa::path(
    delete,
    path = "/v1/auth/me/avatar",
    tag = "media",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The uploaded avatar is gone (or there was none): the avatar redirect names the identicon again."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 503, description = "`unavailable`: the media index cannot be written now."),
    )
)]
pub(super) async fn clear(State(app): State<AppState>, caller: Caller) -> Response {
    match app.media.index.clear_avatar(&caller.0.id).await {
        Ok(_) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => crate::error::Error::from(e).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_in_urls_are_checked() {
        assert!(valid_user_id("0190a1b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b"));
        assert!(valid_user_id("bot_x"));
        for bad in ["", "a/b", "..", "a b", "é", &"a".repeat(65)] {
            assert!(!valid_user_id(bad), "{bad:?}");
        }
    }
}
