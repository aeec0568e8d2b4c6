//! [`AuthError`] as an HTTP answer: status from [`ErrorCode::http_status`], body
//! [`ErrorBody`]. Internal and unavailable errors are logged with their cause chain and
//! answered with a generic message; details never reach the client.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::ErrorCode;

use crate::error::AuthError;

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let code = self.code();
        let message = if matches!(self, AuthError::Busy) {
            // Expected under a burst, and logged per request it would flood the log.
            tracing::debug!("auth request refused: hashing queue full");
            self.to_string()
        } else if code == ErrorCode::Internal {
            tracing::error!(error = %chain(&self), "auth request failed");
            "internal error".to_owned()
        } else if code == ErrorCode::Unavailable {
            tracing::error!(error = %chain(&self), "auth request failed: dependency unavailable");
            "temporarily unavailable; retry later".to_owned()
        } else {
            tracing::debug!(error = %chain(&self), %code, "auth request refused");
            self.to_string()
        };
        let status =
            StatusCode::from_u16(code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(ErrorBody::new(code, message))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 6750 §3: a 401 for a protected resource names the scheme.
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(wait) = self.retry_after() {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
        }
        response
    }
}

/// `Retry-After` in whole seconds (RFC 9110 §10.2.3), rounded up and at least 1, so a client
/// that waits that long is allowed.
pub(crate) fn retry_after_secs(wait: std::time::Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// `error: cause: cause ...`, for logs.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;

    use super::retry_after_secs;
    use crate::error::{AuthError, KeysUnavailable, TokenError, KEYS_RETRY_AFTER};

    #[test]
    fn a_token_that_cannot_be_checked_is_503_with_retry_after_and_a_bad_one_401() {
        let cause = std::io::Error::other("JWKS unreachable");
        let unchecked = AuthError::from(TokenError::from(KeysUnavailable::new(cause)));
        let response = unchecked.into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        let retry = response.headers().get(header::RETRY_AFTER).unwrap();
        assert_eq!(
            retry.to_str().unwrap(),
            KEYS_RETRY_AFTER.as_secs().to_string()
        );
        assert!(!response.headers().contains_key(header::WWW_AUTHENTICATE));

        let response = AuthError::from(TokenError::Expired).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert!(!response.headers().contains_key(header::RETRY_AFTER));
        assert!(response.headers().contains_key(header::WWW_AUTHENTICATE));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_at_least_one() {
        for (wait, secs) in [
            (Duration::ZERO, 1),
            (Duration::from_millis(1), 1),
            (Duration::from_millis(1000), 1),
            (Duration::from_millis(1001), 2),
            (Duration::from_millis(5882), 6),
        ] {
            assert_eq!(retry_after_secs(wait), secs, "{wait:?}");
        }
    }
}
