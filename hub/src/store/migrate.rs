//! Applies the SQL files in `migrations/hub/sqlite/` in order, once each.

use rusqlite::Connection;

use super::{StoreError, StoreResult};

/// Every migration this binary knows, in order. Versions are the file-name prefixes.
pub const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (
        1,
        include_str!("../../../migrations/hub/sqlite/0001_init.sql"),
    ),
    (
        2,
        include_str!("../../../migrations/hub/sqlite/0002_direct_hidden.sql"),
    ),
];

/// Brings the schema up to date.
///
/// # Errors
/// Refuses a database whose schema is newer than this binary knows (it was written by a newer
/// release), so an old node never writes to a schema it does not understand.
pub fn migrate(conn: &mut Connection, now: i64) -> StoreResult<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version INTEGER PRIMARY KEY, applied_ts INTEGER NOT NULL)",
    )?;
    let current: i64 = conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )?;
    let newest = SQLITE_MIGRATIONS.last().map_or(0, |m| m.0);
    if current > newest {
        return Err(StoreError::Migration(format!(
            "database schema version {current} is newer than this binary's {newest}"
        )));
    }
    for (version, sql) in SQLITE_MIGRATIONS.iter().filter(|m| m.0 > current) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_ts) VALUES (?1, ?2)",
            (version, now),
        )?;
        tx.commit()?;
        tracing::info!(version, "applied migration");
    }
    Ok(())
}
