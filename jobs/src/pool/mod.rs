//! [`Pool`]: the workers of one node. Each worker claims a job ([`JobStore::claim`]), runs its
//! handler under a timeout while extending the lease, and records the outcome
//! ([`JobStore::finish`]); when nothing is claimable it sleeps for the poll interval or until
//! nudged ([`Pool::nudge`]).
//!
//! **Shutdown** ([`Pool::shutdown`]): workers stop claiming at once; a running job gets up to
//! [`PoolConfig::drain`] to finish, then it is dropped, and its lease runs out so that another
//! node (or this one after a restart) runs it again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use switchboard_kit::backoff::Backoff;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::clock::{ms, now_ms};
use crate::metrics::JobMetrics;
use crate::store::{Claim, Finish, Lease, Outcome};
use crate::{Handler, Job, JobFailure, JobStore};

/// Default workers per node (`--job-workers`).
pub const DEFAULT_WORKERS: usize = 2;
/// Default lease (`--job-lease-ms`): a dead worker's job is run again after at most this long.
/// A live worker extends it every third of it, so it only needs to cover a few missed extends.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
/// Default bound on one run of a handler (`--job-timeout-ms`); longer is a transient failure.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default poll interval of an idle worker (`--job-poll-ms`).
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// Default retry backoff: 1 s doubling up to 10 min, jittered (`kit::backoff`).
pub const DEFAULT_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_secs(1), Duration::from_secs(600));
/// Default time done jobs are kept before the pool deletes them (`--job-retention-hours`).
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// Default bound on waiting for running jobs at shutdown.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);
/// How often a pool samples the queue depth (metrics) and prunes done jobs.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(15);
/// Backoff of a worker whose claims fail (the database is unreachable): short, so the queue
/// resumes within seconds of the database's return.
const STORE_BACKOFF: Backoff =
    Backoff::doubling(Duration::from_millis(100), Duration::from_secs(5));
/// Most done jobs deleted per prune (the next sample deletes more), to keep each delete short.
const PRUNE_BATCH: u32 = 1000;

/// How a node runs its jobs.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Jobs run at once on this node (0: no workers, nothing is claimed).
    pub workers: usize,
    /// How long a claim holds a job before another worker may claim it again.
    pub lease: Duration,
    /// Bound on one run of a handler.
    pub timeout: Duration,
    /// Poll interval of an idle worker.
    pub poll: Duration,
    /// Delay before retry `n` after a transient failure.
    pub backoff: Backoff,
    /// Lanes with a minimum spacing between the end of one job and the start of the next
    /// (e.g. `mail` at 1 s for one mail per second). Every node must be given the same.
    pub lanes: HashMap<String, Duration>,
    /// Names this node in `leased_by` (each worker appends `/n`).
    pub node: String,
    /// How long done jobs are kept.
    pub retention: Duration,
    /// Bound on waiting for running jobs at shutdown.
    pub drain: Duration,
}

impl Default for PoolConfig {
    /// The defaults above; no lane spacings; a random node name.
    fn default() -> Self {
        Self {
            workers: DEFAULT_WORKERS,
            lease: DEFAULT_LEASE,
            timeout: DEFAULT_TIMEOUT,
            poll: DEFAULT_POLL,
            backoff: DEFAULT_BACKOFF,
            lanes: HashMap::new(),
            node: uuid::Uuid::new_v4().simple().to_string()[..12].to_owned(),
            retention: DEFAULT_RETENTION,
            drain: DEFAULT_DRAIN,
        }
    }
}

struct Ctx {
    store: Arc<dyn JobStore>,
    handlers: HashMap<&'static str, Arc<dyn Handler>>,
    cfg: PoolConfig,
    metrics: JobMetrics,
    nudge: Arc<Notify>,
    stop: CancellationToken,
}

