//! Extractors that turn every rejection into our JSON error body.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use switchboard_protocol::ErrorCode;

use crate::error::error_response;
use crate::service::Identity;
use crate::state::AppState;

/// `Json<T>` whose rejection is `400 bad_request` with our body, or `413 too_large` for a body
/// over the request body limit (axum's default, 2 MiB).
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::Json::<T>::from_request(req, state)
            .await
            .map(|j| Self(j.0))
            .map_err(|e| {
                let code = if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ErrorCode::TooLarge
                } else {
                    ErrorCode::BadRequest
                };
                error_response(code, e.body_text())
            })
    }
}

/// `Path<T>` whose rejection is `400 bad_request` with our body.
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| error_response(ErrorCode::BadRequest, e.body_text()))
    }
}

/// `Query<T>` whose rejection is `400 bad_request` with our body.
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| error_response(ErrorCode::BadRequest, e.body_text()))
    }
}

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, an error
/// response when the header is not `Bearer <token>`.
#[allow(
    clippy::result_large_err,
    reason = "the error is the finished response"
)]
pub fn bearer_token(headers: &HeaderMap) -> Result<Option<&str>, Response> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| Some(t.trim()))
        .ok_or_else(|| {
            error_response(
                ErrorCode::Unauthorized,
                "expected Authorization: Bearer <token>",
            )
        })
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
