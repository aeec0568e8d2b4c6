//! [`JobStore`]: the queue's persistence. [`SqliteJobs`] (a component's SQLite file) and
//! [`PgJobs`] (a schema of the shared PostgreSQL database). Both hold the same two tables,
//! `jobs` and `job_lanes` ([`SQLITE_SCHEMA`], [`postgres_schema`]), which the owning component
//! creates through its own migrations, so a job can be enqueued inside that component's
//! transactions ([`enqueue_sqlite`], [`enqueue_pg`]).

mod postgres;
mod sqlite;
#[cfg(test)]
pub(crate) mod tests;

pub use postgres::{enqueue_pg, postgres_schema, PgJobs};
pub use sqlite::{enqueue_sqlite, SqliteJobs, SQLITE_SCHEMA};

use async_trait::async_trait;

use crate::{Job, JobError, NewJob, State};

/// The lease a claim returned: the finishing or extending call must present it, so a worker
/// whose lease ran out (and whose job another worker claimed again) changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The job.
    pub id: String,
    /// The worker holding it.
    pub worker: String,
    /// The attempt this lease is for ([`Job::attempts`] after the claim).
    pub attempt: u32,
}

impl Lease {
    /// The lease of a job just claimed.
    pub fn of(job: &Job) -> Lease {
        Lease {
            id: job.id.clone(),
            worker: job.leased_by.clone().unwrap_or_default(),
            attempt: job.attempts,
        }
    }
}

/// A claim: the first claimable job of `kinds`, leased to `worker` until `lease_until`.
#[derive(Debug, Clone)]
pub struct Claim<'a> {
    /// Only these kinds (the pool's handlers).
    pub kinds: &'a [&'a str],
    /// The claiming worker's id.
    pub worker: &'a str,
    /// Now (ms since the epoch).
    pub now: i64,
    /// The lease runs until then.
    pub lease_until: i64,
}

/// How a run ended, for [`JobStore::finish`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Ready again at `run_at`, remembering `error`.
    Retry {
        /// The next attempt's earliest time.
        run_at: i64,
        /// Why this one failed.
        error: String,
    },
    /// Dead, with `error`.
    Dead {
        /// Why.
        error: String,
    },
}

/// A finish: `lease`'s job ended with `outcome` at `now`; its lane (if any) may start its next
/// job at `now + spacing_ms`.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The lease of the run.
    pub lease: Lease,
    /// How it ended.
    pub outcome: Outcome,
    /// Now (ms since the epoch).
    pub now: i64,
    /// The job's lane and its spacing (ms), when it has a lane with a spacing.
    pub lane_spacing: Option<(String, i64)>,
}

/// Outcome of [`JobStore::retry`].
#[derive(Debug, Clone, PartialEq)]
pub enum Retried {
    /// It was dead; it is ready now, its attempts reset. The job as it is now.
    Retried(Box<Job>),
    /// No job has this id.
    NotFound,
    /// The job is not dead (its state); nothing changed.
    NotDead(State),
}

/// Jobs per state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Indexed like [`State::ALL`].
    pub by_state: [u64; 4],
}

impl Counts {
    /// Jobs in `state`.
    pub fn get(&self, state: State) -> u64 {
        self.by_state[state_index(state)]
    }
}

fn state_index(state: State) -> usize {
    match state {
        State::Ready => 0,
        State::Running => 1,
        State::Done => 2,
        State::Dead => 3,
    }
}

/// Persistence of the job queue.
///
/// **Contract:** each method is atomic. A claim is exclusive: two workers never hold the same
/// job's lease at once, and a lane never has two jobs running at once (except a job whose lease
/// ran out being claimed again while its old worker still runs it: at least once). `finish` and
/// `extend` with a lease that is no longer the job's change nothing and return `false`.
#[async_trait]
pub trait JobStore: Send + Sync + 'static {
    /// Enqueues a job on its own (outside any other change). To enqueue with a change, use
    /// [`enqueue_sqlite`] or [`enqueue_pg`] inside its transaction instead.
    async fn enqueue(&self, job: NewJob) -> Result<(), JobError>;

    /// Claims the first claimable job (by `run_at`, then id) of `claim.kinds`: ready and due,
    /// or running with its lease expired; in a lane, only the lane's first ready-or-running job,
    /// and only once the lane's `next_at` has passed. Counts an attempt. A running job whose
    /// lease expired on its last attempt goes dead instead (`lease expired`).
    async fn claim(&self, claim: Claim<'_>) -> Result<Option<Job>, JobError>;

    /// Extends a running lease to `until`; `false` if the lease is no longer the job's.
    async fn extend(&self, lease: &Lease, until: i64) -> Result<bool, JobError>;

    /// Records how a run ended and the lane's next start, in one transaction; `false` (nothing
    /// changed) if the lease is no longer the job's.
    async fn finish(&self, finish: Finish) -> Result<bool, JobError>;

    /// At most `limit` jobs in `state` with an id above `after`, in id order.
    async fn list(
        &self,
        state: State,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, JobError>;

    /// The job with this id.
    async fn get(&self, id: &str) -> Result<Option<Job>, JobError>;

    /// Makes a dead job ready again at `now`, attempts reset (an admin's retry).
    async fn retry(&self, id: &str, now: i64) -> Result<Retried, JobError>;

    /// How many jobs are in each state.
    async fn counts(&self) -> Result<Counts, JobError>;

    /// Deletes at most `limit` done jobs finished before `before`; returns how many.
    async fn prune(&self, before: i64, limit: u32) -> Result<u64, JobError>;
}

/// A stored count or attempt number back as u32.
fn to_u32(v: i64, column: &'static str) -> Result<u32, JobError> {
    u32::try_from(v).map_err(|_| JobError::Corrupt { column })
}

/// A stored state back as [`State`].
fn to_state(s: &str) -> Result<State, JobError> {
    State::parse(s).ok_or(JobError::Corrupt { column: "state" })
}

/// A stored payload back as JSON.
fn to_payload(s: &str) -> Result<serde_json::Value, JobError> {
    serde_json::from_str(s).map_err(|_| JobError::Corrupt { column: "payload" })
}

/// The columns every job query reads, in [`Job`] field order.
const JOB_COLUMNS: &str = "id, kind, payload, lane, state, attempts, max_attempts, run_at, \
     lease_until, leased_by, last_error, created_at, finished_at";

/// `error` of an outcome, cut.
fn outcome_parts(outcome: &Outcome) -> (&'static str, Option<i64>, Option<&str>) {
    match outcome {
        Outcome::Done => ("done", None, None),
        Outcome::Retry { run_at, error } => {
            ("ready", Some(*run_at), Some(crate::job::cut_error(error)))
        }
        Outcome::Dead { error } => ("dead", None, Some(crate::job::cut_error(error))),
    }
}
