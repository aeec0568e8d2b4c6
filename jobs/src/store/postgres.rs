//! [`PgJobs`]: the queue in a schema of the shared PostgreSQL database.

use async_trait::async_trait;
use deadpool_postgres::Pool;
use tokio_postgres::GenericClient;

use super::{
    outcome_parts, to_payload, to_state, to_u32, Claim, Counts, Finish, JobStore, Lease, Retried,
    JOB_COLUMNS,
};
use crate::{Job, JobError, NewJob, State};

/// The tables of the queue on PostgreSQL in `schema` (`auth`, `public`); the owning component
/// applies it as one of its migrations (a migration file is fixed text, so the owner keeps a
/// copy of this with its schema filled in, and a test that they agree).
pub fn postgres_schema(schema: &str) -> String {
    include_str!("../../sql/postgres.sql").replace("{schema}", schema)
}

/// Enqueues `job` into `schema`'s queue on `client`, which is normally the transaction of the
/// change that causes the job (deref a `deadpool_postgres::Transaction` to get one): the job
/// commits or rolls back with it.
///
/// # Errors
/// If the insert fails.
pub async fn enqueue_pg(
    client: &impl GenericClient,
    schema: &str,
    job: &NewJob,
) -> Result<(), tokio_postgres::Error> {
    let sql = format!(
        "INSERT INTO {schema}.jobs (id, kind, payload, lane, state, attempts, max_attempts,
                                    run_at, created_at)
         VALUES ($1, $2, $3, $4, 'ready', 0, $5, $6, $7)"
    );
    let max_attempts = i32::try_from(job.max_attempts).unwrap_or(i32::MAX);
    client
        .execute(
            &sql,
            &[
                &job.id,
                &job.kind,
                &job.payload.to_string(),
                &job.lane,
                &max_attempts,
                &job.run_at,
                &job.created_at,
            ],
        )
        .await?;
    Ok(())
}

/// The statements of one schema, built once.
#[derive(Debug)]
struct Sql {
    schema: String,
    expire: String,
    claim: String,
    extend: String,
    finish: String,
    lane: String,
    list: String,
    get: String,
    retry: String,
    counts: String,
    prune: String,
}

impl Sql {
    fn new(s: &str) -> Self {
        Self {
            schema: s.to_owned(),
            expire: format!(
                "UPDATE {s}.jobs SET state = 'dead', last_error = 'lease expired on the last attempt',
                     finished_at = $1, lease_until = NULL, leased_by = NULL
                 WHERE state = 'running' AND lease_until <= $1 AND attempts >= max_attempts"
            ),
            // The row lock with SKIP LOCKED makes the claim exclusive; a row changed by a
            // concurrent claim is re-checked against its new version and dropped. A lane's
            // later jobs are blocked by its first ready-or-running one, locked or not.
            claim: format!(
                "UPDATE {s}.jobs SET state = 'running', attempts = attempts + 1,
                     lease_until = $3, leased_by = $4
                 WHERE id = (
                   SELECT j.id FROM {s}.jobs j
                   WHERE j.state IN ('ready', 'running') AND j.run_at <= $1
                     AND (j.state = 'ready' OR j.lease_until <= $1)
                     AND j.kind = ANY($2)
                     AND (j.lane IS NULL OR (
                          NOT EXISTS (SELECT 1 FROM {s}.jobs e WHERE e.lane = j.lane
                                      AND e.state IN ('ready', 'running') AND e.id < j.id)
                      AND NOT EXISTS (SELECT 1 FROM {s}.job_lanes l WHERE l.lane = j.lane
                                      AND l.next_at > $1)))
                   ORDER BY j.run_at, j.id LIMIT 1
                   FOR UPDATE SKIP LOCKED)
                 RETURNING {JOB_COLUMNS}"
            ),
            extend: format!(
                "UPDATE {s}.jobs SET lease_until = $1
                 WHERE id = $2 AND state = 'running' AND leased_by = $3 AND attempts = $4"
            ),
            finish: format!(
                "UPDATE {s}.jobs SET state = $1, run_at = coalesce($2, run_at),
                     last_error = coalesce($3, last_error), finished_at = $4,
                     lease_until = NULL, leased_by = NULL
                 WHERE id = $5 AND state = 'running' AND leased_by = $6 AND attempts = $7"
            ),
            lane: format!(
                "INSERT INTO {s}.job_lanes (lane, next_at) VALUES ($1, $2)
                 ON CONFLICT (lane) DO UPDATE SET next_at = excluded.next_at"
            ),
            list: format!(
                "SELECT {JOB_COLUMNS} FROM {s}.jobs WHERE state = $1 AND id > $2
                 ORDER BY id LIMIT $3"
            ),
            get: format!("SELECT {JOB_COLUMNS} FROM {s}.jobs WHERE id = $1"),
            retry: format!(
                "UPDATE {s}.jobs SET state = 'ready', attempts = 0, run_at = $1, finished_at = NULL
                 WHERE id = $2 AND state = 'dead' RETURNING {JOB_COLUMNS}"
            ),
            counts: format!("SELECT state, count(*) FROM {s}.jobs GROUP BY state"),
            prune: format!(
                "DELETE FROM {s}.jobs WHERE id IN (SELECT id FROM {s}.jobs
                 WHERE state = 'done' AND finished_at < $1 LIMIT $2)"
            ),
        }
    }
}

