//! The page's routes over plain HTTP: content types, the Content-Security-Policy and the other
//! security headers, revalidation with ETags, and JSON 404s for files that are not there.

use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use reqwest::StatusCode;

use crate::support::hub::Hub;

const FILES: [(&str, &str); 12] = [
    ("/", "text/html; charset=utf-8"),
    ("/web/app.js", "text/javascript; charset=utf-8"),
    ("/web/js/account.js", "text/javascript; charset=utf-8"),
    ("/web/js/admin.js", "text/javascript; charset=utf-8"),
    ("/web/js/api.js", "text/javascript; charset=utf-8"),
    ("/web/js/dom.js", "text/javascript; charset=utf-8"),
    ("/web/js/messages.js", "text/javascript; charset=utf-8"),
    ("/web/js/socket.js", "text/javascript; charset=utf-8"),
    ("/web/js/store.js", "text/javascript; charset=utf-8"),
    ("/web/js/ui.js", "text/javascript; charset=utf-8"),
    ("/web/style.css", "text/css; charset=utf-8"),
    ("/web/icon.svg", "image/svg+xml"),
];

#[tokio::test]
async fn the_page_and_its_files_have_types_a_strict_csp_and_etags() {
    let hub = Hub::start().await;
    let http = reqwest::Client::new();
    for (path, content_type) in FILES {
        let url = format!("{}{path}", hub.http_url());
        let response = http.get(&url).send().await.expect("GET");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_else(|| panic!("{path}: no {name} header"))
                .to_owned()
        };
        assert_eq!(header(CONTENT_TYPE.as_str()), content_type, "{path}");
        let csp = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "connect-src 'self' ws: wss:",
            "script-src 'self'",
            "style-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: CSP {csp:?} lacks {directive}"
            );
        }
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(CACHE_CONTROL.as_str()), "no-cache", "{path}");
        let etag = header(ETAG.as_str());
        let body = response.bytes().await.expect("body");
        assert!(!body.is_empty(), "{path}");

        // Revalidation: the same ETag answers 304 without a body.
        let again = http
            .get(&url)
            .header(IF_NONE_MATCH, &etag)
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{path}");
        assert!(again.bytes().await.expect("body").is_empty());
        let changed = http
            .get(&url)
            .header(IF_NONE_MATCH, "\"something-else\"")
            .send()
            .await
            .expect("conditional GET");
        assert_eq!(changed.status(), StatusCode::OK, "{path}");
    }

    // The page loads its code as modules from /web/ only.
    let page = http
        .get(hub.http_url())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("<script type=\"module\" src=\"/web/app.js\"></script>"));

    for missing in ["/web/nope.js", "/web/../Cargo.toml", "/web/", "/index.html"] {
        let response = http
            .get(format!("{}{missing}", hub.http_url()))
            .send()
            .await
            .expect("GET");
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{missing}");
        let body: serde_json::Value = response.json().await.expect("a JSON error body");
        assert_eq!(body["error"]["code"], "not_found", "{missing}");
    }

    // HEAD works as GET without the body.
    let head = http.head(hub.http_url()).send().await.expect("HEAD");
    assert_eq!(head.status(), StatusCode::OK);
    assert!(head.headers().contains_key("content-security-policy"));
}
