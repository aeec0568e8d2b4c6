//! Account administration (admins), self-service (e-mail, password) and the session list: the
//! operations behind `/v1/admin/*`, `PATCH /v1/auth/me`, `POST /v1/auth/me/password` and
//! `/v1/auth/sessions`. Handlers in `http/` only parse and answer.
//!
//! **Bounds:** every list is a keyset page of at most
//! [`MAX_ACCOUNT_PAGE`](switchboard_protocol::limits::MAX_ACCOUNT_PAGE) rows, so a request
//! costs one indexed query whatever the number of accounts or sessions; cursors and searches
//! are length-checked before they reach the database. A password change hashes through the same
//! bounded slots as logins, and a wrong current password counts as a failed login of the
//! account (so a stolen access token cannot be used to guess the password quickly).

use switchboard_protocol::limits::{DEFAULT_ACCOUNT_PAGE, MAX_ACCOUNT_PAGE, MAX_PASSWORD_BYTES};
use switchboard_protocol::rest::{
    AdminUser, AdminUserList, AdminUsersQuery, ChangePasswordRequest, Role, Session, SessionList,
    SessionsQuery, User,
};
use switchboard_protocol::Millis;

use crate::error::AuthError;
use crate::store::{Sessions, SetEmail, SetRole, UserKey, UserRecord};
use crate::tokens::{Claims, ROLE_ADMIN};
use crate::{unix_now, validate, Auth};

/// Longest cursor accepted (cursors are ids: a uuid is 36 bytes).
const MAX_CURSOR_BYTES: usize = 64;

/// Seconds (the store's unit) to the protocol's milliseconds.
fn millis(secs: u64) -> Millis {
    Millis::try_from(secs.saturating_mul(1000)).unwrap_or(Millis::MAX)
}

/// The page size of a query: 1..=`MAX_ACCOUNT_PAGE`, default `DEFAULT_ACCOUNT_PAGE`.
pub(crate) fn page_size(limit: Option<u32>) -> Result<u32, AuthError> {
    match limit.unwrap_or(DEFAULT_ACCOUNT_PAGE) {
        n @ 1..=MAX_ACCOUNT_PAGE => Ok(n),
        _ => Err(AuthError::BadRequest(format!(
            "limit must be 1 to {MAX_ACCOUNT_PAGE}"
        ))),
    }
}

/// A cursor as given, if it can be one of ours (an id, at most `MAX_CURSOR_BYTES`).
pub(crate) fn cursor(cursor: Option<&str>) -> Result<Option<&str>, AuthError> {
    match cursor {
        Some(c) if c.is_empty() || c.len() > MAX_CURSOR_BYTES => Err(AuthError::BadRequest(
            "cursor is not one this server made".to_owned(),
        )),
        other => Ok(other),
    }
}

/// An account as an admin sees it.
fn admin_user(user: &UserRecord) -> AdminUser {
    AdminUser {
        id: user.id.clone(),
        username: user.username.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
        created_ts: millis(user.created_at),
        last_login_ts: user.last_login_at.map(millis),
    }
}

