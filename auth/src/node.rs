//! The `switchboard-auth` binary's configuration ([`NodeConfig`]) and server ([`run`]): the
//! auth routes on their own, for deployments where hub nodes reach auth with `--auth-url`.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::http::StatusCode;
use axum::{Json, Router};
use switchboard_kit::http::ready::Readiness;
use switchboard_protocol::error::ErrorBody;
use switchboard_protocol::ErrorCode;
use tokio::net::TcpListener;

use ipnet::IpNet;

use crate::config::{
    parse_ip_net, redact_url, AccountPolicy, RateLimit, DEFAULT_HASH_CONCURRENCY,
    DEFAULT_HASH_QUEUE,
};
use crate::{Auth, AuthConfig};
use switchboard_kit::metrics::{MetricsListen, Registry};

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
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,

    /// Directory holding the signing key (signing-key.pem, created on first start) and,
    /// without --database-url, the SQLite database. Every auth node of a cluster needs the same
    /// key file.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_DATA_DIR",
        default_value = "./switchboard-auth-data",
        global = true
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

    /// The hashing limits, shared with the hub's flags.
    #[command(flatten)]
    pub limits: AuthLimitFlags,

    /// The account policies, shared with the hub's flags.
    #[command(flatten)]
    pub accounts: AccountFlags,

    /// The job workers (the welcome mail), shared with the hub's flags.
    #[command(flatten)]
    pub jobs: crate::jobs::JobFlags,
    /// The mail transport and sender, shared with the hub's flags.
    #[command(flatten)]
    pub mail: crate::mail::MailFlags,

    /// The webhook endpoints' configuration (--webhooks-file, ...), shared with the hub's flags.
    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookConfigFlags,
    /// The webhook delivery flags (--webhook-timeout-ms, --webhook-allow-link-local), shared
    /// with the hub's flags.
    #[command(flatten)]
    pub webhook_delivery: switchboard_webhooks::WebhookFlags,

    /// The token hubs present (Authorization: Bearer) on /v1/internal/* to read the webhook
    /// endpoints with their secrets, disable one, and look users up for the server API: at
    /// least 16 bytes, the same on every hub (their --service-token). Default: none, and every
    /// internal request is refused with 401.
    #[arg(long, env = "SWITCHBOARD_SERVICE_TOKEN", hide_env_values = true,
          value_parser = crate::webhooks::ServiceToken::parse)]
    pub service_token: Option<crate::webhooks::ServiceToken>,

    /// Where browsers reach the page (the hubs' public URL, e.g. https://chat.example.com): the
    /// base of the links in password-reset mails (`{URL}/#reset=<token>`). Required for reset
    /// mails: without it a reset request is answered 202 but no mail is sent (logged).
    #[arg(long, env = "SWITCHBOARD_PUBLIC_URL", value_parser = crate::config::parse_public_url)]
    pub public_url: Option<String>,

    /// Peers whose X-Forwarded-For header is believed: the hubs in front of this node, as IP
    /// addresses or CIDRs, comma-separated (e.g. 10.0.0.0/8). A request from any other peer is
    /// limited by the peer's own address. Default: none (the header is ignored).
    #[arg(
        long,
        env = "SWITCHBOARD_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_parser = parse_ip_net
    )]
    pub trusted_proxies: Vec<IpNet>,

    /// Log output: `text` (human-readable lines, coloured only on a terminal) or `json` (one
    /// object per line). The level filter is `RUST_LOG` (default `info`).
    #[arg(long, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value_t)]
    pub log_format: switchboard_kit::logging::LogFormat,

    /// On SIGTERM, how long the node keeps serving while `/readyz` answers 503 `draining`,
    /// before it stops accepting, in milliseconds: long enough for the load balancer (or the
    /// hubs' health checks) to stop sending it requests first. A second signal ends the wait
    /// at once. 0: stop at once.
    #[arg(long, env = "SWITCHBOARD_DRAIN_DELAY_MS", default_value_t = DEFAULT_DRAIN_DELAY_MS)]
    pub drain_delay_ms: u64,

    /// Without a command: serve.
    #[command(subcommand)]
    pub command: Option<NodeCommand>,

    /// Address of the metrics listener (`GET /metrics`, Prometheus text format), or `off`. Not
    /// the public address: metrics are for the operator's network only.
    #[arg(
        long,
        env = "SWITCHBOARD_AUTH_METRICS_LISTEN",
        default_value = "127.0.0.1:9465",
        value_parser = MetricsListen::parse
    )]
    pub metrics_listen: MetricsListen,
}

