//! Switchboard accounts and tokens: argon2id registration, EdDSA (Ed25519) access tokens,
//! rotating refresh tokens with reuse detection, session revocation, and the JWKS document.
//!
//! Two ways to use it:
//! - **In-process** (embedded hub): the hub opens an [`Auth`], mounts [`Auth::router`] at its
//!   root, verifies tokens with [`Auth::verifier`], and closes sockets of the sessions that
//!   [`Auth::subscribe_revocations`] announces.
//! - **Separate auth node** (scaled out): the `switchboard-auth` binary ([`node`]) serves the
//!   same routes; hub nodes verify with a [`Verifier`] over [`remote::RemoteKeys`], look users
//!   up with [`remote::RemoteDirectory`], and learn revocations from Redis with
//!   [`redis_feed::follow`].
//!
//! # Layout
//! - [`config`] holds [`AuthConfig`]; [`node`] the binary's flags and `run`.
//! - [`datadir`]: the private data directory (0700, files 0600), also used by the hub.
//! - [`keys`] holds the signing key ([`LocalKeys`], `data_dir/signing-key.pem`) and [`KeySource`],
//!   the seam for verifying with keys fetched from a remote auth node.
//! - [`tokens`] holds [`Claims`] and [`Verifier`].
//! - [`revocation`] holds [`Revocations`], the revoked-session set and its broadcast.
//! - [`store`] holds [`AuthStore`], [`SqliteStore`] (`data_dir/auth.db`) and [`PgStore`]
//!   (schema `auth`).
//! - [`redis_feed`]: revocations across nodes (the follower; `announce` is the publisher).
//! - [`remote`]: the client side of a separate auth node.
//! - [`jobs`]: the job queue in the auth store (the welcome mail enqueued at registration),
//!   this node's workers and their flags, the admin's list and retry.
//! - [`metrics`]: counts of logins, registrations, refreshes, limit refusals and token failures.
//! - `password`: argon2id hashing on the blocking pool: bounded slots, each reusing one memory
//!   block, and a bounded queue.
//! - `throttle`: login and registration limits per account and per client address.
//! - `service`: the operations (register, login, refresh, logout, me, account deletion, user
//!   lookup); `accounts`: administration, self-service and the session list; `http`: their
//!   routes.
//! - [`reset`]: password reset by mail (the token, the per-address limit, the confirm).
//! - [`webhooks`]: the control plane of signed webhooks: endpoints from `--webhooks-file` or
//!   the admin API (`/v1/admin/webhooks*`) in the store ([`store::webhooks`]), the live
//!   registry ([`Auth::webhooks`]), the internal routes for hubs (`/v1/internal/*`, the
//!   service token; clients in [`remote`]), and `user.registered` / `user.deleted` enqueued in
//!   the user's transaction.
//! - [`mail`]: the welcome and password-reset mails and the [`mail::Mailer`] seam (SMTP relay
//!   or `data_dir/outbox`).
//! - [`admin`]: the `admin create|promote|demote` command of the binaries (the first admin is
//!   made on the command line only; then admins promote and demote others over HTTP).
//!
//! **Invariants:** passwords and refresh tokens are never stored in the clear (argon2id PHC
//! strings and SHA-256 hashes). Verifying an access token never touches the database: it needs
//! only the public key and [`Revocations`]. A revocation is persisted before it is announced
//! (Redis) and applied in memory and broadcast, so a failed logout changes nothing and a
//! successful one survives a restart.

mod accounts;
pub mod admin;
mod announce;
pub mod client_ip;
pub mod config;
pub mod datadir;
pub mod error;
mod http;
pub mod jobs;
pub mod keys;
pub mod mail;
pub mod metrics;
pub mod node;
mod password;
pub mod redis_feed;
pub mod remote;
pub mod reset;
pub mod revocation;
mod service;
pub mod store;
mod throttle;
pub mod tokens;
mod validate;
pub mod webhooks;

use std::sync::Arc;

use switchboard_protocol::rest::User;
use tokio::sync::broadcast;

pub use client_ip::ClientIp;
pub use config::AuthConfig;
pub use error::{AuthError, KeysUnavailable, TokenError};
pub use http::openapi;
pub use keys::{KeySource, LocalKeys};
pub use revocation::Revocations;
pub use store::{AuthStore, PgStore, SqliteStore};
pub use tokens::{Claims, Verifier};

use announce::Announcer;
use password::Passwords;
use redis_feed::AbortOnDrop;
use throttle::Throttle;
use tokens::EXP_LEEWAY_SECS;

/// File name of the SQLite database inside the data directory.
pub const DATABASE_FILE: &str = "auth.db";

