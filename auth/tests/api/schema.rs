//! Migrations: where the tables go, nodes starting together, and refusing a newer schema.

use switchboard_auth::store::StoreError;
use switchboard_auth::{Auth, AuthError, PgStore, SqliteStore};
use switchboard_kit::migrate::MigrateError;
use switchboard_protocol::ErrorCode;

use crate::support::{within, Backend, Env, Harness, TestDatabase};

#[tokio::test]
async fn postgres_tables_live_in_schema_auth_with_a_migration_record() {
    let h = Harness::new(Backend::Postgres).await;
    let db = h.env.db.as_ref().unwrap().connect().await;
    let tables: Vec<(String, String)> = db
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables
             WHERE table_schema NOT IN ('pg_catalog', 'information_schema')
             ORDER BY 1, 2",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let expected: Vec<(String, String)> = [
        "job_lanes",
        "jobs",
        "password_resets",
        "refresh_tokens",
        "schema_migrations",
        "sessions",
        "users",
        "webhook_endpoints",
    ]
    .map(|t| ("auth".to_owned(), t.to_owned()))
    .into();
    assert_eq!(tables, expected, "nothing outside schema auth");
    let versions: Vec<i64> = db
        .query(
            "SELECT version FROM auth.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn postgres_nodes_starting_together_migrate_once() {
    let db = TestDatabase::create().await;
    let opens = (0..4).map(|_| PgStore::connect(&db.url));
    for store in within("concurrent opens", futures_util::future::join_all(opens)).await {
        store.unwrap();
    }
    let count: i64 = db
        .connect()
        .await
        .query_one("SELECT count(*) FROM auth.schema_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5, "each migration once");
}

#[tokio::test]
async fn postgres_refuses_a_newer_schema() {
    let env = Env::new(Backend::Postgres, false).await;
    let db = env.db.as_ref().unwrap();
    PgStore::connect(&db.url).await.unwrap();
    db.connect()
        .await
        .execute(
            "INSERT INTO auth.schema_migrations (version, applied_at) VALUES (99, 0)",
            &[],
        )
        .await
        .unwrap();
    let err = PgStore::connect(&db.url).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Migration(MigrateError::SchemaTooNew {
                found: 99,
                known: 5
            })
        ),
        "{err:?}"
    );
    let err = Auth::open(env.config()).await.unwrap_err();
    assert!(
        matches!(
            err,
            AuthError::Store(StoreError::Migration(MigrateError::SchemaTooNew { .. }))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn sqlite_refuses_a_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    SqliteStore::open(&path).await.unwrap();
    rusqlite::Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let err = SqliteStore::open(&path).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Migration(MigrateError::SchemaTooNew {
                found: 99,
                known: 6
            })
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn an_unreachable_database_is_unavailable() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let err = PgStore::connect("postgres://postgres@127.0.0.1:1/sb")
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert_eq!(AuthError::Store(err).code(), ErrorCode::Unavailable);
}

/// A file migrated before the shared runner (versions counted by `PRAGMA user_version`, no
/// ledger table) opens without re-running anything (0002 adds a column: a second run would
/// fail), gets the later migrations, and the ledger and the pragma then agree.
#[tokio::test]
async fn sqlite_adopts_a_file_migrated_the_old_way() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("auth.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(include_str!(
            "../../../migrations/auth/sqlite/0001_init.sql"
        ))
        .unwrap();
        conn.execute_batch(include_str!(
            "../../../migrations/auth/sqlite/0002_user_deletion.sql"
        ))
        .unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
    }
    SqliteStore::open(&path).await.expect("accepted as is");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let versions: Vec<i64> = conn
        .prepare("SELECT version FROM schema_migrations ORDER BY version")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    let counted: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(counted, 6);
}

/// A database migrated before the shared runner (its own loop, the same ledger) opens without
/// re-running anything (0001 creates tables: a second run would fail), and gets the later
/// migrations.
#[tokio::test]
async fn postgres_accepts_a_database_migrated_the_old_way() {
    let db = TestDatabase::create().await;
    let client = db.connect().await;
    client
        .batch_execute(
            "CREATE SCHEMA auth;
             CREATE TABLE auth.schema_migrations (
                 version    BIGINT PRIMARY KEY,
                 applied_at BIGINT NOT NULL
             );
             INSERT INTO auth.schema_migrations (version, applied_at) VALUES (1, 7);",
        )
        .await
        .unwrap();
    client
        .batch_execute(include_str!(
            "../../../migrations/auth/postgres/0001_init.sql"
        ))
        .await
        .unwrap();
    PgStore::connect(&db.url).await.expect("accepted as is");
    let rows: Vec<(i64, i64)> = client
        .query(
            "SELECT version, applied_at FROM auth.schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(rows[0], (1, 7), "version 1 kept as it was");
    assert_eq!(
        rows.iter().map(|r| r.0).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
}
