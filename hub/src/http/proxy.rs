//! Forwards `/v1/auth/*`, `/v1/admin/*`, `/v1/users/*` and `/.well-known/jwks.json` to a separate auth node, so clients behind
//! a TCP load balancer see one origin. Bodies are small JSON; they are buffered, not streamed.

use std::net::{IpAddr, SocketAddr};

use axum::body::{to_bytes, Body};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use switchboard_auth::ClientIp;
use switchboard_protocol::ErrorCode;

use crate::error::error_response;

/// Largest request body forwarded (auth bodies are tiny).
const MAX_BODY: usize = 64 * 1024;
/// The header that tells the auth node the client's address.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address: the [`ClientIp`] the accept loop set, else the TCP peer.
fn client_ip(parts: &axum::http::request::Parts) -> Option<IpAddr> {
    if let Some(ClientIp(ip)) = parts.extensions.get::<ClientIp>() {
        return Some(*ip);
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

#[derive(Clone)]
struct Upstream {
    base: String,
    http: reqwest::Client,
}

/// Routes that forward to the auth node at `base` (e.g. `http://127.0.0.1:8090`).
pub fn router(base: &str, timeout: std::time::Duration) -> Router {
    let http = reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .expect("http client");
    let up = Upstream {
        base: base.trim_end_matches('/').to_owned(),
        http,
    };
    Router::new()
        .route("/v1/auth/{*rest}", any(forward))
        .route("/v1/admin/{*rest}", any(forward))
        .route("/v1/users/{username}", any(forward))
        .route("/.well-known/jwks.json", any(forward))
        .with_state(up)
}

async fn forward(State(up): State<Upstream>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return error_response(ErrorCode::TooLarge, "request body too large");
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut out = up
        .http
        .request(parts.method.clone(), format!("{}{path}", up.base))
        .body(body);
    // The user agent names a session in its owner's session list.
    for name in [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::ACCEPT,
        header::USER_AGENT,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            out = out.header(name, v);
        }
    }
    // The auth node limits logins and registrations per client address and believes this
    // header from the hubs (its `--trusted-proxies`). It is ours alone: a client-supplied one is
    // never copied, so a client cannot choose its address.
    if let Some(ip) = client_ip(&parts) {
        out = out.header(X_FORWARDED_FOR, ip.to_string());
    }
    let resp = match out.send().await {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(error = %e, "auth node unreachable");
            return error_response(ErrorCode::Unavailable, "the auth service is unavailable");
        }
    };
    let status = StatusCode::from_u16(resp.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers: Vec<(header::HeaderName, HeaderValue)> = [
        header::CONTENT_TYPE,
        header::WWW_AUTHENTICATE,
        header::RETRY_AFTER,
    ]
    .into_iter()
    .filter_map(|n| {
        let v = resp.headers().get(n.as_str())?;
        Some((n, HeaderValue::from_bytes(v.as_bytes()).ok()?))
    })
    .collect();
    match resp.bytes().await {
        Ok(bytes) => {
            let mut r = (status, Body::from(bytes)).into_response();
            r.headers_mut().extend(headers);
            r
        }
        Err(_) => error_response(ErrorCode::Unavailable, "the auth service is unavailable"),
    }
}
