//! Assembles a node from its configuration and serves it until shutdown.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_auth::{Auth, AuthConfig};
use switchboard_protocol::close;
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::task::TaskTracker;

use crate::broker::memory::MemoryBroker;
use crate::config::Config;
use crate::registry::Registry;
use crate::service::{now_ms, Service};
use crate::state::AppState;
use crate::store::sqlite::SqliteStore;

/// Serves the hub on `listener` until `shutdown` resolves. Then it stops accepting, closes every
/// WebSocket with 1012 (node restarting), waits up to `--shutdown-grace-ms` for them, and
/// returns with all data stored.
///
/// # Errors
/// Fails if the data directory, the databases or the keys cannot be opened.
pub async fn run(
    listener: TcpListener,
    cfg: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating data dir {}", cfg.data_dir.display()))?;
    let mut auth_cfg = AuthConfig::new(&cfg.data_dir);
    auth_cfg.access_ttl = Duration::from_secs(cfg.access_ttl_secs);
    let auth = Auth::open(auth_cfg)
        .await
        .context("opening the auth store")?;
    let store = SqliteStore::open(&cfg.data_dir.join("hub.db"), now_ms())
        .await
        .context("opening the hub store")?;

    let registry = Arc::new(Registry::new());
    let broker = Arc::new(MemoryBroker::new(registry.clone()));
    registry.set_broker(broker.clone());
    let service = Service::new(
        Arc::new(store),
        broker.clone(),
        Arc::new(auth.clone()),
        Arc::new(crate::presence::memory::MemoryPresence::default()),
    );
    let app = AppState {
        cfg: Arc::new(cfg),
        service: Arc::new(service),
        registry: registry.clone(),
        broker,
        verifier: auth.verifier(),
        conns: TaskTracker::new(),
    };

    // Revoked sessions lose their sockets at once.
    let mut revoked = auth.subscribe_revocations();
    let revocations = auth.revocations();
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

    let router = crate::http::router(app.clone(), auth.router());
    let addr = listener.local_addr()?;
    tracing::info!("switchboard hub serving http://{addr} (WebSocket ws://{addr}/v1/ws)");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let reg = registry.clone();
    let conns = app.conns.clone();
    let grace = Duration::from_millis(app.cfg.shutdown_grace_ms);
    let serve = axum::serve(listener, router).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: closing connections with 1012");
        reg.kill_all(close::RESTARTING);
        let _ = stop_tx.send(true);
    });
    serve.await.context("serving")?;
    drop(stop_rx);
    conns.close();
    if tokio::time::timeout(grace, conns.wait()).await.is_err() {
        tracing::warn!(
            open = registry.conn_count(),
            "connections still open after the grace period"
        );
    }
    revocation_task.abort();
    Ok(())
}
