//! The auth service's jobs: registration enqueues a welcome mail in the transaction that
//! creates the user (`welcome_mail`); the node runs a [`Pool`] of workers with the handlers
//! it is given (the welcome mail's, [`crate::mail::WelcomeMailHandler`], and any in
//! [`AuthConfig::job_handlers`](crate::AuthConfig::job_handlers)); admins list
//! and retry jobs (`/v1/admin/jobs*`). The queue's tables live in the auth store (`auth.db`, or
//! schema `auth`), see `switchboard_jobs`.

use std::time::Duration;

use serde_json::json;
use switchboard_jobs::pool::{
    DEFAULT_LEASE, DEFAULT_POLL, DEFAULT_RETENTION, DEFAULT_TIMEOUT, DEFAULT_WORKERS,
};
use switchboard_jobs::{Job, NewJob, Pool, Retried, State};
use switchboard_protocol::rest::{AdminJob, AdminJobList, AdminJobsQuery, JobState};

use crate::accounts::{cursor, page_size};
use crate::error::AuthError;
use crate::store::UserRecord;
use crate::{Auth, AuthConfig};

/// Kind of the welcome mail job. Payload: `{"user_id", "username", "email"}`.
pub const WELCOME_MAIL: &str = "welcome_mail";
/// The lane of every mail job: mails go out one at a time, in queue order, spaced by the mail
/// rate (`PoolConfig::lanes`).
pub const MAIL_LANE: &str = "mail";
/// The pool configuration a node runs with: `cfg.jobs`, with the spacing of [`MAIL_LANE`] set
/// to `1 / cfg.mail.rate_per_sec` (so `--mail-rate-per-sec` is the one setting of the mail
/// rate; any mail-lane entry already in `cfg.jobs.lanes` is replaced). The lane's spacing is
/// stored with each finished mail in the shared store, so the rate holds for the whole
/// cluster, not per node, provided every node is given the same rate.
///
/// # Errors
/// [`AuthError::Config`] if the rate is not a finite number above 0, or so high or low that its
/// spacing is not a duration.
pub fn pool_config(cfg: &AuthConfig) -> Result<switchboard_jobs::PoolConfig, AuthError> {
    let rate = cfg.mail.rate_per_sec;
    let spacing = (rate.is_finite() && rate > 0.0)
        .then(|| Duration::try_from_secs_f64(1.0 / rate).ok())
        .flatten()
        .ok_or_else(|| {
            AuthError::Config(format!(
                "the mail rate must be a number of mails per second above 0 (got {rate})"
            ))
        })?;
    let mut jobs = cfg.jobs.clone();
    jobs.lanes.insert(MAIL_LANE.to_owned(), spacing);
    Ok(jobs)
}

/// The welcome mail of a new user, or `None` for an address under the `.invalid` top-level
/// domain (RFC 2606: never deliverable; the CLI's placeholder is `USER@users.switchboard.invalid`).
pub(crate) fn welcome_mail(user: &UserRecord) -> Option<NewJob> {
    let domain = user.email.rsplit_once('@').map_or("", |(_, d)| d);
    let tld = domain.rsplit('.').next().unwrap_or("");
    if tld.eq_ignore_ascii_case("invalid") {
        return None;
    }
    let payload = json!({"user_id": user.id, "username": user.username, "email": user.email});
    Some(NewJob::new(WELCOME_MAIL, payload).in_lane(MAIL_LANE))
}

/// The job-queue flags, the same on `switchboard-auth` and on the hub (for its embedded auth).
#[derive(Debug, Clone, clap::Args)]
pub struct JobFlags {
    /// Jobs (mails) this node runs at once. 0: this node runs none (another node must).
    #[arg(long, env = "SWITCHBOARD_JOB_WORKERS", default_value_t = DEFAULT_WORKERS)]
    pub job_workers: usize,

    /// How long a worker's claim on a job lasts, in milliseconds; a live worker renews it every
    /// third of it, so this is how soon the job of a crashed node runs again. Default 30000.
    #[arg(long, env = "SWITCHBOARD_JOB_LEASE_MS", default_value_t = DEFAULT_LEASE.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(100..))]
    pub job_lease_ms: u64,

    /// Longest one attempt of a job may run, in milliseconds; a longer one is abandoned and
    /// retried. Default 60000.
    #[arg(long, env = "SWITCHBOARD_JOB_TIMEOUT_MS", default_value_t = DEFAULT_TIMEOUT.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub job_timeout_ms: u64,

    /// How often an idle worker looks for due jobs, in milliseconds (a registration on this
    /// node wakes one at once). Default 1000.
    #[arg(long, env = "SWITCHBOARD_JOB_POLL_MS", default_value_t = DEFAULT_POLL.as_millis() as u64,
          value_parser = clap::value_parser!(u64).range(10..))]
    pub job_poll_ms: u64,

    /// How long finished (done) jobs are kept, in hours; dead jobs are kept until retried.
    /// Default 168 (a week).
    #[arg(long, env = "SWITCHBOARD_JOB_RETENTION_HOURS", default_value_t = DEFAULT_RETENTION.as_secs() / 3600)]
    pub job_retention_hours: u64,
}

impl JobFlags {
    /// Writes these settings into `cfg.jobs`.
    pub fn apply(&self, cfg: &mut AuthConfig) {
        cfg.jobs.workers = self.job_workers;
        cfg.jobs.lease = Duration::from_millis(self.job_lease_ms);
        cfg.jobs.timeout = Duration::from_millis(self.job_timeout_ms);
        cfg.jobs.poll = Duration::from_millis(self.job_poll_ms);
        cfg.jobs.retention = Duration::from_secs(self.job_retention_hours.saturating_mul(3600));
    }
}

