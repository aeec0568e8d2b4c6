//! WebSocket endpoints: `/v1/ws` (protocol v1) and `/v1/echo` (conformance).
//!
//! The upgrade is checked here, before any WebSocket exists: the Origin rule (403, see
//! [`origin`]), the node's connection cap (503), an `Authorization` header if present (401),
//! the per-IP cap (429) and the anonymous cap (503, see [`slots`]), and the subprotocol.

pub mod conn;
pub mod echo;
pub mod frame;
pub mod origin;
pub mod slots;
pub mod transport;
pub mod writer;

use std::net::{IpAddr, Ipv4Addr};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use fastwebsockets::upgrade::IncomingUpgrade;
use switchboard_auth::ClientIp;
use switchboard_protocol::{ErrorCode, SUBPROTOCOL};

use crate::error::error_response;
use crate::http::extract::bearer_token;
use crate::state::AppState;

#[allow(
    clippy::result_large_err,
    reason = "the error is the finished response"
)]
fn check_origin(app: &AppState, headers: &HeaderMap) -> Result<(), Response> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    match origin.to_str() {
        Ok(o) if app.origins.allows(o) => Ok(()),
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
    client: Option<Extension<ClientIp>>,
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
            Err(e) => return crate::error::Error::from(e).into_response(),
        },
        Err(resp) => return resp,
    };
    // The listener always sets it; a router served some other way counts as one address.
    let ip = client.map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |Extension(c)| c.0);
    let slot = match app.slots.acquire(ip, pre_auth.is_some()) {
        Ok(slot) => slot,
        Err(refusal) => {
            tracing::debug!(%ip, %refusal, "upgrade refused");
            if refusal == slots::Refusal::PerIp {
                app.registry
                    .metrics()
                    .rate_limited(crate::metrics::Limit::ConnectionsPerIp);
            }
            return error_response(refusal.code(), refusal.to_string());
        }
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
    // At debug level: no event inside a connection is above it, and an enabled span would cost
    // every idle connection its data in the subscriber (see "Memory per connection").
    let span = tracing::debug_span!(
        parent: None,
        "conn",
        id = tracing::field::Empty,
        node = app.cfg.node_id.as_deref().unwrap_or_default(),
        user = pre_auth.as_ref().map(|who| &*who.username),
    );
    let tracker = app.conns.clone();
    tracker.spawn(tracing::Instrument::instrument(
        conn::serve(fut, app, pre_auth.map(Box::new), slot),
        span,
    ));
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
