//! Prometheus metrics of one node: a [`Registry`] that hands out metric handles, renders them in
//! the Prometheus text format, and is served on a listener of its own ([`serve`]).
//!
//! One registry per node, not the `metrics` crate's global recorder: several nodes in one
//! process (the test suites start many) keep their own values, and nothing is global. Handles
//! (`Counter`, `Gauge`, `Histogram`) are registered once, at start-up, with their labels; updating
//! one is an atomic operation on shared memory, with no lookup, no label formatting and no
//! allocation. A [`Registry::disabled`] registry (`--metrics-listen off`) hands out no-op handles.
//!
//! Values that already live elsewhere (a count of connections, of subscribed rooms) are read
//! when a scrape asks ([`Registry::on_scrape`]) instead of being kept up to date on every change.
//!
//! **Why a separate listener:** metrics tell an outsider how busy the node is, which rooms are
//! hot, how often logins fail; the public port serves the internet, the metrics port only the
//! operator's network (`127.0.0.1` by default). The public router has no `/metrics` route.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use metrics::{Key, KeyName, Label, Level, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use switchboard_protocol::ErrorCode;
use tokio::net::TcpListener;

pub use metrics::{Counter, Gauge, Histogram};

/// Upper bounds (seconds) of the buckets of every histogram whose name ends in `_seconds`:
/// from half a millisecond (a fanout to a few subscribers) to ten seconds (a stuck database).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the buckets of every histogram whose name ends in `_size` (counts, such as
/// messages per committed batch: the PostgreSQL writer's largest batch is 512 by default).
pub const SIZE_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How often histogram samples are folded into their buckets even when nobody scrapes, so
/// that they do not pile up in memory.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The `Content-Type` of the Prometheus text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where a node serves its metrics (`--metrics-listen`): an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsListen {
    /// No metrics listener; every handle is a no-op.
    Off,
    /// Serve `GET /metrics` on this address.
    On(SocketAddr),
}

impl MetricsListen {
    /// Parses a flag value: `off` (or `none`, or empty), or a socket address such as
    /// `127.0.0.1:9464`.
    ///
    /// # Errors
    /// A message naming the value, for clap.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "" | "off" | "none" => Ok(Self::Off),
            addr => addr.parse().map(Self::On).map_err(|_| {
                format!("{value:?} is neither `off` nor an address such as 127.0.0.1:9464")
            }),
        }
    }

    /// Binds the listener (`None` when off).
    ///
    /// # Errors
    /// If the address cannot be bound (in use, not local).
    pub async fn bind(self) -> std::io::Result<Option<TcpListener>> {
        match self {
            Self::Off => Ok(None),
            Self::On(addr) => TcpListener::bind(addr).await.map(Some),
        }
    }
}

impl std::fmt::Display for MetricsListen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Off => f.write_str("off"),
            Self::On(addr) => addr.fmt(f),
        }
    }
}

/// A callback run before each render (see [`Registry::on_scrape`]).
type Collector = Box<dyn Fn() + Send + Sync>;

/// A node's metrics; see the module documentation. Shared as `Arc<Registry>`.
pub struct Registry {
    /// `None` when disabled.
    live: Option<Live>,
    collectors: Mutex<Vec<Collector>>,
}

struct Live {
    recorder: metrics_exporter_prometheus::PrometheusRecorder,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("enabled", &self.live.is_some())
            .finish_non_exhaustive()
    }
}

/// Where handles are registered from, for the recorder's metadata (unused by Prometheus).
static METADATA: Metadata<'static> = Metadata::new("switchboard", Level::INFO, None);

impl Registry {
    /// A registry that records and renders: histograms named `*_seconds` get
    /// [`LATENCY_BUCKETS`], `*_size` get [`SIZE_BUCKETS`].
    pub fn new() -> Arc<Self> {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_size".into()), SIZE_BUCKETS))
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        Arc::new(Self {
            live: Some(Live { recorder, handle }),
            collectors: Mutex::new(Vec::new()),
        })
    }

