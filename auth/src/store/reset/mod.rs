//! [`ResetStore`]: password-reset tokens, a part of every [`super::AuthStore`].
//!
//! A token is stored only as the SHA-256 of its string (`password_resets.hash`) with its user,
//! the address it was requested for (trimmed, lower-cased), its creation and expiry times and
//! when it was spent. Rows older than the throttle window are dropped by the next request for
//! the same address, so the table holds at most a few rows per address asked about recently.

mod postgres;
mod sqlite;

use async_trait::async_trait;
use switchboard_jobs::NewJob;

use super::{RevokedSession, StoreError, UserRecord};

/// A password-reset request about to be stored.
#[derive(Debug, Clone)]
pub struct NewPasswordReset {
    /// The address asked for, trimmed and lower-cased (see `normalise_email` in the service).
    pub email: String,
    /// SHA-256 of the new token's string.
    pub hash: [u8; 32],
    /// Request time.
    pub now: u64,
    /// After this the token is refused.
    pub expires_at: u64,
    /// Tokens created for `email` after this time count against `max_in_window` (older ones
    /// are dropped).
    pub window_start: u64,
    /// Most tokens per address per window; beyond, nothing is stored.
    pub max_in_window: u32,
    /// Enqueued in the same transaction when (and only when) the token is stored: the reset
    /// mail.
    pub jobs: Vec<NewJob>,
}

/// What [`ResetStore::request_password_reset`] did. Expected outcomes, not errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetRequested {
    /// The token (and the jobs) are stored for this live user (the oldest live account with
    /// the address).
    Issued(UserRecord),
    /// The address already had `max_in_window` tokens in the window; nothing stored or
    /// enqueued.
    Throttled,
    /// No live account has the address; nothing stored or enqueued.
    NoAccount,
}

/// A password reset with a token: spend it and set the password.
#[derive(Debug, Clone)]
pub struct ResetPassword {
    /// SHA-256 of the presented token.
    pub hash: [u8; 32],
    /// The new argon2id PHC string.
    pub password_hash: String,
    /// Current time.
    pub now: u64,
}

/// What [`ResetStore::reset_password`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordReset {
    /// The password is set, the token spent, the user's other tokens voided and every session
    /// of theirs revoked (listed, for the caller to revoke in memory and announce).
    Reset {
        /// The user.
        user_id: String,
        /// The sessions this revoked.
        ended: Vec<RevokedSession>,
    },
    /// Unknown, expired or spent token, or its user is deleted. Nothing changed.
    Invalid,
}

/// Persistence of password-reset tokens.
///
/// **Contract:** each method is atomic. [`request_password_reset`] counts and inserts in one
/// transaction serialised per address, so concurrent requests (on any node) never store more
/// than `max_in_window` tokens per address per window; [`reset_password`] spends the token,
/// sets the password, voids the user's other tokens and revokes their sessions in one
/// transaction, so a token works once and a failure changes nothing.
///
/// [`request_password_reset`]: ResetStore::request_password_reset
/// [`reset_password`]: ResetStore::reset_password
#[async_trait]
pub trait ResetStore: Send + Sync + 'static {
    /// Looks the address up (the oldest live account whose address equals it ignoring ASCII
    /// case), counts its tokens in the window, and stores the token when there is an account
    /// and the count is below the limit, with `req.jobs` in the same transaction. The lookup and the count run whatever the outcome, so
    /// the work done does not depend on whether the account exists.
    async fn request_password_reset(
        &self,
        req: NewPasswordReset,
    ) -> Result<ResetRequested, StoreError>;

    /// The live user of an unspent token that expires after `now`.
    async fn password_reset_user(
        &self,
        hash: [u8; 32],
        now: u64,
    ) -> Result<Option<UserRecord>, StoreError>;

    /// Spends the token and sets the password (see [`PasswordReset`]).
    async fn reset_password(&self, reset: ResetPassword) -> Result<PasswordReset, StoreError>;
}
