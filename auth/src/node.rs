//! The `switchboard-auth` binary's configuration ([`NodeConfig`]) and server ([`run`]): the
//! auth routes on their own, for deployments where hub nodes reach auth with `--auth-url`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::ErrorCode;
use tokio::net::TcpListener;

use crate::config::{redact_url, DEFAULT_HASH_CONCURRENCY};
use crate::{Auth, AuthConfig};

/// Flags of `switchboard-auth`. Every flag can also be set by the environment variable named
/// in its help; a flag beats its variable. A malformed value stops the binary with an error
/// naming it.
#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "switchboard-auth",
    version,
    about = "Switchboard auth node: accounts, sessions, tokens and JWKS for a cluster of hubs."
)]
pub struct NodeConfig {
    /// Address to listen on (HTTP).
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_LISTEN",
        default_value = "127.0.0.1:8090"
    )]
    pub listen: SocketAddr,

    /// PostgreSQL URL for users and sessions (tables in schema `auth`), e.g.
    /// postgres://postgres@127.0.0.1/sb. Without it: SQLite in --data-dir (one node only).
    #[arg(long, env = "DATABASE_URL")]
    pub database_url: Option<String>,

    /// Directory holding the signing key (signing-key.pem, created on first start) and,
    /// without --database-url, the SQLite database. Every auth node of a cluster needs the same
    /// key file.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_DATA_DIR",
        default_value = "./switchboard-auth-data"
    )]
    pub data_dir: PathBuf,

    /// Redis URL, e.g. redis://127.0.0.1:6379. Revocations (logout, refresh-token reuse,
    /// account deletion) are recorded and announced there, so hub nodes close the sessions'
    /// sockets. Without it, only this process knows about revocations.
    #[arg(long, env = "REDIS_URL")]
    pub redis_url: Option<String>,

    /// Prefix of every Redis key and channel; must match the hubs' --redis-prefix.
    #[arg(long, env = "SWITCHBOARD_REDIS_PREFIX", default_value = crate::config::DEFAULT_REDIS_PREFIX)]
    pub redis_prefix: String,

    /// Lifetime of access tokens, in seconds.
    #[arg(long, env = "SWITCHBOARD_ACCESS_TTL_SECS", default_value_t = 900)]
    pub access_ttl_secs: u64,

    /// Lifetime of each refresh token from its issue, in seconds (default 30 days).
    #[arg(long, env = "SWITCHBOARD_REFRESH_TTL_SECS", default_value_t = 30 * 24 * 60 * 60)]
    pub refresh_ttl_secs: u64,

    /// `iss` claim of the tokens (hubs must expect the same).
    #[arg(long, env = "SWITCHBOARD_ISSUER", default_value = crate::config::DEFAULT_ISSUER)]
    pub issuer: String,

    /// `aud` claim of the tokens (hubs must expect the same).
    #[arg(long, env = "SWITCHBOARD_AUDIENCE", default_value = crate::config::DEFAULT_ISSUER)]
    pub audience: String,

    /// Most argon2id password hashes computed at once (each takes ~19 MiB and a core for tens
    /// of milliseconds); excess logins wait.
    #[arg(long, env = "SWITCHBOARD_HASH_CONCURRENCY", default_value_t = DEFAULT_HASH_CONCURRENCY)]
    pub hash_concurrency: usize,
}

impl NodeConfig {
    /// The [`AuthConfig`] these flags describe.
    pub fn auth_config(&self) -> AuthConfig {
        let mut cfg = AuthConfig::new(&self.data_dir);
        cfg.database_url = self.database_url.clone();
        cfg.redis_url = self.redis_url.clone();
        cfg.redis_prefix = self.redis_prefix.clone();
        cfg.access_ttl = Duration::from_secs(self.access_ttl_secs);
        cfg.refresh_ttl = Duration::from_secs(self.refresh_ttl_secs);
        cfg.issuer = self.issuer.clone();
        cfg.audience = self.audience.clone();
        cfg.hash_concurrency = self.hash_concurrency;
        cfg
    }
}

/// The auth node's routes: [`Auth::router`], `GET /healthz` (200 `ok` while the process
/// serves; it does not probe the database, whose failures show as 503 on the routes that need
/// it), and JSON 404/405 answers for everything else.
pub fn router(auth: &Auth) -> Router {
    auth.router()
        .route("/healthz", get(|| async { "ok" }))
        .fallback(|| async {
            let body = ErrorBody::new(ErrorCode::NotFound, "no such route");
            (StatusCode::NOT_FOUND, Json(body))
        })
        .method_not_allowed_fallback(|| async {
            let body = ErrorBody::new(ErrorCode::BadRequest, "method not allowed on this route");
            (StatusCode::METHOD_NOT_ALLOWED, Json(body))
        })
}

/// Opens the auth service described by `cfg` and serves it on `listener` (`cfg.listen` is
/// ignored: the caller bound the listener, so tests can pass `127.0.0.1:0`) until `shutdown`
/// resolves; then stops accepting, lets requests in flight finish, and returns.
///
/// # Errors
/// Fails if the data directory, the database, Redis or the signing key cannot be opened, or
/// the listener fails.
pub async fn run(
    listener: TcpListener,
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let auth = open(&cfg).await?;
    serve(listener, &auth, shutdown).await
}

/// The first half of [`run`]: opens the auth service described by `cfg`.
///
/// # Errors
/// As [`Auth::open`], with the data dir, database and Redis named (passwords redacted).
pub async fn open(cfg: &NodeConfig) -> anyhow::Result<Auth> {
    Auth::open(cfg.auth_config()).await.with_context(|| {
        format!(
            "opening the auth service (data dir {}, database {}, redis {})",
            cfg.data_dir.display(),
            cfg.database_url
                .as_deref()
                .map_or_else(|| "sqlite".to_owned(), redact_url),
            cfg.redis_url
                .as_deref()
                .map_or_else(|| "none".to_owned(), redact_url),
        )
    })
}

/// The second half of [`run`]: serves [`router`] on `listener` until `shutdown` resolves.
///
/// # Errors
/// If the listener fails.
pub async fn serve(
    listener: TcpListener,
    auth: &Auth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    tracing::info!(%addr, "switchboard-auth serving");
    axum::serve(listener, router(auth))
        .with_graceful_shutdown(shutdown)
        .await
        .context("serving HTTP")?;
    tracing::info!("switchboard-auth stopped");
    Ok(())
}