    /// A registry whose handles do nothing and which renders nothing (`--metrics-listen off`).
    pub fn disabled() -> Arc<Self> {
        Arc::new(Self {
            live: None,
            collectors: Mutex::new(Vec::new()),
        })
    }

    /// Whether handles record.
    pub fn enabled(&self) -> bool {
        self.live.is_some()
    }

    /// The registry of a node that serves its metrics on `listener`: recording when there is
    /// one, [`disabled`](Self::disabled) otherwise. Registers
    /// `switchboard_build_info{binary, version, git_rev} 1` (the git revision when the build
    /// set `SWITCHBOARD_GIT_REV`, as the Dockerfile does, else `unknown`).
    pub fn for_node(listener: Option<&TcpListener>, binary: &'static str) -> Arc<Self> {
        let registry = match listener {
            Some(_) => Self::new(),
            None => Self::disabled(),
        };
        registry
            .gauge_owned(
                "switchboard_build_info",
                "Always 1; the labels say which build runs.",
                &[
                    ("binary", binary.to_owned()),
                    ("version", env!("CARGO_PKG_VERSION").to_owned()),
                    (
                        "git_rev",
                        option_env!("SWITCHBOARD_GIT_REV")
                            .unwrap_or("unknown")
                            .to_owned(),
                    ),
                ],
            )
            .set(1.0);
        registry
    }

    fn key(name: &'static str, labels: &[(&'static str, &'static str)]) -> Key {
        let labels: Vec<Label> = labels
            .iter()
            .map(|&(k, v)| Label::from_static_parts(k, v))
            .collect();
        Key::from_parts(name, labels)
    }

    /// The counter `name` with `labels`, described by `help`. Registering the same name and
    /// labels twice gives handles on the same value.
    pub fn counter(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Counter {
        let Some(live) = &self.live else {
            return Counter::noop();
        };
        live.recorder.describe_counter(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
        live.recorder
            .register_counter(&Self::key(name, labels), &METADATA)
    }

    /// The gauge `name` with `labels`, described by `help`.
    pub fn gauge(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Gauge {
        let Some(live) = &self.live else {
            return Gauge::noop();
        };
        live.recorder.describe_gauge(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
        live.recorder
            .register_gauge(&Self::key(name, labels), &METADATA)
    }

    /// The gauge `name` with `labels` whose values are only known at run time (build info:
    /// version and git revision). Allocates: for start-up only.
    pub fn gauge_owned(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, String)],
    ) -> Gauge {
        let Some(live) = &self.live else {
            return Gauge::noop();
        };
        live.recorder.describe_gauge(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
        let labels: Vec<Label> = labels
            .iter()
            .map(|(k, v)| Label::new(*k, v.clone()))
            .collect();
        live.recorder
            .register_gauge(&Key::from_parts(name, labels), &METADATA)
    }

    /// The histogram `name` with `labels`, described by `help` (buckets by name: see
    /// [`Registry::new`]).
    pub fn histogram(
        &self,
        name: &'static str,
        help: &'static str,
        labels: &[(&'static str, &'static str)],
    ) -> Histogram {
        let Some(live) = &self.live else {
            return Histogram::noop();
        };
        live.recorder.describe_histogram(
            KeyName::from_const_str(name),
            None,
            SharedString::const_str(help),
        );
        live.recorder
            .register_histogram(&Self::key(name, labels), &METADATA)
    }

    /// Runs `collect` before every render: for gauges read from state that already exists (a
    /// map's length), so that keeping them costs nothing between scrapes. `collect` must be
    /// quick and must not call back into this registry's rendering.
    pub fn on_scrape(&self, collect: impl Fn() + Send + Sync + 'static) {
        if self.live.is_some() {
            self.collectors
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Box::new(collect));
        }
    }

    /// Every metric in the Prometheus text format (empty when disabled).
    pub fn render(&self) -> String {
        let Some(live) = &self.live else {
            return String::new();
        };
        for collect in self
            .collectors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            collect();
        }
        live.handle.render()
    }

    /// Folds recorded histogram samples into their buckets.
    fn upkeep(&self) {
        if let Some(live) = &self.live {
            live.handle.run_upkeep();
        }
    }
}

/// The metrics listener's routes: `GET /metrics`, and the JSON 404 of every other path.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move { ([(CONTENT_TYPE, TEXT_FORMAT)], registry.render()) }
            }),
        )
        .fallback(|| async { crate::http::error_response(ErrorCode::NotFound, "no such route") })
}

