//! The Switchboard hub node.
//!
//! # Layout
//! - `apikeys`: API keys of the server API (`switchboard-hub api-key ...`, the key check).
//! - `server`: assembles a node from its [`Config`] and serves it ([`run`]).
//! - `listener`: the accept loop (timeouts, connection caps, PROXY protocol, client IP).
//! - `http`: REST routes and extractors (thin adapters over `service`).
//! - `ws`: the WebSocket endpoints: transport, per-connection task, echo.
//! - `service`: every rule of rooms and messages, written once.
//! - `store`: durable state behind the `store::Store` trait (SQLite or PostgreSQL).
//! - `fanout`: delivery: this node's connections and subscriptions, the sequencer, the hot
//!   window, and holds on rooms.
//! - `broker`: between nodes, behind the `broker::Broker` trait (in-process or Redis).
//! - `presence`: who is online in a room, behind the `presence::Presence` trait.
//! - `ratelimit`: every rate limit of the node (GCRA per key) and the task that sweeps them.
//! - `clock`: the monotonic, pausable clock of rate limits and liveness.
//! - `media`: avatars, emoticons and attachments: the blob store, the hot cache, the index of
//!   who refers to which blob, and the caching rules of their answers.
//! - `metrics`: the node's metrics handles (served on `--metrics-listen`, not the public port).
//!
//! `docs/ARCHITECTURE.md` shows how a message flows through these.

pub mod apikeys;
mod broker;
mod clock;
mod config;
mod error;
mod fanout;
mod http;
mod listener;
mod media;
mod metrics;
mod presence;
mod ratelimit;
mod server;
mod service;
mod state;
mod store;
mod webhooks;
mod ws;

pub use config::Config;
pub use server::{run, run_until, run_with_metrics};

/// What the criterion benches (`hub/benches/`) and the fuzz targets (`fuzz/`) drive directly,
/// below the node: the fanout step, the stores, the rate limits, the WebSocket transport and
/// the REST extractors. Not an API: it follows the code.
#[doc(hidden)]
pub mod bench {
    pub use crate::error::error_response;
    pub use crate::fanout::outbox::{outbox, Receiver};
    pub use crate::fanout::{ConnHandle, Event, KillSwitch, Out, Registry};
    pub use crate::http::extract::{AppPath, AppQuery};
    pub use crate::metrics::HubMetrics;
    pub use crate::ratelimit::{Frames, PerUser};
    pub use crate::store::postgres::{PgConfig, PgStore};
    pub use crate::store::sqlite::SqliteStore;
    pub use crate::store::{CommitSender, NewMessage, NewRoom, Store, UserRef};
    pub use crate::ws::frame::{
        close_code_allowed, encode, FrameError, FrameReader, OpCode, MAX_CONTROL_PAYLOAD,
    };
    pub use crate::ws::transport::{Incoming, MessageReader, TransportError};
}
