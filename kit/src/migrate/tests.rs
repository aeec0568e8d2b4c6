//! The runner on real databases: a temporary SQLite file and a throwaway PostgreSQL database.

use super::*;

/// Two migrations: a table, then a column and a row. Neither is idempotent, so running one twice
/// fails the test.
const STEPS: &[(i64, &str)] = &[
    (1, "CREATE TABLE things (id BIGINT PRIMARY KEY)"),
    (
        2,
        "ALTER TABLE things ADD COLUMN name TEXT; INSERT INTO things (id, name) VALUES (1, 'one')",
    ),
];

const LEDGER: Ledger = Ledger {
    table: "schema_migrations",
    applied_column: "applied_ts",
    user_version: false,
};

const SCHEMA: Schema = Schema {
    name: "test",
    migrations: STEPS,
    ledger: LEDGER,
    lock_key: 0x6b69_7474_6573_7431,
};

/// [`STEPS`] with a second migration that fails.
const BROKEN: &[(i64, &str)] = &[STEPS[0], (2, "ALTER TABLE nowhere ADD COLUMN x TEXT")];

/// [`SCHEMA`] knowing only its first migration: an older release.
const OLDER: Schema = Schema {
    migrations: &[STEPS[0]],
    ..SCHEMA
};

#[cfg(feature = "sqlite")]
mod sqlite {
    use rusqlite::Connection;

    use super::*;
    use crate::migrate::sqlite::migrate;