/// Commands of `switchboard-auth` besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum NodeCommand {
    /// Makes and unmakes admins, on the store of --data-dir or --database-url (the first admin
    /// is made only here). See docs/OPERATIONS.md.
    #[command(subcommand)]
    Admin(crate::admin::AdminCommand),
}

/// Default `--drain-delay-ms`, the hub's: HAProxy's checks (`inter 1s fall 2`,
/// deploy/haproxy.cfg) mark a node down about 2 s after it starts failing them; 5 s leaves room
/// for a slow check.
pub const DEFAULT_DRAIN_DELAY_MS: u64 = 5_000;

/// The auth node's name in the spans of its requests (`node`), and the prefix of their ids.
const NODE_NAME: &str = "auth";

/// The login, registration and hashing-queue flags, the same on `switchboard-auth` and on the
/// hub (for its embedded auth).
#[derive(Debug, Clone, clap::Args)]
pub struct AuthLimitFlags {
    /// Most logins and registrations waiting for a hashing slot; further ones get 503
    /// `unavailable` with Retry-After at once. Default 32.
    #[arg(long, env = "SWITCHBOARD_HASH_QUEUE", default_value_t = DEFAULT_HASH_QUEUE)]
    pub hash_queue: usize,

    /// Failed logins allowed per account (username) per second, sustained; beyond it logins of
    /// that account get 429 `rate_limited` with Retry-After. Default 0.17 (one per ~6 s).
    #[arg(long, env = "SWITCHBOARD_LOGIN_ACCOUNT_RATE_PER_SEC", default_value_t = crate::config::DEFAULT_LOGIN_ACCOUNT_LIMIT.per_sec)]
    pub login_account_rate_per_sec: f64,

    /// Failed logins allowed per account at once after a quiet spell. Default 3.
    #[arg(long, env = "SWITCHBOARD_LOGIN_ACCOUNT_BURST", default_value_t = crate::config::DEFAULT_LOGIN_ACCOUNT_LIMIT.burst)]
    pub login_account_burst: u32,

    /// Login attempts (failed or not) allowed per client address (IPv4, or IPv6 /64) per
    /// second, sustained; beyond it 429 `rate_limited` with Retry-After. Default 0.5.
    #[arg(long, env = "SWITCHBOARD_LOGIN_IP_RATE_PER_SEC", default_value_t = crate::config::DEFAULT_LOGIN_IP_LIMIT.per_sec)]
    pub login_ip_rate_per_sec: f64,

    /// Login attempts allowed per client address at once after a quiet spell. Default 10.
    #[arg(long, env = "SWITCHBOARD_LOGIN_IP_BURST", default_value_t = crate::config::DEFAULT_LOGIN_IP_LIMIT.burst)]
    pub login_ip_burst: u32,

    /// Registrations allowed per client address per second, sustained; beyond it 429
    /// `rate_limited` with Retry-After. Default 0.17 (one per ~6 s).
    #[arg(long, env = "SWITCHBOARD_REGISTER_IP_RATE_PER_SEC", default_value_t = crate::config::DEFAULT_REGISTER_IP_LIMIT.per_sec)]
    pub register_ip_rate_per_sec: f64,

    /// Registrations allowed per client address at once after a quiet spell. Default 3.
    #[arg(long, env = "SWITCHBOARD_REGISTER_IP_BURST", default_value_t = crate::config::DEFAULT_REGISTER_IP_LIMIT.burst)]
    pub register_ip_burst: u32,
}

/// The account policies, the same on `switchboard-auth` and on the hub (for its embedded auth).
#[derive(Debug, Clone, clap::Args)]
pub struct AccountFlags {
    /// A new login ends every other session of the user (their tokens stop working and their
    /// sockets close with 1008). Default off: a user may be logged in on many devices.
    #[arg(long, env = "SWITCHBOARD_SINGLE_SESSION")]
    pub single_session: bool,

