//! `switchboard-bench`: the load generator. It measures how many connections a server holds
//! in how much memory, how many deliveries per second it sustains at what latency (and per
//! server CPU-second), and how fast it stores messages, against Switchboard or, through the
//! Pusher channels protocol, a peer such as sockudo. `bench/README.md` has the command lines.
//!
//! # Layout
//! - [`scenario`]: `connect`, `fanout`, `rooms`, `persist`, and the delivery phase fanout and
//!   rooms share.
//! - [`target`]: the [`target::Target`] seam with its two implementations (Switchboard
//!   protocol v1 through the client library; the Pusher protocol), and
//!   [`target::SubscriberSpec`], what a subscriber socket needs in any process.
//! - [`subscriber`]: a group of lean subscriber sockets ([`net`]) counting what they receive.
//! - [`worker`]: the same groups spread over child processes (the 20,000-file limit per
//!   process), talking JSON lines over stdin/stdout.
//! - [`publish`]: the paced, bounded-in-flight publishing loop.
//! - [`payload`]: the stamp in every body (stream, counter, send time).
//! - [`stats`]: latency histograms, loss and duplicate accounting.
//! - [`procstat`]: server CPU and memory from `/proc`.
//! - [`report`], [`svg`], [`markdown`]: the table, the JSON line, the chart, and
//!   `docs/BENCHMARKS.md`.
//!
//! **Invariant:** every loop is bounded in count and time and stops by itself, and the bench
//! connects only to the addresses it is given.

pub mod error;
pub mod markdown;
pub mod net;
pub mod payload;
pub mod procstat;
pub mod publish;
pub mod report;
pub mod scenario;
pub mod stats;
pub mod subscriber;
pub mod svg;
pub mod target;
pub mod worker;

pub use error::{BenchError, Result};
