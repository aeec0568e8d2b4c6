//! The hub's error type and the one place it becomes a client-visible code.

use axum::response::{IntoResponse, Response};
use switchboard_auth::TokenError;
use switchboard_protocol::{close, ErrorCode};

use crate::store::StoreError;

/// Why a request failed. Variants name an outcome the client can act on; infrastructure
/// failures keep their source.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(&'static str),
    /// No valid credentials for this route (the server API's key check).
    #[error("{0}")]
    Unauthorized(&'static str),
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
    /// Over `--upload-bytes-per-day`: retry once the oldest upload counted has left the day.
    #[error(
        "over the {per_day} bytes a user may upload in a day; retry in {} s",
        retry_after_secs(*retry)
    )]
    UploadAllowance {
        per_day: u64,
        retry: std::time::Duration,
    },
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
    /// An access token was not accepted: refused (`unauthorized`) or, when the auth node's keys
    /// cannot be fetched, not checked (`unavailable`, retry later); see [`TokenError::code`].
    #[error(transparent)]
    Token(#[from] TokenError),
}

/// Shorthand for hub results.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable code for this error (used for WebSocket `error` frames and HTTP bodies).
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::UserNotFound(_) => ErrorCode::UserNotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::TooLarge(_) => ErrorCode::TooLarge,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::RateLimited | Self::RetryAfter(_) | Self::UploadAllowance { .. } => {
                ErrorCode::RateLimited
            }
            Self::HistoryExpired(_) => ErrorCode::HistoryExpired,
            Self::CatchupTooLarge(_) => ErrorCode::CatchupTooLarge,
            Self::TooManySubscriptions(_) => ErrorCode::TooManySubscriptions,
            Self::Store(StoreError::RoomNotFound(_)) => ErrorCode::NotFound,
            Self::Store(StoreError::NulCharacter(_)) => ErrorCode::BadRequest,
            Self::Store(e) if e.is_unavailable() => ErrorCode::Unavailable,
            Self::Store(_) => ErrorCode::Internal,
            Self::Auth(e) => e.code(),
            Self::Token(e) => e.code(),
        }
    }

    /// How long the client should wait before trying again, for the errors that say (REST
    /// answers carry it as `Retry-After`): a refilling quota, and a token that could not be
    /// checked.
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::RetryAfter(wait) | Self::UploadAllowance { retry: wait, .. } => Some(*wait),
            Self::Token(e) => e.retry_after(),
            Self::Auth(e) => e.retry_after(),
            _ => None,
        }
    }

    /// The close code and reason of a WebSocket whose `hello` failed with this error (after the
    /// `error` frame): 1013 "try again later" when the token could not be checked now (the
    /// client retries with the same token), 1008 otherwise (the client must not).
    pub fn hello_close(&self) -> (u16, &'static str) {
        match self.code() {
            ErrorCode::Unavailable => (close::TRY_AGAIN_LATER, "token cannot be checked now"),
            _ => (close::POLICY, "invalid token"),
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
            Self::Token(TokenError::Unavailable(cause)) => {
                // Per request, so debug: `RemoteKeys` warns once per failed fetch.
                tracing::debug!(error = ?cause, "token not checked: keys unavailable");
                "the token cannot be checked right now; retry later".into()
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
        if let Some(wait) = self.retry_after() {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                retry_after_secs(wait).into(),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use switchboard_auth::KeysUnavailable;

    use super::*;

    #[test]
    fn a_token_that_cannot_be_checked_is_unavailable_and_a_bad_one_unauthorized() {
        let cause = std::io::Error::other("JWKS unreachable");
        let unchecked = Error::from(TokenError::from(KeysUnavailable::new(cause)));
        assert_eq!(unchecked.code(), ErrorCode::Unavailable);
        assert_eq!(unchecked.hello_close().0, close::TRY_AGAIN_LATER);
        let response = unchecked.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry = response.headers().get(axum::http::header::RETRY_AFTER);
        let secs = switchboard_auth::error::KEYS_RETRY_AFTER.as_secs();
        assert_eq!(retry.unwrap().to_str().unwrap(), secs.to_string());

        let bad = Error::from(TokenError::Expired);
        assert_eq!(bad.code(), ErrorCode::Unauthorized);
        assert_eq!(bad.hello_close().0, close::POLICY);
        let response = bad.into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(!response
            .headers()
            .contains_key(axum::http::header::RETRY_AFTER));
    }
}
