//! Handlers of account administration (`/v1/admin/users*`), self-service (`PATCH
//! /v1/auth/me`, `POST /v1/auth/me/password`) and sessions (`/v1/auth/sessions*`): parse, call
//! the operations in `accounts`, answer. Every route needs a Bearer token (401 without); the
//! admin routes also an admin account (403 `forbidden` otherwise), checked before the body or
//! query is looked at.
//!
//! **Bounds:** every body is a small JSON object (the kit's `AppJson` caps it); each request is
//! a bounded number of indexed statements (lists are pages of at most 100).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use switchboard_kit::http::{AppJson, AppPath, AppQuery};
use switchboard_protocol::rest::{
    AdminUserList, AdminUserResponse, AdminUsersQuery, ChangePasswordRequest, SessionList,
    SessionsQuery, SetEmailRequest, SetRoleRequest, UserResponse,
};

use super::extractor::{Admin, Bearer};
use crate::error::AuthError;
use crate::Auth;

/// `GET /v1/admin/users?limit=&cursor=&q=` (admin) → 200 one page of accounts.
#[utoipa::path(
    get,
    path = "/v1/admin/users",
    tag = "admin",
    security(("bearer" = [])),
    params(AdminUsersQuery),
    responses(
        (status = 200, description = "A page of live accounts, oldest first.", body = AdminUserList),
        (status = 400, description = "`bad_request`: a `limit` outside 1–100, a `cursor` this server did not make, or a `q` that is not 1–32 characters of `[a-z0-9_.-]`."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
    )
)]
pub(super) async fn list_users(
    State(auth): State<Auth>,
    _: Admin,
    AppQuery(query): AppQuery<AdminUsersQuery>,
) -> Result<Json<AdminUserList>, AuthError> {
    Ok(Json(auth.list_users(&query).await?))
}

/// `PATCH /v1/admin/users/{id}` `{email}` (admin) → 200 `{user}`.
#[utoipa::path(
    patch,
    path = "/v1/admin/users/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user id.")),
    request_body = SetEmailRequest,
    responses(
        (status = 200, description = "The account with its new e-mail address.", body = AdminUserResponse),
        (status = 400, description = "`bad_request`: an invalid e-mail address or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 404, description = "`user_not_found`: no live account has this id."),
        (status = 409, description = "`email_taken`: another account has this address."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
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
#[utoipa::path(
    delete,
    path = "/v1/admin/users/{id}",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user id.")),
    responses(
        (status = 204, description = "The account is deleted, its sessions revoked and its sockets closed (1008)."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 404, description = "`user_not_found`: no live account has this id."),
        (status = 409, description = "`forbidden_target`: the account is an admin (never deleted over HTTP)."),
    )
)]
pub(super) async fn delete_user(
    State(auth): State<Auth>,
    _: Admin,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, AuthError> {
    auth.delete_user(&id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PUT /v1/admin/users/{id}/role` `{role}` (admin) → 200 `{user}`; a demotion ends the user's
/// sessions; 409 `forbidden_target` for demoting oneself.
#[utoipa::path(
    put,
    path = "/v1/admin/users/{id}/role",
    tag = "admin",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The user id.")),
    request_body = SetRoleRequest,
    responses(
        (status = 200, description = "The account with its new role. A demotion (`user`) also revokes every session of the account and closes its sockets (1008); a promotion reaches the account's tokens at their next refresh.", body = AdminUserResponse),
        (status = 400, description = "`bad_request`: a role other than `user` or `admin`, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 403, description = "`forbidden`: the caller is not an admin."),
        (status = 404, description = "`user_not_found`: no live account has this id."),
        (status = 409, description = "`forbidden_target`: an admin demoting themself (so there is always an admin)."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
pub(super) async fn set_user_role(
    State(auth): State<Auth>,
    Admin(claims): Admin,
    AppPath(id): AppPath<String>,
    AppJson(req): AppJson<SetRoleRequest>,
) -> Result<Json<AdminUserResponse>, AuthError> {
    let user = auth.admin_set_role(&claims, &id, req.role).await?;
    Ok(Json(AdminUserResponse { user }))
}

/// `PATCH /v1/auth/me` `{email}` (Bearer) → 200 `{user}`.
#[utoipa::path(
    patch,
    path = "/v1/auth/me",
    tag = "accounts",
    security(("bearer" = [])),
    request_body = SetEmailRequest,
    responses(
        (status = 200, description = "The caller's account with its new e-mail address.", body = UserResponse),
        (status = 400, description = "`bad_request`: an invalid e-mail address or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 409, description = "`email_taken`: another account has this address."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
    )
)]
pub(super) async fn set_my_email(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppJson(req): AppJson<SetEmailRequest>,
) -> Result<Json<UserResponse>, AuthError> {
    let user = auth.set_my_email(&claims, &req.email).await?;
    Ok(Json(UserResponse { user }))
}

/// `POST /v1/auth/me/password` `{current, new}` (Bearer) → 204; the other sessions end.
#[utoipa::path(
    post,
    path = "/v1/auth/me/password",
    tag = "accounts",
    security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "The password is changed; every other session of the user ends."),
        (status = 400, description = "`bad_request`: a new password outside 8 characters to 1024 bytes, or a malformed body."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token; `invalid_credentials`: a wrong current password."),
        (status = 413, description = "`too_large`: a body over 2 MiB."),
        (status = 429, description = "`rate_limited`: too many failed attempts for this account; retry after `Retry-After` seconds."),
        (status = 503, description = "`unavailable`: every password-hashing slot is busy and the queue is full; retry after `Retry-After` seconds."),
    )
)]
pub(super) async fn change_password(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppJson(req): AppJson<ChangePasswordRequest>,
) -> Result<StatusCode, AuthError> {
    auth.change_password(&claims, req).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/auth/sessions?limit=&cursor=` (Bearer) → 200 one page of the caller's sessions.
#[utoipa::path(
    get,
    path = "/v1/auth/sessions",
    tag = "accounts",
    security(("bearer" = [])),
    params(SessionsQuery),
    responses(
        (status = 200, description = "A page of the caller's live sessions, newest first.", body = SessionList),
        (status = 400, description = "`bad_request`: a `limit` outside 1–100 or a `cursor` this server did not make."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
    )
)]
pub(super) async fn sessions(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppQuery(query): AppQuery<SessionsQuery>,
) -> Result<Json<SessionList>, AuthError> {
    Ok(Json(auth.sessions(&claims, &query).await?))
}

/// `DELETE /v1/auth/sessions/{sid}` (Bearer) → 204; 404 `not_found` if not a live session of
/// the caller's.
#[utoipa::path(
    delete,
    path = "/v1/auth/sessions/{sid}",
    tag = "accounts",
    security(("bearer" = [])),
    params(("sid" = String, Path, description = "The session id.")),
    responses(
        (status = 204, description = "The session is revoked and its sockets closed."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
        (status = 404, description = "`not_found`: not a live session of the caller."),
    )
)]
pub(super) async fn end_session(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
    AppPath(sid): AppPath<String>,
) -> Result<StatusCode, AuthError> {
    auth.end_session(&claims, &sid).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /v1/auth/sessions` (Bearer) → 204; every session but the current one ends.
#[utoipa::path(
    delete,
    path = "/v1/auth/sessions",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session of the caller but the current one is revoked."),
        (status = 401, description = "`unauthorized`: a missing, invalid, expired or revoked token."),
    )
)]
pub(super) async fn end_other_sessions(
    State(auth): State<Auth>,
    Bearer(claims): Bearer,
) -> Result<StatusCode, AuthError> {
    auth.end_other_sessions(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}
