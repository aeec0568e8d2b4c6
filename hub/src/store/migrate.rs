//! The hub's SQLite schema: the SQL files in `migrations/hub/sqlite/`, applied by the shared
//! runner (`switchboard_kit::migrate`), once each, in order.

use rusqlite::Connection;
use switchboard_kit::migrate::{Ledger, Schema};

use super::StoreResult;

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
    (
        3,
        include_str!("../../../migrations/hub/sqlite/0003_api_keys.sql"),
    ),
    (
        4,
        include_str!("../../../migrations/hub/sqlite/0004_jobs.sql"),
    ),
    (
        5,
        include_str!("../../../migrations/hub/sqlite/0005_media.sql"),
    ),
];

/// The ledger of both hub stores: `schema_migrations (version, applied_ts)`, `applied_ts` in
/// Unix milliseconds (the table databases migrated before the shared runner already have).
pub(crate) const LEDGER: Ledger = Ledger {
    table: "schema_migrations",
    applied_column: "applied_ts",
    user_version: false,
};

/// The hub's SQLite schema.
pub(crate) const SQLITE_SCHEMA: Schema = Schema {
    name: "hub",
    migrations: SQLITE_MIGRATIONS,
    ledger: LEDGER,
    // Unused on SQLite.
    lock_key: super::postgres::migrate::MIGRATION_LOCK_KEY,
};

/// Brings the schema up to date; `now` (Unix ms) is recorded with each applied version.
///
/// # Errors
/// Refuses a database whose schema is newer than this binary knows (it was written by a newer
/// release, `MigrateError::SchemaTooNew`), so an old node never writes to a schema it does not
/// understand.
pub fn migrate(conn: &mut Connection, now: i64) -> StoreResult<()> {
    switchboard_kit::migrate::sqlite::migrate(conn, &SQLITE_SCHEMA, now)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;

    /// A database migrated by the hub before the shared runner (its own loop, one transaction
    /// per migration, the same ledger) opens without re-running anything.
    #[test]
    fn a_database_migrated_the_old_way_is_accepted_as_is() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = Connection::open(dir.path().join("hub.db")).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (
                 version INTEGER PRIMARY KEY, applied_ts INTEGER NOT NULL)",
        )
        .unwrap();
        for (version, sql) in SQLITE_MIGRATIONS {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_ts) VALUES (?1, 7)",
                [version],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO rooms (id, name, public, kind, created_by, created_ts, last_ts, last_seq)
             VALUES ('r', 'r', 1, 'group', 'u', 1, 1, 0)",
        )
        .unwrap();
        let applied = switchboard_kit::migrate::sqlite::migrate(&mut conn, &SQLITE_SCHEMA, 9)
            .expect("accepted");
        assert_eq!(applied, Vec::<i64>::new(), "nothing re-run");
        let rooms: i64 = conn
            .query_row("SELECT count(*) FROM rooms", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rooms, 1);
        let stamps: Vec<i64> = conn
            .prepare("SELECT applied_ts FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            stamps,
            vec![7; SQLITE_MIGRATIONS.len()],
            "the old rows are kept"
        );
    }
}
