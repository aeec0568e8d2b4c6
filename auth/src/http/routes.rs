//! Route handlers: parse, call the service, answer. No rules live here.
//!
//! Each handler's `#[utoipa::path]` is its OpenAPI entry: its first doc line the summary, the
//! rest the description, and each error response names its codes in backticks (the
//! document's error bodies are derived from them: `switchboard_protocol::openapi`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use jsonwebtoken::jwk::JwkSet;
use switchboard_protocol::rest::{
    LoginRequest, MeResponse, RefreshRequest, RegisterRequest, RegisterResponse, TokenPair,
};

use switchboard_kit::http::{AppJson, AppPath};

use super::extractor::{Bearer, ClientAddr, UserAgent};
use crate::error::AuthError;
use crate::Auth;

/// Register an account.
///
/// `username`: 3–32 characters of `[a-z0-9_.-]`, unique (a deleted account's name stays
/// reserved); `email`: an address; `password`: 8 characters to 1024 bytes. Registrations are
/// limited per client address.
#[utoipa::path(
    post,
    path = "/v1/auth/register",
    tag = "accounts",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account was created.", body = RegisterResponse),
        (status = 400, description = "`bad_request`: an invalid username, email or password, or a malformed body."),
        (status = 409, description = "`username_taken`: the username exists or existed."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: too many registrations from this address; retry after `Retry-After` seconds."),
    )
)]
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

/// Log in: start a session.
///
/// The answer (status, body and timing) is the same for an unknown username and a wrong
/// password. Failed logins are limited per username and attempts per client address.
#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "accounts",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "A new session's token pair.", body = TokenPair),
        (status = 400, description = "`bad_request`: a malformed body."),
        (status = 401, description = "`invalid_credentials`: wrong username or password."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: too many logins for this username or from this address; retry after `Retry-After` seconds."),
        (status = 503, description = "`unavailable`: every password-hashing slot is busy and the queue is full, or a backing service is down; retry after `Retry-After` seconds."),
    )
)]
pub(super) async fn login(
    State(auth): State<Auth>,
    ClientAddr(ip): ClientAddr,
    UserAgent(agent): UserAgent,
    AppJson(req): AppJson<LoginRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    let outcome = auth.login(req, ip, agent).await;
    auth.metrics().login(&outcome);
    Ok(Json(outcome?))
}

/// Exchange a refresh token for a new token pair.
///
/// The refresh token sent is spent; sending a spent one again revokes the whole session.
#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "accounts",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new token pair in the same session.", body = TokenPair),
        (status = 400, description = "`bad_request`: a malformed body."),
        (status = 401, description = "`unauthorized`: an unknown, malformed, expired or spent refresh token."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
pub(super) async fn refresh(
    State(auth): State<Auth>,
    AppJson(req): AppJson<RefreshRequest>,
) -> Result<Json<TokenPair>, AuthError> {
    let outcome = auth.refresh(req).await;
    auth.metrics().refresh(&outcome);
    Ok(Json(outcome?))
}

/// Log out: end the session of the presented access token.
///
/// The session's sockets close (1008) and its refresh token stops working.
#[utoipa::path(
    post,
    path = "/v1/auth/logout",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session is revoked."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
    )
)]
pub(super) async fn logout(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<StatusCode, AuthError> {
    auth.logout(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller: their user and the session of the presented token.
#[utoipa::path(
    get,
    path = "/v1/auth/me",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "The user and the session.", body = MeResponse),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
    )
)]
pub(super) async fn me(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<Json<MeResponse>, AuthError> {
    Ok(Json(auth.me(&claims).await?))
}

/// Delete the caller's account and revoke every session of it.
///
/// The username stays reserved; the messages the user sent remain.
#[utoipa::path(
    delete,
    path = "/v1/auth/me",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The account is deleted."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
    )
)]
pub(super) async fn delete_me(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<StatusCode, AuthError> {
    auth.delete_me(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Look a user up by username (without their email).
#[utoipa::path(
    get,
    path = "/v1/users/{username}",
    tag = "accounts",
    security(("bearer" = [])),
    params(("username" = String, Path, description = "The username to look up.")),
    responses(
        (status = 200, description = "The user.", body = RegisterResponse),
        (status = 400, description = "`bad_request`: a path that is not valid UTF-8 or not one segment."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 404, description = "`user_not_found`: no such user (a deleted account no longer exists)."),
    )
)]
pub(super) async fn user(
    State(auth): State<Auth>,
    Bearer(_): Bearer,
    AppPath(username): AppPath<String>,
) -> Result<Json<RegisterResponse>, AuthError> {
    let user = auth.lookup(&username).await?;
    // `{user}` is the body registration answers with; the protocol has one type for it.
    Ok(Json(RegisterResponse { user }))
}

/// The public keys that verify access tokens (JWKS, RFC 7517).
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "accounts",
    responses((status = 200, description = "The key set.", body = Jwks))
)]
pub(super) async fn jwks(State(auth): State<Auth>) -> Json<JwkSet> {
    Json(auth.inner.keys.jwks())
}

/// A JSON Web Key Set (RFC 7517), as `GET /.well-known/jwks.json` answers: the Ed25519 public
/// keys (`kty` `OKP`, `crv` `Ed25519`, `alg` `EdDSA`) that verify access tokens, by `kid`. For
/// the OpenAPI document only: the answer is `jsonwebtoken`'s `JwkSet`.
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "a schema for the document, never built")]
pub(super) struct Jwks {
    keys: Vec<Jwk>,
}

/// One public key of [`Jwks`].
#[derive(utoipa::ToSchema)]
#[expect(dead_code, reason = "a schema for the document, never built")]
struct Jwk {
    /// Key type: `OKP`.
    kty: String,
    /// Curve: `Ed25519`.
    crv: Option<String>,
    /// The public key, base64url.
    x: Option<String>,
    /// Key id, the `kid` of the tokens it verifies.
    kid: Option<String>,
    /// `EdDSA`.
    alg: Option<String>,
}
