//! The auth operations behind the HTTP routes. Handlers in `http/` only parse and answer; every
//! rule lives here, once.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use switchboard_protocol::limits::MAX_PASSWORD_BYTES;
use switchboard_protocol::rest::{
    LoginRequest, MeResponse, RefreshRequest, RegisterRequest, TokenPair, User,
};

use crate::error::AuthError;
use crate::store::{
    CreateUser, DeleteUser, Deleted, NewRefreshToken, NewSession, RevokedSession, RotateOutcome,
    Rotation, Sessions, UserRecord,
};
use crate::tokens::{Claims, EXP_LEEWAY_SECS, ROLE_USER};
use crate::{unix_now, validate, Auth};

/// Random bytes in a refresh token.
const REFRESH_SECRET_BYTES: usize = 32;
/// Longest session id accepted in a presented refresh token (a uuid is 36).
const MAX_SESSION_ID_LEN: usize = 64;

impl Auth {
    /// The counters of the routes' outcomes.
    pub(crate) fn metrics(&self) -> &crate::metrics::AuthMetrics {
        &self.inner.metrics
    }

    /// Validates and stores a new user, with its welcome mail job (`jobs::welcome_mail`) in the
    /// same transaction; counts against the registrations of `ip`.
    pub(crate) async fn register(
        &self,
        req: RegisterRequest,
        ip: IpAddr,
    ) -> Result<User, AuthError> {
        self.inner.throttle.register_attempt(ip)?;
        validate::username(&req.username).map_err(AuthError::BadRequest)?;
        validate::email(&req.email).map_err(AuthError::BadRequest)?;
        validate::password(&req.password).map_err(AuthError::BadRequest)?;
        let store = &self.inner.store;
        // Checked first to save a hash; the insert below is what guarantees uniqueness.
        if store.user_by_username(&req.username).await?.is_some() {
            return Err(AuthError::UsernameTaken);
        }
        let password_hash = self.inner.passwords.hash(req.password).await?;
        let user = UserRecord {
            id: uuid::Uuid::now_v7().to_string(),
            username: req.username,
            email: req.email,
            role: ROLE_USER.to_owned(),
            password_hash,
            created_at: unix_now(),
            last_login_at: None,
        };
        let jobs = crate::jobs::welcome_mail(&user).into_iter().collect();
        match store.create_user(user.clone(), jobs).await? {
            CreateUser::Created => {
                self.nudge_jobs();
                Ok(user.to_user())
            }
            CreateUser::UsernameTaken => Err(AuthError::UsernameTaken),
        }
    }

    /// Checks the credentials and starts a session (remembering `user_agent`, already cut to
    /// its bound). Unknown user and wrong password give the same error after the same amount of
    /// hashing work, and count alike against the username's failed logins (see `throttle`);
    /// every attempt counts against `ip`'s logins. With `--single-session`, the user's other
    /// sessions end.
    pub(crate) async fn login(
        &self,
        req: LoginRequest,
        ip: IpAddr,
        user_agent: Option<String>,
    ) -> Result<TokenPair, AuthError> {
        let throttle = &self.inner.throttle;
        throttle.login_attempt(ip)?;
        // A string that is not a valid username names no account: it is not tracked, so
        // garbage names cannot fill the per-account map (the per-address limit bounds them).
        let account = validate::username(&req.username)
            .is_ok()
            .then_some(req.username.as_str());
        if let Some(account) = account {
            throttle.account_open(account)?;
        }
        // No stored password is this long (registration refuses it), so it cannot match; refusing
        // early bounds the hashing cost an attacker can cause and reveals nothing about the user.
        let matched = if req.password.len() > MAX_PASSWORD_BYTES {
            None
        } else {
            let user = self.inner.store.user_by_username(&req.username).await?;
            let stored = user.as_ref().map(|u| u.password_hash.clone());
            let matched = self.inner.passwords.verify(req.password, stored).await?;
            user.filter(|_| matched)
        };
        let Some(user) = matched else {
            if let Some(account) = account {
                throttle.login_failed(account)?;
            }
            return Err(AuthError::InvalidCredentials);
        };
        let now = unix_now();
        let sid = uuid::Uuid::now_v7().to_string();
        let (access_token, access_exp) = self.access_token(&user, &sid, now)?;
        let (refresh_token, hash) = new_refresh_token(&sid);
        let created = self
            .inner
            .store
            .create_session(NewSession {
                id: sid.clone(),
                user_id: user.id.clone(),
                created_at: now,
                access_exp,
                refresh: NewRefreshToken {
                    hash,
                    expires_at: now + self.inner.cfg.refresh_ttl.as_secs(),
                },
                user_agent,
            })
            .await?;
        if !created {
            // The account was deleted while the password was being checked.
            return Err(AuthError::InvalidCredentials);
        }
        if self.inner.cfg.accounts.single_session {
            let ended = self
                .inner
                .store
                .revoke_user_sessions(&user.id, Sessions::AllBut(sid.clone()), now)
                .await?;
            self.revoke_sessions(&ended).await;
        }
        Ok(self.token_pair(access_token, refresh_token, &user))
    }

