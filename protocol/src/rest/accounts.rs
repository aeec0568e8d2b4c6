//! JSON bodies of account administration (`/v1/admin/*`), self-service (`PATCH /v1/auth/me`,
//! `POST /v1/auth/me/password`), password reset (`/v1/auth/password/reset*`) and sessions
//! (`/v1/auth/sessions`).

use serde::{Deserialize, Serialize};

use super::User;
use crate::Millis;

/// `PATCH /v1/auth/me` and `PATCH /v1/admin/users/{id}`: the new e-mail address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetEmailRequest {
    pub email: String,
}

/// `PATCH /v1/auth/me` answer: the caller's updated account.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserResponse {
    pub user: User,
}

/// `POST /v1/auth/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    /// The password in use now.
    pub current: String,
    /// The new password (the registration rules apply).
    pub new: String,
}

/// `POST /v1/auth/password/reset`: ask for a password-reset mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordResetRequest {
    /// The account's e-mail address (compared ignoring ASCII case and surrounding spaces).
    pub email: String,
}

/// `POST /v1/auth/password/reset/confirm`: set a new password with the token of a reset mail.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordResetConfirm {
    /// The token from the mail's link (`#reset=<token>`): 43 characters of base64url.
    pub token: String,
    /// The new password (the registration rules apply).
    pub password: String,
}

/// Query of `GET /v1/admin/users`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct AdminUsersQuery {
    /// Page size, 1..=[`MAX_ACCOUNT_PAGE`](crate::limits::MAX_ACCOUNT_PAGE) (default
    /// [`DEFAULT_ACCOUNT_PAGE`](crate::limits::DEFAULT_ACCOUNT_PAGE)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Only usernames containing this text (at most 32 characters of `[a-z0-9_.-]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
}

/// An account as an admin sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUser {
    pub id: String,
    pub username: String,
    pub email: String,
    /// `user` or `admin`.
    pub role: String,
    /// Registration time.
    pub created_ts: Millis,
    /// Time of the last successful login; absent if the user never logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_login_ts: Option<Millis>,
}

/// `GET /v1/admin/users` answer: one page of live accounts, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserList {
    pub users: Vec<AdminUser>,
    /// Opaque: pass it as `cursor` to get the next page. Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `PATCH /v1/admin/users/{id}` and `PUT /v1/admin/users/{id}/role` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserResponse {
    pub user: AdminUser,
}

/// A role an account can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An ordinary account.
    User,
    /// May use `/v1/admin/*` and delete any message.
    Admin,
}

impl Role {
    /// The role as the API spells it (`user`, `admin`), as in [`User::role`].
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

/// `PUT /v1/admin/users/{id}/role`: the account's new role.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetRoleRequest {
    pub role: Role,
}

/// Query of `GET /v1/auth/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams),
    into_params(parameter_in = Query)
)]
pub struct SessionsQuery {
    /// Page size, 1..=[`MAX_ACCOUNT_PAGE`](crate::limits::MAX_ACCOUNT_PAGE) (default
    /// [`DEFAULT_ACCOUNT_PAGE`](crate::limits::DEFAULT_ACCOUNT_PAGE)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", param(minimum = 1, maximum = 100))]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; absent for the first page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// One live session (a login) of the caller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Session {
    /// The session id (the `sid` of its tokens).
    pub id: String,
    /// The `User-Agent` of the login request, cut to
    /// [`MAX_USER_AGENT_BYTES`](crate::limits::MAX_USER_AGENT_BYTES); absent if it sent none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// Login time.
    pub created_ts: Millis,
    /// Last login or token refresh of the session.
    pub last_seen_ts: Millis,
    /// The session of the token that asked.
    pub current: bool,
}

/// `GET /v1/auth/sessions` answer: one page of the caller's live sessions, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    pub sessions: Vec<Session>,
    /// Opaque: pass it as `cursor` to get the next page. Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}
