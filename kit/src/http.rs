//! The HTTP plumbing of both servers: [`AppJson`], [`AppPath`] and [`AppQuery`] extractors whose
//! rejections all go through one mapping ([`Rejection`]), the JSON error response
//! ([`error_response`]), and the bearer token of a request ([`bearer`]). Submodules: [`ready`]
//! (`GET /readyz`: bounded, cached dependency checks and draining) and [`trace`] (the span of
//! every request).
//!
//! **Invariant:** every REST error body is `{"error":{"code":...,"message":...}}`
//! ([`ErrorBody`]), with the status its code maps to ([`ErrorCode::http_status`]); an extractor
//! never answers with axum's plain-text rejection.
//!
//! The rejection mapping (docs/PROTOCOL.md, "Error codes"):
//! - a body over the request body limit (axum's `DefaultBodyLimit`, 2 MiB unless a router
//!   sets another): `413 too_large`;
//! - malformed JSON, a missing or ill-typed field, a missing JSON content type, an ill-typed
//!   path segment or query parameter: `400 bad_request`, with axum's explanation as message;
//! - a route whose path lacks the parameters its handler extracts (a server bug): `500 internal`.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::ErrorCode;

/// The JSON error response for `code`: status `code.http_status()`, body [`ErrorBody`].
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> Response {
    let status =
        StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(ErrorBody::new(code, message))).into_response()
}

/// Why [`AppJson`], [`AppPath`] or [`AppQuery`] refused a request: axum's rejection mapped to our
/// code (see the module docs). Answers with [`error_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    code: ErrorCode,
    message: String,
}

impl Rejection {
    /// The one mapping, from the status axum gives its rejection.
    fn new(status: StatusCode, message: String) -> Self {
        let code = if status == StatusCode::PAYLOAD_TOO_LARGE {
            ErrorCode::TooLarge
        } else if status.is_server_error() {
            ErrorCode::Internal
        } else {
            ErrorCode::BadRequest
        };
        Self { code, message }
    }

    /// The client-visible code.
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    /// The explanation sent to the client (axum's, except for `internal`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<JsonRejection> for Rejection {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<PathRejection> for Rejection {
    fn from(rejection: PathRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl From<QueryRejection> for Rejection {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(rejection.status(), rejection.body_text())
    }
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        if self.code == ErrorCode::Internal {
            tracing::error!(error = %self.message, "request refused by a misconfigured route");
            return error_response(self.code, "internal error");
        }
        tracing::debug!(code = %self.code, error = %self.message, "request refused");
        error_response(self.code, self.message)
    }
}

/// A JSON body (`Content-Type: application/json`), refused with a [`Rejection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let axum::Json(value) = axum::Json::<T>::from_request(req, state).await?;
        Ok(Self(value))
    }
}

/// Path parameters, refused with a [`Rejection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AppPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for AppPath<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Path(value) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// Query parameters, refused with a [`Rejection`].
#[derive(Debug, Clone, Copy, Default)]
pub struct AppQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for AppQuery<T> {
    type Rejection = Rejection;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let axum::extract::Query(value) =
            axum::extract::Query::<T>::from_request_parts(parts, state).await?;
        Ok(Self(value))
    }
}

/// An `Authorization` header that is not a bearer credential
/// ([`bearer_token`](crate::bearer::bearer_token)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("expected Authorization: Bearer <token>")]
pub struct NotBearer;

/// The bearer token of a request: `Ok(None)` without an `Authorization` header, [`NotBearer`]
/// when the (first) header is not `Bearer <token>` or not text. What a missing token means
/// (anonymous, or 401) is the caller's to decide; a malformed one is never anonymous.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, NotBearer> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(crate::bearer::bearer_token)
        .map(Some)
        .ok_or(NotBearer)
}

pub mod ready;
pub mod trace;

#[cfg(test)]
mod tests;
