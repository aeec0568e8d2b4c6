//! The Switchboard hub node.
//!
//! # Layout
//! - [`server`]: assembles a node from its [`Config`] and serves it ([`run`]).
//! - `listener`: the accept loop (timeouts, connection caps, PROXY protocol, client IP).
//! - [`http`]: REST routes and extractors (thin adapters over [`service`]).
//! - [`ws`]: the WebSocket endpoints: transport, per-connection task, echo.
//! - [`service`]: every rule of rooms and messages, written once.
//! - [`store`]: durable state behind the [`store::Store`] trait (SQLite or PostgreSQL).
//! - [`fanout`]: delivery: this node's connections and subscriptions, the sequencer, the hot
//!   window, and holds on rooms.
//! - [`broker`]: between nodes, behind the [`broker::Broker`] trait (in-process or Redis).
//! - [`presence`]: who is online in a room, behind the [`presence::Presence`] trait.
//! - [`ratelimit`]: every rate limit of the node (GCRA per key) and the task that sweeps them.
//! - [`clock`]: the monotonic, pausable clock of rate limits and liveness.
//!
//! `docs/ARCHITECTURE.md` shows how a message flows through these.

pub mod broker;
pub mod clock;
pub mod config;
pub mod error;
pub mod fanout;
pub mod http;
pub(crate) mod listener;
pub mod presence;
pub mod ratelimit;
pub mod server;
pub mod service;
pub mod state;
pub mod store;
pub mod ws;

pub use config::Config;
pub use server::run;
