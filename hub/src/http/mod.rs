//! The HTTP surface: the hub's REST routes, the auth routes (mounted in-process), the
//! WebSocket endpoints, the page, the API documents, and a JSON 404 for everything else.
//!
//! **Adding a route:** give its handler a `#[utoipa::path(...)]` annotation and register it in
//! [`api`] with `.routes(routes!(handler))` (handlers of one path together). That one call adds
//! the route and its documentation; a test fails for a route added any other way.

mod admin;
mod attachments;
mod avatars;
pub mod docs;
pub mod emoticons;
pub mod extract;
pub mod health;
mod media;
pub mod proxy;
pub mod rooms;
pub mod server;
pub mod web;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::{Extension, Json, Router};
use fastwebsockets::upgrade::IncomingUpgrade;
use switchboard_auth::ClientIp;
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::ErrorCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::Config;
use crate::error::error_response;
use crate::state::AppState;

/// Every route of the hub with its documentation, except the auth routes (state not yet
/// applied). See the module docs for adding one.
pub(crate) fn api(cfg: &Config) -> OpenApiRouter<AppState> {
    let mut api = OpenApiRouter::default()
        .routes(routes!(rooms::create, rooms::list))
        .routes(routes!(rooms::get))
        .routes(routes!(rooms::add_member))
        .routes(routes!(rooms::leave))
        .routes(routes!(rooms::read))
        .routes(routes!(rooms::presence))
        .routes(routes!(rooms::messages, rooms::post_message))
        .routes(routes!(rooms::edit_message, rooms::delete_message))
        .routes(routes!(rooms::direct))
        .routes(routes!(server::publish))
        .routes(routes!(server::disconnect))
        .routes(routes!(server::create_room))
        .routes(routes!(server::add_member, server::remove_member))
        .routes(routes!(server::messages))
        .routes(routes!(server::presence))
        .routes(routes!(admin::jobs))
        .routes(routes!(admin::retry_job))
        .routes(routes!(media::public))
        .routes(routes!(avatars::identicon))
        .routes(routes!(avatars::redirect))
        .routes(routes!(avatars::upload, avatars::clear))
        .routes(routes!(emoticons::list))
        .routes(routes!(emoticons::put, emoticons::remove))
        .routes(routes!(attachments::upload))
        .routes(routes!(attachments::download))
        .routes(routes!(attachments::thumbnail))
        .routes(routes!(ws))
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .merge(web::routes())
        .merge(docs::routes());
    if cfg.echo_endpoint {
        api = api.routes(routes!(echo));
    }
    api
}

/// An error answer with `Retry-After: 1`, for a slot that frees itself soon (an upload under
/// way on this hub, of anyone or of the caller).
fn retry_soon(code: ErrorCode, message: &'static str) -> Response {
    let mut resp = error_response(code, message);
    resp.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    resp
}

/// The hub's router. `auth` holds the auth routes (`/v1/auth/*`, `/v1/users/*`,
/// `/.well-known/jwks.json`): in-process, or forwarded to an auth node; either way they are in
/// the hub's document.
pub fn router(app: AppState, auth: Router) -> Router {
    let (hub, mut api) = api(&app.cfg).split_for_parts();
    api.merge(switchboard_auth::openapi());
    hub.with_state(app)
        .layer(Extension(docs::Document::new(&api)))
        .merge(auth)
        .fallback(|| async { error_response(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            let body = ErrorBody::new(ErrorCode::BadRequest, "method not allowed on this route");
            (StatusCode::METHOD_NOT_ALLOWED, Json(body))
        })
}

/// The realtime WebSocket (subprotocol `switchboard.v1`; frames in docs/asyncapi.yaml).
///
/// Upgrade with `Sec-WebSocket-Protocol: switchboard.v1`; an `Authorization: Bearer` header is
/// optional (the token may come in `hello` instead). The refusals come in this order.
#[utoipa::path(
    get,
    path = "/v1/ws",
    tag = "realtime",
    security((), ("bearer" = [])),
    responses(
        (status = 101, description = "Switching protocols: the WebSocket is open."),
        (status = 400, description = "`bad_request`: not a WebSocket upgrade request."),
        (status = 401, description = "`unauthorized`: an `Authorization` header that is not a valid access token."),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed."),
        (status = 429, description = "`rate_limited`: this client address holds `--max-connections-per-ip` WebSockets."),
        (status = 503, description = "`unavailable`: the node is at `--max-connections` (or `--max-anonymous-connections` for an anonymous upgrade), or the token cannot be checked now (with `Retry-After`)."),
    )
)]
async fn ws(
    state: State<AppState>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    crate::ws::ws_handler(state, client, headers, upgrade).await
}

/// A plain WebSocket echo for conformance suites (only with `--echo-endpoint`).
#[utoipa::path(
    get,
    path = "/v1/echo",
    tag = "realtime",
    responses(
        (status = 101, description = "Switching protocols: every message is echoed back."),
        (status = 400, description = "`bad_request`: not a WebSocket upgrade request."),
        (status = 403, description = "`forbidden`: the `Origin` is not allowed."),
    )
)]
async fn echo(
    state: State<AppState>,
    headers: HeaderMap,
    upgrade: Result<IncomingUpgrade, StatusCode>,
) -> Response {
    crate::ws::echo_handler(state, headers, upgrade).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use switchboard_protocol::openapi::{
        assert_router_matches_document, documented_operations, finish, routed_operations, Info,
    };

    use super::*;

    fn config(flags: &[&str]) -> Config {
        Config::parse_from(std::iter::once("switchboard-hub").chain(flags.iter().copied()))
    }

    /// Every route of the hub (but the auth routes, checked by the auth crate) is documented,
    /// and every documented operation is routed, with and without the echo endpoint.
    #[test]
    fn the_document_and_the_router_agree() {
        for (flags, echo) in [(&[][..], false), (&["--echo-endpoint"][..], true)] {
            let (router, api) = api(&config(flags)).split_for_parts();
            let info = Info {
                title: "t",
                description: "d",
                version: "0",
            };
            let routed = routed_operations(&router);
            assert!(
                routed.contains(&("GET".into(), "/v1/rooms/{id}".into())),
                "{routed:?}"
            );
            assert!(
                routed.contains(&("GET".into(), "/web/{path}".into())),
                "{routed:?}"
            );
            assert_eq!(routed.contains(&("GET".into(), "/v1/echo".into())), echo);
            assert_router_matches_document(&router, &finish(&api, info));
        }
    }

    /// The served document: OpenAPI 3.1, the auth routes in, an error body per error response.
    #[test]
    fn the_document_covers_the_auth_routes_and_the_error_codes() {
        let (_, mut api) = api(&config(&[])).split_for_parts();
        api.merge(switchboard_auth::openapi());
        let docs::Document(bytes) = docs::Document::new(&api);
        let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let operations = documented_operations(&doc);
        for (method, path) in [
            ("POST", "/v1/auth/login"),
            ("GET", "/.well-known/jwks.json"),
        ] {
            assert!(operations.contains(&(method.into(), path.into())), "{path}");
        }
        let not_found = &doc["paths"]["/v1/rooms/{id}/members"]["post"]["responses"]["404"];
        let codes = &not_found["content"]["application/json"]["schema"]["properties"]["error"]
            ["properties"]["code"]["enum"];
        assert_eq!(codes, &serde_json::json!(["not_found", "user_not_found"]));
    }
}
