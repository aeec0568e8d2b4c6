//! Extractors whose rejections are our JSON errors, never axum's plain-text ones.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::Json;

use crate::error::AuthError;
use crate::tokens::Claims;
use crate::Auth;

/// A JSON body. Malformed JSON, missing or ill-typed fields and a missing JSON content type are
/// 400 `bad_request`; a body over axum's limit is 413 `too_large`.
pub(crate) struct AppJson<T>(pub(crate) T);

impl<T, S> FromRequest<S> for AppJson<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = AuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Err(AuthError::TooLarge(rejection.body_text()))
            }
            Err(rejection) => Err(AuthError::BadRequest(rejection.body_text())),
        }
    }
}

/// The verified claims of the `Authorization: Bearer <token>` header. Missing header: 401
/// `unauthorized`; rejected token: 401 `unauthorized`.
pub(crate) struct Bearer(pub(crate) Claims);

impl FromRequestParts<Auth> for Bearer {
    type Rejection = AuthError;

    async fn from_request_parts(parts: &mut Parts, auth: &Auth) -> Result<Self, Self::Rejection> {
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .ok_or(AuthError::MissingBearer)?;
        Ok(Self(auth.verifier().verify(token).await?))
    }
}

/// The token of an `Authorization` value `Bearer <token>` (scheme case-insensitive, RFC 7235).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }
}