    /// Spends a refresh token and issues a new pair; on reuse of a spent token, revokes the
    /// session.
    pub(crate) async fn refresh(&self, req: RefreshRequest) -> Result<TokenPair, AuthError> {
        let sid = parse_refresh_token(&req.refresh_token).ok_or(AuthError::InvalidRefreshToken)?;
        let now = unix_now();
        let access_exp = now + self.inner.cfg.access_ttl.as_secs();
        let (refresh_token, next_hash) = new_refresh_token(sid);
        let outcome = self
            .inner
            .store
            .rotate_refresh(Rotation {
                session_id: sid.to_owned(),
                presented: sha256(&req.refresh_token),
                next: NewRefreshToken {
                    hash: next_hash,
                    expires_at: now + self.inner.cfg.refresh_ttl.as_secs(),
                },
                access_exp,
                now,
            })
            .await?;
        match outcome {
            RotateOutcome::Rotated(user) => {
                let (access_token, _) = self.access_token(&user, sid, now)?;
                Ok(self.token_pair(access_token, refresh_token, &user))
            }
            RotateOutcome::Reused { access_exp } => {
                tracing::warn!(sid, "refresh token reuse: session revoked");
                self.revoke_everywhere(sid, access_exp + EXP_LEEWAY_SECS)
                    .await;
                Err(AuthError::RefreshTokenReused)
            }
            RotateOutcome::Rejected => Err(AuthError::InvalidRefreshToken),
        }
    }

    /// Revokes the session of `claims`: persisted first, then announced (Redis) and applied to
    /// the in-memory set and broadcast.
    pub(crate) async fn logout(&self, claims: &Claims) -> Result<(), AuthError> {
        let stored_exp = self
            .inner
            .store
            .revoke_session(&claims.sid, unix_now())
            .await?;
        let until = stored_exp.unwrap_or(0).max(claims.exp) + EXP_LEEWAY_SECS;
        self.revoke_everywhere(&claims.sid, until).await;
        Ok(())
    }

    /// Deletes the user of `claims` (see [`crate::store`] for what remains) and revokes every
    /// session of theirs, the presenting one included. An admin cannot delete themself over
    /// HTTP (`forbidden_target`).
    pub(crate) async fn delete_me(&self, claims: &Claims) -> Result<(), AuthError> {
        self.delete_user(&claims.sub, Some(claims)).await
    }

    /// Deletes the live user `user_id` unless they are an admin, then revokes the sessions the
    /// deletion ended (their sockets close on every node). `claims`: the deleting user's own
    /// token, when they delete themself.
    pub(crate) async fn delete_user(
        &self,
        user_id: &str,
        claims: Option<&Claims>,
    ) -> Result<(), AuthError> {
        let deleted = self
            .inner
            .store
            .delete_user(DeleteUser {
                user_id: user_id.to_owned(),
                now: unix_now(),
                refuse_admin: true,
                free_username: self.inner.cfg.accounts.free_deleted_usernames,
            })
            .await?;
        let mut sessions = match deleted {
            Deleted::Deleted(sessions) => sessions,
            // A token whose user is gone is no credential; an unknown target is not found.
            Deleted::NotFound if claims.is_some() => return Err(AuthError::UnknownUser),
            Deleted::NotFound => return Err(AuthError::UserNotFound),
            Deleted::Admin => return Err(AuthError::ForbiddenTarget),
        };
        // The presenting session is among them (its token passed verification); this covers a
        // token whose `exp` the store has not seen (it cannot be later, but costs nothing).
        if let Some(claims) = claims {
            match sessions.iter_mut().find(|s| s.id == claims.sid) {
                Some(s) => s.access_exp = s.access_exp.max(claims.exp),
                None => sessions.push(RevokedSession {
                    id: claims.sid.clone(),
                    access_exp: claims.exp,
                }),
            }
        }
        self.revoke_sessions(&sessions).await;
        tracing::info!(user = %user_id, sessions = sessions.len(), "user deleted");
        Ok(())
    }

