//! Attachments of a room: `POST /v1/rooms/{id}/attachments` (upload),
//! `GET /v1/rooms/{id}/attachments/{attachment_id}` (download) and `.../thumbnail`.
//!
//! - **Who.** Uploads: members of the room (401 without a token; 404 for an unknown room or a
//!   private room the caller is not in; 403 for a public room the caller has not joined).
//!   Downloads: anyone, even anonymous, from a public room; members from a private one (404
//!   otherwise). An attachment not yet sent is downloadable by its uploader only.
//! - **Lookup.** Always by room AND id (`MediaIndex::attachment`): an id of another room, an
//!   unknown id, or the attachment of a deleted (or expired) message is 404 `not_found`.
//! - **Bounds.** An upload is streamed to a spool file (see `media::attachments`), refused
//!   with 413 `too_large` at once from its `Content-Length`, or as soon as its body passes
//!   `--max-attachment-bytes`; it is never held in memory, and holds no database connection
//!   while it arrives. Per user: 4 uploads under way per hub (`media::slots::UserTurns`), and
//!   `--upload-bytes-per-day` over every hub (`Service::upload_allowance`: checked from the
//!   `Content-Length`, and the body is cut as it passes what is left). Downloads stream from the blob store, thumbnails from the hot cache.
//! - **Safety.** Every answer goes through `media::serve::respond` (private caching, ETag/304,
//!   Range, `nosniff`, a `sandbox` CSP); only PNG, JPEG, WebP and GIF that decoded (they have a
//!   thumbnail) are `inline`, everything
//!   else is a download (`Content-Disposition: attachment`) under a sniffed type that is never
//!   HTML or SVG.

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use switchboard_protocol::ws::AttachmentInfo;

use super::extract::{AppPath, AppQuery, Caller, MaybeCaller};
use crate::error::{Error, Result};
use crate::media::attachments::{self, Spool, UploadError};
use crate::media::index::Attachment;
use crate::media::serve::{respond, Caching, Served};
use crate::service::{now_ms, Identity};
use crate::state::AppState;

/// Query of an upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The file's name, when the request has no `Content-Disposition` naming it (cleaned: the
    /// last path component, no control characters, at most 200 bytes; `file` when empty).
    pub name: Option<String>,
}

