//! The test services of the workspace, in one place: every test of the hub, of auth and of
//! `tests/` (`switchboard-tests`, which re-exports this crate) takes them from here.
//!
//! - [`services`]: the machine's PostgreSQL and Redis, as a fresh database ([`TestDatabase`])
//!   and a fresh key prefix ([`RedisPrefix`]) per test, both removed when the test ends.
//! - [`private`]: servers of a test's own ([`PrivatePostgres`], [`PrivateRedis`]) that it may
//!   stop, restart or pause.
//! - [`proxy`]: a TCP proxy that can cut its connections or go silent ([`Proxy`]).
//! - [`smtp`]: an SMTP sink ([`SmtpSink`]) that records mails and can defer, refuse, hang or
//!   be down.
//! - [`webhook`]: an HTTP receiver ([`WebhookSink`]) that records webhook requests and answers
//!   as scripted (a status, a sequence of them, or never).
//! - [`binary`]: the workspace's binaries and their processes.
//!
//! **Why a crate of its own.** `switchboard-tests` depends on the hub and auth (its harness runs
//! them in-process). The hub's and auth's own unit and integration tests need these services
//! too; were they to dev-depend on `switchboard-tests`, each would compile a second copy of
//! itself, whose types are not its own. So this crate depends on no workspace crate (only
//! tokio, tokio-postgres, redis and std-level helpers): hub and auth dev-depend on it, and
//! `switchboard-tests` re-exports it.
//!
//! Absent servers fail the test, naming what is missing: nothing here skips.

pub mod binary;
pub mod private;
pub mod proxy;
pub mod services;
pub mod smtp;
pub mod webhook;

pub use private::{PrivatePostgres, PrivateRedis};
pub use proxy::Proxy;
pub use services::{RedisPrefix, TestDatabase};
pub use smtp::SmtpSink;
pub use webhook::WebhookSink;
