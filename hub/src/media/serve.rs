//! Blob responses with the caching rules every media URL follows:
//! - **strong `ETag`**: the content hash, quoted; `If-None-Match` that names it (or `*`) is a
//!   304 with no body;
//! - **`Cache-Control`**: public media (avatars, emoticons) `public, max-age=31536000,
//!   immutable` (its URL names its content, so it never changes); attachments `private,
//!   max-age=31536000, immutable` (only the caller's browser keeps them);
//! - **`Range`**: one `bytes=` range is answered with 206 and `Content-Range` (several ranges:
//!   the whole file, 200, which RFC 9110 allows); a range outside the file is 416
//!   `range_not_satisfiable` with `Content-Range: bytes */<size>`; `If-Range` that does not
//!   name the ETag gets the whole file;
//! - **safety on the hub's origin**: `X-Content-Type-Options: nosniff` and a
//!   `Content-Security-Policy` with `sandbox` on every answer, so an uploaded HTML or SVG
//!   file opened as a page runs no script with the hub's origin; attachments also
//!   `Cross-Origin-Resource-Policy: same-origin`, and the `Content-Disposition` the caller
//!   gives.
//!
//! The body streams from the blob (a cache hit is one chunk); a body of at most
//! [`WHOLE_BODY_BYTES`] is read whole first, so that it leaves with its head; nothing here holds
//! a large blob whole.

use std::ops::Range;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use switchboard_media::{Blob, Hash, MediaError};
use switchboard_protocol::ErrorCode;

use crate::error::error_response;

/// `Cache-Control` of public media.
pub const PUBLIC_IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// `Cache-Control` of attachments.
pub const PRIVATE_IMMUTABLE: &str = "private, max-age=31536000, immutable";
/// The `Content-Security-Policy` of every media answer: a sandbox (no script, a unique
/// origin) that still shows images, audio and video.
pub const MEDIA_CSP: &str =
    "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'";

/// Answers up to this size are read whole before they are sent (see [`respond`]): one chunk
/// of either blob store at most.
pub const WHOLE_BODY_BYTES: u64 = 64 * 1024;

/// Who may keep a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caching {
    /// Anyone (avatars, emoticons): `public`.
    Public,
    /// Only the caller's browser (attachments and their thumbnails): `private`.
    Private,
}

/// What a media answer serves.
#[derive(Debug, Clone)]
pub struct Served {
    pub hash: Hash,
    /// The blob's size (for ranges).
    pub size: u64,
    /// A sniffed or known type, never the uploader's word.
    pub content_type: String,
    pub caching: Caching,
    /// `Content-Disposition`, for attachments.
    pub disposition: Option<String>,
}

/// A request's `Range`, decided against the blob's size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranged {
    /// No usable `Range` (absent, several ranges, another unit, or `If-Range` not matching):
    /// the whole file.
    Whole,
    /// One satisfiable range.
    Part(Range<u64>),
    /// A range outside the file: 416.
    Unsatisfiable,
}

/// The ETag of `hash`: the hex, quoted (strong).
pub fn etag(hash: &Hash) -> String {
    format!("\"{}\"", hash.to_hex())
}

/// Whether `If-None-Match` names `etag` (weak comparison, as RFC 9110 asks for this header).
pub fn not_modified(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim())
        .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t) == etag)
}

/// The range a request asks for, against a blob of `size` bytes.
pub fn range(headers: &HeaderMap, etag: &str, size: u64) -> Ranged {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ranged::Whole;
    };
    if let Some(if_range) = headers.get(header::IF_RANGE) {
        // Only a strong ETag match keeps the range (a date never matches: no Last-Modified).
        if if_range.to_str().ok().map(str::trim) != Some(etag) {
            return Ranged::Whole;
        }
    }
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ranged::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().unwrap_or(u64::MAX))
    };
    match (parse(first), parse(last), first.is_empty()) {
        // `bytes=-n`: the last n bytes.
        (None, Some(n), true) => {
            if n == 0 || size == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part(size.saturating_sub(n)..size)
            }
        }
        // `bytes=a-` and `bytes=a-b`.
        (Some(a), last, false) if last.is_some() || spec.trim().ends_with('-') => {
            if a >= size {
                return Ranged::Unsatisfiable;
            }
            match last {
                Some(b) if b < a => Ranged::Whole,
                Some(b) => Ranged::Part(a..b.saturating_add(1).min(size)),
                None => Ranged::Part(a..size),
            }
        }
        _ => Ranged::Whole,
    }
}

/// The headers every media answer carries (200, 206, 304, 416).
fn common(headers: &mut HeaderMap, served: &Served, etag: &str) {
    let set = |h: &mut HeaderMap, k, v: &str| {
        if let Ok(v) = HeaderValue::from_str(v) {
            h.insert(k, v);
        }
    };
    set(headers, header::ETAG, etag);
    set(
        headers,
        header::CACHE_CONTROL,
        match served.caching {
            Caching::Public => PUBLIC_IMMUTABLE,
            Caching::Private => PRIVATE_IMMUTABLE,
        },
    );
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::CONTENT_SECURITY_POLICY, MEDIA_CSP);
    set(headers, header::ACCEPT_RANGES, "bytes");
    if served.caching == Caching::Private {
        set(
            headers,
            header::HeaderName::from_static("cross-origin-resource-policy"),
            "same-origin",
        );
    }
}

