//! The browser client: the page at `/` and its files under `/web/`.
//!
//! The files are plain HTML, CSS and JavaScript modules in `hub/web/` (no build step, nothing
//! from a CDN), embedded in the binary by [`ASSETS`], which lists each one explicitly: a file
//! that is not listed is not served (a unit test checks the list against the directory).
//!
//! Every answer carries its content type, `X-Content-Type-Options: nosniff`, a strict
//! [`CONTENT_SECURITY_POLICY`] and an `ETag`; `Cache-Control: no-cache` makes browsers
//! revalidate, which costs a `304` while the binary (and so the file) is unchanged. The files'
//! names carry no version, so a longer cache lifetime would serve stale files after an upgrade.

use axum::extract::Path;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::error_response;

/// The page's Content-Security-Policy: scripts, styles, images and fonts from this origin only
/// (no inline script or style, no `eval`), no plugins, no `<base>`, forms post only here, and the
/// page may not be framed. Images also from `blob:`: attachments of private rooms are fetched
/// with the token and shown through blob URLs. `connect-src` adds `ws:`/`wss:` for browsers whose `'self'` does not
/// cover WebSocket URLs (CSP level 2); the page itself only connects to its own origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self' ws: wss:; \
     script-src 'self'; style-src 'self'; img-src 'self' blob:; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Revalidate on every use (see the module docs).
const CACHE_CONTROL: &str = "no-cache";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// One embedded file.
pub struct Asset {
    /// Path under `/web/` (the page itself is served at `/`).
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
    /// FNV-1a of `body`, computed at compile time: the `ETag`.
    hash: u64,
}

/// 64-bit FNV-1a: a cheap, stable content hash for `ETag`s (not a security boundary).
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    hash
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!(concat!("../../web/", $path)),
            hash: fnv1a(include_bytes!(concat!("../../web/", $path))),
        }
    };
}

/// The page at `/`.
pub static INDEX: Asset = asset!("index.html", HTML);

/// Every file under `/web/`, explicitly.
pub static ASSETS: &[Asset] = &[
    asset!("app.js", JAVASCRIPT),
    asset!("js/account.js", JAVASCRIPT),
    asset!("js/admin.js", JAVASCRIPT),
    asset!("js/api.js", JAVASCRIPT),
    asset!("js/attachments.js", JAVASCRIPT),
    asset!("js/dom.js", JAVASCRIPT),
    asset!("js/emoticons.js", JAVASCRIPT),
    asset!("js/messages.js", JAVASCRIPT),
    asset!("js/reset.js", JAVASCRIPT),
    asset!("js/socket.js", JAVASCRIPT),
    asset!("js/store.js", JAVASCRIPT),
    asset!("js/ui.js", JAVASCRIPT),
    asset!("style.css", CSS),
    asset!("icon.svg", SVG),
];

/// `GET /` and `GET /web/{path}`, with their documentation (they need no state, so any).
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::default()
        .routes(routes!(index))
        .routes(routes!(file))
}

/// The browser client's page.
#[utoipa::path(
    get,
    path = "/",
    tag = "page",
    responses(
        (status = 200, description = "The page (with an `ETag`).", content_type = "text/html"),
        (status = 304, description = "Unchanged since the `If-None-Match` tag."),
    )
)]
async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &headers)
}

/// A file of the page (scripts, styles, icon), from the binary.
#[utoipa::path(
    get,
    path = "/web/{*path}",
    tag = "page",
    params(("path" = String, Path, description = "The file, e.g. `app.js` or `js/api.js`.")),
    responses(
        (status = 200, description = "The file (with an `ETag`)."),
        (status = 304, description = "Unchanged since the `If-None-Match` tag."),
        (status = 404, description = "`not_found`: no such file."),
    )
)]
async fn file(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match ASSETS.iter().find(|asset| asset.path == path) {
        Some(asset) => serve(asset, &headers),
        None => error_response(ErrorCode::NotFound, "no such file"),
    }
}

