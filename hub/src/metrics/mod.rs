//! The hub's metrics: every handle registered once, at start-up, on the node's
//! [`Registry`](switchboard_kit::metrics::Registry), so that the hot path (reader, fanout,
//! writer) only adds to atomics: no lookup by name, no label formatting, no allocation. Labels
//! are indexes into arrays of handles ([`ClientType`], [`ServerType`], [`Limit`], close codes).
//!
//! Gauges that mirror state the node keeps anyway (connections, subscriptions, rooms with local
//! subscribers) are read from the [`Registry`](crate::fanout::Registry) at scrape time instead.
//!
//! The names, types and labels are listed in `docs/OPERATIONS.md` ("Metrics"). The dashboard in
//! `deploy/grafana/` shows them: `tests/compose` (`monitoring.rs`) checks that it queries exactly
//! what a running node exports; `tests/e2e/metrics.rs` checks that real traffic moves them.

mod labels;
mod store;

use std::sync::Arc;
use std::time::Duration;

use switchboard_auth::metrics::{TokenFailures, RATE_LIMITED, RATE_LIMITED_HELP};
use switchboard_kit::metrics::{Counter, Histogram, Registry};

pub use labels::{ClientType, Limit, ServerType};
pub use store::{Metered, StoreMetrics};

/// The hub's handles. Cheap to clone (one `Arc`); [`HubMetrics::disabled`] records nothing.
#[derive(Clone, Debug)]
pub struct HubMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client_frames: [Counter; ClientType::ALL.len()],
    server_frames: [Counter; ServerType::ALL.len()],
    deliveries: Counter,
    fanout_latency: Histogram,
    slow_consumers: Counter,
    close_codes: [Counter; labels::CLOSE_CODES.len() + 1],
    rate_limited: [Counter; Limit::ALL.len()],
    store: StoreMetrics,
    redis_reconnects: Counter,
    redis_lag: Histogram,
    token_failures: TokenFailures,
}

impl Default for HubMetrics {
    fn default() -> Self {
        Self::disabled()
    }
}

impl HubMetrics {
    /// Every handle of the hub, registered on `registry`.
    pub fn new(registry: &Registry) -> Self {
        const CLIENT: &str = "switchboard_client_frames_total";
        const CLIENT_HELP: &str =
            "WebSocket frames received from clients, by type (invalid: undecodable or binary).";
        const SERVER: &str = "switchboard_server_frames_total";
        const SERVER_HELP: &str =
            "WebSocket frames queued to clients, by type (room events once per subscriber).";
        const CLOSES: &str = "switchboard_close_codes_total";
        const CLOSES_HELP: &str = "WebSocket close frames sent, by close code.";
        let close_codes = std::array::from_fn(|i| {
            let code = labels::CLOSE_CODES
                .get(i)
                .map_or("other", |(_, name)| *name);
            registry.counter(CLOSES, CLOSES_HELP, &[("code", code)])
        });
        Self {
            inner: Arc::new(Inner {
                client_frames: ClientType::ALL
                    .map(|t| registry.counter(CLIENT, CLIENT_HELP, &[("type", t.label())])),
                server_frames: ServerType::ALL
                    .map(|t| registry.counter(SERVER, SERVER_HELP, &[("type", t.label())])),
                deliveries: registry.counter(
                    "switchboard_deliveries_total",
                    "Room events queued to local subscribers (one per subscriber).",
                    &[],
                ),
                fanout_latency: registry.histogram(
                    "switchboard_fanout_latency_seconds",
                    "From a message's commit to the write of its frame by the last local subscriber's writer.",
                    &[],
                ),
                slow_consumers: registry.counter(
                    "switchboard_slow_consumer_closes_total",
                    "Connections closed with 4000 because their outbound queue was full.",
                    &[],
                ),
                close_codes,
                rate_limited: Limit::ALL
                    .map(|l| registry.counter(RATE_LIMITED, RATE_LIMITED_HELP, &[("limit", l.label())])),
                store: StoreMetrics::new(registry),
                redis_reconnects: registry.counter(
                    "switchboard_redis_reconnects_total",
                    "Times the Redis pub/sub connection was (re)established after the first.",
                    &[],
                ),
                redis_lag: registry.histogram(
                    "switchboard_redis_pubsub_lag_seconds",
                    "Receipt of a message from another node minus its ts (includes clock skew).",
                    &[],
                ),
                token_failures: TokenFailures::new(registry),
            }),
        }
    }

    /// Handles that record nothing (benches, tests of parts, `--metrics-listen off`).
    pub fn disabled() -> Self {
        Self::new(&Registry::disabled())
    }

    /// Counts a frame from a client.
    pub fn client_frame(&self, t: ClientType) {
        self.inner.client_frames[t as usize].increment(1);
    }

    /// Counts `n` frames of type `t` queued to clients.
    pub fn server_frames(&self, t: ServerType, n: u64) {
        self.inner.server_frames[t as usize].increment(n);
    }

    /// Counts one room event queued to `n` subscribers (deliveries and frames out).
    pub fn delivered(&self, t: ServerType, n: u64) {
        if n > 0 {
            self.inner.deliveries.increment(n);
            self.inner.server_frames[t as usize].increment(n);
        }
    }

    /// Records a message's fanout latency (see [`crate::fanout::Event::handled`]).
    pub fn fanout_latency(&self, took: Duration) {
        self.inner.fanout_latency.record(took.as_secs_f64());
    }

    /// Counts a connection closed as a slow consumer.
    pub fn slow_consumer(&self) {
        self.inner.slow_consumers.increment(1);
    }

    /// Counts a close frame sent with `code`.
    pub fn close_sent(&self, code: u16) {
        self.inner.close_codes[labels::close_index(code)].increment(1);
    }

    /// Counts a refusal by `limit`.
    pub fn rate_limited(&self, limit: Limit) {
        self.inner.rate_limited[limit as usize].increment(1);
    }

    /// The store's handles.
    pub fn store(&self) -> &StoreMetrics {
        &self.inner.store
    }

    /// Counts a (re)connection of the Redis pub/sub connection after the first.
    pub fn redis_reconnect(&self) {
        self.inner.redis_reconnects.increment(1);
    }

    /// Records the lag of a message received from another node, `lag_ms` milliseconds (0 when
    /// the sender's clock is ahead).
    pub fn redis_lag(&self, lag_ms: u64) {
        self.inner.redis_lag.record(lag_ms as f64 / 1000.0);
    }

    /// The token failure counters, for a verifier this node builds itself (remote auth).
    pub fn token_failures(&self) -> TokenFailures {
        self.inner.token_failures.clone()
    }
}

/// Gauges read from the registry when scraped: connections, subscriptions, rooms with local
/// subscribers.
pub fn watch_registry(registry: &Registry, fanout: &Arc<crate::fanout::Registry>) {
    let conns = registry.gauge(
        "switchboard_connections",
        "Open WebSocket connections on this node.",
        &[],
    );
    let subs = registry.gauge(
        "switchboard_subscriptions",
        "Room subscriptions of this node's connections.",
        &[],
    );
    let rooms = registry.gauge(
        "switchboard_rooms_with_subscribers",
        "Rooms with at least one subscriber on this node.",
        &[],
    );
    let fanout = Arc::downgrade(fanout);
    registry.on_scrape(move || {
        if let Some(fanout) = fanout.upgrade() {
            let (n_rooms, n_subs) = fanout.subscription_counts();
            conns.set(fanout.conn_count() as f64);
            subs.set(n_subs as f64);
            rooms.set(n_rooms as f64);
        }
    });
}
