//! HTTP adapter: the auth routes. Handlers parse with the extractors in [`extractor`], call the
//! operations in `service`, and answer with protocol types; errors become JSON bodies in
//! [`error`]. Each handler carries its OpenAPI annotation (`#[utoipa::path]`) and is registered
//! with `routes!`, so a route and its documentation are one step; [`docs`] serves the document.

mod accounts;
mod docs;
mod error;
mod extractor;
mod internal;
mod jobs;
mod reset;
mod routes;
mod webhooks;

use axum::Router;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Auth;

pub(crate) use docs::node_router;

/// Every auth route with its documentation (state not yet applied). A new route is one
/// `.routes(routes!(handler))` line here, `handler` carrying `#[utoipa::path]`; the tests check
/// that the document and the router agree.
fn api() -> OpenApiRouter<Auth> {
    OpenApiRouter::default()
        .routes(routes!(routes::register))
        .routes(routes!(routes::login))
        .routes(routes!(routes::refresh))
        .routes(routes!(routes::logout))
        .routes(routes!(
            routes::me,
            routes::delete_me,
            accounts::set_my_email
        ))
        .routes(routes!(accounts::change_password))
        .routes(routes!(reset::request_reset))
        .routes(routes!(reset::confirm_reset))
        .routes(routes!(accounts::sessions, accounts::end_other_sessions))
        .routes(routes!(accounts::end_session))
        .routes(routes!(accounts::list_users))
        .routes(routes!(accounts::set_user_email, accounts::delete_user))
        .routes(routes!(accounts::set_user_role))
        .routes(routes!(jobs::list_jobs))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(webhooks::update_webhook, webhooks::delete_webhook))
        .routes(routes!(routes::user))
        .routes(routes!(routes::jwks))
}

/// All auth routes with `auth` as state. No fallback (the hub owns the 404).
pub(crate) fn router(auth: Auth) -> Router {
    Router::from(api()).with_state(auth)
}

/// The OpenAPI paths and schemas of the auth routes, for the hub's document (the hub serves
/// these routes in-process or forwards them to an auth node).
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}
