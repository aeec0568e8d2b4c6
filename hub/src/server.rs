//! Assembles a node from its configuration and serves it until shutdown.
//!
//! Configuration alone decides the topology: no `--database-url` means SQLite in the data dir;
//! no `--redis-url` means in-process fanout; no `--auth-url` means auth mounted in-process.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use switchboard_auth::remote::{RemoteDirectory, RemoteKeys};
use switchboard_auth::{Auth, AuthConfig, Revocations, Verifier};
use switchboard_protocol::close;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::task::TaskTracker;

use crate::broker::memory::MemoryBroker;
use crate::broker::redis::{RedisBroker, RedisConfig};
use crate::broker::Broker;
use crate::config::Config;
use crate::fanout::{Fanout, Registry};
use crate::metrics::{HubMetrics, Metered, StoreMetrics};
use crate::presence::memory::MemoryPresence;
use crate::presence::redis::RedisPresence;
use crate::presence::Presence;
use crate::service::{now_ms, RemoteUsers, Service, SubLimits, UserDirectory};
use crate::state::AppState;
use crate::store::events::Webhooks;
use crate::store::postgres::{PgConfig, PgStore};
use crate::store::sqlite::SqliteStore;
use crate::store::{CommitSender, Store};
use crate::webhooks;
use switchboard_jobs::{JobStore, SqliteJobs};
use switchboard_kit::metrics::Registry as MetricsRegistry;

/// How this node reaches auth.
struct AuthParts {
    verifier: Verifier,
    users: Arc<dyn UserDirectory>,
    router: Router,
    revocations: Revocations,
    /// The Redis revocation follower of a remote-auth node, stopped at shutdown.
    follower: Option<tokio::task::JoinHandle<()>>,
    /// The embedded auth service, whose job workers stop at shutdown.
    embedded: Option<Auth>,
}

/// The base of links to the page (password-reset mails): the first `--public-url`, else the
/// listen address (`localhost` for an unspecified one).
fn page_base(cfg: &Config, listen: std::net::SocketAddr) -> String {
    if let Some(first) = cfg.public_urls.first() {
        return first.base().to_owned();
    }
    if listen.ip().is_unspecified() {
        format!("http://localhost:{}", listen.port())
    } else {
        format!("http://{listen}")
    }
}

async fn open_auth(
    cfg: &Config,
    listen: std::net::SocketAddr,
    registry: &Arc<MetricsRegistry>,
    metrics: &HubMetrics,
) -> anyhow::Result<AuthParts> {
    let timeout = Duration::from_millis(cfg.db_timeout_ms);
    match &cfg.auth_url {
        None => {
            let mut auth_cfg = AuthConfig::new(&cfg.data_dir);
            auth_cfg.access_ttl = Duration::from_secs(cfg.access_ttl_secs);
            auth_cfg.database_url = cfg.database_url.clone();
            auth_cfg.redis_url = cfg.redis_url.clone();
            auth_cfg.redis_prefix = cfg.redis_prefix.clone();
            auth_cfg.hash_concurrency = cfg.hash_concurrency;
            auth_cfg.metrics = registry.clone();
            cfg.auth_limits.apply(&mut auth_cfg);
            cfg.auth_accounts.apply(&mut auth_cfg);
            cfg.auth_jobs.apply(&mut auth_cfg);
            // Running jobs get as long to finish at shutdown as connections do.
            auth_cfg.jobs.drain = Duration::from_millis(cfg.shutdown_grace_ms);
            cfg.mail.apply(&mut auth_cfg);
            cfg.auth_webhooks
                .apply(&cfg.webhook, &mut auth_cfg)
                .context("--webhooks-file")?;
            auth_cfg.public_url = Some(page_base(cfg, listen));
            // No trusted proxies: the hub's accept loop decides the client address
            // (`ClientIp`); a header never does.
            let auth = Auth::open(auth_cfg)
                .await
                .context("opening the auth service")?;
            Ok(AuthParts {
                verifier: auth.verifier(),
                users: Arc::new(auth.clone()),
                router: auth.router(),
                revocations: auth.revocations(),
                follower: None,
                embedded: Some(auth),
            })
        }
        Some(url) => {
            if cfg.auth_webhooks.webhooks_file.is_some() {
                tracing::warn!(
                    "--webhooks-file is not used with --auth-url: the auth node holds the endpoints (give it the file)"
                );
            }
            if let Some(token) = &cfg.service_token {
                anyhow::ensure!(
                    token.0.len() >= switchboard_auth::webhooks::MIN_SERVICE_TOKEN_BYTES,
                    "--service-token must be at least {} bytes (e.g. `openssl rand -hex 32`)",
                    switchboard_auth::webhooks::MIN_SERVICE_TOKEN_BYTES
                );
            }
            if cfg.mail.smtp_url.is_some() {
                tracing::warn!(
                    "--smtp-url is not used with --auth-url: the auth node sends the mails (give it the mail flags)"
                );
            }
            let revocations = Revocations::new();
            let follower = match &cfg.redis_url {
                Some(redis_url) => Some(switchboard_auth::redis_feed::follow(
                    redis_url,
                    &cfg.redis_prefix,
                    revocations.clone(),
                )),
                None => {
                    tracing::warn!(
                        "--auth-url without --redis-url: logouts cannot reach this node"
                    );
                    None
                }
            };
            let keys = Arc::new(RemoteKeys::new(url));
            let issuer = switchboard_auth::config::DEFAULT_ISSUER;
            Ok(AuthParts {
                verifier: Verifier::new(keys, revocations.clone(), issuer, issuer)
                    .with_failures(metrics.token_failures()),
                users: Arc::new(match &cfg.service_token {
                    Some(token) => {
                        RemoteUsers::new(RemoteDirectory::new(url)).with_service_token(&token.0)
                    }
                    None => RemoteUsers::new(RemoteDirectory::new(url)),
                }),
                router: crate::http::proxy::router(url, timeout),
                revocations,
                follower,
                embedded: None,
            })
        }
    }
}

