//! HTTP adapter: the auth routes. Handlers parse with the extractors in [`extractor`], call the
//! operations in `service`, and answer with protocol types; errors become JSON bodies in
//! [`error`].

mod error;
mod extractor;
mod routes;

use axum::routing::{get, post};
use axum::Router;

use crate::Auth;

/// All auth routes with `auth` as state. No fallback (the hub owns the 404).
pub(crate) fn router(auth: Auth) -> Router {
    Router::new()
        .route("/v1/auth/register", post(routes::register))
        .route("/v1/auth/login", post(routes::login))
        .route("/v1/auth/refresh", post(routes::refresh))
        .route("/v1/auth/logout", post(routes::logout))
        .route("/v1/auth/me", get(routes::me).delete(routes::delete_me))
        .route("/v1/users/{username}", get(routes::user))
        .route("/.well-known/jwks.json", get(routes::jwks))
        .with_state(auth)
}
