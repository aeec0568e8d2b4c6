//! The hub's error type and the one place it becomes a client-visible code.

use axum::response::{IntoResponse, Response};
use switchboard_protocol::ErrorCode;

use crate::store::StoreError;

/// Why a request failed. Variants name an outcome the client can act on; infrastructure
/// failures keep their source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("no user named {0:?}")]
    UserNotFound(String),
    #[error("{0}")]
    Conflict(&'static str),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    Unavailable(&'static str),
    #[error("too many messages, slow down")]
    RateLimited,
    /// Over a quota that refills with time (rooms created per hour): retry after this long.
    /// REST answers carry it as `Retry-After` (whole seconds, rounded up).
    #[error("too many requests, retry in {} s", retry_after_secs(*.0))]
    RetryAfter(std::time::Duration),
    #[error("messages after seq {0} are no longer retained; reload history")]
    HistoryExpired(u64),
    #[error("catch-up of over {0} messages refused; subscribe without since and page history")]
    CatchupTooLarge(u64),
    #[error("this connection already has {0} subscriptions")]
    TooManySubscriptions(usize),
    #[error("storage is unavailable")]
    Store(#[from] StoreError),
    #[error("auth: {0}")]
    Auth(#[from] switchboard_auth::AuthError),
}

/// Shorthand for hub results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable code for this error (used for WebSocket `error` frames and HTTP bodies).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::UserNotFound(_) => ErrorCode::UserNotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::RateLimited | Self::RetryAfter(_) => ErrorCode::RateLimited,
            Self::HistoryExpired(_) => ErrorCode::HistoryExpired,
            Self::CatchupTooLarge(_) => ErrorCode::CatchupTooLarge,
            Self::TooManySubscriptions(_) => ErrorCode::TooManySubscriptions,
            Self::Store(StoreError::RoomNotFound(_)) => ErrorCode::NotFound,
            Self::Store(StoreError::NulCharacter(_)) => ErrorCode::BadRequest,
            Self::Store(e) if e.is_unavailable() => ErrorCode::Unavailable,
            Self::Store(_) => ErrorCode::Internal,
            Self::Auth(e) => e.code(),
        }
    }

    /// The message shown to the client: never internal details.
    pub fn public_message(&self) -> String {
        match self {
            Self::Store(e) => {
                tracing::error!(error = %e, "store failure");
                match self.code() {
                    ErrorCode::Unavailable => "storage is unavailable, retry later".into(),
                    ErrorCode::Internal => "internal error".into(),
                    _ => e.to_string(),
                }
            }
            Self::Auth(e) if e.code() == ErrorCode::Internal => {
                tracing::error!(error = %e, "auth failure");
                "internal error".into()
            }
            other => other.to_string(),
        }
    }
}

/// Builds the JSON error response for a code and message (the one shape, shared with auth and
/// the extractors' rejections: `switchboard_kit::http::error_response`).
pub fn error_response(code: ErrorCode, message: impl Into<String>) -> Response {
    switchboard_kit::http::error_response(code, message)
}

/// A wait as a `Retry-After` value: whole seconds, rounded up, at least 1.
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    wait.as_secs()
        .saturating_add(u64::from(wait.subsec_nanos() > 0))
        .max(1)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let mut response = error_response(self.code(), self.public_message());
        if let Self::RetryAfter(wait) = self {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                retry_after_secs(wait).into(),
            );
        }
        response
    }
}
