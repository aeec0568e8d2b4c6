//! [`Store`](crate::store::Store) on PostgreSQL, for running several hub nodes on one database.
//!
//! A deadpool pool of `tokio-postgres` connections (no TLS) serves reads and the small writes;
//! messages go through the batch writers (module `batch`: group commit, several transactions in
//! flight, rooms sharded across them). Every method is bounded by
//! [`PgConfig::timeout`]: when the database is unreachable or stuck, it fails within that bound
//! with an error for which [`StoreError::is_unavailable`] is true, and the next call tries
//! afresh (broken connections are dropped by the pool, timed-out ones closed), so the node
//! recovers by itself when the database returns.
//!
//! **Architecture Invariant:** PostgreSQL is the sequencer: a room's seqs are assigned inside the
//! batch transaction under the room's row lock, so any number of nodes can append to one room.

mod batch;
pub mod migrate;
mod queries;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::mpsc;
use tokio::time::{timeout_at, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

pub use batch::BatchStats;

use super::events::Webhooks;
use super::{CommitSender, StoreError, StoreResult};

/// The schema of the hub's job tables (migration 5), named in every job statement.
pub(crate) const JOB_SCHEMA: &str = "public";

/// Inserts the delivery jobs of a transaction's events, in ONE statement (a round trip for
/// any number), their ids taken from the sequence `hub_event_ids` in slice order (zero-padded
/// to 20 digits, so text order is number order).
///
/// **Invariant:** the caller holds the row lock of every room the events belong to (the batch
/// writer's `LOCK_ROOMS`, or [`lock_room`]) until its commit. So a room's events take their
/// ids in commit order on every node, and a lane (`webhook:{endpoint}:{room}`), which runs in
/// id order, delivers them in the order they happened, whichever nodes caused them. (uuid v7
/// ids made on each node's clock would not: clocks differ.)
pub(crate) async fn enqueue_events(
    client: &impl deadpool_postgres::GenericClient,
    jobs: &[switchboard_jobs::NewJob],
) -> Result<(), tokio_postgres::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let stmt = enqueue_statement(client).await?;
    enqueue_prepared(client, &stmt, jobs).await
}

/// The statement of [`enqueue_events`], prepared (once per connection, then cached). A caller
/// that pipelines the insert with a `COMMIT` must prepare it first: preparing takes a round
/// trip of its own, so an insert that still had to prepare would reach the server after the
/// `COMMIT` sent behind it, outside the transaction.
pub(crate) async fn enqueue_statement(
    client: &impl deadpool_postgres::GenericClient,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    client
        .prepare_cached(
            "INSERT INTO public.jobs (id, kind, payload, lane, state, attempts, max_attempts,
                                      run_at, created_at)
             SELECT lpad(nextval('public.hub_event_ids')::text, 20, '0'), kind, payload, lane,
                    'ready', 0, max_attempts, run_at, created_at
             FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int4[], $5::int8[], $6::int8[])
                  WITH ORDINALITY AS t(kind, payload, lane, max_attempts, run_at, created_at, n)
             ORDER BY n",
        )
        .await
}

/// [`enqueue_events`] with its statement already prepared ([`enqueue_statement`]): sent at its
/// first poll, with no round trip before it.
pub(crate) async fn enqueue_prepared(
    client: &impl deadpool_postgres::GenericClient,
    stmt: &tokio_postgres::Statement,
    jobs: &[switchboard_jobs::NewJob],
) -> Result<(), tokio_postgres::Error> {
    if jobs.is_empty() {
        return Ok(());
    }
    let kinds: Vec<&str> = jobs.iter().map(|j| j.kind.as_str()).collect();
    let payloads: Vec<String> = jobs.iter().map(|j| j.payload.to_string()).collect();
    let lanes: Vec<Option<&str>> = jobs.iter().map(|j| j.lane.as_deref()).collect();
    let max_attempts: Vec<i32> = jobs
        .iter()
        .map(|j| i32::try_from(j.max_attempts).unwrap_or(i32::MAX))
        .collect();
    let run_at: Vec<i64> = jobs.iter().map(|j| j.run_at).collect();
    let created_at: Vec<i64> = jobs.iter().map(|j| j.created_at).collect();
    client
        .execute(
            stmt,
            &[
                &kinds,
                &payloads,
                &lanes,
                &max_attempts,
                &run_at,
                &created_at,
            ],
        )
        .await?;
    Ok(())
}

