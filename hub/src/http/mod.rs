//! The HTTP surface: the hub's REST routes, the auth routes (mounted in-process), the
//! WebSocket endpoints, and a JSON 404 for everything else.

pub mod extract;
pub mod health;
pub mod proxy;
pub mod rooms;
pub mod web;

use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::ErrorCode;

use crate::error::error_response;
use crate::state::AppState;

/// The hub's router. `auth` holds the auth routes (`/v1/auth/*`, `/.well-known/jwks.json`).
pub fn router(app: AppState, auth: Router) -> Router {
    let mut hub = Router::new()
        .route("/v1/rooms", post(rooms::create).get(rooms::list))
        .route("/v1/rooms/{id}", get(rooms::get))
        .route("/v1/rooms/{id}/members", post(rooms::add_member))
        .route("/v1/rooms/{id}/leave", post(rooms::leave))
        .route("/v1/rooms/{id}/read", post(rooms::read))
        .route("/v1/rooms/{id}/presence", get(rooms::presence))
        .route(
            "/v1/rooms/{id}/messages",
            get(rooms::messages).post(rooms::post_message),
        )
        .route(
            "/v1/rooms/{id}/messages/{seq}",
            axum::routing::patch(rooms::edit_message).delete(rooms::delete_message),
        )
        .route("/v1/direct/{username}", post(rooms::direct))
        .route("/v1/ws", get(crate::ws::ws_handler))
        .route("/healthz", get(health::healthz));
    if app.cfg.echo_endpoint {
        hub = hub.route("/v1/echo", get(crate::ws::echo_handler));
    }
    hub.with_state(app)
        .merge(auth)
        .merge(web::router())
        .fallback(|| async { error_response(ErrorCode::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            let body = ErrorBody::new(ErrorCode::BadRequest, "method not allowed on this route");
            (StatusCode::METHOD_NOT_ALLOWED, Json(body))
        })
}
