//! The rejection mapping through a real router (in-process `oneshot`); the servers' e2e tests
//! check the same codes over sockets.

use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt as _;
use serde::Deserialize;
use tower::ServiceExt as _;

use super::*;

#[derive(Deserialize)]
struct Body1 {
    n: u32,
}

#[derive(Deserialize)]
struct Page {
    limit: u32,
}

/// Routes that extract each kind, with a 64-byte body limit.
fn app() -> Router {
    Router::new()
        .route(
            "/json",
            post(|AppJson(b): AppJson<Body1>| async move { b.n.to_string() }),
        )
        .route(
            "/path/{n}",
            get(|AppPath(n): AppPath<u32>| async move { n.to_string() }),
        )
        .route(
            "/query",
            get(|AppQuery(p): AppQuery<Page>| async move { p.limit.to_string() }),
        )
        // A route without the parameter its handler wants: a server bug.
        .route(
            "/missing",
            get(|AppPath(n): AppPath<u32>| async move { n.to_string() }),
        )
        .layer(DefaultBodyLimit::max(64))
}

/// Status, and the code of our error body (`None` for a success).
async fn call(req: Request<Body>) -> (StatusCode, Option<String>) {
    let response = app().oneshot(req).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    if status.is_success() {
        return (status, None);
    }
    let body: ErrorBody = serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not our body ({e}): {}", String::from_utf8_lossy(&bytes)));
    assert!(!body.error.message.is_empty());
    (status, Some(body.error.code.as_str().to_owned()))
}

fn post_json(body: &str, content_type: Option<&str>) -> Request<Body> {
    let mut req = Request::post("/json");
    if let Some(ct) = content_type {
        req = req.header(header::CONTENT_TYPE, ct);
    }
    req.body(Body::from(body.to_owned())).unwrap()
}

fn get_uri(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

#[tokio::test]
async fn every_rejection_is_our_json_body_with_the_mapped_code() {
    let json = Some("application/json");
    let bad = |s: StatusCode, c: &str| (s, Some(c.to_owned()));
    let cases = [
        (post_json(r#"{"n":7}"#, json), (StatusCode::OK, None)),
        (
            post_json(r#"{"n":"#, json),
            bad(StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            post_json(r#"{"m":1}"#, json),
            bad(StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            post_json(r#"{"n":-1}"#, json),
            bad(StatusCode::BAD_REQUEST, "bad_request"),
        ),
        // A missing JSON content type is 400 too (axum says 415).
        (
            post_json(r#"{"n":7}"#, None),
            bad(StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            post_json(&format!(r#"{{"n":7,"pad":"{}"}}"#, "x".repeat(100)), json),
            bad(StatusCode::PAYLOAD_TOO_LARGE, "too_large"),
        ),
        (get_uri("/path/12"), (StatusCode::OK, None)),
        (
            get_uri("/path/twelve"),
            bad(StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (get_uri("/query?limit=5"), (StatusCode::OK, None)),
        (
            get_uri("/query?limit=five"),
            bad(StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            get_uri("/query"),
            bad(StatusCode::BAD_REQUEST, "bad_request"),
        ),
        (
            get_uri("/missing"),
            bad(StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        ),
    ];
    for (req, want) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        assert_eq!(call(req).await, want, "{what}");
    }
}

#[test]
fn bearer_of_a_request() {
    let headers = |value: Option<&[u8]>| {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(header::AUTHORIZATION, HeaderValue::from_bytes(v).unwrap());
        }
        h
    };
    assert_eq!(bearer(&headers(None)), Ok(None));
    assert_eq!(bearer(&headers(Some(b"bearer  t.k"))), Ok(Some("t.k")));
    assert_eq!(bearer(&headers(Some(b"Bearer "))), Err(NotBearer));
    assert_eq!(bearer(&headers(Some(b"Basic dTpw"))), Err(NotBearer));
    assert_eq!(bearer(&headers(Some(b"Bearer \xff"))), Err(NotBearer));
}