impl Auth {
    /// Refused with `forbidden` unless the caller's account is an admin **now** (the stored
    /// role, not the token's claim: a demotion applies to these routes at once).
    pub(crate) async fn require_admin(&self, claims: &Claims) -> Result<(), AuthError> {
        let user = self
            .inner
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::UnknownUser)?;
        if user.role == ROLE_ADMIN {
            Ok(())
        } else {
            Err(AuthError::Forbidden("admins only"))
        }
    }

    /// One page of live accounts, oldest first (see [`AdminUsersQuery`]).
    pub(crate) async fn list_users(&self, q: &AdminUsersQuery) -> Result<AdminUserList, AuthError> {
        let limit = page_size(q.limit)?;
        let after = cursor(q.cursor.as_deref())?;
        let contains = match q.q.as_deref() {
            None | Some("") => None,
            Some(text) => {
                let ok = text.len() <= validate::MAX_USERNAME_CHARS
                    && text.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(&b)
                    });
                if !ok {
                    return Err(AuthError::BadRequest(format!(
                        "q must be at most {} of a-z, 0-9, '_', '.' and '-'",
                        validate::MAX_USERNAME_CHARS
                    )));
                }
                Some(text)
            }
        };
        // One more than asked, to know whether a next page exists.
        let mut users = self
            .inner
            .store
            .list_users(after, contains, limit + 1)
            .await?;
        let next_cursor = (users.len() > limit as usize).then(|| {
            users.truncate(limit as usize);
            users.last().map(|u| u.id.clone()).unwrap_or_default()
        });
        Ok(AdminUserList {
            users: users.iter().map(admin_user).collect(),
            next_cursor,
        })
    }

    /// Changes the e-mail address of `user_id` (validated; `email_taken` if another live
    /// account has it; `user_not_found` if there is no such live account).
    async fn set_email(&self, user_id: &str, email: &str) -> Result<UserRecord, AuthError> {
        validate::email(email).map_err(AuthError::BadRequest)?;
        match self.inner.store.set_email(user_id, email).await? {
            SetEmail::Updated(user) => Ok(user),
            SetEmail::NotFound => Err(AuthError::UserNotFound),
            SetEmail::Taken => Err(AuthError::EmailTaken),
        }
    }

    /// `PATCH /v1/admin/users/{id}`.
    pub(crate) async fn admin_set_email(
        &self,
        user_id: &str,
        email: &str,
    ) -> Result<AdminUser, AuthError> {
        Ok(admin_user(&self.set_email(user_id, email).await?))
    }

    /// `PUT /v1/admin/users/{id}/role` by the admin of `claims`: `forbidden_target` when they
    /// demote themself; `forbidden` when the caller is no longer an admin as the change is made
    /// (checked in the store's transaction with the change: two admins demoting each other at
    /// once leave one of them). So the accounts always keep an admin. `user_not_found` for no
    /// live account. A **demotion ends
    /// every session of the user** (their sockets close, their tokens stop working), so the
    /// `role` claim of a live token is never stale in the direction that matters: nobody keeps
    /// moderating on an old token. A promotion ends nothing; the new role reaches the tokens at
    /// the next refresh or login (the admin routes read the stored role, so they open at once).
    pub(crate) async fn admin_set_role(
        &self,
        claims: &Claims,
        user_id: &str,
        role: Role,
    ) -> Result<AdminUser, AuthError> {
        if role == Role::User && user_id == claims.sub {
            return Err(AuthError::SelfDemotion);
        }
        let store = &self.inner.store;
        let user = match store
            .set_role(UserKey::Id(user_id), role.as_str(), Some(&claims.sub))
            .await?
        {
            SetRole::Updated(user) => user,
            SetRole::NotFound => return Err(AuthError::UserNotFound),
            SetRole::NotAdmin => return Err(AuthError::Forbidden("admins only")),
        };
        if role == Role::User {
            let ended = store
                .revoke_user_sessions(&user.id, Sessions::All, unix_now())
                .await?;
            self.revoke_sessions(&ended).await;
            tracing::info!(user = %user.id, ended = ended.len(), by = %claims.sub, "user demoted");
        } else {
            tracing::info!(user = %user.id, by = %claims.sub, "user promoted");
        }
        Ok(admin_user(&user))
    }

    /// `PATCH /v1/auth/me`.
    pub(crate) async fn set_my_email(
        &self,
        claims: &Claims,
        email: &str,
    ) -> Result<User, AuthError> {
        match self.set_email(&claims.sub, email).await {
            Err(AuthError::UserNotFound) => Err(AuthError::UnknownUser),
            other => other.map(|user| user.to_user()),
        }
    }

    /// `POST /v1/auth/me/password`: checks the current password (through the hashing slots; a
    /// wrong one counts as a failed login of the account), stores the new one, and ends every
    /// other session of the user (their sockets close). The presenting session goes on.
    pub(crate) async fn change_password(
        &self,
        claims: &Claims,
        req: ChangePasswordRequest,
    ) -> Result<(), AuthError> {
        validate::password(&req.new).map_err(AuthError::BadRequest)?;
        let throttle = &self.inner.throttle;
        throttle.account_open(&claims.name)?;
        let store = &self.inner.store;
        let user = store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::UnknownUser)?;
        // No stored password is this long, so it cannot match: no hashing for it.
        let matched = req.current.len() <= MAX_PASSWORD_BYTES
            && self
                .inner
                .passwords
                .verify(req.current, Some(user.password_hash))
                .await?;
        if !matched {
            throttle.login_failed(&claims.name)?;
            return Err(AuthError::InvalidCredentials);
        }
        let hash = self.inner.passwords.hash(req.new).await?;
        if !store.set_password(&user.id, &hash).await? {
            return Err(AuthError::UnknownUser);
        }
        let ended = store
            .revoke_user_sessions(&user.id, Sessions::AllBut(claims.sid.clone()), unix_now())
            .await?;
        self.revoke_sessions(&ended).await;
        tracing::info!(user = %user.id, ended = ended.len(), "password changed");
        Ok(())
    }

    /// One page of the caller's live sessions, newest first.
    pub(crate) async fn sessions(
        &self,
        claims: &Claims,
        q: &SessionsQuery,
    ) -> Result<SessionList, AuthError> {
        let limit = page_size(q.limit)?;
        let before = cursor(q.cursor.as_deref())?;
        let mut sessions = self
            .inner
            .store
            .sessions(&claims.sub, unix_now(), before, limit + 1)
            .await?;
        let next_cursor = (sessions.len() > limit as usize).then(|| {
            sessions.truncate(limit as usize);
            sessions.last().map(|s| s.id.clone()).unwrap_or_default()
        });
        Ok(SessionList {
            sessions: sessions
                .into_iter()
                .map(|s| Session {
                    current: s.id == claims.sid,
                    id: s.id,
                    user_agent: s.user_agent,
                    created_ts: millis(s.created_at),
                    last_seen_ts: millis(s.last_seen_at),
                })
                .collect(),
            next_cursor,
        })
    }

    /// Ends session `sid` of the caller (the current one too, like a logout): `not_found` if it
    /// is not a live session of theirs.
    pub(crate) async fn end_session(&self, claims: &Claims, sid: &str) -> Result<(), AuthError> {
        if sid.is_empty() || sid.len() > MAX_CURSOR_BYTES {
            return Err(AuthError::NotFound("no such session"));
        }
        let ended = self
            .inner
            .store
            .revoke_user_sessions(&claims.sub, Sessions::One(sid.to_owned()), unix_now())
            .await?;
        if ended.is_empty() {
            return Err(AuthError::NotFound("no such session"));
        }
        self.revoke_sessions(&ended).await;
        Ok(())
    }

    /// Ends every session of the caller but the current one ("log out other devices").
    pub(crate) async fn end_other_sessions(&self, claims: &Claims) -> Result<(), AuthError> {
        let ended = self
            .inner
            .store
            .revoke_user_sessions(
                &claims.sub,
                Sessions::AllBut(claims.sid.clone()),
                unix_now(),
            )
            .await?;
        self.revoke_sessions(&ended).await;
        Ok(())
    }
}
