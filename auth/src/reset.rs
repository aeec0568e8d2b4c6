//! Password reset by mail: `POST /v1/auth/password/reset` (request) and
//! `POST /v1/auth/password/reset/confirm` (confirm).
//!
//! - **Request.** Always answered 202 with the same body, after the same work (the store looks
//!   the address up and counts its recent tokens whether or not an account has it), so the
//!   answer says nothing about which accounts exist. With an account, and fewer than
//!   [`MAX_RESETS_PER_WINDOW`] tokens for the address in the last [`RESET_WINDOW`], a token is
//!   made: [`TOKEN_BYTES`] random bytes, base64url, stored only as its SHA-256 with the user,
//!   the address and its expiry (`cfg.reset_ttl`, 30 minutes). The count is in the store, so
//!   the limit holds for the whole cluster. Beyond it nothing is stored or sent (still 202).
//! - **The mail** carries `{public_url}/#reset=<token>`: a fragment, which browsers never send
//!   to a server, so the token stays out of access logs and `Referer`. It is a
//!   [`PASSWORD_RESET_MAIL`] job in the `mail` lane (paced with every other mail, cluster-wide),
//!   enqueued in the transaction that stores the token, run by [`ResetMailHandler`] on any
//!   node; the job id is the mail's `Message-ID`, so a repeated delivery is recognisable.
//! - **What the database holds.** The token row holds only the SHA-256. The job's payload must
//!   carry the token itself (the mail is built later, maybe on another node), so someone who can
//!   read the database sees the tokens of mails still queued or sent recently (done jobs are
//!   kept for `--job-retention-hours`). Such a token is worth no more than the mail: it expires
//!   30 minutes after the request, dies when used or when another reset of the account
//!   succeeds, and a worker sends nothing for a token that is no longer live. A database
//!   reader could as well read the password hashes; the hash-only row protects against a
//!   leaked backup of the token table, not against a live reader of the job queue.
//! - **Confirm.** A token that is not 43 base64url characters is `bad_request`; a new password
//!   breaking the registration rules is `bad_request` and the token stays unspent; an unknown,
//!   expired or spent token is `unauthorized`. Otherwise, in one transaction: the password is
//!   set (argon2id through the bounded hashing slots), the token spent, the user's other tokens
//!   voided and every session of theirs revoked; then the revocations are applied and announced
//!   (their sockets close). A failure changes nothing.
//! - **Bounds.** Both routes count against the client address's reset allowance (the login
//!   limit per address, in a bucket of its own) before any work; a confirm hashes only for a
//!   live token, so an attacker guessing tokens (2^256 of them) costs one indexed lookup each.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;
use switchboard_jobs::{Handler, Job, JobFailure, NewJob};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};
use switchboard_protocol::rest::{PasswordResetConfirm, PasswordResetRequest};

use crate::error::AuthError;
use crate::jobs::MAIL_LANE;
use crate::mail::{Mail, MailError, MailFrom, Mailer};
use crate::store::{
    AuthStore, NewPasswordReset, PasswordReset, ResetPassword, ResetRequested, StoreError,
};
use crate::{unix_now, validate, Auth};

/// Random bytes in a reset token.
pub const TOKEN_BYTES: usize = 32;
/// Characters of a reset token: 32 bytes in unpadded base64url.
pub const TOKEN_CHARS: usize = 43;
/// The window of the limit per address.
pub const RESET_WINDOW: Duration = Duration::from_secs(60 * 60);
/// Most reset tokens (so mails) per e-mail address per [`RESET_WINDOW`].
pub const MAX_RESETS_PER_WINDOW: u32 = 3;
/// Kind of the reset mail's job. Payload: `{"token": "<the token>"}` (see the module docs for
/// what that means for someone who can read the database).
pub const PASSWORD_RESET_MAIL: &str = "password_reset_mail";