/// Takes `room`'s row lock (as the batch writer does) for the rest of the transaction, so that
/// the events of this transaction take their ids after those of every transaction on the room
/// committed before it (see [`enqueue_events`]).
pub(crate) async fn lock_room(
    tx: &impl deadpool_postgres::GenericClient,
    room: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute(
        "SELECT 1 FROM rooms WHERE id = $1 FOR NO KEY UPDATE",
        &[&room],
    )
    .await
    .map(drop)
}

/// Tuning of a [`PgStore`]. `Default` gives the documented defaults of the hub's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PgConfig {
    /// Connections in the pool, the batch writers' included (`--db-pool-size`, 16; at least 1).
    pub pool_size: usize,
    /// Batch writers, each with one transaction in flight (`--pg-writers`, 4; at least 1 and
    /// at most `pool_size`). Rooms are sharded across them by a hash of the room id, so a
    /// room's appends stay in order; more writers overlap more commits (see module `batch`).
    pub writers: usize,
    /// Most appends written by one transaction (`--batch-max-size`, 512; at least 1).
    pub batch_max_size: usize,
    /// Longest an append waits for others to join its batch (`--batch-max-age-ms`, 5 ms).
    pub batch_max_age: Duration,
    /// Bound on every operation, `append` included, after which it fails as unavailable
    /// (`--db-timeout-ms`, 2 s). Also the server-side `statement_timeout` of every connection.
    pub timeout: Duration,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self {
            pool_size: 16,
            writers: DEFAULT_WRITERS,
            batch_max_size: 512,
            batch_max_age: Duration::from_millis(5),
            timeout: Duration::from_secs(2),
        }
    }
}

/// The default of [`PgConfig::writers`]: enough transactions in flight to hide the commit
/// latency behind each other on the machine the benchmarks ran on (see docs/BENCHMARKS.md,
/// "persist"), few enough to leave most of the default pool to reads.
pub const DEFAULT_WRITERS: usize = 4;

/// Full batches each writer's append queue holds before `append` waits (within its timeout) for room:
/// the back-pressure on senders when the database is slower than the traffic.
const QUEUED_BATCHES: usize = 4;

/// Bound on applying migrations at connect, waiting for another node's included: long enough
/// for any migration of this schema, short enough that a node stuck at start-up exits.
const MIGRATION_BOUND: Duration = Duration::from_secs(60);

/// The PostgreSQL store. Cheap to clone; the batch writers stop when the last clone is dropped.
#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    /// One queue per batch writer; a room's appends go to `queues[batch::shard(room)]`.
    queues: Arc<[mpsc::Sender<batch::Job>]>,
    counters: Arc<batch::Counters>,
    timeout: Duration,
    /// The webhook events it causes (shared with the batch writers).
    webhooks: Webhooks,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool.status())
            .field("timeout", &self.timeout)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A pool of connections to `url` with the store's bounds: `statement_timeout` and
/// `idle_in_transaction_session_timeout` from `timeout` (so a statement or transaction abandoned
/// by a timed-out or dead node does not keep holding locks), and the pool's waits bounded by it.
/// The store's own pool, and the media's (a separate one, so slow media never holds the
/// store's connections).
///
/// # Errors
/// The URL does not parse.
pub(crate) fn pool(
    url: &str,
    size: usize,
    timeout: Duration,
    application: &str,
) -> StoreResult<Pool> {
    let mut pg: tokio_postgres::Config = url.parse()?;
    let ms = timeout.as_millis();
    // Server-side bounds too, so a statement or transaction abandoned by a timed-out or dead
    // node does not keep holding room locks: longer than any healthy batch, short enough
    // that other nodes carry on.
    let options = format!(
        "{} -c statement_timeout={ms} -c idle_in_transaction_session_timeout={}",
        pg.get_options().unwrap_or_default(),
        ms * 2
    );
    pg.options(options.trim_start());
    pg.connect_timeout(timeout);
    if pg.get_application_name().is_none() {
        pg.application_name(application);
    }
    let manager = Manager::from_config(
        pg,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(timeout))
        .create_timeout(Some(timeout))
        .recycle_timeout(Some(timeout))
        .build()
        .expect("a runtime is set, so the pool timeouts are supported"))
}

