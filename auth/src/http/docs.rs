//! The auth node's own routes: `GET /healthz`, `GET /readyz` and its OpenAPI document,
//! `GET /v1/openapi.json` (the auth routes, these three, and the error bodies of
//! `switchboard_protocol::openapi`).

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Router};
use switchboard_kit::http::ready::Readiness;
use switchboard_protocol::openapi::{finish, Info};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Auth;

/// What the auth node's document says it is.
const INFO: Info<'static> = Info {
    title: "Switchboard auth node",
    description: "Accounts and tokens of a scaled-out Switchboard (`switchboard-auth`). Hub \
                  nodes forward these routes to it, so clients use the hub's origin; \
                  docs/PROTOCOL.md is the normative description.",
    version: env!("CARGO_PKG_VERSION"),
};

/// The finished document, serialised once when the router is built.
#[derive(Clone)]
struct Document(Bytes);

/// Liveness: 200 `ok` while the process serves.
///
/// The database is not probed: its failures show as 503 on the routes that need it.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process serves.", body = String, content_type = "text/plain"))
)]
async fn health() -> &'static str {
    "ok"
}

/// Readiness: 200 only while the store (and Redis, when configured) answer; 503 otherwise and
/// while the node drains, naming each check (docs/OPERATIONS.md, "Health and readiness").
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "`status` `ready` and every check `ok`.", content_type = "application/json"),
        (status = 503, description = "`status` `unready` (a check failed: `{\"ok\":false,\"error\":\"timeout|failed\"}`) or `draining`.", content_type = "application/json")
    )
)]
async fn readyz(Extension(readiness): Extension<Arc<Readiness>>) -> impl IntoResponse {
    readiness.report().await
}

/// This OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The document.", content_type = "application/json"))
)]
async fn openapi_json(Extension(Document(doc)): Extension<Document>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc)
}

/// Every route of the auth node with its documentation (state not yet applied).
fn api() -> OpenApiRouter<Auth> {
    super::api()
        .routes(routes!(health))
        .routes(routes!(readyz))
        .routes(routes!(openapi_json))
}

/// The auth node's routes with `auth` as state: the auth routes, the internal ones
/// (`/v1/internal/*`, left out of the document), `/healthz`, `/readyz` and
/// `/v1/openapi.json`. No fallback (`node::router` adds the JSON 404 and 405).
pub(crate) fn node_router(auth: Auth, readiness: Arc<Readiness>) -> Router {
    let (router, api) = api().split_for_parts();
    let doc = serde_json::to_vec(&finish(&api, INFO)).expect("a document serialises");
    router
        .merge(super::internal::router())
        .with_state(auth)
        .layer(Extension(Document(Bytes::from(doc))))
        .layer(Extension(readiness))
}

#[cfg(test)]
mod tests {
    use switchboard_protocol::openapi::{assert_router_matches_document, routed_operations};

    use super::*;

    /// Every route of the auth node is documented, and every documented operation is routed.
    #[test]
    fn the_document_and_the_router_agree() {
        let (router, api) = api().split_for_parts();
        let doc = finish(&api, INFO);
        let routed = routed_operations(&router);
        assert!(
            routed.contains(&("POST".into(), "/v1/auth/login".into())),
            "{routed:?}"
        );
        assert_router_matches_document(&router, &doc);
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
