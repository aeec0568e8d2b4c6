//! Handlers of account administration (`/v1/admin/users*`), self-service (`PATCH
//! /v1/auth/me`, `POST /v1/auth/me/password`) and sessions (`/v1/auth/sessions*`): parse, call
//! the operations in `accounts`, answer. Every route needs a Bearer token (401 without); the
//! admin routes also an admin account (403 `forbidden` otherwise), checked before the body or
//! query is looked at.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use switchboard_kit::http::{AppJson, AppPath, AppQuery};
use switchboard_protocol::rest::{
    AdminUserList, AdminUserResponse, AdminUsersQuery, ChangePasswordRequest, SessionList,
    SessionsQuery, SetEmailRequest, UserResponse,
};

use super::extractor::{Admin, Bearer};
use crate::error::AuthError;
use crate::Auth;

/// `GET /v1/admin/users?limit=&cursor=&q=` (admin) → 200 one page of accounts.
pub(super) async fn list_users(
    State(auth): State<Auth>,
    _: Admin,
    AppQuery(query): AppQuery<AdminUsersQuery>,
) -> Result<Json<AdminUserList>, AuthError> {
    Ok(Json(auth.list_users(&query).await?))
}

/// `PATCH /v1/admin/users/{id}` `{email}` (admin) → 200 `{user}`.
pub(super) async fn set_user_email(
    State(auth): State<Auth>,
    _: Admin,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<SetEmailRequest>,
) -> Result<Json<AdminUserResponse>, AuthError> {
    let user = auth.admin_set_email(&id, &req.email).await?;
    Ok(Json(AdminUserResponse { user }))
}

/// `DELETE /v1/admin/users/{id}` (admin) → 204; 409 `forbidden_target` for an admin.
pub(super) async fn delete_user(
    State(auth): State<Auth>,
    _: Admin,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, AuthError> {
    auth.delete_user(&id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /v1/auth/me` `{email}` (Bearer) → 200 `{user}`.
pub(super) async fn set_my_email(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppJson(req): AppJson<SetEmailRequest>,
) -> Result<Json<UserResponse>, AuthError> {
    let user = auth.set_my_email(&claims, &req.email).await?;
    Ok(Json(UserResponse { user }))
}

/// `POST /v1/auth/me/password` `{current, new}` (Bearer) → 204; the other sessions end.
pub(super) async fn change_password(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppJson(req): AppJson<ChangePasswordRequest>,
) -> Result<StatusCode, AuthError> {
    auth.change_password(&claims, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/auth/sessions?limit=&cursor=` (Bearer) → 200 one page of the caller's sessions.
pub(super) async fn sessions(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppQuery(query): AppQuery<SessionsQuery>,
) -> Result<Json<SessionList>, AuthError> {
    Ok(Json(auth.sessions(&claims, &query).await?))
}

/// `DELETE /v1/auth/sessions/{sid}` (Bearer) → 204; 404 `not_found` if not a live session of
/// the caller's.
pub(super) async fn end_session(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppPath(sid): AppPath<String>,
) -> Result<StatusCode, AuthError> {
    auth.end_session(&claims, &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/auth/sessions` (Bearer) → 204; every session but the current one ends.
pub(super) async fn end_other_sessions(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<StatusCode, AuthError> {
    auth.end_other_sessions(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}
