//! Route handlers: parse, call the service, answer. No rules live here.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jsonwebtoken::jwk::JwkSet;
use switchboard_protocol::rest::{
    LoginRequest, MeResponse, RefreshRequest, RegisterRequest, RegisterResponse, TokenPair,
};

use switchboard_kit::http::{AppJson, AppPath};

use super::extractor::{Bearer, ClientAddr};
use crate::error::AuthError;
use crate::Auth;

/// `POST /v1/auth/register` → 201 `{user}`.
pub(super) async fn register(
    State(auth): State<Auth>,
    ClientAddr(ip): ClientAddr,
    AppJson(req): AppJson<RegisterRequest>,
) -> Result<(StatusCode, Json<RegisterResponse>), AuthError> {
    let outcome = auth.register(req, ip).await;
    auth.metrics().register(&outcome);
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse { user: outcome? }),
    ))
}

/// `POST /v1/auth/login` → 200 token pair.
pub(super) async fn login(
    State(auth): State<Auth>,
    ClientAddr(ip): ClientAddr,
    AppJson(req): AppJson<LoginRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    let outcome = auth.login(req, ip).await;
    auth.metrics().login(&outcome);
    Ok(Json(outcome?))
}

/// `POST /v1/auth/refresh` → 200 new token pair.
pub(super) async fn refresh(
    State(auth): State<Auth>,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    let outcome = auth.refresh(req).await;
    auth.metrics().refresh(&outcome);
    Ok(Json(outcome?))
}

/// `POST /v1/auth/logout` (Bearer) → 204.
pub(super) async fn logout(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<StatusCode, AuthError> {
    auth.logout(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/auth/me` (Bearer) → 200 `{user, session}`.
pub(super) async fn me(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<Json<MeResponse>, AuthError> {
    Ok(Json(auth.me(&claims).await?))
}

/// `DELETE /v1/auth/me` (Bearer) → 204; the user is deleted and all their sessions revoked.
pub(super) async fn delete_me(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<StatusCode, AuthError> {
    auth.delete_me(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/users/{username}` (Bearer) → 200 `{user}` without e-mail, or 404 `user_not_found`.
pub(super) async fn user(
    State(auth): State<Auth>,
    Bearer(_): Bearer,
    AppPath(username): AppPath<String>,
) -> Result<Json<RegisterResponse>, AuthError> {
    let user = auth.lookup(&username).await?;
    // `{user}` is the body registration answers with; the protocol has one type for it.
    Ok(Json(RegisterResponse { user }))
}

/// `GET /.well-known/jwks.json` → the public signing keys.
pub(super) async fn jwks(State(auth): State<Auth>) -> Json<JwkSet> {
    Json(auth.inner.keys.jwks())
}
