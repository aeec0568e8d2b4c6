//! The HTTP plumbing the hub shares with the auth node (`switchboard-kit`), on both backends: in
//! the scaled configuration the auth routes reach a separate auth node through the hub, so the
//! same requests check both servers' parsing over real sockets.
//!
//! - `Authorization: Bearer` per RFC 7235: the scheme in any case, one or more spaces, and an
//!   empty or malformed token refused with 401 (never anonymous).
//! - One rejection mapping: a body over the limit is 413 `too_large` on hub and auth routes
//!   alike; malformed JSON, path and query are 400 `bad_request`.

use reqwest::{Method, StatusCode};
use switchboard_client::protocol::ErrorCode;
use switchboard_client::Connection;

use crate::support::{within, TestServer};

/// Status and error code (`None` for a success) of `method url` with these headers and body.
async fn call(
    method: Method,
    url: &str,
    authorization: Option<&str>,
    body: Option<String>,
) -> (StatusCode, Option<ErrorCode>) {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    if let Some(body) = body {
        req = req.header("content-type", "application/json").body(body);
    }
    let response = within("the answer", req.send()).await.expect("answered");
    let status = response.status();
    if status.is_success() {
        return (status, None);
    }
    let body: serde_json::Value = response.json().await.expect("our JSON error body");
    let code = serde_json::from_value(body["error"]["code"].clone())
        .unwrap_or_else(|e| panic!("no error code ({e}): {body}"));
    (status, Some(code))
}

#[tokio::test]
async fn bearer_credentials_follow_rfc_7235_on_hub_and_auth_routes() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let token = alice.token();
    let hub_route = format!("{}/v1/rooms", server.http_url());
    let auth_route = format!("{}/v1/auth/me", server.http_url());
    let unauthorized = (StatusCode::UNAUTHORIZED, Some(ErrorCode::Unauthorized));

    for value in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("BeArEr    {token}"),
    ] {
        for url in [&hub_route, &auth_route] {
            let got = call(Method::GET, url, Some(&value), None).await;
            assert_eq!(got, (StatusCode::OK, None), "{url} with {value:?}");
        }
    }
    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer    ".to_owned(),
        format!("Basic {token}"),
        format!("Bearer {token} {token}"),
        format!("Bearer\"{token}\""),
    ] {
        for url in [&hub_route, &auth_route] {
            let got = call(Method::GET, url, Some(&value), None).await;
            assert_eq!(got, unauthorized, "{url} with {value:?}");
        }
    }
    // Where a token is optional, a malformed header is still 401, not an anonymous request.
    let room = alice.room_with(true, &[]).await;
    let optional = format!("{}/v1/rooms/{}", server.http_url(), room.id);
    assert_eq!(
        call(Method::GET, &optional, None, None).await,
        (StatusCode::OK, None)
    );
    assert_eq!(
        call(Method::GET, &optional, Some("Bearer "), None).await,
        unauthorized
    );

    // The WebSocket upgrade reads the header the same way.
    let header = format!("BEARER  {token}");
    let mut ws = Connection::connect_raw(&server.ws_url(), &[("Authorization", &header)])
        .await
        .expect("upgrade");
    let welcome = within("welcome", ws.hello(None)).await.expect("welcome");
    assert_eq!(
        welcome.user.map(|u| u.username),
        Some(alice.username.clone())
    );
    for value in ["Bearer ", "Basic abc"] {
        let Err(err) = Connection::connect_raw(&server.ws_url(), &[("Authorization", value)]).await
        else {
            panic!("the upgrade with {value:?} must be refused");
        };
        assert_eq!(err.status(), Some(401), "{value:?}: {err:?}");
        assert_eq!(
            err.code(),
            Some(ErrorCode::Unauthorized),
            "{value:?}: {err:?}"
        );
    }
}

#[tokio::test]
async fn rejections_map_alike_on_hub_and_auth_routes() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bearer = format!("Bearer {}", alice.token());
    let base = server.http_url();
    let too_large = (StatusCode::PAYLOAD_TOO_LARGE, Some(ErrorCode::TooLarge));
    let bad_request = (StatusCode::BAD_REQUEST, Some(ErrorCode::BadRequest));

    // Over every limit on the way: the hub's 2 MiB body limit, and the proxy's 64 KiB when the
    // auth routes are forwarded to an auth node.
    let huge = serde_json::json!({ "username": "x".repeat(3 << 20), "password": "p" }).to_string();
    let login = format!("{base}/v1/auth/login");
    assert_eq!(
        call(Method::POST, &login, None, Some(huge.clone())).await,
        too_large,
        "auth route"
    );
    let rooms = format!("{base}/v1/rooms");
    assert_eq!(
        call(Method::POST, &rooms, Some(&bearer), Some(huge)).await,
        too_large,
        "hub route"
    );

    // Malformed JSON.
    let broken = Some(r#"{"username":"#.to_owned());
    assert_eq!(
        call(Method::POST, &login, None, broken.clone()).await,
        bad_request,
        "auth route"
    );
    assert_eq!(
        call(Method::POST, &rooms, Some(&bearer), broken).await,
        bad_request,
        "hub route"
    );

    // An ill-typed path segment and query parameter.
    let room = alice.room_with(true, &[]).await;
    let seq = format!("{base}/v1/rooms/{}/messages/not-a-seq", room.id);
    let body = Some(r#"{"body":"edited"}"#.to_owned());
    assert_eq!(
        call(Method::PATCH, &seq, Some(&bearer), body).await,
        bad_request
    );
    let page = format!("{base}/v1/rooms/{}/messages?limit=many", room.id);
    assert_eq!(
        call(Method::GET, &page, Some(&bearer), None).await,
        bad_request
    );
}
