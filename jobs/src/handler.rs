//! [`Handler`]: what a job kind plugs into a [`crate::Pool`].

use async_trait::async_trait;

use crate::Job;

/// Why a run failed, as the handler judges it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JobFailure {
    /// Worth retrying (a relay down, a 451, a timeout): the job is retried with capped
    /// exponential backoff plus jitter, and dies when it runs out of attempts.
    #[error("transient: {0}")]
    Transient(String),
    /// Retrying cannot help (a 550, a payload this release cannot use): the job dies now.
    #[error("permanent: {0}")]
    Permanent(String),
}

/// Runs the jobs of one kind.
///
/// **Contract:** delivery is at least once. A run may be repeated after a worker died or a lease
/// ran out, so pass [`Job::id`] on as the delivery id (Message-ID, event id) for receivers to
/// drop duplicates. A run is bounded by [`crate::PoolConfig::timeout`]: a run that takes longer
/// is dropped (cancelled at an `.await`) and counts as a transient failure, so `run` must be
/// cancel-safe in the sense that dropping it leaves nothing half-done that a retry cannot redo.
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// The kind of job it runs (`NewJob::kind`), e.g. `welcome_mail`.
    fn kind(&self) -> &'static str;

    /// Runs one job.
    ///
    /// # Errors
    /// A [`JobFailure`] saying whether to retry.
    async fn run(&self, job: &Job) -> Result<(), JobFailure>;
}
