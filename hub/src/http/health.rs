//! `GET /healthz` (liveness) and the checks behind `GET /readyz` (readiness).
//!
//! - `/healthz` answers 200 while the process serves, with this node's load; it probes nothing,
//!   so a dependency's outage never makes a live node look dead.
//! - `/readyz` ([`switchboard_kit::http::ready`]) answers 200 only when the node can serve:
//!   `store` (SQLite or PostgreSQL answers a read), `broker` (Redis answers `PING`; the
//!   in-process broker always passes) and, with `--auth-url`, `auth` (the auth node serves a
//!   JWKS with a key, without which no new token can be verified). 503 otherwise, and from the
//!   first shutdown signal on (`draining`), so a load balancer stops sending new clients before
//!   the node closes its WebSockets.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use switchboard_kit::http::ready::Readiness;

use crate::state::AppState;
use crate::store::Store;

/// The room id the store check reads: no room has an empty id, so the read is one indexed
/// lookup that finds nothing, through the store's own connections and timeout (it fails exactly
/// when requests would).
const PROBE_ROOM: &str = "";

/// Liveness and load: 200 with this node's connections and queued bytes while it serves.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "`status` `ok`, `connections`, `queued_bytes`.", content_type = "application/json"))
)]
pub async fn healthz(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "status": "ok",
        "connections": app.registry.conn_count(),
        "queued_bytes": app.registry.queued_bytes(),
    }))
}

/// Readiness: 200 only while the store, the broker and (with `--auth-url`) the auth node
/// answer; 503 otherwise and while the node drains, naming each check.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`status` `ready` and every check `ok`.", content_type = "application/json"),
        (status = 503, description = "`status` `unready` (a check failed: `{\"ok\":false,\"error\":\"timeout|failed\"}`) or `draining` (the node stops; see `--drain-delay-ms`).", content_type = "application/json")
    )
)]
pub async fn readyz(Extension(readiness): Extension<Arc<Readiness>>) -> impl IntoResponse {
    readiness.report().await
}

/// What `/readyz` checks on a hub.
pub struct Dependencies {
    pub store: Arc<dyn Store>,
    /// A connection to the Redis server of `--redis-url` (`None`: the in-process broker).
    pub redis: Option<::redis::aio::ConnectionManager>,
    /// `--auth-url` (`None`: auth runs in this process, on the store checked above).
    pub auth_url: Option<String>,
}

/// The hub's readiness checks (see the module docs), with the kit's default bounds.
pub fn readiness(deps: Dependencies) -> Readiness {
    let store = deps.store;
    let mut readiness = Readiness::new().check("store", move || {
        let store = store.clone();
        async move {
            store
                .room(PROBE_ROOM)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    });
    readiness = match deps.redis {
        Some(conn) => readiness.check("broker", move || {
            let mut conn = conn.clone();
            async move {
                ::redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }),
        None => readiness.check("broker", || async { Ok(()) }),
    };
    if let Some(url) = deps.auth_url {
        let http = reqwest::Client::builder()
            .no_proxy()
            // The readiness timeout bounds the whole check; this only keeps sockets from
            // lingering after it.
            .timeout(Duration::from_secs(5))
            .build()
            .expect("building an HTTP client without TLS cannot fail");
        let jwks = format!("{}/.well-known/jwks.json", url.trim_end_matches('/'));
        readiness = readiness.check("auth", move || auth_keys(http.clone(), jwks.clone()));
    }
    readiness
}

/// The auth node answers its JWKS with at least one key.
async fn auth_keys(http: reqwest::Client, url: String) -> Result<(), String> {
    let response = http.get(&url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url} answered {}", response.status()));
    }
    let body: serde_json::Value = response.json().await.map_err(|e| e.to_string())?;
    match body["keys"].as_array() {
        Some(keys) if !keys.is_empty() => Ok(()),
        _ => Err(format!("{url} holds no key")),
    }
}