/// PostgreSQL-backed [`JobStore`] over the owning component's connection pool, on the tables
/// in its schema. Claims use `FOR UPDATE SKIP LOCKED`, so workers on any number of nodes claim
/// different jobs without waiting on each other.
#[derive(Clone)]
pub struct PgJobs {
    pool: Pool,
    sql: std::sync::Arc<Sql>,
}

impl std::fmt::Debug for PgJobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgJobs")
            .field("schema", &self.sql.schema)
            .finish_non_exhaustive()
    }
}

impl PgJobs {
    /// The queue in `schema` (whose tables the owner has created: [`postgres_schema`]) over
    /// `pool`.
    pub fn new(pool: Pool, schema: &str) -> Self {
        Self {
            pool,
            sql: std::sync::Arc::new(Sql::new(schema)),
        }
    }

    /// The schema holding the tables (for [`enqueue_pg`]).
    pub fn schema(&self) -> &str {
        &self.sql.schema
    }
}

fn job_from_row(row: &tokio_postgres::Row) -> Result<Job, JobError> {
    Ok(Job {
        id: row.get(0),
        kind: row.get(1),
        payload: to_payload(row.get(2))?,
        lane: row.get(3),
        state: to_state(row.get(4))?,
        attempts: to_u32(i64::from(row.get::<_, i32>(5)), "attempts")?,
        max_attempts: to_u32(i64::from(row.get::<_, i32>(6)), "max_attempts")?,
        run_at: row.get(7),
        lease_until: row.get(8),
        leased_by: row.get(9),
        last_error: row.get(10),
        created_at: row.get(11),
        finished_at: row.get(12),
    })
}

fn attempt(lease: &Lease) -> i32 {
    i32::try_from(lease.attempt).unwrap_or(i32::MAX)
}

#[async_trait]
impl JobStore for PgJobs {
    async fn enqueue(&self, job: NewJob) -> Result<(), JobError> {
        let client = self.pool.get().await?;
        enqueue_pg(&**client, &self.sql.schema, &job).await?;
        Ok(())
    }

    async fn claim(&self, claim: Claim<'_>) -> Result<Option<Job>, JobError> {
        if claim.kinds.is_empty() {
            return Ok(None);
        }
        let client = self.pool.get().await?;
        let expire = client.prepare_cached(&self.sql.expire).await?;
        client.execute(&expire, &[&claim.now]).await?;
        let stmt = client.prepare_cached(&self.sql.claim).await?;
        let row = client
            .query_opt(
                &stmt,
                &[&claim.now, &claim.kinds, &claim.lease_until, &claim.worker],
            )
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn extend(&self, lease: &Lease, until: i64) -> Result<bool, JobError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.extend).await?;
        let n = client
            .execute(&stmt, &[&until, &lease.id, &lease.worker, &attempt(lease)])
            .await?;
        Ok(n == 1)
    }

    async fn finish(&self, finish: Finish) -> Result<bool, JobError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let (state, run_at, error) = outcome_parts(&finish.outcome);
        let finished_at = (state != "ready").then_some(finish.now);
        let lease = &finish.lease;
        let stmt = tx.prepare_cached(&self.sql.finish).await?;
        let n = tx
            .execute(
                &stmt,
                &[
                    &state,
                    &run_at,
                    &error,
                    &finished_at,
                    &lease.id,
                    &lease.worker,
                    &attempt(lease),
                ],
            )
            .await?;
        if n != 1 {
            return Ok(false);
        }
        if let Some((lane, spacing)) = &finish.lane_spacing {
            let stmt = tx.prepare_cached(&self.sql.lane).await?;
            tx.execute(&stmt, &[lane, &finish.now.saturating_add(*spacing)])
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn list(
        &self,
        state: State,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Job>, JobError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.list).await?;
        let rows = client
            .query(
                &stmt,
                &[&state.as_str(), &after.unwrap_or(""), &i64::from(limit)],
            )
            .await?;
        rows.iter().map(job_from_row).collect()
    }

    async fn get(&self, id: &str) -> Result<Option<Job>, JobError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.get).await?;
        let row = client.query_opt(&stmt, &[&id]).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn retry(&self, id: &str, now: i64) -> Result<Retried, JobError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.retry).await?;
        if let Some(row) = client.query_opt(&stmt, &[&now, &id]).await? {
            return Ok(Retried::Retried(Box::new(job_from_row(&row)?)));
        }
        let stmt = client.prepare_cached(&self.sql.get).await?;
        Ok(match client.query_opt(&stmt, &[&id]).await? {
            Some(row) => Retried::NotDead(job_from_row(&row)?.state),
            None => Retried::NotFound,
        })
    }

    async fn counts(&self) -> Result<Counts, JobError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.counts).await?;
        let mut counts = Counts::default();
        for row in client.query(&stmt, &[]).await? {
            let state = to_state(row.get(0))?;
            counts.by_state[super::state_index(state)] = u64::try_from(row.get::<_, i64>(1))
                .map_err(|_| JobError::Corrupt { column: "count" })?;
        }
        Ok(counts)
    }

    async fn prune(&self, before: i64, limit: u32) -> Result<u64, JobError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(&self.sql.prune).await?;
        Ok(client.execute(&stmt, &[&before, &i64::from(limit)]).await?)
    }
}