/// The answer to a `GET` of `served`: 304, 416, 206 or 200, its body read by `read` (the
/// whole blob for `None`, else the range) only when one is sent.
pub async fn respond<F, Fut>(req: &HeaderMap, served: Served, read: F) -> Response
where
    F: FnOnce(Option<Range<u64>>) -> Fut,
    Fut: std::future::Future<Output = Result<Option<Blob>, MediaError>>,
{
    let tag = etag(&served.hash);
    let mut headers = HeaderMap::new();
    common(&mut headers, &served, &tag);
    if not_modified(req, &tag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    let ranged = range(req, &tag, served.size);
    let part = match ranged {
        Ranged::Unsatisfiable => {
            let mut resp = error_response(
                ErrorCode::RangeNotSatisfiable,
                format!("the range is not within the file's {} bytes", served.size),
            );
            resp.headers_mut().extend(headers);
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", served.size)) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return resp;
        }
        Ranged::Whole => None,
        Ranged::Part(r) => Some(r),
    };
    let blob = match read(part.clone()).await {
        Ok(Some(blob)) => blob,
        // Deleted between the lookup and the read (a sweep): as if it never was.
        Ok(None) | Err(MediaError::NotFound(_)) => {
            return error_response(ErrorCode::NotFound, "no such file")
        }
        Err(e) => {
            tracing::warn!(error = %e, hash = %served.hash, "reading a blob failed");
            return error_response(ErrorCode::Unavailable, "the file cannot be read now");
        }
    };
    if let Ok(v) = HeaderValue::from_str(&served.content_type) {
        headers.insert(header::CONTENT_TYPE, v);
    }
    if let Some(d) = served
        .disposition
        .as_deref()
        .and_then(|d| HeaderValue::from_str(d).ok())
    {
        headers.insert(header::CONTENT_DISPOSITION, d);
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(blob.len()));
    let status = match &part {
        Some(r) => {
            if let Ok(v) =
                HeaderValue::from_str(&format!("bytes {}-{}/{}", r.start, r.end - 1, served.size))
            {
                headers.insert(header::CONTENT_RANGE, v);
            }
            StatusCode::PARTIAL_CONTENT
        }
        None => StatusCode::OK,
    };
    let hash = served.hash;
    if blob.len() <= WHOLE_BODY_BYTES {
        // Collected (one chunk at most): hyper writes the head and the body at once. A body
        // streamed after its head would go out as a second small write, which Nagle's
        // algorithm holds until the client's delayed ACK of the head (about 40 ms).
        return match blob.into_bytes().await {
            Ok(bytes) => (status, headers, Body::from(bytes)).into_response(),
            Err(MediaError::NotFound(_)) => error_response(ErrorCode::NotFound, "no such file"),
            Err(e) => {
                tracing::warn!(error = %e, %hash, "reading a blob failed");
                error_response(ErrorCode::Unavailable, "the file cannot be read now")
            }
        };
    }
    let body = Body::from_stream(blob.chunks.map(move |chunk| {
        chunk.map_err(|e| {
            // Headers are gone: the connection is cut, so the client sees a short body.
            tracing::warn!(error = %e, %hash, "a blob read failed mid-answer");
            std::io::Error::other(e.to_string())
        })
    }));
    (status, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn ranges_are_decided_against_the_size() {
        let tag = "\"t\"";
        let r = |v: &str| range(&req(&[("range", v)]), tag, 100);
        assert_eq!(range(&HeaderMap::new(), tag, 100), Ranged::Whole);
        assert_eq!(r("bytes=0-9"), Ranged::Part(0..10));
        assert_eq!(r("bytes=90-"), Ranged::Part(90..100));
        assert_eq!(r("bytes=90-1000"), Ranged::Part(90..100), "clamped");
        assert_eq!(r("bytes=-10"), Ranged::Part(90..100));
        assert_eq!(r("bytes=-1000"), Ranged::Part(0..100));
        assert_eq!(r("bytes=100-"), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=-0"), Ranged::Unsatisfiable);
        assert_eq!(r("bytes=0-1,5-6"), Ranged::Whole, "several: the whole file");
        assert_eq!(r("items=0-1"), Ranged::Whole);
        assert_eq!(r("bytes=5-2"), Ranged::Whole, "invalid: ignored");
        assert_eq!(r("bytes=x-2"), Ranged::Whole);
        assert_eq!(r("bytes=-"), Ranged::Whole);
        assert_eq!(r("bytes=99999999999999999999999-"), Ranged::Unsatisfiable);
        assert_eq!(
            range(&req(&[("range", "bytes=0-0")]), tag, 0),
            Ranged::Unsatisfiable
        );
        let if_range = |v: &str| range(&req(&[("range", "bytes=0-9"), ("if-range", v)]), tag, 100);
        assert_eq!(if_range(tag), Ranged::Part(0..10));
        assert_eq!(if_range("\"other\""), Ranged::Whole);
        assert_eq!(if_range("Wed, 21 Oct 2015 07:28:00 GMT"), Ranged::Whole);
    }

    #[test]
    fn if_none_match_compares_weakly() {
        let tag = "\"abc\"";
        assert!(not_modified(&req(&[("if-none-match", "\"abc\"")]), tag));
        assert!(not_modified(&req(&[("if-none-match", "W/\"abc\"")]), tag));
        assert!(not_modified(
            &req(&[("if-none-match", "\"x\", \"abc\"")]),
            tag
        ));
        assert!(not_modified(&req(&[("if-none-match", "*")]), tag));
        assert!(!not_modified(&req(&[("if-none-match", "\"abd\"")]), tag));
        assert!(!not_modified(&HeaderMap::new(), tag));
    }
}