/// Upload a file to a room; send it with a message by naming its id in `attachments`.
///
/// The body is the file itself (any `Content-Type`: the type is sniffed from the bytes). Its
/// name comes from `Content-Disposition: attachment; filename="..."` (or `filename*`), else
/// the `name` query parameter. At most `--max-attachment-bytes` (default 10 MiB). Images (PNG,
/// JPEG, WebP, GIF up to 4096×4096) get a PNG thumbnail of at most 256×256; an image too
/// large, corrupt or a decompression bomb is stored as a file without one. An attachment never
/// sent is removed after the media grace period.
#[utoipa::path(
    post,
    path = "/v1/rooms/{id}/attachments",
    tag = "media",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The room id."), UploadQuery),
    request_body(content = String, content_type = "application/octet-stream", description = "The file's bytes."),
    responses(
        (status = 201, description = "Stored: its id, download URL, cleaned name, size, sniffed type and, for images, `thumbnail_url`.", body = AttachmentInfo),
        (status = 400, description = "`bad_request`: the upload broke off before its end, or took longer than 5 minutes (nothing is stored), or a malformed query."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: a public room the caller is not a member of."),
        (status = 404, description = "`not_found`: no such room, or a private room the caller is not in."),
        (status = 413, description = "`too_large`: over `--max-attachment-bytes`, or over `--upload-bytes-per-day` itself (refused from `Content-Length` before the body is read, or as soon as the body passes the bound)."),
        (status = 429, description = "`rate_limited` (with `Retry-After` where waiting helps): over the per-user send limit (each upload counts as one send), 4 uploads of the caller's already under way on this hub, or over `--upload-bytes-per-day` (default 1 GiB of attachments per user in 24 hours, counted over every node; refused from `Content-Length` before reading, else as the body passes what is left)."),
        (status = 503, description = "`unavailable`: 64 uploads are being received by this hub already (with `Retry-After`), or the upload cannot be stored now."),
    )
)]
pub(super) async fn upload(
    State(app): State<AppState>,
    Caller(who): Caller,
    AppPath(room): AppPath<String>,
    AppQuery(q): AppQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let max = app.media.max_attachment_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let Some(_turn) = app.media.slots.attachments_per_user.try_enter(&who.id) else {
        return Ok(super::retry_soon(
            switchboard_protocol::ErrorCode::RateLimited,
            "4 uploads of yours are under way on this hub; wait for one to finish",
        ));
    };
    app.service.uploadable_room(&who, &room).await?;
    let allowance = app
        .service
        .upload_allowance(&who, app.media.upload_bytes_per_day, declared.unwrap_or(0))
        .await?;
    let name = attachments::clean_name(
        &headers
            .get(header::CONTENT_DISPOSITION)
            .and_then(|v| v.to_str().ok())
            .and_then(attachments::disposition_filename)
            .or(q.name)
            .unwrap_or_default(),
    );
    let Ok(_receiving) = app.media.slots.attachments.try_acquire() else {
        return Ok(super::retry_soon(
            switchboard_protocol::ErrorCode::Unavailable,
            "too many uploads at once; retry in a moment",
        ));
    };
    // The body may not pass what is left of the caller's day either.
    let limit = max.min(allowance.left);
    let receive = Spool::receive(&app.media.data_dir, body.into_data_stream(), limit);
    let spool = tokio::time::timeout(crate::media::slots::ATTACHMENT_DEADLINE, receive)
        .await
        .map_err(|_| {
            Error::BadRequest(format!(
                "the upload took longer than {} s; nothing was stored",
                crate::media::slots::ATTACHMENT_DEADLINE.as_secs()
            ))
        })?
        .map_err(|e| match e {
            UploadError::TooLarge(_) if limit < max => {
                app.service.over_upload_allowance(&allowance)
            }
            other => upload_error(other),
        })?;
    let stored = attachments::store(&app.media, &spool)
        .await
        .map_err(upload_error)?;
    drop(spool);
    let record = Attachment {
        id: attachments::new_id(),
        room: room.clone(),
        uploader: who.id.to_string(),
        name,
        content_type: stored.content_type.to_owned(),
        size: stored.blob.size,
        hash: stored.blob.hash,
        thumb: stored.thumb,
        created_ts: now_ms(),
        seq: None,
    };
    app.media.index.add_attachment(&record).await?;
    let info = attachments::attachment_info(&record);
    let mut response = (StatusCode::CREATED, Json(&info)).into_response();
    if let Ok(v) = info.url.parse() {
        response.headers_mut().insert(header::LOCATION, v);
    }
    Ok(response)
}

fn too_large(max: u64) -> Error {
    Error::TooLarge(format!("the file is larger than {max} bytes"))
}

fn upload_error(e: UploadError) -> Error {
    match e {
        UploadError::TooLarge(max) => too_large(max),
        UploadError::Truncated(why) => {
            tracing::debug!(why, "an upload broke off");
            Error::BadRequest("the upload broke off before its end; nothing was stored".into())
        }
        other => {
            tracing::warn!(error = %other, "an upload could not be stored");
            Error::Unavailable("the file cannot be stored now")
        }
    }
}

/// The attachment `id` of `room` if `actor` may download it (see the module docs).
async fn downloadable(
    app: &AppState,
    actor: Option<&Identity>,
    room: &str,
    id: &str,
) -> Result<Attachment> {
    app.service.downloadable_room(actor, room).await?;
    if !attachments::is_id(id) {
        return Err(Error::NotFound("attachment not found"));
    }
    let found = app.media.index.attachment(room, id).await?;
    match found {
        // Not yet sent: its uploader's only.
        Some(a) if a.seq.is_some() || actor.is_some_and(|who| *who.id == *a.uploader) => Ok(a),
        _ => Err(Error::NotFound("attachment not found")),
    }
}