/// Serves [`router`] on `listener` until `shutdown` resolves, folding histogram samples every
/// few seconds meanwhile (see [`UPKEEP_EVERY`]).
///
/// # Errors
/// If the listener fails.
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let upkeep = {
        let registry = Arc::downgrade(&registry);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(registry) = registry.upgrade() else {
                    return;
                };
                registry.upkeep();
            }
        })
    };
    let served = axum::serve(listener, router(registry))
        .with_graceful_shutdown(shutdown)
        .await;
    upkeep.abort();
    served
}

/// Starts [`serve`] on a task of its own; the server stops when the returned guard is dropped.
pub fn spawn(listener: TcpListener, registry: Arc<Registry>) -> Server {
    let addr = listener.local_addr().ok();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = stopped.await;
        };
        if let Err(e) = serve(listener, registry, shutdown).await {
            tracing::warn!(error = %e, "the metrics listener failed");
        }
    });
    if let Some(addr) = addr {
        tracing::info!("metrics at http://{addr}/metrics");
    }
    Server { stop, task }
}

/// A running metrics listener (see [`spawn`]). Dropping it tells the listener to stop (a
/// scrape in flight finishes); [`Server::stop`] also waits until its socket is closed.
#[derive(Debug)]
pub struct Server {
    /// Dropped to tell the server to stop.
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

/// How long [`Server::stop`] lets scrapes in flight finish before it cuts them.
const STOP_GRACE: Duration = Duration::from_secs(1);

impl Server {
    /// Stops the listener and returns once its socket is closed (so that a node restarted at
    /// once can bind the same address), cutting scrapes still running after [`STOP_GRACE`].
    pub async fn stop(self) {
        let Self { stop, mut task } = self;
        drop(stop);
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            task.abort();
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_takes_an_address_or_off() {
        assert_eq!(MetricsListen::parse("off"), Ok(MetricsListen::Off));
        assert_eq!(MetricsListen::parse(""), Ok(MetricsListen::Off));
        assert_eq!(
            MetricsListen::parse("127.0.0.1:9464"),
            Ok(MetricsListen::On(([127, 0, 0, 1], 9464).into()))
        );
        assert!(MetricsListen::parse("localhost").is_err());
        assert!(MetricsListen::parse("9464").is_err());
    }

    #[test]
    fn handles_render_with_their_labels_and_buckets() {
        let registry = Registry::new();
        let a = registry.counter("t_frames_total", "frames", &[("type", "send")]);
        let again = registry.counter("t_frames_total", "frames", &[("type", "send")]);
        a.increment(2);
        again.increment(1);
        registry
            .histogram("t_latency_seconds", "latency", &[])
            .record(0.003);
        let gauge = registry.gauge("t_conns", "conns", &[]);
        registry.on_scrape(move || gauge.set(7.0));
        let text = registry.render();
        assert!(text.contains("t_frames_total{type=\"send\"} 3"), "{text}");
        assert!(text.contains("t_conns 7"), "{text}");
        assert!(
            text.contains("t_latency_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(text.contains("# HELP t_frames_total frames"), "{text}");
    }

    #[test]
    fn a_disabled_registry_renders_nothing() {
        let registry = Registry::disabled();
        registry.counter("t_total", "t", &[]).increment(1);
        assert_eq!(registry.render(), "");
    }
}
