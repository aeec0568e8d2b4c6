//! [`SqliteJobs`]: the queue in a component's SQLite file.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension as _, Row, TransactionBehavior};

use super::{
    outcome_parts, to_payload, to_state, to_u32, Claim, Counts, Finish, JobStore, Lease, Retried,
    JOB_COLUMNS,
};
use crate::{Job, JobError, NewJob, State};

/// The tables of the queue on SQLite; the owning component applies it as one of its migrations.
pub const SQLITE_SCHEMA: &str = include_str!("../../sql/sqlite.sql");

/// How long a statement waits for the file's write lock, held by the owning component's own
/// connection or another process, before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Enqueues `job` on `conn`, which is normally a [`rusqlite::Transaction`] (it derefs to a
/// connection) of the change that causes the job: the job commits or rolls back with it.
///
/// # Errors
/// If the insert fails (the tables are missing, the id exists).
pub fn enqueue_sqlite(conn: &Connection, job: &NewJob) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO jobs (id, kind, payload, lane, state, attempts, max_attempts, run_at,
                           created_at)
         VALUES (?1, ?2, ?3, ?4, 'ready', 0, ?5, ?6, ?7)",
    )?
    .execute(params![
        job.id,
        job.kind,
        job.payload.to_string(),
        job.lane,
        job.max_attempts,
        job.run_at,
        job.created_at
    ])?;
    Ok(())
}

/// SQLite-backed [`JobStore`] on a connection of its own to the owning component's file.
///
/// Claims run in `BEGIN IMMEDIATE` transactions: SQLite's single writer makes each claim
/// exclusive, across connections and processes. The connection is used only inside
/// `spawn_blocking`, behind a mutex never held across an `.await`.
#[derive(Clone)]
pub struct SqliteJobs {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteJobs").finish_non_exhaustive()
    }
}

impl SqliteJobs {
    /// Opens a connection to the file at `path`, whose tables the owner has created
    /// ([`SQLITE_SCHEMA`] among its migrations).
    ///
    /// # Errors
    /// If the file cannot be opened.
    pub async fn open(path: &Path) -> Result<Self, JobError> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, JobError> {
            let conn = Connection::open(&path)?;
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "NORMAL")?;
            Ok(conn)
        })
        .await??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, JobError> + Send + 'static,
    ) -> Result<T, JobError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await?
    }
}

type RawJob = (Job, String, String, i64, i64);

