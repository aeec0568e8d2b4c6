//! The runner on SQLite (see the [module docs](super)).

use rusqlite::{Connection, TransactionBehavior};

use super::{MigrateError, Schema};

/// Brings the database on `conn` up to date, in one `IMMEDIATE` transaction (the write lock is
/// taken at once, so two processes opening one file migrate one after the other, each within
/// the connection's busy timeout). `applied_at` goes into the ledger's applied column. Returns
/// the versions applied now, in order.
///
/// # Errors
/// [`MigrateError::SchemaTooNew`] for a database written by a newer release (nothing changed);
/// [`MigrateError::Sqlite`] if a statement fails (everything rolled back).
pub fn migrate(
    conn: &mut Connection,
    schema: &Schema,
    applied_at: i64,
) -> Result<Vec<i64>, MigrateError> {
    let ledger = schema.ledger;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS {} (
             version INTEGER PRIMARY KEY, {} INTEGER NOT NULL)",
        ledger.table, ledger.applied_column
    ))?;
    let insert = format!(
        "INSERT OR IGNORE INTO {} (version, {}) VALUES (?1, ?2)",
        ledger.table, ledger.applied_column
    );
    let mut current: i64 = tx.query_row(
        &format!("SELECT COALESCE(MAX(version), 0) FROM {}", ledger.table),
        [],
        |r| r.get(0),
    )?;
    if ledger.user_version {
        let counted: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        schema.check(counted)?;
        for (version, _) in schema.migrations.iter().filter(|m| m.0 <= counted) {
            tx.execute(&insert, (version, applied_at))?;
        }
        current = current.max(counted);
    }
    schema.check(current)?;
    let mut applied = Vec::new();
    for (version, sql) in schema.pending(current) {
        tx.execute_batch(sql)?;
        tx.execute(&insert, (version, applied_at))?;
        tracing::info!(schema = schema.name, version, "applied migration");
        applied.push(*version);
    }
    if ledger.user_version && !applied.is_empty() {
        tx.pragma_update(None, "user_version", schema.newest())?;
    }
    tx.commit()?;
    Ok(applied)
}
