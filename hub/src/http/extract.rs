//! Extractors that turn every rejection into our JSON error body: the shared ones of
//! `switchboard_kit::http`, and the caller's identity.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use switchboard_protocol::ErrorCode;

use crate::error::error_response;
use crate::service::Identity;
use crate::state::AppState;

/// The JSON body, path and query extractors, shared with the auth routes: one rejection mapping
/// (`400 bad_request`, `413 too_large` over the body limit, axum's default 2 MiB).
pub use switchboard_kit::http::{AppJson, AppPath, AppQuery};

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, a `401`
/// response when the header is not `Bearer <token>` (RFC 7235: any case of the scheme, one or
/// more spaces, a non-empty token; see `switchboard_kit::bearer`).
#[allow(
    clippy::result_large_err,
    reason = "the error is the finished response"
)]
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Response> {
    switchboard_kit::http::bearer(headers)
        .map_err(|e| error_response(ErrorCode::Unauthorized, e.to_string()))
}

/// An authenticated caller; `401 unauthorized` otherwise.
pub struct Caller(pub Identity);

/// The caller if a valid token was presented, `None` without one; an invalid token is still
/// `401` (never silently anonymous), and one that cannot be checked now `503` with
/// `Retry-After` (see [`crate::error::Error::Token`]).
pub struct MaybeCaller(pub Option<Identity>);

impl FromRequestParts<AppState> for MaybeCaller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match bearer_token(&parts.headers)? {
            None => Ok(Self(None)),
            Some(token) => app
                .authenticate(token)
                .await
                .map(|i| Self(Some(i)))
                .map_err(|e| crate::error::Error::from(e).into_response()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match MaybeCaller::from_request_parts(parts, app).await?.0 {
            Some(identity) => Ok(Self(identity)),
            None => Err(error_response(
                ErrorCode::Unauthorized,
                "sign in to do this",
            )),
        }
    }
}