    /// Deleting an account frees its username for anyone to register. Default off: the name
    /// stays reserved, so the deleted user's messages (which name them by username) cannot be
    /// taken for a newcomer's.
    #[arg(long, env = "SWITCHBOARD_FREE_DELETED_USERNAMES")]
    pub free_deleted_usernames: bool,
}

impl AccountFlags {
    /// Writes these policies into `cfg`.
    pub fn apply(&self, cfg: &mut AuthConfig) {
        cfg.accounts = AccountPolicy {
            single_session: self.single_session,
            free_deleted_usernames: self.free_deleted_usernames,
        };
    }
}

impl AuthLimitFlags {
    /// Writes these limits into `cfg`.
    pub fn apply(&self, cfg: &mut AuthConfig) {
        cfg.hash_queue = self.hash_queue;
        cfg.login_account_limit = RateLimit {
            per_sec: self.login_account_rate_per_sec,
            burst: self.login_account_burst,
        };
        cfg.login_ip_limit = RateLimit {
            per_sec: self.login_ip_rate_per_sec,
            burst: self.login_ip_burst,
        };
        cfg.register_ip_limit = RateLimit {
            per_sec: self.register_ip_rate_per_sec,
            burst: self.register_ip_burst,
        };
    }
}

impl NodeConfig {
    /// The [`AuthConfig`] these flags describe, but for the webhook configuration: its file is
    /// read by [`crate::webhooks::WebhookConfigFlags::apply`] (in [`open`]).
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
        self.limits.apply(&mut cfg);
        self.accounts.apply(&mut cfg);
        self.jobs.apply(&mut cfg);
        self.mail.apply(&mut cfg);
        cfg.trusted_proxies = self.trusted_proxies.clone();
        cfg.public_url = self.public_url.clone();
        cfg.service_token = self.service_token.as_ref().map(|t| t.0.clone());
        cfg
    }
}

