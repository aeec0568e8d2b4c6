//! The runner on PostgreSQL (see the [module docs](super)).

use tokio_postgres::Client;

use super::{MigrateError, Schema};

/// Brings the database up to date, in one transaction that holds the schema's advisory lock
/// ([`Schema::lock_key`], `pg_advisory_xact_lock`, released by the commit, the rollback or the
/// connection dying): a second node starting at the same time waits, then finds the work done.
/// `applied_at` goes into the ledger's applied column. Returns the versions applied now.
///
/// The transaction lifts the session's `statement_timeout` and `lock_timeout`: waiting for
/// another node's migration, or a long migration, is not an unavailable database. Bound the
/// whole call with a timeout of the caller's choosing.
///
/// # Errors
/// [`MigrateError::SchemaTooNew`] for a database written by a newer release (nothing changed);
/// [`MigrateError::Postgres`] if a statement fails or the connection breaks (everything rolled
/// back).
pub async fn migrate(
    client: &mut Client,
    schema: &Schema,
    applied_at: i64,
) -> Result<Vec<i64>, MigrateError> {
    let ledger = schema.ledger;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema.lock_key])
        .await?;
    if let Some((namespace, _)) = ledger.table.split_once('.') {
        tx.batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS {namespace}"))
            .await?;
    }
    tx.batch_execute(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
             version BIGINT PRIMARY KEY, {} BIGINT NOT NULL)",
        ledger.table, ledger.applied_column
    ))
    .await?;
    let current: i64 = tx
        .query_one(
            &format!("SELECT COALESCE(MAX(version), 0) FROM {}", ledger.table),
            &[],
        )
        .await?
        .get(0);
    schema.check(current)?;
    let insert = format!(
        "INSERT INTO {} (version, {}) VALUES ($1, $2)",
        ledger.table, ledger.applied_column
    );
    let mut applied = Vec::new();
    for (version, sql) in schema.pending(current) {
        tx.batch_execute(sql).await?;
        tx.execute(&insert, &[version, &applied_at]).await?;
        tracing::info!(schema = schema.name, version, "applied migration");
        applied.push(*version);
    }
    tx.commit().await?;
    Ok(applied)
}
