//! The hub's webhooks: its events (messages, members, rooms) are delivery jobs in the hub's
//! own job queue (tables `jobs`/`job_lanes` in its store: `hub.db`, or schema `public`),
//! inserted by the store in the transaction that causes them (see `store::events`). Every hub
//! node runs a [`Pool`] of workers that deliver them with the shared
//! [`WebhookHandler`](switchboard_webhooks::deliver::WebhookHandler).
//!
//! The endpoints live in the auth store (the admin API and `--webhooks-file` are the auth
//! node's). A hub reads them from the in-process auth service (embedded: the same live
//! [`Registry`]), or from the auth node's `/v1/internal/webhooks` with the service token,
//! every [`REFRESH`] (scaled out). So an endpoint added, changed or disabled takes effect on
//! every hub within that period; events committed before a hub learnt of it are not sent to
//! it.

use std::sync::Arc;
use std::time::Duration;

use switchboard_jobs::metrics::JobMetrics;
use switchboard_jobs::{JobStore, Pool, PoolConfig};
use switchboard_webhooks::deliver::{DeliveryConfig, WebhookHandler};
use switchboard_webhooks::metrics::WebhookMetrics;
use switchboard_webhooks::{Disabler, Registry};

/// How often a scaled-out hub refreshes the endpoints from the auth node.
pub const REFRESH: Duration = Duration::from_secs(2);

/// Where a hub's endpoints come from.
pub(crate) enum Source {
    /// The in-process auth service: its live registry, and it disables endpoints itself.
    Embedded(switchboard_auth::Auth),
    /// The auth node, over HTTP with the service token.
    Remote(switchboard_auth::remote::RemoteWebhooks),
    /// Nowhere (a hub with `--auth-url` but no `--service-token`): the hub's events are not
    /// delivered; said at start.
    None,
}

/// The hub's pool: the job flags' workers, lease, timeout, poll and retention (the same flags
/// as the embedded auth's queue), `node` as the workers' name, `drain` at shutdown.
pub(crate) fn pool_config(
    flags: &switchboard_auth::jobs::JobFlags,
    node: &str,
    drain: Duration,
) -> PoolConfig {
    PoolConfig {
        workers: flags.job_workers,
        lease: Duration::from_millis(flags.job_lease_ms),
        timeout: Duration::from_millis(flags.job_timeout_ms),
        poll: Duration::from_millis(flags.job_poll_ms),
        retention: Duration::from_secs(flags.job_retention_hours.saturating_mul(3600)),
        node: node.to_owned(),
        drain,
        ..PoolConfig::default()
    }
}

/// A hub node's deliveries: the registry its store reads, the workers, and the refresh task.
pub(crate) struct HubWebhooks {
    /// The endpoints as this node knows them.
    pub registry: Registry,
    /// The hub's job queue (for the admin routes).
    pub jobs: Arc<dyn JobStore>,
    pool: Option<Pool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HubWebhooks {
    /// Starts the workers on `jobs` with `cfg`, delivering with `delivery`, the endpoints from
    /// `source`. Then hand [`Self::registry`] and [`Self::nudger`] to the store (its
    /// `Webhooks::set`).
    pub(crate) fn start(
        source: Source,
        jobs: Arc<dyn JobStore>,
        cfg: PoolConfig,
        delivery: DeliveryConfig,
        metrics: &switchboard_kit::metrics::Registry,
    ) -> Self {
        let mut tasks = Vec::new();
        let (registry, disabler): (Registry, Arc<dyn Disabler>) = match source {
            Source::Embedded(auth) => (auth.webhooks(), Arc::new(auth)),
            Source::Remote(remote) => {
                let registry = Registry::new();
                let remote = Arc::new(remote);
                tasks.push(tokio::spawn(refresh(remote.clone(), registry.clone())));
                (registry, remote)
            }
            Source::None => (Registry::new(), Arc::new(NoDisabler)),
        };
        let handler = WebhookHandler::new(registry.clone(), disabler, delivery)
            .with_metrics(WebhookMetrics::new(metrics));
        let pool = Pool::start(
            jobs.clone(),
            vec![Arc::new(handler)],
            cfg,
            JobMetrics::for_queue(metrics, "hub"),
        );
        Self {
            registry,
            jobs,
            pool: Some(pool),
            tasks,
        }
    }

    /// What wakes a worker at once: raised by the store after each commit that inserted
    /// deliveries.
    pub(crate) fn nudger(&self) -> Arc<tokio::sync::Notify> {
        self.pool
            .as_ref()
            .map_or_else(|| Arc::new(tokio::sync::Notify::new()), Pool::nudger)
    }

    /// Stops the workers (a running delivery gets the pool's drain bound, else it runs again
    /// elsewhere after its lease) and the refresh.
    pub(crate) async fn shutdown(mut self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(pool) = self.pool.take() {
            pool.shutdown().await;
        }
    }
}

/// Keeps `registry` equal to the auth node's endpoints, every [`REFRESH`]; a failed fetch keeps
/// the last list (logged).
async fn refresh(remote: Arc<switchboard_auth::remote::RemoteWebhooks>, registry: Registry) {
    let mut tick = tokio::time::interval(REFRESH);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        match remote.endpoints().await {
            Ok(endpoints) => {
                if failing {
                    tracing::info!("webhook endpoints fetched from the auth node again");
                }
                failing = false;
                registry.replace(endpoints);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "cannot fetch the webhook endpoints from the auth node; keeping the last list");
                }
                failing = true;
            }
        }
    }
}

/// The disabler of a hub that knows no endpoints (it never delivers, so it is never called).
struct NoDisabler;

#[async_trait::async_trait]
impl Disabler for NoDisabler {
    async fn disable(&self, endpoint: &str, _reason: &str) -> Result<(), String> {
        Err(format!("no auth node to disable {endpoint} on"))
    }
}

#[cfg(test)]
mod tests {
    /// The hub's copies of the queue's tables are switchboard-jobs' (a migration is fixed
    /// text; the crate's schema may move on, and a new migration must follow it).
    #[test]
    fn the_job_tables_are_the_job_crates() {
        let sqlite = include_str!("../../migrations/hub/sqlite/0004_jobs.sql");
        assert!(sqlite.ends_with(switchboard_jobs::SQLITE_SCHEMA));
        let postgres = include_str!("../../migrations/hub/postgres/0005_jobs.sql");
        assert!(postgres.ends_with(&switchboard_jobs::postgres_schema("public")));
    }
}