/// Download an attachment of a room.
///
/// Anyone may download from a public room, members from a private one. Images (PNG, JPEG,
/// WebP, GIF) that have a thumbnail are `inline`, everything else a download (`Content-Disposition: attachment`),
/// both with the file name (`filename*`, RFC 6266/5987).
#[utoipa::path(
    get,
    path = "/v1/rooms/{id}/attachments/{attachment_id}",
    tag = "media",
    security((), ("bearer" = [])),
    params(
        ("id" = String, Path, description = "The room id."),
        ("attachment_id" = String, Path, description = "The attachment id (from the upload or a message's `attachments`)."),
    ),
    responses(
        (status = 200, description = "The file, with its sniffed `Content-Type` (one of these), `Content-Disposition`, `Cache-Control: private, max-age=31536000, immutable`, a strong `ETag`, `X-Content-Type-Options: nosniff` and a `sandbox` CSP.", content(
            ("application/octet-stream"), ("text/plain; charset=utf-8"), ("application/pdf"), ("application/zip"),
            ("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"),
        )),
        (status = 206, description = "The `Range` asked for (one range), with `Content-Range`.", content(
            ("application/octet-stream"), ("text/plain; charset=utf-8"), ("application/pdf"), ("application/zip"),
            ("image/png"), ("image/jpeg"), ("image/webp"), ("image/gif"),
        )),
        (status = 304, description = "`If-None-Match` names this ETag: no body."),
        (status = 400, description = "`bad_request`: a path that is not valid UTF-8."),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token (without one the caller is anonymous)."),
        (status = 404, description = "`not_found`: no such room, a private room the caller is not in, no such attachment in this room, an attachment of a deleted message, or one not yet sent by someone else."),
        (status = 416, description = "`range_not_satisfiable`: the `Range` is outside the file (with `Content-Range: bytes */<size>`)."),
        (status = 503, description = "`unavailable`: the file cannot be read now."),
    )
)]
pub(super) async fn download(
    State(app): State<AppState>,
    MaybeCaller(who): MaybeCaller,
    headers: HeaderMap,
    AppPath((room, id)): AppPath<(String, String)>,
) -> Result<Response> {
    let a = downloadable(&app, who.as_ref(), &room, &id).await?;
    // Only an image that decoded (it has a thumbnail) is shown inline: a bomb or a corrupt
    // one is a download, so no browser is asked to decode it in place.
    let inline = attachments::is_inline_image(&a.content_type) && a.thumb.is_some();
    let served = Served {
        hash: a.hash,
        size: a.size,
        content_type: a.content_type.clone(),
        caching: Caching::Private,
        disposition: Some(attachments::content_disposition(inline, &a.name)),
    };
    let store = app.media.store().clone();
    let hash = a.hash;
    Ok(respond(&headers, served, |range| async move {
        match range {
            None => store.get(&hash).await,
            Some(r) => store.get_range(&hash, r).await,
        }
    })
    .await)
}

/// The PNG thumbnail (at most 256×256) of an image attachment.
#[utoipa::path(
    get,
    path = "/v1/rooms/{id}/attachments/{attachment_id}/thumbnail",
    tag = "media",
    security((), ("bearer" = [])),
    params(
        ("id" = String, Path, description = "The room id."),
        ("attachment_id" = String, Path, description = "The attachment id."),
    ),
    responses(
        (status = 200, description = "The thumbnail (`image/png`, inline), with the caching and safety headers of a download.", content_type = "image/png"),
        (status = 206, description = "The `Range` asked for (one range), with `Content-Range`.", content_type = "image/png"),
        (status = 304, description = "`If-None-Match` names this ETag: no body."),
        (status = 400, description = "`bad_request`: a path that is not valid UTF-8."),
        (status = 401, description = "`unauthorized`: an invalid, expired or revoked token (without one the caller is anonymous)."),
        (status = 404, description = "`not_found`: as for the download, or the attachment has no thumbnail (not an image, or one that could not be decoded)."),
        (status = 416, description = "`range_not_satisfiable`: the `Range` is outside the thumbnail."),
        (status = 503, description = "`unavailable`: the thumbnail cannot be read now."),
    )
)]
pub(super) async fn thumbnail(
    State(app): State<AppState>,
    MaybeCaller(who): MaybeCaller,
    headers: HeaderMap,
    AppPath((room, id)): AppPath<(String, String)>,
) -> Result<Response> {
    let a = downloadable(&app, who.as_ref(), &room, &id).await?;
    let thumb = a
        .thumb
        .ok_or(Error::NotFound("this attachment has no thumbnail"))?;
    let blobs = app.media.blobs.clone();
    // A whole read (a hot-cache hit, or a fill) knows the size for ranges.
    let blob = match blobs.get(&thumb).await {
        Ok(Some(blob)) => blob,
        Ok(None) => return Err(Error::NotFound("this attachment has no thumbnail")),
        Err(e) => {
            tracing::warn!(error = %e, %thumb, "reading a thumbnail failed");
            return Err(Error::Unavailable("the thumbnail cannot be read now"));
        }
    };
    let served = Served {
        hash: thumb,
        size: blob.size,
        content_type: "image/png".into(),
        caching: Caching::Private,
        disposition: Some(attachments::content_disposition(
            true,
            &format!("{}.png", a.name),
        )),
    };
    Ok(respond(&headers, served, |range| async move {
        match range {
            None => Ok(Some(blob)),
            Some(r) => blobs.get_range(&thumb, r).await,
        }
    })
    .await)
}
