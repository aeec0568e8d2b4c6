//! Stable error codes. The same code appears in WebSocket `error` frames and in HTTP error
//! bodies (`{"error": {"code": "...", "message": "..."}}`).

use serde::{Deserialize, Serialize};

/// A stable, machine-readable error code. Codes are never renamed; new ones may be added, so a
/// client must treat an unknown code like [`ErrorCode::Internal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Malformed JSON, a missing or ill-typed field, or a value out of range.
    BadRequest,
    /// A WebSocket frame whose `type` is not one this server knows.
    UnknownType,
    /// Missing, invalid or expired credentials.
    Unauthorized,
    /// Authenticated, but not allowed (not a member, not the author, ...).
    Forbidden,
    /// The room, message or route does not exist (or is not visible to the caller).
    NotFound,
    /// Too many frames or requests; slow down.
    RateLimited,
    /// A body or field over its size limit.
    TooLarge,
    /// Registration with a username that already exists.
    UsernameTaken,
    /// Login with a wrong username or password (the same whether or not the user exists).
    InvalidCredentials,
    /// A username given as a member or direct-message peer does not exist.
    UserNotFound,
    /// The request conflicts with the current state (e.g. a direct room with oneself).
    Conflict,
    /// `sub` with a `since` older than the retained history: messages after it were deleted by
    /// retention. Reload history (without `since`) instead of resuming.
    HistoryExpired,
    /// `sub` with a `since` further back than the server replays (`--max-catchup-messages`): the
    /// room is not subscribed. Subscribe without `since` and page the gap with `history`.
    CatchupTooLarge,
    /// `sub` of a new room on a connection that holds the most subscriptions allowed
    /// (`--max-subscriptions`): the room is not subscribed.
    TooManySubscriptions,
    /// An admin operation whose target may not be changed over HTTP: deleting an admin account
    /// (demote it first), or an admin demoting themself (so there is always an admin).
    ForbiddenTarget,
    /// An e-mail address that another live account already uses.
    EmailTaken,
    /// The upload's type is not accepted there (HTTP 415): an avatar or emoticon that is not
    /// PNG, JPEG, WebP or GIF.
    UnsupportedMediaType,
    /// The `Range` asked for is not within the file (HTTP 416).
    RangeNotSatisfiable,
    /// A backing service (database, broker) is unavailable; retry later.
    Unavailable,
    /// An unexpected server error.
    Internal,
}

impl ErrorCode {
    /// Every code, in declaration order (the OpenAPI documents list them; a test checks this list
    /// against the enum's own schema).
    pub const ALL: &'static [ErrorCode] = &[
        Self::BadRequest,
        Self::UnknownType,
        Self::Unauthorized,
        Self::Forbidden,
        Self::NotFound,
        Self::RateLimited,
        Self::TooLarge,
        Self::UsernameTaken,
        Self::InvalidCredentials,
        Self::UserNotFound,
        Self::Conflict,
        Self::HistoryExpired,
        Self::CatchupTooLarge,
        Self::TooManySubscriptions,
        Self::ForbiddenTarget,
        Self::EmailTaken,
        Self::UnsupportedMediaType,
        Self::RangeNotSatisfiable,
        Self::Unavailable,
        Self::Internal,
    ];

    /// The wire name of the code, as it appears in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::UnknownType => "unknown_type",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::RateLimited => "rate_limited",
            Self::TooLarge => "too_large",
            Self::UsernameTaken => "username_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::UserNotFound => "user_not_found",
            Self::Conflict => "conflict",
            Self::HistoryExpired => "history_expired",
            Self::CatchupTooLarge => "catchup_too_large",
            Self::TooManySubscriptions => "too_many_subscriptions",
            Self::ForbiddenTarget => "forbidden_target",
            Self::EmailTaken => "email_taken",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::RangeNotSatisfiable => "range_not_satisfiable",
            Self::Unavailable => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status that goes with the code in REST answers.
    pub fn http_status(self) -> u16 {
        match self {
            Self::BadRequest | Self::UnknownType => 400,
            Self::Unauthorized | Self::InvalidCredentials => 401,
            Self::Forbidden => 403,
            Self::NotFound | Self::UserNotFound => 404,
            Self::UsernameTaken
            | Self::Conflict
            | Self::TooManySubscriptions
            | Self::ForbiddenTarget
            | Self::EmailTaken => 409,
            Self::TooLarge | Self::CatchupTooLarge => 413,
            Self::RateLimited => 429,
            Self::HistoryExpired => 410,
            Self::UnsupportedMediaType => 415,
            Self::RangeNotSatisfiable => 416,
            Self::Unavailable => 503,
            Self::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and human-readable message of an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// Stable code.
    pub code: ErrorCode,
    /// Human-readable explanation; not stable, do not match on it.
    pub message: String,
}

impl ErrorBody {
    /// Builds an error body.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code,
                message: message.into(),
            },
        }
    }
}
