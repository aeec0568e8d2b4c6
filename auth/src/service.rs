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
use crate::store::{CreateUser, NewRefreshToken, NewSession, RotateOutcome, Rotation, UserRecord};
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

    /// Validates and stores a new user; counts against the registrations of `ip`.
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
        };
        match store.create_user(user.clone()).await? {
            CreateUser::Created => Ok(user.to_user()),
            CreateUser::UsernameTaken => Err(AuthError::UsernameTaken),
        }
    }

    /// Checks the credentials and starts a session. Unknown user and wrong password give the
    /// same error after the same amount of hashing work, and count alike against the username's
    /// failed logins (see `throttle`); every attempt counts against `ip`'s logins.
    pub(crate) async fn login(
        &self,
        req: LoginRequest,
        ip: IpAddr,
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
                id: sid,
                user_id: user.id.clone(),
                created_at: now,
                access_exp,
                refresh: NewRefreshToken {
                    hash,
                    expires_at: now + self.inner.cfg.refresh_ttl.as_secs(),
                },
            })
            .await?;
        if !created {
            // The account was deleted while the password was being checked.
            return Err(AuthError::InvalidCredentials);
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

    /// Deletes the user of `claims` (see [`crate::store`] for what remains: the username stays
    /// reserved) and revokes every session of theirs, the presenting one included.
    pub(crate) async fn delete_me(&self, claims: &Claims) -> Result<(), AuthError> {
        let now = unix_now();
        let sessions = self
            .inner
            .store
            .delete_user(&claims.sub, now, now.saturating_sub(EXP_LEEWAY_SECS))
            .await?
            .ok_or(AuthError::UnknownUser)?;
        let mut revoked: Vec<(String, u64)> = sessions
            .into_iter()
            .map(|s| (s.id, s.access_exp + EXP_LEEWAY_SECS))
            .collect();
        // The presenting session is among them (its token passed `exp`); this covers a token
        // whose `exp` the store has not seen (it cannot be later, but costs nothing to be sure).
        match revoked.iter_mut().find(|(sid, _)| *sid == claims.sid) {
            Some((_, until)) => *until = (*until).max(claims.exp + EXP_LEEWAY_SECS),
            None => revoked.push((claims.sid.clone(), claims.exp + EXP_LEEWAY_SECS)),
        }
        if let Some(announcer) = &self.inner.announcer {
            announcer.announce_all(&revoked).await;
        }
        for (sid, until) in &revoked {
            self.inner.revocations.revoke(sid, *until);
        }
        tracing::info!(user = %claims.sub, sessions = revoked.len(), "user deleted");
        Ok(())
    }

    /// The user called `username`, for another user to see (no e-mail address). A string that
    /// is not a valid username names nobody.
    pub(crate) async fn lookup(&self, username: &str) -> Result<User, AuthError> {
        if validate::username(username).is_err() {
            return Err(AuthError::UserNotFound);
        }
        self.user_by_username(username)
            .await?
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