/// The workers of one node. Dropping it stops them at once (running jobs are dropped and run
/// again after their lease); [`Pool::shutdown`] lets running jobs finish first.
pub struct Pool {
    ctx: Arc<Ctx>,
    workers: Vec<JoinHandle<()>>,
    sampler: JoinHandle<()>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("cfg", &self.ctx.cfg)
            .field("kinds", &self.ctx.handlers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Starts `cfg.workers` workers claiming the kinds of `handlers` from `store` (none when
    /// there is no handler: jobs stay ready), and the sampler of the queue depth. Must be called
    /// within a Tokio runtime. A later handler of a kind replaces an earlier one.
    pub fn start(
        store: Arc<dyn JobStore>,
        handlers: Vec<Arc<dyn Handler>>,
        cfg: PoolConfig,
        metrics: JobMetrics,
    ) -> Pool {
        let handlers: HashMap<&'static str, Arc<dyn Handler>> =
            handlers.into_iter().map(|h| (h.kind(), h)).collect();
        let workers = if handlers.is_empty() { 0 } else { cfg.workers };
        let ctx = Arc::new(Ctx {
            store,
            handlers,
            cfg,
            metrics,
            nudge: Arc::new(Notify::new()),
            stop: CancellationToken::new(),
        });
        let workers = (0..workers)
            .map(|n| {
                let worker = format!("{}/{n}", ctx.cfg.node);
                tokio::spawn(Arc::clone(&ctx).work(worker))
            })
            .collect();
        let sampler = tokio::spawn(Arc::clone(&ctx).sample());
        Pool {
            ctx,
            workers,
            sampler,
        }
    }

    /// Wakes an idle worker to claim now (after enqueueing a job on this node), instead of at
    /// its next poll.
    pub fn nudge(&self) {
        self.ctx.nudge.notify_one();
    }

    /// What [`Pool::nudge`] notifies, for code that cannot hold the pool (a store's writer
    /// thread): `notify_one` on it is a nudge.
    pub fn nudger(&self) -> Arc<Notify> {
        Arc::clone(&self.ctx.nudge)
    }

    /// Stops claiming, waits up to [`PoolConfig::drain`] for running jobs, then drops what is
    /// still running (its lease runs out and it runs again elsewhere).
    pub async fn shutdown(mut self) {
        self.ctx.stop.cancel();
        let workers = std::mem::take(&mut self.workers);
        let aborts: Vec<_> = workers.iter().map(JoinHandle::abort_handle).collect();
        let all = futures_join(workers);
        if tokio::time::timeout(self.ctx.cfg.drain, all).await.is_err() {
            tracing::warn!(drain = ?self.ctx.cfg.drain, "jobs still running at shutdown are dropped; they run again when their lease expires");
            for abort in aborts {
                abort.abort();
            }
        }
    }
}

/// Waits for every handle (a failed or cancelled task is logged by Tokio's default; nothing to
/// do here).
async fn futures_join(handles: Vec<JoinHandle<()>>) {
    for handle in handles {
        let _ = handle.await;
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.ctx.stop.cancel();
        for worker in &self.workers {
            worker.abort();
        }
        self.sampler.abort();
    }
}

impl Ctx {
    /// One worker: claim, run, repeat; sleep when idle; back off when the store fails.
    async fn work(self: Arc<Self>, worker: String) {
        let kinds: Vec<&str> = self.handlers.keys().copied().collect();
        let mut failures = STORE_BACKOFF.retries();
        while !self.stop.is_cancelled() {
            let now = now_ms();
            let claimed = self
                .store
                .claim(Claim {
                    kinds: &kinds,
                    worker: &worker,
                    now,
                    lease_until: now.saturating_add(ms(self.cfg.lease)),
                })
                .await;
            match claimed {
                Ok(Some(job)) => {
                    failures.reset();
                    self.run(job).await;
                }
                Ok(None) => {
                    failures.reset();
                    tokio::select! {
                        () = tokio::time::sleep(self.cfg.poll) => {}
                        () = self.nudge.notified() => {}
                        () = self.stop.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, worker, "claiming a job failed");
                    tokio::select! {
                        () = failures.wait() => {}
                        () = self.stop.cancelled() => {}
                    }
                }
            }
        }
    }

    /// Runs a claimed job under the timeout, extending its lease every third of it, and records
    /// the outcome.
    async fn run(&self, job: Job) {
        let Some(handler) = self.handlers.get(job.kind.as_str()) else {
            return; // Only our kinds are claimed.
        };
        let lease = Lease::of(&job);
        let started = Instant::now();
        let every = (self.cfg.lease / 3).max(Duration::from_millis(1));
        let mut extend = tokio::time::interval_at(started + every, every);
        let run = tokio::time::timeout(self.cfg.timeout, handler.run(&job));
        tokio::pin!(run);
        let result = loop {
            tokio::select! {
                result = &mut run => break result,
                _ = extend.tick() => {
                    let until = now_ms().saturating_add(ms(self.cfg.lease));
                    match self.store.extend(&lease, until).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job = job.id, "lease lost while running; the job may run twice"),
                        Err(e) => tracing::warn!(job = job.id, error = %e, "extending a lease failed"),
                    }
                }
            }
        };
        self.metrics
            .duration
            .record(started.elapsed().as_secs_f64());
        let outcome = match result {
            Ok(Ok(())) => {
                self.metrics.ok.increment(1);
                Outcome::Done
            }
            Ok(Err(JobFailure::Permanent(error))) => {
                self.metrics.permanent.increment(1);
                Outcome::Dead { error }
            }
            Ok(Err(JobFailure::Transient(error))) => {
                self.metrics.transient.increment(1);
                self.retry_or_dead(&job, error)
            }
            Err(_) => {
                self.metrics.timeout.increment(1);
                let error = format!("timed out after {} ms", self.cfg.timeout.as_millis());
                self.retry_or_dead(&job, error)
            }
        };
        match &outcome {
            Outcome::Dead { error } => {
                self.metrics.dead.increment(1);
                tracing::warn!(
                    job = job.id,
                    kind = job.kind,
                    attempts = job.attempts,
                    error,
                    "job dead"
                );
            }
            Outcome::Retry { error, run_at } => {
                tracing::info!(
                    job = job.id,
                    kind = job.kind,
                    attempts = job.attempts,
                    error,
                    retry_in_ms = run_at - now_ms(),
                    "job failed; retrying"
                );
            }
            Outcome::Done => {}
        }
        let lane_spacing = job.lane.as_ref().and_then(|lane| {
            self.cfg
                .lanes
                .get(lane)
                .map(|spacing| (lane.clone(), ms(*spacing)))
        });
        let finish = Finish {
            lease,
            outcome,
            now: now_ms(),
            lane_spacing,
        };
        match self.store.finish(finish).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                job = job.id,
                "lease lost before finishing; the job may run twice"
            ),
            Err(e) => {
                tracing::warn!(job = job.id, error = %e, "recording a job's outcome failed; it runs again when its lease expires")
            }
        }
    }

    /// A transient failure: retry after the backoff, or dead when out of attempts.
    fn retry_or_dead(&self, job: &Job, error: String) -> Outcome {
        if job.attempts >= job.max_attempts {
            Outcome::Dead {
                error: format!("{error} (out of attempts: {})", job.attempts),
            }
        } else {
            let delay = self.cfg.backoff.delay(job.attempts);
            Outcome::Retry {
                run_at: now_ms().saturating_add(ms(delay)),
                error,
            }
        }
    }

    /// Samples the queue depth into the metrics and prunes old done jobs, every
    /// [`SAMPLE_EVERY`].
    async fn sample(self: Arc<Self>) {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = self.stop.cancelled() => return,
            }
            match self.store.counts().await {
                Ok(counts) => self.metrics.depth(&counts),
                Err(e) => tracing::warn!(error = %e, "sampling the job queue failed"),
            }
            let before = now_ms().saturating_sub(ms(self.cfg.retention));
            if let Err(e) = self.store.prune(before, PRUNE_BATCH).await {
                tracing::warn!(error = %e, "pruning done jobs failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