/// A new token and the SHA-256 of its string.
fn new_token() -> (String, [u8; 32]) {
    let mut secret = [0u8; TOKEN_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let token = URL_SAFE_NO_PAD.encode(secret);
    let hash = Sha256::digest(token.as_bytes()).into();
    (token, hash)
}

/// The SHA-256 of `token` if it has the shape of one of ours ([`TOKEN_CHARS`] base64url
/// characters decoding to [`TOKEN_BYTES`] bytes).
fn token_hash(token: &str) -> Option<[u8; 32]> {
    let ok = token.len() == TOKEN_CHARS
        && URL_SAFE_NO_PAD
            .decode(token)
            .is_ok_and(|b| b.len() == TOKEN_BYTES);
    ok.then(|| Sha256::digest(token.as_bytes()).into())
}

/// The address as the store compares it: trimmed, ASCII lower-case.
fn normalise_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// The link of a reset mail.
pub fn reset_link(public_url: &str, token: &str) -> String {
    format!("{}/#reset={token}", public_url.trim_end_matches('/'))
}

/// Why a reset mail was not sent.
#[derive(Debug, thiserror::Error)]
pub enum ResetMailError {
    /// The mail could not be built or sent.
    #[error(transparent)]
    Mail(#[from] MailError),
    /// The token could not be looked up.
    #[error("auth store failed")]
    Store(#[from] StoreError),
    /// No `--public-url` to build the link from.
    #[error("no public URL (--public-url) to build the reset link from")]
    NoPublicUrl,
    /// The job carries something that is not a reset token.
    #[error("malformed reset token")]
    MalformedToken,
}

impl ResetMailError {
    /// True if trying again cannot help (a permanent mail failure, a missing public URL, a
    /// malformed token); a store or transient mail failure is worth a retry.
    pub fn is_permanent(&self) -> bool {
        match self {
            Self::Mail(e) => e.is_permanent(),
            Self::Store(_) => false,
            Self::NoPublicUrl | Self::MalformedToken => true,
        }
    }
}

/// Runs the [`PASSWORD_RESET_MAIL`] jobs: the mail of the job's token, to the address the
/// account has now, with the job id as its `Message-ID`. Nothing is sent for a token that has
/// been spent, voided or has expired since (the job succeeds). Every node's pool has it.
pub(crate) struct ResetMailHandler {
    store: Arc<dyn AuthStore>,
    mailer: Arc<dyn Mailer>,
    from: MailFrom,
    public_url: Option<String>,
}

impl ResetMailHandler {
    pub(crate) fn new(
        store: Arc<dyn AuthStore>,
        mailer: Arc<dyn Mailer>,
        from: MailFrom,
        public_url: Option<String>,
    ) -> Self {
        Self {
            store,
            mailer,
            from,
            public_url,
        }
    }

    /// Sends the mail of `token` as mail `id`.
    ///
    /// # Errors
    /// [`ResetMailError`], transient or permanent ([`ResetMailError::is_permanent`]).
    async fn send(&self, token: &str, id: &str) -> Result<(), ResetMailError> {
        let public_url = self
            .public_url
            .as_deref()
            .ok_or(ResetMailError::NoPublicUrl)?;
        let hash = token_hash(token).ok_or(ResetMailError::MalformedToken)?;
        let Some(user) = self.store.password_reset_user(hash, unix_now()).await? else {
            tracing::info!(id, "reset token spent or expired before its mail: not sent");
            return Ok(());
        };
        let link = reset_link(public_url, token);
        let mail = Mail::password_reset(&self.from, &user.email, &user.username, &link, id)?;
        Ok(self.mailer.send(&mail).await?)
    }
}

#[async_trait]
impl Handler for ResetMailHandler {
    fn kind(&self) -> &'static str {
        PASSWORD_RESET_MAIL
    }

    async fn run(&self, job: &Job) -> Result<(), JobFailure> {
        let token = job.payload["token"].as_str().unwrap_or_default();
        self.send(token, &job.id).await.map_err(|e| {
            let message = e.to_string();
            if e.is_permanent() {
                JobFailure::Permanent(message)
            } else {
                JobFailure::Transient(message)
            }
        })
    }
}

impl Auth {
    /// `POST /v1/auth/password/reset`: see the module docs. `Ok` whether or not a token was
    /// made. The mail is a job, enqueued with the token.
    pub(crate) async fn request_password_reset(
        &self,
        req: PasswordResetRequest,
        ip: IpAddr,
    ) -> Result<(), AuthError> {
        self.inner.throttle.reset_attempt(ip)?;
        let email = normalise_email(&req.email);
        // The shape of the input, not the existence of an account: safe to refuse.
        validate::email(&email).map_err(AuthError::BadRequest)?;
        if self.inner.cfg.public_url.is_none() {
            tracing::warn!("password reset asked, but without --public-url no link can be made");
            return Ok(());
        }
        let now = unix_now();
        let (token, hash) = new_token();
        let mail = NewJob::new(PASSWORD_RESET_MAIL, json!({ "token": token })).in_lane(MAIL_LANE);
        let outcome = self
            .inner
            .store
            .request_password_reset(NewPasswordReset {
                email,
                hash,
                now,
                expires_at: now + self.inner.cfg.reset_ttl.as_secs(),
                window_start: now.saturating_sub(RESET_WINDOW.as_secs()),
                max_in_window: MAX_RESETS_PER_WINDOW,
                jobs: vec![mail],
            })
            .await?;
        match outcome {
            ResetRequested::Issued(user) => {
                tracing::info!(user = %user.id, "password reset requested");
                self.nudge_jobs();
            }
            ResetRequested::Throttled => {
                tracing::info!("password reset refused: 3 already asked in the last hour");
            }
            ResetRequested::NoAccount => {}
        }
        Ok(())
    }

    /// `POST /v1/auth/password/reset/confirm`: see the module docs.
    pub(crate) async fn confirm_password_reset(
        &self,
        req: PasswordResetConfirm,
        ip: IpAddr,
    ) -> Result<(), AuthError> {
        self.inner.throttle.reset_attempt(ip)?;
        let hash = token_hash(&req.token).ok_or_else(|| {
            AuthError::BadRequest(format!(
                "token must be the {TOKEN_CHARS} characters of the reset link"
            ))
        })?;
        validate::password(&req.password).map_err(AuthError::BadRequest)?;
        let store = &self.inner.store;
        // Checked first so that a dead token costs no hashing; the transaction below checks
        // again and is what makes the token single-use.
        if store.password_reset_user(hash, unix_now()).await?.is_none() {
            return Err(AuthError::InvalidResetToken);
        }
        let password_hash = self.inner.passwords.hash(req.password).await?;
        let outcome = store
            .reset_password(ResetPassword {
                hash,
                password_hash,
                now: unix_now(),
            })
            .await?;
        match outcome {
            PasswordReset::Reset { user_id, ended } => {
                self.revoke_sessions(&ended).await;
                tracing::info!(user = %user_id, ended = ended.len(), "password reset");
                Ok(())
            }
            PasswordReset::Invalid => Err(AuthError::InvalidResetToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_43_base64url_characters_and_only_those_pass() {
        let (token, hash) = new_token();
        assert_eq!(token.len(), TOKEN_CHARS);
        assert_eq!(token_hash(&token), Some(hash));
        assert_ne!(new_token().0, token);
        for bad in [
            "",
            "short",
            &token[1..],
            &format!("{token}A"),
            &format!("{}+", &token[1..]),
            &format!("{}=", &token[1..]),
            &format!("{}é", "A".repeat(41)),
        ] {
            assert_eq!(token_hash(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn links_carry_the_token_in_the_fragment() {
        assert_eq!(
            reset_link("https://chat.example.com/", "abc"),
            "https://chat.example.com/#reset=abc"
        );
        assert_eq!(
            reset_link("http://127.0.0.1:8080", "abc"),
            "http://127.0.0.1:8080/#reset=abc"
        );
    }

    #[test]
    fn addresses_are_trimmed_and_lower_cased() {
        assert_eq!(normalise_email("  Alice@Example.COM "), "alice@example.com");
    }
}
