//! `switchboard-jobs`: the durable job queue. Work that reaches the outside world (a welcome
//! mail, later password-reset mails and webhooks) is a **job**: a row inserted in the same
//! transaction as the change that causes it, so it is never enqueued for a change that did not
//! commit, nor lost for one that did. Workers on every node of the owning component claim jobs
//! with a lease and run them through a [`Handler`] per kind.
//!
//! # Layout
//! - [`job`]: [`Job`], [`NewJob`], [`State`].
//! - [`store`]: the [`JobStore`] seam, [`SqliteJobs`] and [`PgJobs`], the tables' SQL
//!   ([`SQLITE_SCHEMA`], [`postgres_schema`]) and the in-transaction enqueues
//!   ([`enqueue_sqlite`], [`enqueue_pg`]).
//! - [`handler`]: [`Handler`] and [`JobFailure`], what a job kind plugs in.
//! - [`pool`]: [`Pool`], the workers of one node ([`PoolConfig`]).
//! - [`metrics`]: queue depth, attempts, failures and run time.
//! - [`clock`]: the wall clock in milliseconds, on Tokio's time so paused tests drive it.
//!
//! # Guarantees
//! - **At least once.** A job runs until a handler succeeds or it is dead. A worker that dies
//!   mid-run leaves the job `running` until its lease runs out; another worker then runs it
//!   again. So a handler may see a job twice, and must pass [`Job::id`] on as the stable delivery
//!   id (Message-ID, webhook event id) so that receivers can drop duplicates.
//! - **Lanes.** Jobs with the same [`NewJob::lane`] run one at a time, in id (enqueue) order, on
//!   the whole cluster: a lane's job is claimable only when no earlier job of the lane is
//!   ready or running. A retried job holds its lane back until it succeeds or dies. A lane may
//!   have a spacing ([`PoolConfig::lanes`]): its next job does not start before the previous one
//!   finished plus the spacing, cluster-wide (stored in `job_lanes`, updated in the finishing
//!   transaction; nodes' clocks must agree, as NTP keeps them).
//! - **Claims only what it can run.** A pool claims only the kinds it has handlers for; a job of
//!   any other kind stays `ready`.

pub mod clock;
mod error;
pub mod handler;
pub mod job;
pub mod metrics;
pub mod pool;
pub mod store;

pub use error::JobError;
pub use handler::{Handler, JobFailure};
pub use job::{Job, NewJob, State};
pub use pool::{Pool, PoolConfig};
pub use store::{
    enqueue_pg, enqueue_sqlite, postgres_schema, JobStore, PgJobs, Retried, SqliteJobs,
    SQLITE_SCHEMA,
};