/// The configured store (which sends what it commits through `commits`, its batches and
/// failures counted in `metrics`), the webhook events it causes, and the job queue in it.
struct Opened {
    store: Arc<dyn Store>,
    webhooks: Webhooks,
    jobs: Arc<dyn JobStore>,
}

/// Opens the configured store (see [`Opened`]).
async fn open_store(
    cfg: &Config,
    commits: CommitSender,
    metrics: &StoreMetrics,
) -> anyhow::Result<Opened> {
    let (store, webhooks, jobs): (Arc<dyn Store>, Webhooks, Arc<dyn JobStore>) =
        match &cfg.database_url {
            Some(url) => {
                let pg = PgConfig {
                    pool_size: cfg.db_pool_size,
                    writers: cfg.pg_writers,
                    batch_max_size: cfg.batch_max_size,
                    batch_max_age: Duration::from_millis(cfg.batch_max_age_ms),
                    timeout: Duration::from_millis(cfg.db_timeout_ms),
                };
                let store = PgStore::connect(url, pg, commits)
                    .await
                    .context("connecting to PostgreSQL")?;
                store.set_metrics(metrics.clone());
                let (webhooks, jobs) = (store.webhooks().clone(), Arc::new(store.job_store()));
                (Arc::new(store), webhooks, jobs)
            }
            None => {
                let path = cfg.data_dir.join("hub.db");
                // Created 0600 first, so SQLite's -wal and -shm (which copy its mode) are too.
                switchboard_auth::datadir::secure_file(&path)
                    .with_context(|| format!("creating {}", path.display()))?;
                let store = SqliteStore::open(&path, now_ms(), commits)
                    .await
                    .context("opening the hub store")?;
                store.set_metrics(metrics.clone());
                let jobs = SqliteJobs::open(&path)
                    .await
                    .context("opening the hub's job queue")?;
                let webhooks = store.webhooks().clone();
                (Arc::new(store), webhooks, Arc::new(jobs))
            }
        };
    Ok(Opened {
        store: Metered::wrap(store, metrics.clone()),
        webhooks,
        jobs,
    })
}