fn wire_state(state: State) -> JobState {
    match state {
        State::Ready => JobState::Ready,
        State::Running => JobState::Running,
        State::Done => JobState::Done,
        State::Dead => JobState::Dead,
    }
}

fn admin_job(job: Job) -> AdminJob {
    AdminJob {
        id: job.id,
        kind: job.kind,
        state: wire_state(job.state),
        lane: job.lane,
        attempts: job.attempts,
        max_attempts: job.max_attempts,
        payload: job.payload,
        last_error: job.last_error,
        created_ts: job.created_at,
        run_ts: job.run_at,
        lease_until_ts: job.lease_until,
        finished_ts: job.finished_at,
    }
}

/// One page of `store`'s jobs in the state asked for (default dead), oldest first: the admin
/// list of any component's queue (the auth service's, the hub's).
///
/// # Errors
/// [`AuthError::BadRequest`]-like errors for a bad limit or cursor; a store failure.
pub async fn list_jobs_in(
    store: &dyn switchboard_jobs::JobStore,
    q: &AdminJobsQuery,
) -> Result<AdminJobList, AuthError> {
    let limit = page_size(q.limit)?;
    let after = cursor(q.cursor.as_deref())?;
    let state = match q.state.unwrap_or_default() {
        JobState::Ready => State::Ready,
        JobState::Running => State::Running,
        JobState::Done => State::Done,
        JobState::Dead => State::Dead,
    };
    // One more than asked, to know whether a next page exists.
    let mut jobs = store.list(state, after, limit + 1).await?;
    let next_cursor = (jobs.len() > limit as usize).then(|| {
        jobs.truncate(limit as usize);
        jobs.last().map(|j| j.id.clone()).unwrap_or_default()
    });
    Ok(AdminJobList {
        jobs: jobs.into_iter().map(admin_job).collect(),
        next_cursor,
    })
}

/// Makes a dead job of `store` ready again, its attempts reset (the caller nudges its workers).
///
/// # Errors
/// [`AuthError::NotFound`] for no such job, [`AuthError::Conflict`] for one that is not dead; a
/// store failure.
pub async fn retry_job_in(
    store: &dyn switchboard_jobs::JobStore,
    id: &str,
) -> Result<AdminJob, AuthError> {
    match store.retry(id, switchboard_jobs::clock::now_ms()).await? {
        Retried::Retried(job) => Ok(admin_job(*job)),
        Retried::NotFound => Err(AuthError::NotFound("no such job")),
        Retried::NotDead(state) => Err(AuthError::Conflict(format!(
            "only a dead job can be retried; this one is {}",
            state.as_str()
        ))),
    }
}

impl Auth {
    /// One page of jobs in the state asked for (default dead), oldest first.
    pub(crate) async fn list_jobs(&self, q: &AdminJobsQuery) -> Result<AdminJobList, AuthError> {
        list_jobs_in(&*self.inner.jobs, q).await
    }

    /// Makes a dead job ready again, its attempts reset.
    pub(crate) async fn retry_job(&self, id: &str) -> Result<AdminJob, AuthError> {
        let job = retry_job_in(&*self.inner.jobs, id).await?;
        self.nudge_jobs();
        Ok(job)
    }

    /// Wakes an idle worker of this node (a job was just enqueued or revived).
    pub(crate) fn nudge_jobs(&self) {
        if let Some(pool) = self.pool().as_ref() {
            pool.nudge();
        }
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Option<Pool>> {
        self.inner
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Stops this node's job workers: no more claims; a running job gets up to the pool's
    /// drain bound to finish, else it runs again elsewhere after its lease. Call it when the
    /// node shuts down, after it stopped serving. Idempotent.
    pub async fn shutdown_jobs(&self) {
        let pool = self.pool().take();
        if let Some(pool) = pool {
            pool.shutdown().await;
        }
    }

    /// The job queue in the auth store (for tests and tools: the admin routes are the
    /// operator's interface).
    pub fn job_store(&self) -> std::sync::Arc<dyn switchboard_jobs::JobStore> {
        self.inner.jobs.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(email: &str) -> UserRecord {
        UserRecord {
            id: "u1".into(),
            username: "alice".into(),
            email: email.into(),
            role: "user".into(),
            password_hash: String::new(),
            created_at: 0,
            last_login_at: None,
        }
    }

    #[test]
    fn the_welcome_mail_skips_invalid_addresses() {
        let job = welcome_mail(&user("alice@example.org")).unwrap();
        assert_eq!(
            (job.kind.as_str(), job.lane.as_deref()),
            (WELCOME_MAIL, Some(MAIL_LANE))
        );
        assert_eq!(
            job.payload,
            json!({"user_id": "u1", "username": "alice", "email": "alice@example.org"})
        );
        assert!(welcome_mail(&user("alice@users.switchboard.invalid")).is_none());
        assert!(welcome_mail(&user("alice@EXAMPLE.INVALID")).is_none());
        assert!(welcome_mail(&user("alice@invalid.example.org")).is_some());
    }
}

#[cfg(test)]
mod schema_tests {
    /// The migrations are copies of the queue's tables as they were when added; when
    /// `switchboard-jobs` changes its tables, add a migration that changes them here too (and
    /// update this test to compare with the sum).
    #[test]
    fn the_migrations_hold_the_job_tables_of_switchboard_jobs() {
        let sqlite = include_str!("../../migrations/auth/sqlite/0004_jobs.sql");
        assert!(sqlite.ends_with(switchboard_jobs::SQLITE_SCHEMA));
        let postgres = include_str!("../../migrations/auth/postgres/0003_jobs.sql");
        assert!(postgres.ends_with(&switchboard_jobs::postgres_schema("auth")));
    }
}
