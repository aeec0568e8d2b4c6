//! [`AuthConfig`]: everything the auth service needs to know at start, passed in explicitly.

use std::path::PathBuf;
use std::time::Duration;

/// Default lifetime of an access token (15 minutes).
pub const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
/// Default lifetime of a refresh token, counted from its issue (30 days). Every refresh issues a
/// new one, so an active session lives on while an idle one dies after this long.
pub const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default number of argon2id hashes computed at the same time (see `password.rs` for why this
/// is bounded).
pub const DEFAULT_HASH_CONCURRENCY: usize = 2;
/// Default `iss` and `aud` of the tokens.
pub const DEFAULT_ISSUER: &str = "switchboard";

/// Configuration of [`crate::Auth`]. Build it with [`AuthConfig::new`] and change fields as
/// needed; a future binary maps its command-line flags onto this struct.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// Directory holding `auth.db` (SQLite) and `signing-key.pem` (the Ed25519 private key,
    /// mode 0600). Created if missing.
    pub data_dir: PathBuf,
    /// `iss` claim written into access tokens and required when verifying them.
    pub issuer: String,
    /// `aud` claim written into access tokens and required when verifying them.
    pub audience: String,
    /// Lifetime of an access token (`exp - iat`). Whole seconds; sub-second parts are dropped.
    pub access_ttl: Duration,
    /// Lifetime of each refresh token from its issue.
    pub refresh_ttl: Duration,
    /// Most argon2id hashes computed at once (at least 1).
    pub hash_concurrency: usize,
}

impl AuthConfig {
    /// A configuration with the defaults: issuer and audience `switchboard`, access tokens for
    /// 15 minutes, refresh tokens for 30 days, 2 concurrent password hashes.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            issuer: DEFAULT_ISSUER.to_owned(),
            audience: DEFAULT_ISSUER.to_owned(),
            access_ttl: DEFAULT_ACCESS_TTL,
            refresh_ttl: DEFAULT_REFRESH_TTL,
            hash_concurrency: DEFAULT_HASH_CONCURRENCY,
        }
    }
}