impl PgStore {
    /// Connects to `url` (a libpq-style URL or key=value string), applies pending migrations
    /// (see [`migrate::migrate`]) and starts the batch writers, which send every commit through
    /// `commits` (see the store's module invariants). Must run inside a Tokio runtime.
    ///
    /// # Errors
    /// The URL does not parse; the database is unreachable within `cfg.timeout`; the schema is
    /// newer than this binary's (the message says "newer"); a migration fails or takes longer than
    /// a minute.
    pub async fn connect(url: &str, cfg: PgConfig, commits: CommitSender) -> StoreResult<Self> {
        let pool = pool(url, cfg.pool_size, cfg.timeout, "switchboard-hub")?;
        let mut client = bounded(cfg.timeout, pool.get()).await??;
        bounded(MIGRATION_BOUND, migrate::migrate(&mut client)).await??;
        drop(client);

        let batch_max_size = cfg.batch_max_size.clamp(1, i32::MAX as usize);
        let writers = cfg.writers.clamp(1, cfg.pool_size.max(1));
        let counters = Arc::new(batch::Counters::default());
        let webhooks = Webhooks::default();
        let queues = (0..writers)
            .map(|_| {
                let (queue, jobs) = mpsc::channel(batch_max_size * QUEUED_BATCHES);
                tokio::spawn(
                    batch::Writer {
                        pool: pool.clone(),
                        jobs,
                        commits: commits.clone(),
                        max_size: batch_max_size,
                        max_age: cfg.batch_max_age,
                        timeout: cfg.timeout,
                        counters: counters.clone(),
                        webhooks: webhooks.clone(),
                    }
                    .run(),
                );
                queue
            })
            .collect();
        Ok(Self {
            pool,
            queues,
            counters,
            timeout: cfg.timeout,
            webhooks,
        })
    }

    /// The webhook events this store causes (set their endpoints once, see [`Webhooks::set`]).
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// The hub's job queue (webhook deliveries), in this database's `public` schema, over the
    /// store's pool.
    pub fn job_store(&self) -> switchboard_jobs::PgJobs {
        switchboard_jobs::PgJobs::new(self.pool.clone(), JOB_SCHEMA)
    }

    /// The queue of the writer that owns `room`.
    fn queue(&self, room: &str) -> &mpsc::Sender<batch::Job> {
        &self.queues[batch::shard(room, self.queues.len())]
    }

    /// Records each committed batch's size and time in `metrics` from now on (set once: a
    /// second call changes nothing).
    pub fn set_metrics(&self, metrics: crate::metrics::StoreMetrics) {
        let _ = self.counters.metrics.set(metrics);
    }

    /// What the batch writers have committed so far.
    pub fn stats(&self) -> BatchStats {
        self.counters.snapshot()
    }

    /// [`Self::call`] for an operation that may insert delivery jobs: `op` also says whether it
    /// did, and then the webhooks' signal is raised after its commit.
    async fn call_events<T, F>(&self, op: F) -> StoreResult<T>
    where
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, StoreResult<(T, bool)>>,
    {
        let (out, enqueued) = self.call(op).await?;
        if enqueued {
            self.webhooks.enqueued();
        }
        Ok(out)
    }

    /// Runs `op` on a pooled connection, the whole within the timeout. A connection whose
    /// operation timed out is closed, not returned to the pool: it may be stuck mid-statement.
    async fn call<T, F>(&self, op: F) -> StoreResult<T>
    where
        F: for<'c> FnOnce(&'c mut Client) -> BoxFuture<'c, StoreResult<T>>,
    {
        let deadline = Instant::now() + self.timeout;
        let mut client = timeout_at(deadline, self.pool.get())
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))??;
        match timeout_at(deadline, op(&mut client)).await {
            Ok(result) => result,
            Err(_) => {
                drop(deadpool_postgres::Object::take(client));
                Err(StoreError::Timeout(self.timeout))
            }
        }
    }
}

/// `fut` within `timeout`, else [`StoreError::Timeout`].
async fn bounded<T>(timeout: Duration, fut: impl Future<Output = T>) -> StoreResult<T> {
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| StoreError::Timeout(timeout))
}

/// Whether a PostgreSQL error means "unreachable, shutting down, overloaded or too slow" (retry
/// later) rather than a wrong request or broken data.
pub(crate) fn is_transient(e: &tokio_postgres::Error) -> bool {
    let Some(code) = e.code() else {
        // No SQLSTATE: I/O, a closed connection, a failed connect.
        return true;
    };
    let class = &code.code()[..2];
    // 08 connection exception, 53 insufficient resources, 57 operator intervention (shutdown,
    // statement_timeout); 40 serialization failure or deadlock; 55P03 lock not available.
    matches!(class, "08" | "53" | "57" | "40") || *code == SqlState::LOCK_NOT_AVAILABLE
}
