//! `GET /v1/media/{hash}`: public media (avatars and emoticons) by content hash, from the hot
//! cache or the blob store, with the caching rules of `media::serve`. Anyone may call it: only
//! hashes an avatar or an emoticon names are served (an attachment's blob never is, whoever
//! knows its hash), everything else is 404 `not_found`, the same for a hash that is not hex.

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use switchboard_media::Hash;
use switchboard_protocol::ErrorCode;

use super::extract::AppPath;
use crate::error::error_response;
use crate::media::serve::{respond, Caching, Served};
use crate::state::AppState;

/// The type of every public image: avatars and emoticons are re-encoded as PNG.
const PNG: &str = "image/png";

/// `GET /v1/media/{hash}` → 200 the PNG (or 206, 304, 416).
#[utoipa::path(
    get,
    path = "/v1/media/{hash}",
    tag = "media",
    params(("hash" = String, Path, description = "The SHA-256 of the file, 64 lowercase hex characters (the URL an avatar redirect or the emoticon list gives).")),
    responses(
        (status = 200, description = "The image (`image/png`), with `Cache-Control: public, max-age=31536000, immutable`, a strong `ETag` (the hash), `X-Content-Type-Options: nosniff` and a `sandbox` CSP.", content_type = "image/png"),
        (status = 206, description = "The `Range` asked for (one range), with `Content-Range`."),
        (status = 304, description = "`If-None-Match` names this ETag: no body."),
        (status = 404, description = "`not_found`: no avatar or emoticon has this hash (or it is not a hash)."),
        (status = 416, description = "`range_not_satisfiable`: the `Range` is outside the file (with `Content-Range: bytes */<size>`)."),
        (status = 503, description = "`unavailable`: the database or the blob store cannot be read now."),
    )
)]
pub(super) async fn public(
    State(app): State<AppState>,
    headers: HeaderMap,
    AppPath(hash): AppPath<String>,
) -> Response {
    let Ok(hash) = Hash::parse(&hash) else {
        return error_response(ErrorCode::NotFound, "no such file");
    };
    let media = &app.media;
    match media.public.is_public(&*media.index, &hash).await {
        Ok(true) => {}
        Ok(false) => return error_response(ErrorCode::NotFound, "no such file"),
        Err(e) => {
            tracing::warn!(error = %e, "the media index cannot be read");
            return error_response(ErrorCode::Unavailable, "the media index cannot be read now");
        }
    }
    let blobs = media.blobs.clone();
    // The size for ranges: a whole read (a cache hit, or the store's read) knows it.
    let blob = match blobs.get(&hash).await {
        Ok(Some(blob)) => blob,
        Ok(None) => return error_response(ErrorCode::NotFound, "no such file"),
        Err(e) => {
            tracing::warn!(error = %e, %hash, "reading a public blob failed");
            return error_response(ErrorCode::Unavailable, "the file cannot be read now");
        }
    };
    let served = Served {
        hash,
        size: blob.size,
        content_type: PNG.into(),
        caching: Caching::Public,
        disposition: None,
    };
    respond(&headers, served, |range| async move {
        match range {
            None => Ok(Some(blob)),
            Some(r) => blobs.get_range(&hash, r).await,
        }
    })
    .await
}
