//! The crate's errors and the one place that maps them to client-visible codes.
//!
//! Codes: client mistakes are 4xx codes whose message is safe to show; an unreachable
//! dependency (database, remote auth node) is [`ErrorCode::Unavailable`] (503, worth a retry);
//! everything else is [`ErrorCode::Internal`]. Both are logged with their cause chain and
//! answered with a generic message (see `http/error.rs`). [`TokenError`] is always
//! [`ErrorCode::Unauthorized`].

use std::path::PathBuf;
use std::time::Duration;

use switchboard_protocol::ErrorCode;

use crate::keys::KeyError;
use crate::remote::RemoteError;
use crate::store::StoreError;

/// `Retry-After` of [`AuthError::Busy`]: a hash takes tens of milliseconds, so the queue has
/// drained well within a second unless the burst goes on.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why an access token was rejected. Every variant means "401 unauthorized" to the client;
/// the variants exist for logs and tests.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Not three base64url parts with a JSON header.
    #[error("token is not a well-formed JWT")]
    Malformed(#[source] jsonwebtoken::errors::Error),
    /// The header names an algorithm other than EdDSA (e.g. an HS256 forgery or `none`).
    #[error("token algorithm is not accepted (EdDSA only)")]
    Algorithm,
    /// The header has no `kid`.
    #[error("token header has no kid")]
    MissingKid,
    /// No verifying key with this `kid` is known.
    #[error("token signed by an unknown key")]
    UnknownKid,
    /// The verifying keys could not be obtained (e.g. a JWKS fetch failed).
    #[error("token signing keys are unavailable")]
    KeySource(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// `exp` has passed (beyond the allowed clock skew).
    #[error("token has expired")]
    Expired,
    /// Bad signature, wrong `iss` or `aud`, or a missing or ill-typed claim.
    #[error("token is invalid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// The token's session was revoked (logout or refresh-token reuse).
    #[error("session has been revoked")]
    Revoked,
}

impl TokenError {
    /// The client-visible code: always [`ErrorCode::Unauthorized`].
    pub fn code(&self) -> ErrorCode {
        ErrorCode::Unauthorized
    }
}

/// Every error of the auth service. [`AuthError::code`] gives the client-visible code; the HTTP
/// status is `code().http_status()`.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A field failed validation or the JSON body is malformed; the message says which.
    #[error("{0}")]
    BadRequest(String),
    /// Registration with a username that exists.
    #[error("username is already taken")]
    UsernameTaken,
    /// Wrong username or password: deliberately the same error for both.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// No `Authorization: Bearer <token>` header.
    #[error("missing bearer token")]
    MissingBearer,
    /// The access token was rejected.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// The refresh token is malformed, unknown, expired, or its session is revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A spent refresh token was presented again; its whole session has now been revoked.
    #[error("refresh token reuse detected; the session has been revoked")]
    RefreshTokenReused,
    /// The token is valid but its user no longer exists.
    #[error("unknown user")]
    UnknownUser,
    /// A user lookup found no such (live) user.
    #[error("no such user")]
    UserNotFound,
    /// A login or registration limit was reached (per account or per client address); one more
    /// is allowed after `retry_after`.
    #[error("too many attempts; retry later")]
    RateLimited {
        /// How long until the next attempt is allowed.
        retry_after: Duration,
    },
    /// Every password-hashing slot is busy and the queue of waiting hashes is full.
    #[error("too many logins at once; retry later")]
    Busy,
    /// A configuration value is out of range (e.g. a rate of 0); the message names it.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The database failed.
    #[error("auth store failed")]
    Store(#[from] StoreError),
    /// The signing key could not be loaded, written or used.
    #[error("signing key failure")]
    Keys(#[from] KeyError),
    /// argon2 failed, or a stored password hash is not a valid PHC string.
    #[error("password hashing failed")]
    PasswordHash(#[source] argon2::password_hash::Error),
    /// The data directory could not be created or made private.
    #[error("cannot create or secure data directory {path}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A blocking task (hashing, key loading) panicked or was cancelled.
    #[error("background task failed")]
    Task(#[from] tokio::task::JoinError),
    /// Redis could not be reached at start (with `redis_url` set).
    #[error("redis")]
    Redis(#[from] redis::RedisError),
    /// The remote auth node refused a request; its code and message are passed on.
    #[error("{message}")]
    Upstream {
        /// The auth node's code.
        code: ErrorCode,
        /// The auth node's message.
        message: String,
    },
    /// The remote auth node could not be reached or answered something unexpected.
    #[error("auth node request failed")]
    Remote(#[from] RemoteError),
}

impl AuthError {
    /// The client-visible code, the single mapping from errors to codes in this crate.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::UsernameTaken => ErrorCode::UsernameTaken,
            Self::InvalidCredentials => ErrorCode::InvalidCredentials,
            Self::Token(e) => e.code(),
            Self::MissingBearer
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::UnknownUser => ErrorCode::Unauthorized,
            Self::UserNotFound => ErrorCode::UserNotFound,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Busy => ErrorCode::Unavailable,
            // The auth node's own failure is our dependency failing.
            Self::Upstream { code, .. } if code.http_status() >= 500 => ErrorCode::Unavailable,
            Self::Upstream { code, .. } => *code,
            Self::Remote(_) => ErrorCode::Unavailable,
            Self::Store(e) if e.is_unavailable() => ErrorCode::Unavailable,
            Self::Store(_)
            | Self::Redis(_)
            | Self::Keys(_)
            | Self::PasswordHash(_)
            | Self::DataDir { .. }
            | Self::Config(_)
            | Self::Task(_) => ErrorCode::Internal,
        }
    }

    /// How long the client should wait before trying again (the `Retry-After` header), for
    /// the errors that have one: [`AuthError::RateLimited`] and [`AuthError::Busy`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Busy => Some(BUSY_RETRY_AFTER),
            _ => None,
        }
    }
}
