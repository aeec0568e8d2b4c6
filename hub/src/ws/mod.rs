//! WebSocket endpoints: `/v1/ws` (protocol v1) and `/v1/echo` (conformance).
//!
//! The upgrade is checked here, before any WebSocket exists: the Origin allowlist (403), an
//! `Authorization` header if present (401), and the subprotocol.

pub mod conn;
pub mod echo;
pub mod frame;
pub mod transport;
pub mod writer;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fastwebsockets::upgrade::IncomingUpgrade;
use switchboard_protocol::{ErrorCode, SUBPROTOCOL};

use crate::error::error_response;
use crate::http::extract::bearer_token;
use crate::state::AppState;

/// Whether a browser request from `origin` may upgrade. Without an allowlist, only the origin
/// whose host:port equals the request's `Host` is allowed.
pub fn origin_allowed(allowed: &[String], origin: &str, host: Option<&str>) -> bool {
    let origin = origin.trim_end_matches('/');
    if !allowed.is_empty() {
        return allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(origin));
    }
    let authority = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    host.is_some_and(|h| h.eq_ignore_ascii_case(authority))
}

#[allow(
    clippy::result_large_err,
    reason = "the error is the finished response"
)]
fn check_origin(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    match origin.to_str() {
        Ok(o) if origin_allowed(&app.cfg.allowed_origins, o, host) => Ok(()),
        _ => Err(error_response(ErrorCode::Forbidden, "origin not allowed")),
    }
}

fn not_an_upgrade() -> Response {
    error_response(
        ErrorCode::BadRequest,
        "expected a WebSocket upgrade request",
    )
}

/// `GET /v1/ws`.
pub async fn ws_handler(
    State(app): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    if let Err(resp) = check_origin(&app, &headers) {
        return resp;
    }
    if app.registry.conn_count() >= app.cfg.max_connections {
        return error_response(
            ErrorCode::Unavailable,
            "this node is at its connection limit",
        );
    }
    let pre_auth = match bearer_token(&headers) {
        Ok(None) => None,
        Ok(Some(token)) => match app.authenticate(token).await {
            Ok(identity) => Some(identity),
            Err(e) => return error_response(ErrorCode::Unauthorized, e.to_string()),
        },
        Err(resp) => return resp,
    };
    let Ok(upgrade) = upgrade else {
        return not_an_upgrade();
    };
    let Ok((mut response, fut)) = upgrade.upgrade() else {
        return not_an_upgrade();
    };
    let offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL);
    if offered {
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(SUBPROTOCOL),
        );
    }
    let tracker = app.conns.clone();
    tracker.spawn(conn::serve(fut, app, pre_auth.map(Box::new)));
    response.into_response()
}

/// `GET /v1/echo` (only routed with `--echo-endpoint`).
pub async fn echo_handler(
    State(app): State<AppState>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    if let Err(resp) = check_origin(&app, &headers) {
        return resp;
    }
    let Ok(upgrade) = upgrade else {
        return not_an_upgrade();
    };
    let Ok((response, fut)) = upgrade.upgrade() else {
        return not_an_upgrade();
    };
    let max = app.cfg.echo_max_message_bytes;
    let kill = app.registry.shutdown_switch();
    app.conns.spawn(async move {
        if let Ok(ws) = fut.await {
            echo::serve(ws, max, kill).await;
        }
    });
    response.into_response()
}

#[cfg(test)]
mod tests {
    use super::origin_allowed;

    #[test]
    fn same_origin_by_default() {
        assert!(origin_allowed(
            &[],
            "http://localhost:8080",
            Some("localhost:8080")
        ));
        assert!(origin_allowed(
            &[],
            "https://chat.example.com",
            Some("chat.example.com")
        ));
        assert!(!origin_allowed(
            &[],
            "http://evil.example",
            Some("localhost:8080")
        ));
        assert!(!origin_allowed(&[], "http://localhost:8080", None));
    }

    #[test]
    fn allowlist_replaces_the_default() {
        let allowed = vec!["https://app.example.com".to_string()];
        assert!(origin_allowed(
            &allowed,
            "https://app.example.com",
            Some("hub:8080")
        ));
        assert!(!origin_allowed(
            &allowed,
            "http://hub:8080",
            Some("hub:8080")
        ));
    }
}