fn raw_job(row: &Row<'_>) -> rusqlite::Result<RawJob> {
    Ok((
        Job {
            id: row.get(0)?,
            kind: row.get(1)?,
            payload: serde_json::Value::Null,
            lane: row.get(3)?,
            state: State::Ready,
            attempts: 0,
            max_attempts: 0,
            run_at: row.get(7)?,
            lease_until: row.get(8)?,
            leased_by: row.get(9)?,
            last_error: row.get(10)?,
            created_at: row.get(11)?,
            finished_at: row.get(12)?,
        },
        row.get(2)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn checked((mut job, payload, state, attempts, max): RawJob) -> Result<Job, JobError> {
    job.payload = to_payload(&payload)?;
    job.state = to_state(&state)?;
    job.attempts = to_u32(attempts, "attempts")?;
    job.max_attempts = to_u32(max, "max_attempts")?;
    Ok(job)
}

fn get(conn: &Connection, id: &str) -> Result<Option<Job>, JobError> {
    let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
    let raw = conn
        .prepare_cached(&sql)?
        .query_row([id], raw_job)
        .optional()?;
    raw.map(checked).transpose()
}

#[async_trait]
impl JobStore for SqliteJobs {
    async fn enqueue(&self, job: NewJob) -> Result<(), JobError> {
        self.call(move |conn| Ok(enqueue_sqlite(conn, &job)?)).await
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Option<Job>, JobError> {
        if claim.kinds.is_empty() {
            return Ok(None);
        }
        let kinds: Vec<String> = claim.kinds.iter().map(|k| (*k).to_owned()).collect();
        let worker = claim.worker.to_owned();
        let (now, lease_until) = (claim.now, claim.lease_until);
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            tx.prepare_cached(
                "UPDATE jobs SET state = 'dead', last_error = 'lease expired on the last attempt',
                     finished_at = ?1, lease_until = NULL, leased_by = NULL
                 WHERE state = 'running' AND lease_until <= ?1 AND attempts >= max_attempts",
            )?
            .execute([now])?;
            let placeholders = (0..kinds.len())
                .map(|i| format!("?{}", i + 2))
                .collect::<Vec<_>>()
                .join(", ");
            let sql = format!(
                "SELECT j.id FROM jobs j
                 WHERE j.state IN ('ready', 'running') AND j.run_at <= ?1
                   AND (j.state = 'ready' OR j.lease_until <= ?1)
                   AND j.kind IN ({placeholders})
                   AND (j.lane IS NULL OR (
                        NOT EXISTS (SELECT 1 FROM jobs e WHERE e.lane = j.lane
                                    AND e.state IN ('ready', 'running') AND e.id < j.id)
                    AND NOT EXISTS (SELECT 1 FROM job_lanes l WHERE l.lane = j.lane
                                    AND l.next_at > ?1)))
                 ORDER BY j.run_at, j.id LIMIT 1"
            );
            let mut values: Vec<&dyn rusqlite::ToSql> = vec![&now];
            values.extend(kinds.iter().map(|k| k as &dyn rusqlite::ToSql));
            let id: Option<String> = tx
                .prepare_cached(&sql)?
                .query_row(values.as_slice(), |row| row.get(0))
                .optional()?;
            let Some(id) = id else {
                tx.commit()?;
                return Ok(None);
            };
            let sql = format!(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_until = ?1,
                     leased_by = ?2
                 WHERE id = ?3 RETURNING {JOB_COLUMNS}"
            );
            let raw = tx
                .prepare_cached(&sql)?
                .query_row(params![lease_until, worker, id], raw_job)?;
            tx.commit()?;
            checked(raw).map(Some)
        })
        .await
    }

    async fn extend(&self, lease: &Lease, until: i64) -> Result<bool, JobError> {
        let lease = lease.clone();
        self.call(move |conn| {
            let n = conn
                .prepare_cached(
                    "UPDATE jobs SET lease_until = ?1
                     WHERE id = ?2 AND state = 'running' AND leased_by = ?3 AND attempts = ?4",
                )?
                .execute(params![until, lease.id, lease.worker, lease.attempt])?;
            Ok(n == 1)
        })
        .await
    }

    async fn finish(&self, finish: Finish) -> Result<bool, JobError> {
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let (state, run_at, error) = outcome_parts(&finish.outcome);
            let finished_at = (state != "ready").then_some(finish.now);
            let lease = &finish.lease;
            let n = tx
                .prepare_cached(
                    "UPDATE jobs SET state = ?1, run_at = coalesce(?2, run_at),
                         last_error = coalesce(?3, last_error), finished_at = ?4,
                         lease_until = NULL, leased_by = NULL
                     WHERE id = ?5 AND state = 'running' AND leased_by = ?6 AND attempts = ?7",
                )?
                .execute(params![
                    state,
                    run_at,
                    error,
                    finished_at,
                    lease.id,
                    lease.worker,
                    lease.attempt
                ])?;
            if n != 1 {
                return Ok(false);
            }
            if let Some((lane, spacing)) = &finish.lane_spacing {
                tx.prepare_cached(
                    "INSERT INTO job_lanes (lane, next_at) VALUES (?1, ?2)
                     ON CONFLICT (lane) DO UPDATE SET next_at = excluded.next_at",
                )?
                .execute(params![lane, finish.now.saturating_add(*spacing)])?;
            }
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn list(
        &self,
        state: State,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, JobError> {
        let after = after.unwrap_or("").to_owned();
        self.call(move |conn| {
            let sql = format!(
                "SELECT {JOB_COLUMNS} FROM jobs WHERE state = ?1 AND id > ?2 ORDER BY id LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![state.as_str(), after, limit], raw_job)?;
            rows.map(|raw| checked(raw?)).collect()
        })
        .await
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, JobError> {
        let id = id.to_owned();
        self.call(move |conn| get(conn, &id)).await
    }

    async fn retry(&self, id: &str, now: i64) -> Result<Retried, JobError> {
        let id = id.to_owned();
        self.call(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let Some(job) = get(&tx, &id)? else {
                return Ok(Retried::NotFound);
            };
            if job.state != State::Dead {
                return Ok(Retried::NotDead(job.state));
            }
            tx.prepare_cached(
                "UPDATE jobs SET state = 'ready', attempts = 0, run_at = ?1, finished_at = NULL
                 WHERE id = ?2",
            )?
            .execute(params![now, id])?;
            let job = get(&tx, &id)?.ok_or(JobError::Corrupt { column: "id" })?;
            tx.commit()?;
            Ok(Retried::Retried(Box::new(job)))
        })
        .await
    }

    async fn counts(&self) -> Result<Counts, JobError> {
        self.call(|conn| {
            let mut counts = Counts::default();
            let mut stmt =
                conn.prepare_cached("SELECT state, count(*) FROM jobs GROUP BY state")?;
            let rows = stmt.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            for row in rows {
                let (state, n) = row?;
                counts.by_state[super::state_index(to_state(&state)?)] =
                    u64::try_from(n).map_err(|_| JobError::Corrupt { column: "count" })?;
            }
            Ok(counts)
        })
        .await
    }

    async fn prune(&self, before: i64, limit: u32) -> Result<u64, JobError> {
        self.call(move |conn| {
            let n = conn
                .prepare_cached(
                    "DELETE FROM jobs WHERE id IN (SELECT id FROM jobs
                     WHERE state = 'done' AND finished_at < ?1 LIMIT ?2)",
                )?
                .execute(params![before, limit])?;
            Ok(n as u64)
        })
        .await
    }
}
