//! The API documents as a client meets them, on both backends: every operation of
//! `/v1/openapi.json` is routed (answered by its handler, not by the JSON 404/405 of unknown
//! routes; the auth routes in-process or forwarded to the auth node alike), and the API explorer
//! at `/v1/docs/` is served whole from the hub. (That every route is documented is checked
//! where the routers are built: the `the_document_and_the_router_agree` unit tests of the hub
//! and the auth crate.)

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::TestServer;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// `template` with each `{param}` filled in: a seq for `{seq}`, a word otherwise.
fn fill(template: &str) -> String {
    template.replace("{seq}", "1").split('{').enumerate().fold(
        String::new(),
        |mut out, (i, part)| {
            if i == 0 {
                out.push_str(part);
            } else {
                let (_, rest) = part.split_once('}').expect("a closed parameter");
                out.push('x');
                out.push_str(rest);
            }
            out
        },
    )
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let server = TestServer::start_with(&["--echo-endpoint"]).await;
    let http = client();
    let doc: Value = http
        .get(format!("{}/v1/openapi.json", server.http_url()))
        .send()
        .await
        .expect("GET /v1/openapi.json")
        .json()
        .await
        .expect("a JSON document");
    assert_eq!(doc["openapi"], "3.1.0");
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("a path item").keys() {
            let Ok(method) = Method::from_bytes(method.to_uppercase().as_bytes()) else {
                continue;
            };
            // No token and no body: every handler answers it itself (401, 400, ...), while an
            // unrouted one would get the fallback's 404 `no such route` or a 405.
            let url = format!("{}{}", server.http_url(), fill(path));
            let response = http
                .request(method.clone(), &url)
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            assert_ne!(
                status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {body}"
            );
            assert!(
                !(status == StatusCode::NOT_FOUND && body.contains("no such route")),
                "{method} {path} is documented but not routed: {body}"
            );
            checked += 1;
        }
    }
    // The hub's routes, the auth routes, the page and the documents.
    assert!(checked >= 25, "only {checked} operations documented");
}

#[tokio::test]
async fn the_explorer_is_served_from_the_hub_with_its_files() {
    let server = TestServer::start().await;
    let http = client();
    let base = server.http_url();
    let redirect = http.get(format!("{base}/v1/docs")).send().await.unwrap();
    assert_eq!(redirect.status(), StatusCode::SEE_OTHER);
    assert_eq!(redirect.headers()["location"], "/v1/docs/");

    let page = http.get(format!("{base}/v1/docs/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    // Every file the page loads is relative (nothing from a CDN) and served by the hub.
    let mut files = 0;
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let reference = html[at + attribute.len()..].split('"').next().unwrap();
            assert!(!reference.contains("//"), "the page loads {reference}");
            let file = reference.trim_start_matches("./");
            let response = http
                .get(format!("{base}/v1/docs/{file}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{file}");
            files += 1;
        }
    }
    assert!(files >= 3, "the page loads {files} files");
    let init = http
        .get(format!("{base}/v1/docs/swagger-initializer.js"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/v1/openapi.json"), "{init}");

    let missing = http
        .get(format!("{base}/v1/docs/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
}
