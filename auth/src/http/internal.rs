//! The internal routes hubs call on the auth node (`/v1/internal/*`): the webhook endpoints
//! with their secrets, the 410-disable, and the server API's user lookup. Accepted only with
//! `Authorization: Bearer <service token>` (`--service-token`), compared in constant time;
//! otherwise 401 `unauthorized`, also when the node has no token configured. The token is never
//! logged (the request span records the path only).
//!
//! Not in the OpenAPI document (they are no client's API), and not in [`crate::Auth::router`]:
//! a hub with embedded auth never serves them (it needs none: it holds the registry), and a
//! hub in front of an auth node does not forward `/v1/internal/*` (its proxy forwards
//! `/v1/auth/*`, `/v1/admin/*`, `/v1/users/{username}` and the JWKS only).
//!
//! Bounds: the list holds at most 100 endpoints; a body at most 2 MiB (the JSON extractor), of
//! which a disable reason keeps 1000 bytes.

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use switchboard_kit::http::{AppJson, AppPath};
use switchboard_protocol::rest::{DisableWebhookRequest, InternalWebhookList, User};

use crate::error::AuthError;
use crate::Auth;

/// A request that presented this node's service token.
pub(crate) struct Service;

impl FromRequestParts<Auth> for Service {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, auth: &Auth) -> Result<Self, Self::Rejection> {
        let presented = switchboard_kit::http::bearer(&parts.headers)
            .ok()
            .flatten()
            .ok_or(AuthError::ServiceToken)?;
        let Some(expected) = &auth.inner.cfg.service_token else {
            return Err(AuthError::ServiceToken);
        };
        // Hashed first, so the comparison takes the same time whatever the lengths.
        let (presented, expected) = (
            Sha256::digest(presented.as_bytes()),
            Sha256::digest(expected.as_bytes()),
        );
        if bool::from(presented.ct_eq(&expected)) {
            Ok(Self)
        } else {
            Err(AuthError::ServiceToken)
        }
    }
}

/// `GET /v1/internal/webhooks` → 200 every endpoint, with its secret and enabled flag.
async fn webhooks(
    State(auth): State<Auth>,
    _: Service,
) -> Result<Json<InternalWebhookList>, AuthError> {
    Ok(Json(auth.internal_webhooks().await?))
}

/// `POST /v1/internal/webhooks/{id}/disable` `{reason}` → 204; 404 `not_found`.
async fn disable(
    State(auth): State<Auth>,
    _: Service,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<DisableWebhookRequest>,
) -> Result<StatusCode, AuthError> {
    auth.disable_webhook(&id, &req.reason).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/internal/users/{username}` → 200 `User` (without e-mail); 404 `user_not_found`
/// (also for a deleted account).
async fn user(
    State(auth): State<Auth>,
    _: Service,
    AppPath(username): AppPath<String>,
) -> Result<Json<User>, AuthError> {
    auth.user_by_username(&username)
        .await?
        .map(Json)
        .ok_or(AuthError::UserNotFound)
}

/// The internal routes (state not yet applied).
pub(crate) fn router() -> Router<Auth> {
    Router::new()
        .route("/v1/internal/webhooks", get(webhooks))
        .route("/v1/internal/webhooks/{id}/disable", post(disable))
        .route("/v1/internal/users/{username}", get(user))
}
