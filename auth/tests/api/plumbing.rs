//! The HTTP plumbing auth shares with the hub (`switchboard-kit`), on a node over real sockets:
//! `Authorization: Bearer` per RFC 7235, and one rejection mapping (413 `too_large` over the body
//! limit, 400 `bad_request` for malformed JSON or path).

use reqwest::Method;

use crate::support::node::{Http, Node};
use crate::support::within;

/// Status, `WWW-Authenticate` and error code (`None` for a success).
async fn call(
    url: &str,
    method: Method,
    authorization: Option<&str>,
    body: Option<(&str, String)>,
) -> (u16, Option<String>, Option<String>) {
    let mut req = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .request(method, url);
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    if let Some((content_type, body)) = body {
        req = req.header("content-type", content_type).body(body);
    }
    let resp = within("an HTTP answer", req.send()).await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    if resp.status().is_success() {
        return (status, challenge, None);
    }
    let body: serde_json::Value = resp.json().await.expect("our JSON error body");
    let code = body["error"]["code"].as_str().map(str::to_owned);
    assert!(code.is_some(), "{body}");
    (status, challenge, code)
}

#[tokio::test]
async fn bearer_credentials_follow_rfc_7235() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start("127.0.0.1:0", &["--data-dir", dir.path().to_str().unwrap()]).await;
    let alice = Http::new(&node.url).user("alice").await;
    let token = alice.access_token.as_str();
    let routes = [
        format!("{}/v1/auth/me", node.url),
        format!("{}/v1/users/alice", node.url),
    ];
    for value in [
        format!("Bearer {token}"),
        format!("bearer {token}"),
        format!("BEARER {token}"),
        format!("bEaReR     {token}"),
    ] {
        for url in &routes {
            let got = call(url, Method::GET, Some(&value), None).await;
            assert_eq!(got, (200, None, None), "{url} with {value:?}");
        }
    }
    let refused = (
        401,
        Some("Bearer".to_owned()),
        Some("unauthorized".to_owned()),
    );
    for value in [
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer     ".to_owned(),
        format!("Basic {token}"),
        format!("Bearer {token} {token}"),
        format!("Bearer,{token}"),
    ] {
        for url in &routes {
            let got = call(url, Method::GET, Some(&value), None).await;
            assert_eq!(got, refused, "{url} with {value:?}");
        }
    }
    node.stop().await;
}

#[tokio::test]
async fn rejections_are_our_json_errors() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start("127.0.0.1:0", &["--data-dir", dir.path().to_str().unwrap()]).await;
    let alice = Http::new(&node.url).user("alice").await;
    let bearer = format!("Bearer {}", alice.access_token);
    let register = format!("{}/v1/auth/register", node.url);
    let json = "application/json";
    let code = |c: &str| Some(c.to_owned());

    // Over axum's 2 MiB body limit.
    let huge = serde_json::json!({
        "username": "x".repeat(3 << 20), "email": "x@example.com", "password": "p"
    })
    .to_string();
    assert_eq!(
        call(&register, Method::POST, None, Some((json, huge))).await,
        (413, None, code("too_large"))
    );
    // Malformed JSON, and a JSON body without the JSON content type.
    let valid = r#"{"username":"bob","email":"b@example.com","password":"correct horse"}"#;
    assert_eq!(
        call(&register, Method::POST, None, Some((json, "{".to_owned()))).await,
        (400, None, code("bad_request"))
    );
    assert_eq!(
        call(
            &register,
            Method::POST,
            None,
            Some(("text/plain", valid.to_owned()))
        )
        .await,
        (400, None, code("bad_request"))
    );
    // A path segment that is not UTF-8 once decoded.
    let user = format!("{}/v1/users/%FF", node.url);
    assert_eq!(
        call(&user, Method::GET, Some(&bearer), None).await,
        (400, None, code("bad_request"))
    );
    node.stop().await;
}