/// The auth service: accounts, sessions, tokens. Cheap to clone; clones share everything.
///
/// Dropping the last clone (and the last router made from it) closes the database and stops
/// the Redis tasks.
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
    /// Login and registration limits.
    throttle: Throttle,
    verifier: Verifier,
    /// Records and announces revocations in Redis (with `redis_url`).
    announcer: Option<Announcer>,
    /// Counts of the routes' outcomes.
    metrics: metrics::AuthMetrics,
    /// Where mails go (`cfg.mail`): the SMTP relay or the outbox.
    mailer: Arc<dyn mail::Mailer>,
    /// The [`redis_feed::follow`] task applying other nodes' revocations (with `redis_url`).
    _follower: Option<AbortOnDrop>,
    /// The task reloading the webhook registry from the store.
    _webhook_reload: AbortOnDrop,
    /// The job queue in the store.
    jobs: Arc<dyn switchboard_jobs::JobStore>,
    /// This node's job workers, until [`Auth::shutdown_jobs`] takes them (dropping the last
    /// clone of `Auth` stops them too).
    pool: std::sync::Mutex<Option<switchboard_jobs::Pool>>,
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
    /// Opens the auth service on `cfg.data_dir`, creating the directory (mode 0700, every file in
    /// it 0600: see [`datadir`]) and `signing-key.pem` on first start and reusing them afterwards, so issued tokens survive a
    /// restart. Users and sessions are in PostgreSQL (schema `auth`, migrated here) when
    /// `cfg.database_url` is set, else in `data_dir/auth.db`. Revoked sessions whose access
    /// tokens may still be unexpired are loaded into the revocation set.
    ///
    /// The webhook endpoints of `cfg.webhooks` become the store's configured endpoints (see
    /// [`store::WebhookStore::sync_config_webhooks`]), and a task reloads the registry
    /// ([`Auth::webhooks`]) every `cfg.webhooks.reload_interval`.
    ///
    /// It starts this node's job workers ([`AuthConfig::jobs`], the mail lane spaced by
    /// `cfg.mail.rate_per_sec`: [`jobs::pool_config`]) with the welcome mail's handler
    /// ([`mail::WelcomeMailHandler`] over this service's mailer), the webhook delivery handler
    /// (`switchboard_webhooks::WebhookHandler` over [`Auth::webhooks`] and
    /// `cfg.webhooks.delivery_config()`, a 410 disabling in the store: the `webhook` jobs of
    /// the user events) and those of [`AuthConfig::job_handlers`]. So every process that opens
    /// the service sends the welcome mails and the user events: the hub with embedded auth,
    /// and each auth node.
    ///
    /// With `cfg.redis_url`, it also connects to Redis, re-announces those loaded revocations
    /// (in case a node died between recording one and announcing it), and follows the
    /// revocations of other nodes ([`redis_feed::follow`]) into its own set.
    ///
    /// # Errors
    /// [`AuthError::Config`] if a limit or the mail rate is out of range, a configured webhook
    /// endpoint breaks a rule (naming its id), or the service token is shorter than 16 bytes;
    /// [`AuthError::DataDir`], [`AuthError::Keys`], [`AuthError::Store`] (including a schema
    /// newer than this binary), [`AuthError::Redis`] or a hashing error when something cannot
    /// be created, reached, read or parsed.
    pub async fn open(cfg: AuthConfig) -> Result<Auth, AuthError> {
        let throttle = Throttle::new(&cfg)?;
        let pool_cfg = jobs::pool_config(&cfg)?;
        cfg.webhooks.check().map_err(AuthError::Config)?;
        if let Some(token) = &cfg.service_token {
            if token.len() < webhooks::MIN_SERVICE_TOKEN_BYTES {
                return Err(AuthError::Config(format!(
                    "the service token (--service-token) must be at least {} bytes",
                    webhooks::MIN_SERVICE_TOKEN_BYTES
                )));
            }
        }
        let dir = cfg.data_dir.clone();
        let private_dir = dir.clone();
        tokio::task::spawn_blocking(move || datadir::secure_dir(&private_dir))
            .await?
            .map_err(|source| AuthError::DataDir {
                path: dir.clone(),
                source,
            })?;
        let mail_cfg = cfg.mail.clone();
        let mail_dir = dir.clone();
        let mailer = tokio::task::spawn_blocking(move || mail::mailer(&mail_cfg, &mail_dir))
            .await?
            .map_err(|e| AuthError::Config(format!("mail: {e}")))?;
        let key_dir = dir.clone();
        let keys =
            tokio::task::spawn_blocking(move || LocalKeys::load_or_generate(&key_dir)).await??;
        let keys = Arc::new(keys);

        let now = unix_now();
        let store: Arc<dyn AuthStore> = match &cfg.database_url {
            Some(url) => Arc::new(PgStore::connect(url).await?),
            None => Arc::new(SqliteStore::open(&dir.join(DATABASE_FILE)).await?),
        };
        store
            .sync_config_webhooks(
                cfg.webhooks.endpoints.clone(),
                switchboard_jobs::clock::now_ms(),
            )
            .await?;
        let webhook_reload = AbortOnDrop(
            webhooks::spawn_reload(Arc::clone(&store), cfg.webhooks.reload_interval).abort_handle(),
        );
        let revocations = Revocations::new();
        let mut live = Vec::new();
        for session in store
            .revoked_sessions(now.saturating_sub(EXP_LEEWAY_SECS))
            .await?
        {
            let until = session.access_exp + EXP_LEEWAY_SECS;
            revocations.insert(&session.id, until);
            live.push((session.id, until));
        }

        let (announcer, follower) = match &cfg.redis_url {
            Some(url) => {
                let announcer = Announcer::connect(url, &cfg.redis_prefix).await?;
                announcer.announce_all(&live).await;
                let follower = redis_feed::follow(url, &cfg.redis_prefix, revocations.clone());
                (Some(announcer), Some(AbortOnDrop(follower.abort_handle())))
            }
            None => (None, None),
        };

        let passwords = Passwords::new(cfg.hash_concurrency, cfg.hash_queue).await?;
        let verifier = Verifier::new(
            Arc::clone(&keys) as Arc<dyn KeySource>,
            revocations.clone(),
            &cfg.issuer,
            &cfg.audience,
        )
        .with_failures(metrics::TokenFailures::new(&cfg.metrics));
        let metrics = metrics::AuthMetrics::new(&cfg.metrics);
        let jobs = store.job_store();
        // The mail handlers first, so that one given in `job_handlers` replaces its kind's.
        let mut handlers: Vec<Arc<dyn switchboard_jobs::Handler>> = Vec::new();
        if cfg.mail_jobs {
            handlers.push(Arc::new(mail::WelcomeMailHandler::new(
                Arc::clone(&mailer),
                cfg.mail.from.clone(),
            )));
            handlers.push(Arc::new(reset::ResetMailHandler::new(
                Arc::clone(&store),
                Arc::clone(&mailer),
                cfg.mail.from.clone(),
                cfg.public_url.clone(),
            )));
        }
        // The auth store's webhook deliveries (user events); a 410 disables in the store.
        let disabler = Arc::new(webhooks::StoreDisabler(Arc::clone(&store)));
        handlers.push(Arc::new(
            switchboard_webhooks::WebhookHandler::new(
                store.webhooks(),
                disabler,
                cfg.webhooks.delivery_config(),
            )
            .with_metrics(switchboard_webhooks::WebhookMetrics::new(&cfg.metrics)),
        ));
        handlers.extend(cfg.job_handlers.iter().cloned());
        let pool = switchboard_jobs::Pool::start(
            Arc::clone(&jobs),
            handlers,
            pool_cfg,
            switchboard_jobs::metrics::JobMetrics::new(&cfg.metrics),
        );
        tracing::info!(data_dir = %dir.display(), kid = keys.kid(),
            store = if cfg.database_url.is_some() { "postgres" } else { "sqlite" },
            redis = cfg.redis_url.is_some(), revoked = revocations.len(), "auth opened");
        Ok(Auth {
            inner: Arc::new(Inner {
                cfg,
                store,
                keys,
                revocations,
                passwords,
                throttle,
                verifier,
                metrics,
                mailer,
                announcer,
                _follower: follower,
                _webhook_reload: webhook_reload,
                jobs,
                pool: std::sync::Mutex::new(Some(pool)),
            }),
        })
    }

    /// The routes `POST /v1/auth/{register,login,refresh,logout}`, `GET`, `PATCH` and `DELETE
    /// /v1/auth/me`, `POST /v1/auth/me/password`, `POST /v1/auth/password/reset[/confirm]`, `GET`
    /// and `DELETE /v1/auth/sessions[/{sid}]`, `GET /v1/admin/users`, `PATCH` and `DELETE
    /// /v1/admin/users/{id}`, `GET /v1/admin/jobs`, `POST /v1/admin/jobs/{id}/retry`, `GET
    /// /v1/users/{username}` and `GET /.well-known/jwks.json`, with state applied. No fallback and no `/healthz`: those are the caller's (the hub's, or
    /// [`node::router`]'s). Not the internal routes (`/v1/internal/*`): only
    /// [`node::router`] serves those.
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

    /// A receiver of the id of every session revoked from now on (logout, refresh-token reuse,
    /// account deletion, and, with Redis, revocations announced by other nodes).
    /// See [`Revocations::subscribe`] for what to do on `Lagged`.
    pub fn subscribe_revocations(&self) -> broadcast::Receiver<String> {
        self.inner.revocations.subscribe()
    }

    /// Where this service's mails go: an [`mail::SmtpMailer`] to `cfg.mail.smtp_url`, or an
    /// [`mail::OutboxMailer`] writing `data_dir/outbox/{id}.eml`.
    pub fn mailer(&self) -> Arc<dyn mail::Mailer> {
        Arc::clone(&self.inner.mailer)
    }

    /// The mail configuration (sender, rate, timeout) this service was opened with.
    pub fn mail_config(&self) -> &mail::MailConfig {
        &self.inner.cfg.mail
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