/// `asset` with its headers, or `304 Not Modified` when `If-None-Match` names its `ETag`.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let unchanged = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|tags| {
            tags.split(',')
                .map(|tag| tag.trim().trim_start_matches("W/"))
                .any(|tag| tag == etag || tag == "*")
        });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    let fixed: [(HeaderName, &'static str); 6] = [
        (header::CONTENT_TYPE, asset.content_type),
        (header::CACHE_CONTROL, CACHE_CONTROL),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn web_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("web")
    }

    fn files_under(dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("read hub/web") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                files_under(&path, out);
            } else {
                let relative = path.strip_prefix(web_dir()).expect("under hub/web");
                out.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    fn all() -> impl Iterator<Item = &'static Asset> {
        std::iter::once(&INDEX).chain(ASSETS.iter())
    }

    #[test]
    fn every_file_in_hub_web_is_listed_once_and_nothing_else() {
        let mut on_disk = Vec::new();
        files_under(&web_dir(), &mut on_disk);
        on_disk.sort();
        let mut listed: Vec<String> = all().map(|asset| asset.path.to_owned()).collect();
        listed.sort();
        assert_eq!(listed, on_disk);
    }

    #[test]
    fn every_reference_of_the_page_and_every_import_is_served() {
        let served: Vec<String> = ASSETS
            .iter()
            .map(|asset| format!("/web/{}", asset.path))
            .collect();
        let page = std::str::from_utf8(INDEX.body).expect("UTF-8");
        for reference in quoted_after(page, "=\"/web/") {
            let url = format!("/web/{reference}");
            assert!(served.contains(&url), "index.html refers to {url}");
        }
        for asset in ASSETS
            .iter()
            .filter(|asset| asset.content_type == JAVASCRIPT)
        {
            let source = std::str::from_utf8(asset.body).expect("UTF-8");
            let base = asset.path.rsplit_once('/').map_or("", |(dir, _)| dir);
            for import in quoted_after(source, "from \"./") {
                let url = if base.is_empty() {
                    format!("/web/{import}")
                } else {
                    format!("/web/{base}/{import}")
                };
                assert!(served.contains(&url), "{} imports {url}", asset.path);
            }
        }
    }

    /// The text up to the closing quote after each occurrence of `prefix`.
    fn quoted_after<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
        text.match_indices(prefix)
            .filter_map(|(at, _)| text[at + prefix.len()..].split('"').next())
            .collect()
    }

    /// User text must only ever reach the DOM as text: no API that parses markup.
    #[test]
    fn no_script_uses_an_html_sink() {
        for asset in ASSETS
            .iter()
            .filter(|asset| asset.content_type == JAVASCRIPT)
        {
            let source = std::str::from_utf8(asset.body).expect("UTF-8");
            for sink in [
                "innerHTML",
                "outerHTML",
                "insertAdjacentHTML",
                "document.write",
                "createContextualFragment",
                "eval(",
                "new Function",
            ] {
                let code: String = source
                    .lines()
                    .filter(|line| !line.trim_start().starts_with("//"))
                    .collect();
                assert!(!code.contains(sink), "{} uses {sink}", asset.path);
            }
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = std::str::from_utf8(INDEX.body).expect("UTF-8");
        assert!(!page.contains("<script>"), "inline script");
        assert!(!page.contains("<style"), "inline style");
        assert!(!page.contains("style=\""), "inline style attribute");
        let handler = page.match_indices(" on").any(|(at, _)| {
            let rest = &page[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            name_len > 0 && rest[name_len..].starts_with('=')
        });
        assert!(!handler, "inline event handler");
    }

    #[test]
    fn etags_change_with_content() {
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        let tags: std::collections::HashSet<u64> = all().map(|asset| asset.hash).collect();
        assert_eq!(tags.len(), ASSETS.len() + 1);
    }
}
