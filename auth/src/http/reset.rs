//! Handlers of password reset by mail (`/v1/auth/password/reset*`): no Bearer token (the
//! caller has lost their password); the rules are in `reset`.

use axum::extract::State;
use axum::http::StatusCode;
use switchboard_kit::http::AppJson;
use switchboard_protocol::rest::{PasswordResetConfirm, PasswordResetRequest};

use super::extractor::ClientAddr;
use crate::error::AuthError;
use crate::Auth;

/// Ask for a password-reset mail.
///
/// Always 202 with an empty body, whether or not an account has the address, so the answer
/// reveals nothing. When one has, and the address had fewer than 3 requests in the last hour,
/// a mail with a link valid for 30 minutes is sent (`{public URL}/#reset=<token>`).
#[utoipa::path(
    post,
    path = "/v1/auth/password/reset",
    tag = "accounts",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted: if an account has this address, a mail is on its way."),
        (status = 400, description = "`bad_request`: an `email` that is not an address, or a malformed body."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: too many reset requests from this address; retry after `Retry-After` seconds."),
        (status = 503, description = "`unavailable`: the database is unreachable; retry after `Retry-After` seconds."),
    )
)]
pub(super) async fn request_reset(
    State(auth): State<Auth>,
    ClientAddr(ip): ClientAddr,
    AppJson(req): AppJson<PasswordResetRequest>,
) -> Result<StatusCode, AuthError> {
    auth.request_password_reset(req, ip).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Set a new password with the token of a reset mail.
///
/// The token is spent, the user's other reset tokens stop working, and every session of the
/// user is revoked (their sockets close with 1008).
#[utoipa::path(
    post,
    path = "/v1/auth/password/reset/confirm",
    tag = "accounts",
    request_body = PasswordResetConfirm,
    responses(
        (status = 204, description = "The password is set; every session of the user has ended."),
        (status = 400, description = "`bad_request`: a `token` that is not 43 base64url characters, a `password` outside 8 characters to 1024 bytes (the token stays usable), or a malformed body."),
        (status = 401, description = "`unauthorized`: an unknown, expired or already used token."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: too many reset requests from this address; retry after `Retry-After` seconds."),
        (status = 503, description = "`unavailable`: every password-hashing slot is busy and the queue is full, or the database is unreachable; retry after `Retry-After` seconds."),
    )
)]
pub(super) async fn confirm_reset(
    State(auth): State<Auth>,
    ClientAddr(ip): ClientAddr,
    AppJson(req): AppJson<PasswordResetConfirm>,
) -> Result<StatusCode, AuthError> {
    auth.confirm_password_reset(req, ip).await?;
    Ok(StatusCode::NO_CONTENT)
}