    fn open() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("test.db")).unwrap();
        (dir, conn)
    }

    fn versions(conn: &Connection, table: &str) -> Vec<i64> {
        conn.prepare(&format!("SELECT version FROM {table} ORDER BY version"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap()
    }

    fn user_version(conn: &Connection) -> i64 {
        conn.pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn applies_each_migration_once_in_order() {
        let (_dir, mut conn) = open();
        assert_eq!(migrate(&mut conn, &OLDER, 5).unwrap(), [1]);
        assert_eq!(migrate(&mut conn, &SCHEMA, 6).unwrap(), [2]);
        assert_eq!(migrate(&mut conn, &SCHEMA, 7).unwrap(), Vec::<i64>::new());
        assert_eq!(versions(&conn, "schema_migrations"), [1, 2]);
        let applied: Vec<i64> = conn
            .prepare("SELECT applied_ts FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(applied, [5, 6]);
        let name: String = conn
            .query_row("SELECT name FROM things WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(name, "one");
    }

    #[test]
    fn a_newer_schema_is_refused_and_left_alone() {
        let (_dir, mut conn) = open();
        migrate(&mut conn, &SCHEMA, 0).unwrap();
        let err = migrate(&mut conn, &OLDER, 0).unwrap_err();
        assert!(
            matches!(err, MigrateError::SchemaTooNew { found: 2, known: 1 }),
            "{err:?}"
        );
        assert!(err.to_string().contains("newer"), "{err}");
        conn.execute("INSERT INTO schema_migrations VALUES (9, 0)", [])
            .unwrap();
        let err = migrate(&mut conn, &SCHEMA, 0).unwrap_err();
        assert!(
            matches!(err, MigrateError::SchemaTooNew { found: 9, known: 2 }),
            "{err:?}"
        );
        assert_eq!(versions(&conn, "schema_migrations"), [1, 2, 9]);
    }

    #[test]
    fn a_failed_migration_changes_nothing() {
        let (_dir, mut conn) = open();
        let broken = Schema {
            migrations: BROKEN,
            ..SCHEMA
        };
        let err = migrate(&mut conn, &broken, 0).unwrap_err();
        assert!(matches!(err, MigrateError::Sqlite(_)), "{err:?}");
        let tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('things', 'schema_migrations')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(tables, 0, "migration 1 and the ledger rolled back with 2");
        assert_eq!(migrate(&mut conn, &SCHEMA, 0).unwrap(), [1, 2]);
    }

    /// A database whose versions were counted by `PRAGMA user_version` (auth's SQLite file
    /// before the ledger) opens without re-running them, and the pragma keeps counting.
    #[test]
    fn user_version_databases_are_adopted() {
        let legacy = Schema {
            ledger: Ledger {
                user_version: true,
                ..LEDGER
            },
            ..SCHEMA
        };
        let (_dir, mut conn) = open();
        conn.execute_batch(STEPS[0].1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        assert_eq!(migrate(&mut conn, &legacy, 3).unwrap(), [2]);
        assert_eq!(versions(&conn, "schema_migrations"), [1, 2]);
        assert_eq!(user_version(&conn), 2);
        assert_eq!(migrate(&mut conn, &legacy, 4).unwrap(), Vec::<i64>::new());

        // Fully migrated the old way: nothing runs.
        let (_dir2, mut conn) = open();
        conn.execute_batch(STEPS[0].1).unwrap();
        conn.execute_batch(STEPS[1].1).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        assert_eq!(migrate(&mut conn, &legacy, 0).unwrap(), Vec::<i64>::new());
        assert_eq!(versions(&conn, "schema_migrations"), [1, 2]);

        // Counted past this binary by a newer release: refused.
        conn.pragma_update(None, "user_version", 7).unwrap();
        let err = migrate(&mut conn, &legacy, 0).unwrap_err();
        assert!(
            matches!(err, MigrateError::SchemaTooNew { found: 7, known: 2 }),
            "{err:?}"
        );
    }
}

#[cfg(feature = "postgres")]
mod postgres {
    use std::time::Duration;

    use switchboard_testkit::services::TestDatabase;
    use tokio_postgres::{Client, NoTls};

    use super::*;
    use crate::migrate::postgres::migrate;

    async fn client(url: &str) -> Client {
        let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
        tokio::spawn(conn);
        client
    }

    async fn versions(client: &Client, table: &str) -> Vec<i64> {
        client
            .query(
                &format!("SELECT version FROM {table} ORDER BY version"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    /// Bounds a wait that must end.
    async fn within<F: std::future::Future>(what: &str, fut: F) -> F::Output {
        tokio::time::timeout(Duration::from_secs(30), fut)
            .await
            .unwrap_or_else(|_| panic!("timed out: {what}"))
    }

    #[tokio::test]
    async fn applies_each_migration_once_into_a_schema_qualified_ledger() {
        let db = TestDatabase::create().await;
        let mut c = client(&db.url).await;
        let schema = Schema {
            ledger: Ledger {
                table: "kit.schema_migrations",
                applied_column: "applied_at",
                user_version: false,
            },
            ..SCHEMA
        };
        let older = Schema {
            migrations: OLDER.migrations,
            ..schema
        };
        assert_eq!(migrate(&mut c, &older, 5).await.unwrap(), [1]);
        assert_eq!(migrate(&mut c, &schema, 6).await.unwrap(), [2]);
        assert_eq!(
            migrate(&mut c, &schema, 7).await.unwrap(),
            Vec::<i64>::new()
        );
        assert_eq!(versions(&c, "kit.schema_migrations").await, [1, 2]);
        let name: String = c
            .query_one("SELECT name FROM things WHERE id = 1", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(name, "one");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_and_left_alone() {
        let db = TestDatabase::create().await;
        let mut c = client(&db.url).await;
        migrate(&mut c, &SCHEMA, 0).await.unwrap();
        let err = migrate(&mut c, &OLDER, 0).await.unwrap_err();
        assert!(
            matches!(err, MigrateError::SchemaTooNew { found: 2, known: 1 }),
            "{err:?}"
        );
        assert!(!err.is_unavailable());
        c.batch_execute("INSERT INTO schema_migrations VALUES (9, 0)")
            .await
            .unwrap();
        let err = migrate(&mut c, &SCHEMA, 0).await.unwrap_err();
        assert!(
            matches!(err, MigrateError::SchemaTooNew { found: 9, known: 2 }),
            "{err:?}"
        );
        assert_eq!(versions(&c, "schema_migrations").await, [1, 2, 9]);
    }

    #[tokio::test]
    async fn a_failed_migration_changes_nothing() {
        let db = TestDatabase::create().await;
        let mut c = client(&db.url).await;
        let broken = Schema {
            migrations: BROKEN,
            ..SCHEMA
        };
        let err = migrate(&mut c, &broken, 0).await.unwrap_err();
        assert!(matches!(err, MigrateError::Postgres(_)), "{err:?}");
        let tables: i64 = c
            .query_one(
                "SELECT count(*) FROM information_schema.tables
                 WHERE table_name IN ('things', 'schema_migrations')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(tables, 0, "migration 1 and the ledger rolled back with 2");
    }

    /// Two tasks migrate one database while a third connection holds the schema's lock: both
    /// wait on the lock (seen in `pg_locks`), and once it is released each migration runs once.
    /// Without the lock both would race to `CREATE TABLE things` and one would fail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_nodes_at_once_wait_for_the_lock_and_migrate_once() {
        let db = TestDatabase::create().await;
        let mut holder = client(&db.url).await;
        let hold = holder.transaction().await.unwrap();
        hold.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA.lock_key])
            .await
            .unwrap();
        let nodes: Vec<_> = (0..2)
            .map(|_| {
                let url = db.url.clone();
                tokio::spawn(async move {
                    let mut c = client(&url).await;
                    migrate(&mut c, &SCHEMA, 0).await
                })
            })
            .collect();
        let observer = client(&db.url).await;
        within("both nodes to wait for the lock", async {
            loop {
                let waiting: i64 = observer
                    .query_one(
                        "SELECT count(*) FROM pg_locks
                         WHERE locktype = 'advisory' AND NOT granted AND database =
                             (SELECT oid FROM pg_database WHERE datname = current_database())",
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                if waiting == 2 {
                    break;
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(
            nodes.iter().all(|n| !n.is_finished()),
            "nobody passed the lock"
        );
        hold.rollback().await.unwrap();
        let mut applied = Vec::new();
        for node in nodes {
            applied.push(within("a node to migrate", node).await.unwrap().unwrap());
        }
        applied.sort();
        assert_eq!(applied, [vec![], vec![1, 2]], "one node did the work");
        assert_eq!(versions(&observer, "schema_migrations").await, [1, 2]);
    }
}
