//! Switchboard accounts and tokens: argon2id registration, EdDSA (Ed25519) access tokens,
//! rotating refresh tokens with reuse detection, session revocation, and the JWKS document.
//!
//! The hub opens an [`Auth`], mounts [`Auth::router`] at its root, verifies tokens with
//! [`Auth::verifier`], and closes sockets of the sessions that [`Auth::subscribe_revocations`]
//! announces.
//!
//! # Layout
//! - [`config`] holds [`AuthConfig`].
//! - [`keys`] holds the signing key ([`LocalKeys`], `data_dir/signing-key.pem`) and [`KeySource`],
//!   the seam for verifying with keys fetched from a remote auth node.
//! - [`tokens`] holds [`Claims`] and [`Verifier`].
//! - [`revocation`] holds [`Revocations`], the revoked-session set and its broadcast.
//! - [`store`] holds [`AuthStore`] and [`SqliteStore`] (`data_dir/auth.db`).
//! - `password`: argon2id hashing on the blocking pool behind a semaphore.
//! - `service`: the operations (register, login, refresh, logout, me); `http`: their routes.
//!
//! **Invariants:** passwords and refresh tokens are never stored in the clear (argon2id PHC
//! strings and SHA-256 hashes). Verifying an access token never touches the database: it needs
//! only the public key and [`Revocations`]. A revocation is persisted before it is applied in
//! memory and broadcast, so a failed logout changes nothing and a successful one survives a
//! restart.

pub mod config;
pub mod error;
mod http;
pub mod keys;
mod password;
pub mod revocation;
mod service;
pub mod store;
pub mod tokens;
mod validate;

use std::sync::Arc;

use switchboard_protocol::rest::User;
use tokio::sync::broadcast;

pub use config::AuthConfig;
pub use error::{AuthError, TokenError};
pub use keys::{KeySource, LocalKeys};
pub use revocation::Revocations;
pub use store::{AuthStore, SqliteStore};
pub use tokens::{Claims, Verifier};

use password::Passwords;
use tokens::EXP_LEEWAY_SECS;

/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "auth.db";

/// The auth service: accounts, sessions, tokens. Cheap to clone; clones share everything.
///
/// Dropping the last clone (and the last [`Verifier`] and router made from it) closes the
/// database.
#[derive(Clone)]
pub struct Auth {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: AuthConfig,
    store: Arc<dyn AuthStore>,
    keys: Arc<LocalKeys>,
    revocations: Revocations,
    passwords: Passwords,
    verifier: Verifier,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("cfg", &self.inner.cfg)
            .field("kid", &self.inner.keys.kid())
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Opens the auth service on `cfg.data_dir`, creating the directory, `auth.db` and
    /// `signing-key.pem` (mode 0600) on first start and reusing them afterwards, so users,
    /// sessions and issued tokens survive a restart. Revoked sessions whose access tokens may
    /// still be unexpired are loaded into the revocation set.
    ///
    /// # Errors
    /// [`AuthError::DataDir`], [`AuthError::Keys`], [`AuthError::Store`] or a hashing error
    /// when something cannot be created, read or parsed.
    pub async fn open(cfg: AuthConfig) -> Result<Auth, AuthError> {
        let dir = cfg.data_dir.clone();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|source| AuthError::DataDir {
                path: dir.clone(),
                source,
            })?;
        let key_dir = dir.clone();
        let keys =
            tokio::task::spawn_blocking(move || LocalKeys::load_or_generate(&key_dir)).await??;
        let keys = Arc::new(keys);

        let now = unix_now();
        let store = SqliteStore::open(&dir.join(DATABASE_FILE)).await?;
        let revocations = Revocations::new();
        for session in store
            .revoked_sessions(now.saturating_sub(EXP_LEEWAY_SECS))
            .await?
        {
            revocations.insert(&session.id, session.access_exp + EXP_LEEWAY_SECS);
        }

        let passwords = Passwords::new(cfg.hash_concurrency).await?;
        let verifier = Verifier::new(
            Arc::clone(&keys) as Arc<dyn KeySource>,
            revocations.clone(),
            &cfg.issuer,
            &cfg.audience,
        );
        tracing::info!(data_dir = %dir.display(), kid = keys.kid(),
            revoked = revocations.len(), "auth opened");
        Ok(Auth {
            inner: Arc::new(Inner {
                cfg,
                store: Arc::new(store),
                keys,
                revocations,
                passwords,
                verifier,
            }),
        })
    }

    /// The routes `POST /v1/auth/{register,login,refresh,logout}`, `GET /v1/auth/me` and
    /// `GET /.well-known/jwks.json`, with state applied. No fallback: unknown routes are the
    /// caller's (the hub's 404).
    pub fn router(&self) -> axum::Router {
        http::router(self.clone())
    }

    /// A verifier for access tokens issued by this service (same keys, same revocation set).
    pub fn verifier(&self) -> Verifier {
        self.inner.verifier.clone()
    }

    /// The user with this username, or `None`. The e-mail address is left out (`email: None`):
    /// this lookup serves views of other users, and an address is shown only to its owner.
    ///
    /// # Errors
    /// [`AuthError::Store`] if the database fails.
    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>, AuthError> {
        let user = self.inner.store.user_by_username(username).await?;
        Ok(user.map(|u| User {
            email: None,
            ..u.to_user()
        }))
    }

    /// A receiver of the id of every session revoked from now on (logout, refresh-token reuse).
    /// See [`Revocations::subscribe`] for what to do on `Lagged`.
    pub fn subscribe_revocations(&self) -> broadcast::Receiver<String> {
        self.inner.revocations.subscribe()
    }

    /// The revocation set, e.g. to re-check sessions after a lagged
    /// [`Auth::subscribe_revocations`] receiver.
    pub fn revocations(&self) -> Revocations {
        self.inner.revocations.clone()
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