/// Serves the hub on `listener` until `shutdown` resolves. Then it drains: `/readyz` answers
/// 503 `draining` while the node keeps serving for `--drain-delay-ms`, so a load balancer
/// stops sending it clients; then it stops accepting, closes every WebSocket with 1012 (node
/// restarting), waits up to `--shutdown-grace-ms` for them, and returns with all data stored.
///
/// Metrics are served on `--metrics-listen` (see [`run_with_metrics`]).
///
/// # Errors
/// Fails if the data directory, the databases, Redis or the keys cannot be opened, or the
/// metrics address cannot be bound.
pub async fn run(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = bind_metrics(&cfg).await?;
    serve(listener, metrics, cfg, shutdown, std::future::pending()).await
}

/// [`run`], where `hurry` ends the drain delay early (the binary passes a second signal).
/// `hurry` is first polled once `shutdown` has resolved, so a lazy signal future created before
/// (`switchboard_kit::shutdown::signal()`) waits for a signal after the first.
///
/// # Errors
/// As [`run`].
pub async fn run_until(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hurry: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let metrics = bind_metrics(&cfg).await?;
    serve(listener, metrics, cfg, shutdown, hurry).await
}

/// [`run`] with the metrics listener bound by the caller (`--metrics-listen` is ignored;
/// `None`: no metrics, every handle a no-op), so tests can pass `127.0.0.1:0`.
///
/// # Errors
/// As [`run`].
pub async fn run_with_metrics(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve(
        listener,
        metrics_listener,
        cfg,
        shutdown,
        std::future::pending(),
    )
    .await
}

/// Binds `--metrics-listen` (`None` when `off`).
async fn bind_metrics(cfg: &Config) -> anyhow::Result<Option<TcpListener>> {
    let listen = cfg.metrics_listen;
    listen
        .bind()
        .await
        .with_context(|| format!("binding the metrics listener {listen}"))
}

