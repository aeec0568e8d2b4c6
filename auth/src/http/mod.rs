//! HTTP adapter: the auth routes. Handlers parse with the extractors in [`extractor`], call the
//! operations in `service`, and answer with protocol types; errors become JSON bodies in
//! [`error`].

mod accounts;
mod error;
mod extractor;
mod routes;

use axum::routing::{delete, get, patch, post};
use axum::Router;

use crate::Auth;

/// All auth routes with `auth` as state. No fallback (the hub owns the 404).
pub(crate) fn router(auth: Auth) -> Router {
    Router::new()
        .route("/v1/auth/register", post(routes::register))
        .route("/v1/auth/login", post(routes::login))
        .route("/v1/auth/refresh", post(routes::refresh))
        .route("/v1/auth/logout", post(routes::logout))
        .route(
            "/v1/auth/me",
            get(routes::me)
                .delete(routes::delete_me)
                .patch(accounts::set_my_email),
        )
        .route("/v1/auth/me/password", post(accounts::change_password))
        .route(
            "/v1/auth/sessions",
            get(accounts::sessions).delete(accounts::end_other_sessions),
        )
        .route("/v1/auth/sessions/{sid}", delete(accounts::end_session))
        .route("/v1/admin/users", get(accounts::list_users))
        .route(
            "/v1/admin/users/{id}",
            patch(accounts::set_user_email).delete(accounts::delete_user),
        )
        .route("/v1/users/{username}", get(routes::user))
        .route("/.well-known/jwks.json", get(routes::jwks))
        .with_state(auth)
}