    /// Announces sessions just revoked in the store to the other nodes (with Redis), then
    /// applies them here (in-memory set and broadcast: their sockets close). A session whose
    /// tokens have all expired is still broadcast: a socket opened with one may be up.
    pub(crate) async fn revoke_sessions(&self, sessions: &[RevokedSession]) {
        let revoked: Vec<(String, u64)> = sessions
            .iter()
            .map(|s| (s.id.clone(), s.access_exp + EXP_LEEWAY_SECS))
            .collect();
        if let Some(announcer) = &self.inner.announcer {
            announcer.announce_all(&revoked).await;
        }
        for (sid, until) in &revoked {
            self.inner.revocations.revoke(sid, *until);
        }
    }

    /// The user called `username`, for another user to see (no e-mail address); for a deleted
    /// user who still holds the name, their tombstone (`deleted: true`), so clients can show
    /// their messages as a deleted user's. A string that is not a valid username names nobody.
    pub(crate) async fn lookup(&self, username: &str) -> Result<User, AuthError> {
        if validate::username(username).is_err() {
            return Err(AuthError::UserNotFound);
        }
        if let Some(user) = self.user_by_username(username).await? {
            return Ok(user);
        }
        let tombstone = self.inner.store.tombstone_by_username(username).await?;
        tombstone
            .map(|t| User {
                email: None,
                deleted: true,
                ..t.to_user()
            })
            .ok_or(AuthError::UserNotFound)
    }

    /// Announces a revocation to the other nodes (with Redis), then applies it here (in-memory
    /// set and broadcast). The caller has persisted it already.
    async fn revoke_everywhere(&self, sid: &str, until: u64) {
        if let Some(announcer) = &self.inner.announcer {
            announcer.announce(sid, until).await;
        }
        self.inner.revocations.revoke(sid, until);
    }

    /// The user and session of a verified token.
    pub(crate) async fn me(&self, claims: &Claims) -> Result<MeResponse, AuthError> {
        let user = self
            .inner
            .store
            .user_by_id(&claims.sub)
            .await?
            .ok_or(AuthError::UnknownUser)?;
        Ok(MeResponse {
            user: user.to_user(),
            session: claims.sid.clone(),
        })
    }

    /// Signs an access token for `user` in session `sid`; returns it with its `exp`.
    fn access_token(
        &self,
        user: &UserRecord,
        sid: &str,
        now: u64,
    ) -> Result<(String, u64), AuthError> {
        let cfg = &self.inner.cfg;
        let exp = now + cfg.access_ttl.as_secs();
        let claims = Claims {
            iss: cfg.issuer.clone(),
            aud: cfg.audience.clone(),
            sub: user.id.clone(),
            sid: sid.to_owned(),
            jti: uuid::Uuid::now_v7().to_string(),
            exp,
            iat: now,
            name: user.username.clone(),
            role: user.role.clone(),
        };
        Ok((self.inner.keys.sign(&claims)?, exp))
    }

    fn token_pair(
        &self,
        access_token: String,
        refresh_token: String,
        user: &UserRecord,
    ) -> TokenPair {
        TokenPair {
            access_token,
            refresh_token,
            expires_in: self.inner.cfg.access_ttl.as_secs(),
            token_type: "Bearer".to_owned(),
            user: user.to_user(),
        }
    }
}

/// A new refresh token `<sid>.<32 random bytes, base64url>` and its SHA-256.
fn new_refresh_token(sid: &str) -> (String, [u8; 32]) {
    let mut secret = [0u8; REFRESH_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = format!("{sid}.{}", URL_SAFE_NO_PAD.encode(secret));
    let hash = sha256(&token);
    (token, hash)
}

/// The session id of a well-formed refresh token; `None` if it is not of our shape.
fn parse_refresh_token(token: &str) -> Option<&str> {
    let (sid, secret) = token.split_once('.')?;
    let secret = URL_SAFE_NO_PAD.decode(secret).ok()?;
    let ok =
        !sid.is_empty() && sid.len() <= MAX_SESSION_ID_LEN && secret.len() == REFRESH_SECRET_BYTES;
    ok.then_some(sid)
}

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_round_trip_and_garbage_is_refused() {
        let (token, hash) = new_refresh_token("0190-abc");
        assert_eq!(parse_refresh_token(&token), Some("0190-abc"));
        assert_eq!(hash, sha256(&token));
        for bad in ["", "nodot", ".AAAA", "sid.", "sid.not base64", "sid.AAAA"] {
            assert_eq!(parse_refresh_token(bad), None, "{bad:?}");
        }
    }
}