/// The body of [`run`], [`run_until`] and [`run_with_metrics`].
async fn serve(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    hurry: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // Private: 0700, every file in it 0600, looser ones tightened with a warning.
    switchboard_auth::datadir::secure_dir(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    // Decided once, so that everything reading the config (logs' spans) sees the same id.
    let mut cfg = cfg;
    let node = cfg
        .node_id
        .get_or_insert_with(|| format!("hub-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]))
        .clone();
    let metrics_registry = MetricsRegistry::for_node(metrics_listener.as_ref(), "switchboard-hub");
    let metrics = HubMetrics::new(&metrics_registry);
    let auth = open_auth(&cfg, listener.local_addr()?, &metrics_registry, &metrics).await?;
    // What the store commits reaches the broker through this channel and the publisher below
    // (started once the broker exists); the store runs no publishing code itself.
    let (commits, committed) = tokio::sync::mpsc::channel(crate::fanout::COMMIT_QUEUE);
    let Opened {
        store,
        webhooks: store_webhooks,
        jobs,
    } = open_store(&cfg, commits, metrics.store()).await?;
    let source = match (&auth.embedded, &cfg.auth_url, &cfg.service_token) {
        (Some(auth), _, _) => webhooks::Source::Embedded(auth.clone()),
        (None, Some(url), Some(token)) => {
            webhooks::Source::Remote(switchboard_auth::remote::RemoteWebhooks::new(url, &token.0))
        }
        (None, _, _) => {
            tracing::warn!("--auth-url without --service-token: this hub cannot read the webhook endpoints, so its events (messages, members, rooms) are not delivered");
            webhooks::Source::None
        }
    };
    let hub_webhooks = webhooks::HubWebhooks::start(
        source,
        jobs,
        webhooks::pool_config(
            &cfg.auth_jobs,
            &node,
            Duration::from_millis(cfg.shutdown_grace_ms),
        ),
        cfg.webhook.delivery_config(),
        &metrics_registry,
    );
    store_webhooks.set(hub_webhooks.registry.clone(), hub_webhooks.nudger());
    let media = crate::media::Media::open(&cfg, &cfg.data_dir.join("hub.db")).await?;
    let mut ready_redis = None;

    let registry = Arc::new(
        Registry::new()
            .with_metrics(metrics.clone())
            .with_queue_bytes(cfg.outbound_queue_bytes)
            .with_hot_window(cfg.hot_window)
            .with_fragment_limits(
                Duration::from_millis(cfg.fragment_timeout_ms),
                cfg.max_reassembly_bytes,
            ),
    );
    // Commands from other nodes (Redis) reach the fanout through `inbound`.
    let (inbound_tx, inbound_rx) = tokio::sync::mpsc::unbounded_channel();
    let (broker, presence): (Arc<dyn Broker>, Arc<dyn Presence>) = match &cfg.redis_url {
        Some(url) => {
            let rc = RedisConfig {
                url: url.clone(),
                prefix: cfg.redis_prefix.clone(),
                node: node.clone(),
                timeout: Duration::from_millis(cfg.db_timeout_ms),
                metrics: metrics.clone(),
            };
            let broker = RedisBroker::start(rc, inbound_tx)
                .await
                .context("connecting to Redis")?;
            let client = ::redis::Client::open(url.as_str()).context("redis url")?;
            let conn = ::redis::aio::ConnectionManager::new(client)
                .await
                .context("connecting to Redis")?;
            ready_redis = Some(conn.clone());
            (
                Arc::new(broker),
                RedisPresence::start(
                    conn,
                    &cfg.redis_prefix,
                    &node,
                    crate::presence::redis::ENTRY_TTL,
                ),
            )
        }
        None => (Arc::new(MemoryBroker), Arc::new(MemoryPresence::default())),
    };
    let readiness = Arc::new(crate::http::health::readiness(
        crate::http::health::Dependencies {
            store: store.clone(),
            redis: ready_redis,
            auth_url: cfg.auth_url.clone(),
        },
    ));
    let fanout = Fanout::start(registry.clone(), broker, store.clone(), inbound_rx);
    fanout.set_media(media.index.clone());
    // Ends by itself once the store (the channel's sender) is dropped with the node.
    drop(fanout.spawn_commits(committed));
    // Node-wide commands (the server API's disconnects) reach this node from now on.
    fanout.follow_control().await;
    let service = Service::new(store, fanout, auth.users.clone(), presence)
        .with_media(media.index.clone())
        .with_frame_limits(cfg.rate_per_sec, cfg.rate_burst)
        .with_user_limits(cfg.user_rate_per_sec, cfg.user_rate_burst)
        .with_server_limits(cfg.server_api_rate_per_sec, cfg.server_api_rate_burst)
        .with_room_quota(cfg.rooms_per_hour)
        .with_sub_limits(SubLimits {
            max_subscriptions: cfg.max_subscriptions,
            max_catchup_messages: cfg.max_catchup_messages,
        });
    let origins = crate::ws::origin::OriginPolicy::new(
        &cfg.allowed_origins,
        &cfg.public_urls,
        listener.local_addr()?,
    );
    let slots = crate::ws::slots::Slots::new(cfg.anonymous_cap(), cfg.max_connections_per_ip);
    let app = AppState {
        origins: Arc::new(origins),
        slots: Arc::new(slots),
        cfg: Arc::new(cfg),
        service: Arc::new(service),
        registry: registry.clone(),
        verifier: auth.verifier.clone(),
        conns: TaskTracker::new(),
        jobs: hub_webhooks.jobs.clone(),
        job_nudge: hub_webhooks.nudger(),
        media,
    };

    // Revoked sessions lose their sockets at once.
    let mut revoked = auth.revocations.subscribe();
    let revocations = auth.revocations.clone();
    let reg = registry.clone();
    let revocation_task = tokio::spawn(async move {
        loop {
            match revoked.recv().await {
                Ok(sid) => {
                    let n = reg.kill_session(&sid, close::POLICY);
                    tracing::info!(session = %sid, closed = n, "session revoked");
                }
                Err(RecvError::Lagged(missed)) => {
                    // Some announcements were lost: re-check every connection instead.
                    let n =
                        reg.kill_sessions_where(|sid| revocations.is_revoked(sid), close::POLICY);
                    tracing::warn!(
                        missed,
                        closed = n,
                        "revocation feed lagged; re-checked all sessions"
                    );
                }
                Err(RecvError::Closed) => return,
            }
        }
    });

    // Subscriptions ended by an eviction (a user left a private room) stop counting towards
    // presence at once (see `registry::Evicted`).
    let (evicted_tx, mut evicted_rx) = tokio::sync::mpsc::unbounded_channel();
    registry.set_evictions(evicted_tx);
    let eviction_task = {
        let service = app.service.clone();
        tokio::spawn(async move {
            while let Some(ev) = evicted_rx.recv().await {
                service.presence_evicted(&ev).await;
            }
        })
    };

    // Retention: every node sweeps (the deletes are idempotent).
    let retention = (app.cfg.retention_secs > 0).then(|| {
        let (service, age) = (
            app.service.clone(),
            Duration::from_secs(app.cfg.retention_secs),
        );
        let every = Duration::from_millis(app.cfg.retention_sweep_ms.max(1));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                match service.purge_older_than(age).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(deleted = n, "retention"),
                    Err(e) => tracing::warn!(error = %e, "retention sweep failed"),
                }
            }
        })
    });
    // Media garbage collection: every node sweeps (the deletes are idempotent).
    let media_gc = (app.cfg.media.media_gc_interval_secs > 0).then(|| {
        let media = app.media.clone();
        let every = Duration::from_secs(app.cfg.media.media_gc_interval_secs);
        let grace = Duration::from_secs(app.cfg.media.media_gc_grace_secs);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match crate::media::gc::sweep(&*media.index, &**media.store(), now_ms(), grace)
                    .await
                {
                    Ok(s) if s == crate::media::gc::Swept::default() => {}
                    Ok(s) => tracing::info!(
                        attachments = s.attachments,
                        blobs = s.blobs,
                        "media garbage collected"
                    ),
                    Err(e) => tracing::warn!(error = %e, "media sweep failed"),
                }
            }
        })
    });
    // One heartbeat for the node instead of a timer per connection (see `Registry::heartbeat`).
    let heartbeat_task = {
        let (reg, every) = (
            registry.clone(),
            Duration::from_millis(app.cfg.heartbeat_ms.max(1)),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                reg.heartbeat().notify_waiters();
            }
        })
    };
    // Rate limits forget refilled keys off the request path (see `ratelimit`).
    let limits_task = {
        let service = app.service.clone();
        crate::ratelimit::spawn_sweeper(move || service.sweep_limits())
    };
    crate::metrics::watch_registry(&metrics_registry, &registry);
    // Its own listener, never the public router (see `switchboard_kit::metrics`); it stops
    // when `run` returns.
    let metrics_server =
        metrics_listener.map(|l| switchboard_kit::metrics::spawn(l, metrics_registry.clone()));
    let router =
        crate::http::router(app.clone(), auth.router).layer(axum::Extension(readiness.clone()));
    let router = switchboard_kit::http::trace::layer(router, &node);
    let addr = listener.local_addr()?;
    tracing::info!(%node, "switchboard hub serving http://{addr} (WebSocket ws://{addr}/v1/ws)");
    let reg = registry.clone();
    let conns = app.conns.clone();
    let grace = Duration::from_millis(app.cfg.shutdown_grace_ms);
    let (drain_ms, drain) = (
        app.cfg.drain_delay_ms,
        Duration::from_millis(app.cfg.drain_delay_ms),
    );
    let opts = crate::listener::Options::from_config(&app.cfg);
    crate::listener::serve(listener, router, opts, async move {
        shutdown.await;
        readiness.drain();
        if !drain.is_zero() {
            tracing::info!(
                delay_ms = drain_ms,
                "draining: /readyz answers 503; connections close with 1012 after the delay"
            );
            tokio::select! {
                () = tokio::time::sleep(drain) => {}
                () = hurry => tracing::info!("second signal: the drain ends early"),
            }
        }
        tracing::info!("shutting down: closing connections with 1012");
        reg.kill_all(close::RESTARTING);
    })
    .await;
    conns.close();
    if tokio::time::timeout(grace, conns.wait()).await.is_err() {
        tracing::warn!(
            open = registry.conn_count(),
            "connections still open after the grace period"
        );
    }
    revocation_task.abort();
    eviction_task.abort();
    heartbeat_task.abort();
    limits_task.abort();
    if let Some(task) = retention {
        task.abort();
    }
    if let Some(task) = media_gc {
        task.abort();
    }
    if let Some(follower) = &auth.follower {
        follower.abort();
    }
    hub_webhooks.shutdown().await;
    if let Some(embedded) = &auth.embedded {
        embedded.shutdown_jobs().await;
    }
    if let Some(server) = metrics_server {
        server.stop().await;
    }
    Ok(())
}
