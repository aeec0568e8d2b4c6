//! The crate's errors and the one place that maps them to client-visible codes.
//!
//! Codes: client mistakes are 4xx codes whose message is safe to show; an unreachable
//! dependency (database, remote auth node) is [`ErrorCode::Unavailable`] (503, worth a retry);
//! everything else is [`ErrorCode::Internal`]. Both are logged with their cause chain and
//! answered with a generic message (see `http/error.rs`). A [`TokenError`] is
//! [`ErrorCode::Unauthorized`] when the token is bad, and [`ErrorCode::Unavailable`] (with
//! `Retry-After`) when it could not be checked because the verifying keys cannot be obtained
//! ([`KeysUnavailable`]): a key-source failure never logs anyone out.

use std::path::PathBuf;
use std::time::Duration;

use switchboard_protocol::ErrorCode;

use crate::keys::KeyError;
use crate::remote::RemoteError;
use crate::store::StoreError;

/// `Retry-After` of [`AuthError::Busy`]: a hash takes tens of milliseconds, so the queue has
/// drained well within a second unless the burst goes on.
pub const BUSY_RETRY_AFTER: Duration = Duration::from_secs(1);

/// `Retry-After` of a token that could not be checked ([`TokenError::Unavailable`]): a
/// restarting auth node is back within seconds, and the verifier refetches its JWKS at most
/// once per [`crate::remote::DEFAULT_REFETCH_INTERVAL`] anyway. Clients add their own backoff.
pub const KEYS_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The verifying keys cannot be obtained right now (e.g. the auth node's JWKS is unreachable,
/// or answers something that is not a JWKS with a usable key). The only failure a
/// [`crate::KeySource`] has: it says nothing about the token being checked.
#[derive(Debug, thiserror::Error)]
#[error("token signing keys are unavailable")]
pub struct KeysUnavailable(#[source] Box<dyn std::error::Error + Send + Sync>);

impl KeysUnavailable {
    /// Wraps the cause (kept as the error's source, for logs).
    pub fn new(cause: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Box::new(cause))
    }
}

/// Why an access token was not accepted: either it is bad (every variant but
/// [`TokenError::Unavailable`]: 401 `unauthorized`, close 1008; the variants exist for logs and
/// tests), or it could not be checked now ([`TokenError::Unavailable`]: 503 `unavailable` with
/// `Retry-After`, close 1013). [`TokenError::code`] is the one mapping.
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
    /// `exp` has passed (beyond the allowed clock skew).
    #[error("token has expired")]
    Expired,
    /// Bad signature, wrong `iss` or `aud`, or a missing or ill-typed claim.
    #[error("token is invalid")]
    Invalid(#[source] jsonwebtoken::errors::Error),
    /// The token's session was revoked (logout or refresh-token reuse).
    #[error("session has been revoked")]
    Revoked,
    /// The token could not be checked: its verifying key cannot be obtained right now. Not a
    /// verdict on the token; the same token may pass once the keys are back.
    #[error(transparent)]
    Unavailable(#[from] KeysUnavailable),
}

impl TokenError {
    /// The client-visible code: [`ErrorCode::Unavailable`] for a token that could not be
    /// checked, [`ErrorCode::Unauthorized`] for a bad one.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Malformed(_)
            | Self::Algorithm
            | Self::MissingKid
            | Self::UnknownKid
            | Self::Expired
            | Self::Invalid(_)
            | Self::Revoked => ErrorCode::Unauthorized,
        }
    }

    /// How long the client should wait before presenting the token again: [`KEYS_RETRY_AFTER`]
    /// for a token that could not be checked, `None` for a bad one (retrying cannot help).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Unavailable(_) => Some(KEYS_RETRY_AFTER),
            _ => None,
        }
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
    /// An internal route (`/v1/internal/*`) without this node's service token (missing, wrong,
    /// or the node has none).
    #[error("this route needs the service token")]
    ServiceToken,
    /// The refresh token is malformed, unknown, expired, or its session is revoked.
    #[error("invalid refresh token")]
    InvalidRefreshToken,
    /// A spent refresh token was presented again; its whole session has now been revoked.
    #[error("refresh token reuse detected; the session has been revoked")]
    RefreshTokenReused,
    /// A password-reset token that is unknown, expired or spent, or whose account is gone.
    #[error("this reset link is invalid, has expired or was already used; ask for a new one")]
    InvalidResetToken,
    /// The token is valid but its user no longer exists.
    #[error("unknown user")]
    UnknownUser,
    /// A user lookup found no such (live) user.
    #[error("no such user")]
    UserNotFound,
    /// Authenticated, but not allowed (e.g. an admin route called by a user).
    #[error("{0}")]
    Forbidden(&'static str),
    /// An admin account named as the target of an HTTP deletion: admins are never deleted
    /// over HTTP (demote them first).
    #[error("an admin account cannot be deleted over HTTP; demote it first")]
    ForbiddenTarget,
    /// An admin demoting themself over HTTP: refused, so the accounts always keep an admin
    /// (another admin, or the command line, may demote them).
    #[error("an admin cannot demote themself; another admin or the command line must")]
    SelfDemotion,
    /// An e-mail address another live account uses.
    #[error("this e-mail address is used by another account")]
    EmailTaken,
    /// The named thing (e.g. a session of the caller) does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// The target is not in a state that allows the change (retrying a job that is not dead);
    /// the message says which.
    #[error("{0}")]
    Conflict(String),
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
    /// The job queue's storage failed.
    #[error("job queue failed")]
    Jobs(#[from] switchboard_jobs::JobError),
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
            | Self::ServiceToken
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::InvalidResetToken
            | Self::UnknownUser => ErrorCode::Unauthorized,
            Self::UserNotFound => ErrorCode::UserNotFound,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::ForbiddenTarget | Self::SelfDemotion => ErrorCode::ForbiddenTarget,
            Self::EmailTaken => ErrorCode::EmailTaken,
            Self::NotFound(_) => ErrorCode::NotFound,
            Self::Conflict(_) => ErrorCode::Conflict,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Busy => ErrorCode::Unavailable,
            // The auth node's own failure is our dependency failing.
            Self::Upstream { code, .. } if code.http_status() >= 500 => ErrorCode::Unavailable,
            Self::Upstream { code, .. } => *code,
            Self::Remote(_) => ErrorCode::Unavailable,
            Self::Store(e) if e.is_unavailable() => ErrorCode::Unavailable,
            Self::Jobs(e) if e.is_unavailable() => ErrorCode::Unavailable,
            Self::Store(_)
            | Self::Jobs(_)
            | Self::Redis(_)
            | Self::Keys(_)
            | Self::PasswordHash(_)
            | Self::DataDir { .. }
            | Self::Config(_)
            | Self::Task(_) => ErrorCode::Internal,
        }
    }

    /// How long the client should wait before trying again (the `Retry-After` header), for
    /// the errors that have one: [`AuthError::RateLimited`], [`AuthError::Busy`] and a token
    /// that could not be checked ([`TokenError::retry_after`]).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::RateLimited { retry_after } => Some(*retry_after),
            Self::Busy => Some(BUSY_RETRY_AFTER),
            Self::Token(e) => e.retry_after(),
            _ => None,
        }
    }
}