/// The auth node's routes: [`Auth::router`]'s, `GET /healthz` (200 `ok` while the process
/// serves; it probes nothing), `GET /readyz` (`readiness`: 200 only while the store and Redis
/// answer, see [`readiness`]), `GET /v1/openapi.json` (its OpenAPI document), and JSON 404/405
/// answers for everything else.
pub fn router(auth: &Auth, readiness: Arc<Readiness>) -> Router {
    crate::http::node_router(auth.clone(), readiness)
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
/// resolves; then drains (see [`serve_with`]) for `cfg.drain_delay_ms`, stops accepting, lets
/// requests in flight finish, stops the job workers (`Auth::shutdown_jobs`: running jobs get a
/// bounded time to finish), and returns. Metrics are served on `cfg.metrics_listen`.
///
/// # Errors
/// Fails if the data directory, the database, Redis or the signing key cannot be opened, or
/// a listener fails.
pub async fn run(
    listener: TcpListener,
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = bind_metrics(cfg.metrics_listen).await?;
    run_with_metrics(listener, metrics, cfg, shutdown).await
}

/// The checks of the auth node's `/readyz`: `store` (its database answers a read: a lookup of
/// the empty username, which no account has) and, with `redis_url`, `redis` (the server
/// answers `PING` on a fresh connection, at most once per probe interval).
///
/// # Errors
/// If `redis_url` is not a Redis URL.
pub fn readiness(auth: &Auth, redis_url: Option<&str>) -> anyhow::Result<Readiness> {
    let store = auth.clone();
    let mut readiness = Readiness::new().check("store", move || {
        let store = store.clone();
        async move {
            store
                .user_by_username("")
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    });
    if let Some(url) = redis_url {
        let client = redis::Client::open(url).context("the Redis URL")?;
        readiness = readiness.check("redis", move || {
            let client = client.clone();
            async move {
                let mut conn = client
                    .get_multiplexed_async_connection()
                    .await
                    .map_err(|e| e.to_string())?;
                redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        });
    }
    Ok(readiness)
}

/// [`run`] with the metrics listener bound by the caller (`None`: no metrics;
/// `cfg.metrics_listen` is ignored), so tests can pass `127.0.0.1:0`.
///
/// # Errors
/// As [`run`].
pub async fn run_with_metrics(
    listener: TcpListener,
    metrics: Option<TcpListener>,
    cfg: NodeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let registry = Registry::for_node(metrics.as_ref(), "switchboard-auth");
    let auth = open(&cfg, &registry).await?;
    let metrics = metrics.map(|l| switchboard_kit::metrics::spawn(l, registry));
    let readiness = readiness(&auth, cfg.redis_url.as_deref())?;
    let drain = Drain {
        delay: Duration::from_millis(cfg.drain_delay_ms),
        hurry: std::future::pending(),
    };
    let served = serve_with(listener, &auth, readiness, shutdown, drain).await;
    auth.shutdown_jobs().await;
    if let Some(server) = metrics {
        server.stop().await;
    }
    served
}

/// Binds `--metrics-listen` (`None` when off).
///
/// # Errors
/// If the address cannot be bound, naming it.
pub async fn bind_metrics(listen: MetricsListen) -> anyhow::Result<Option<TcpListener>> {
    listen
        .bind()
        .await
        .with_context(|| format!("binding the metrics listener {listen}"))
}

/// The first half of [`run`]: opens the auth service described by `cfg`, its metrics on
/// `metrics`.
///
/// # Errors
/// As [`Auth::open`], with the data dir, database and Redis named (passwords redacted).
pub async fn open(cfg: &NodeConfig, metrics: &Arc<Registry>) -> anyhow::Result<Auth> {
    let mut auth_cfg = cfg.auth_config();
    auth_cfg.metrics = metrics.clone();
    cfg.webhooks.apply(&cfg.webhook_delivery, &mut auth_cfg)?;
    Auth::open(auth_cfg).await.with_context(|| {
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

/// What [`serve_with`] does between the shutdown signal and closing the listener.
pub struct Drain<H> {
    /// How long `/readyz` answers 503 `draining` while everything is still served.
    pub delay: Duration,
    /// Ends the delay early (the binary passes a second signal). First polled once the
    /// shutdown future has resolved, so a lazy signal future waits for a signal after the
    /// first.
    pub hurry: H,
}

impl Drain<std::future::Pending<()>> {
    /// No delay: stop accepting as soon as the shutdown future resolves.
    pub fn none() -> Self {
        Self {
            delay: Duration::ZERO,
            hurry: std::future::pending(),
        }
    }
}

/// [`serve_with`] with only the store checked by `/readyz`, and no drain delay.
///
/// # Errors
/// If the listener fails.
pub async fn serve(
    listener: TcpListener,
    auth: &Auth,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(
        listener,
        auth,
        readiness(auth, None)?,
        shutdown,
        Drain::none(),
    )
    .await
}

/// The second half of [`run`]: serves [`router`] on `listener` until `shutdown` resolves.
/// From then on `/readyz` answers 503 `draining`, and the node goes on serving every route for
/// `drain.delay` (or until `drain.hurry` resolves), so the hubs and load balancers that probe
/// it stop sending it requests before it stops accepting; then requests in flight finish.
///
/// # Errors
/// If the listener fails.
pub async fn serve_with(
    listener: TcpListener,
    auth: &Auth,
    readiness: Readiness,
    shutdown: impl Future<Output = ()> + Send + 'static,
    drain: Drain<impl Future<Output = ()> + Send + 'static>,
) -> anyhow::Result<()> {
    let addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    tracing::info!(%addr, "switchboard-auth serving");
    // With the peer's address, for the per-address limits (see `--trusted-proxies`).
    let readiness = Arc::new(readiness);
    let app = switchboard_kit::http::trace::layer(router(auth, readiness.clone()), NODE_NAME)
        .into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            readiness.drain();
            if !drain.delay.is_zero() {
                tracing::info!(
                    delay_ms = drain.delay.as_millis(),
                    "draining: /readyz answers 503; the listener closes after the delay"
                );
                tokio::select! {
                    () = tokio::time::sleep(drain.delay) => {}
                    () = drain.hurry => tracing::info!("second signal: the drain ends early"),
                }
            }
        })
        .await
        .context("serving HTTP")?;
    tracing::info!("switchboard-auth stopped");
    Ok(())
}
