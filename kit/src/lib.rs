//! `switchboard-kit`: the server plumbing the hub and the auth node share, so that it exists once
//! and the two cannot drift apart.
//!
//! # Layout
//! - [`shutdown`]: the Ctrl-C/SIGTERM future a binary passes to its `run`.
//! - [`logging`] (feature `logging`): the tracing subscriber of a binary (text or JSON lines,
//!   colour only on a terminal), from one options struct.
//! - [`bearer`]: `Authorization: Bearer` credentials parsed per RFC 7235/6750.
//! - [`http`] (feature `http`): JSON, path and query extractors with one rejection mapping, and
//!   the JSON error response every REST error uses; `/readyz` (`http::ready`) and the span of
//!   every request (`http::trace`).
//! - [`migrate`] (features `sqlite`, `postgres`): one migration runner for both databases.
//! - [`metrics`] (feature `metrics`): a node's Prometheus registry and its own listener.
//! - [`backoff`]: jittered exponential backoff for reconnect and retry loops.
//! - [`clock`]: the monotonic clock, on Tokio's time so that `tokio::time::pause()` drives it.
//!
//! **Invariant:** the base (no features) depends on Tokio alone, so a client can use the backoff
//! and the clock without pulling in axum or a database driver.

pub mod backoff;
pub mod bearer;
pub mod clock;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "logging")]
pub mod logging;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "migrate")]
pub mod migrate;
pub mod shutdown;
