//! The content type of an attachment, from its first bytes only: a client's `Content-Type`
//! is never consulted.
//!
//! **Invariant:** the answer is one of [`KNOWN_TYPES`] and never an active type (no
//! `text/html`, no `image/svg+xml`, no JavaScript): an HTML or SVG upload is UTF-8 text, so it
//! is `text/plain`, which a browser does not run (the hub also serves every non-image as a
//! download, under a `sandbox` CSP and `nosniff`).

use crate::images::{self, ImageKind};

/// How many first bytes [`content_type`] looks at (at most).
pub const SNIFF_BYTES: usize = 8 * 1024;

/// `application/octet-stream`: anything not recognised.
pub const OCTET_STREAM: &str = "application/octet-stream";
/// UTF-8 text (HTML, SVG, source code, CSV... all of it plain text).
pub const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

/// Every type [`content_type`] may answer.
pub const KNOWN_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/webp",
    "image/gif",
    "application/pdf",
    "application/zip",
    TEXT_PLAIN,
    OCTET_STREAM,
];

/// The MIME type of an image kind.
pub fn image_type(kind: ImageKind) -> &'static str {
    match kind {
        ImageKind::Png => "image/png",
        ImageKind::Jpeg => "image/jpeg",
        ImageKind::Webp => "image/webp",
        ImageKind::Gif => "image/gif",
    }
}

/// The type of a file whose first bytes are `head` (pass up to [`SNIFF_BYTES`]; `complete`
/// when `head` is the whole file, so that a multi-byte character cut at its end is not
/// forgiven): PNG, JPEG, WebP, GIF, PDF, ZIP (and so the formats built on it), UTF-8 text
/// without control characters, else [`OCTET_STREAM`]. An empty file is [`OCTET_STREAM`].
pub fn content_type(head: &[u8], complete: bool) -> &'static str {
    let head = &head[..head.len().min(SNIFF_BYTES)];
    if let Some(kind) = images::sniff(head) {
        return image_type(kind);
    }
    if head.starts_with(b"%PDF-") {
        return "application/pdf";
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return "application/zip";
    }
    if !head.is_empty() && is_text(head, complete) {
        return TEXT_PLAIN;
    }
    OCTET_STREAM
}

/// UTF-8 (a character cut by the end of an incomplete head is allowed) with no control
/// character but tab, line feed, form feed, carriage return and escape.
fn is_text(head: &[u8], complete: bool) -> bool {
    let valid = match std::str::from_utf8(head) {
        Ok(s) => s,
        Err(e) if !complete && e.error_len().is_none() => {
            // Only the last, cut character is incomplete.
            std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or("")
        }
        Err(_) => return false,
    };
    valid
        .chars()
        .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\x0c' | '\r' | '\x1b'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n....", true), "image/png");
        assert_eq!(content_type(b"\xFF\xD8\xFF\xE0", true), "image/jpeg");
        assert_eq!(content_type(b"GIF89a..", true), "image/gif");
        assert_eq!(content_type(b"RIFF\0\0\0\0WEBPVP8 ", true), "image/webp");
        assert_eq!(content_type(b"%PDF-1.7\n", true), "application/pdf");
        assert_eq!(content_type(b"PK\x03\x04\x14\0", true), "application/zip");
        assert_eq!(
            content_type("héllo\r\n\tworld".as_bytes(), true),
            TEXT_PLAIN
        );
        assert_eq!(content_type(b"", true), OCTET_STREAM);
        assert_eq!(content_type(b"\0\x01\x02binary", true), OCTET_STREAM);
        assert_eq!(content_type(b"\xFF\xFEnot utf-8", true), OCTET_STREAM);
    }

    #[test]
    fn html_and_svg_are_plain_text() {
        for active in [
            &b"<!DOCTYPE html><html><script>alert(1)</script></html>"[..],
            b"<svg xmlns=\"http://www.w3.org/2000/svg\" onload=\"alert(1)\"/>",
        ] {
            assert_eq!(content_type(active, true), TEXT_PLAIN);
        }
        assert!(KNOWN_TYPES
            .iter()
            .all(|t| !t.contains("html") && !t.contains("svg")));
    }

    #[test]
    fn a_character_cut_by_the_head_is_forgiven_only_when_incomplete() {
        let text = "aé".as_bytes();
        let cut = &text[..text.len() - 1];
        assert_eq!(content_type(cut, false), TEXT_PLAIN);
        assert_eq!(content_type(cut, true), OCTET_STREAM);
    }
}
