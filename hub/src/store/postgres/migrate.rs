//! Applies the SQL files in `migrations/hub/postgres/` in order, once each, so that any number of
//! hub nodes can start against one database at the same time.

use deadpool_postgres::Client;

use crate::store::{StoreError, StoreResult};

/// Every migration this binary knows, in order. Versions are the file-name prefixes.
pub const PG_MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../../migrations/hub/postgres/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../../migrations/hub/postgres/0002_direct_hidden.sql"),
    ),
];

/// The advisory lock that serialises hub migrations across nodes: the ASCII bytes of
/// `"sbhubmig"`. Auth migrations (schema `auth`) use a different key, so a hub and an auth node
/// sharing a database do not wait on each other.
pub const MIGRATION_LOCK_KEY: i64 = 0x7362_6875_626d_6967;

/// Brings the schema up to date, in one transaction that holds [`MIGRATION_LOCK_KEY`]
/// (`pg_advisory_xact_lock`, released by the commit or by the connection dying): a second node
/// starting at the same time waits, then finds the work done.
///
/// The transaction lifts the session's `statement_timeout` (see `PgStore::connect`): waiting for
/// another node's migration, or a long migration, is not an unavailable database.
///
/// # Errors
/// Refuses a database whose schema is newer than this binary knows (it was written by a newer
/// release), so an old node never writes to a schema it does not understand.
pub async fn migrate(client: &mut Client) -> StoreResult<()> {
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0")
        .await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY, applied_ts BIGINT NOT NULL)",
    )
    .await?;
    let current: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            &[],
        )
        .await?
        .get(0);
    let newest = PG_MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::Migration(format!(
            "database schema version {current} is newer than this binary's {newest}"
        )));
    }
    for (version, sql) in PG_MIGRATIONS.iter().filter(|m| m.0 > current) {
        tx.batch_execute(sql).await?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ts)
             VALUES ($1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)",
            &[version],
        )
        .await?;
        tracing::info!(version, "applied postgres migration");
    }
    tx.commit().await?;
    Ok(())
}
