//! The hub's PostgreSQL schema: the SQL files in `migrations/hub/postgres/`, applied by the
//! shared runner (`switchboard_kit::migrate`) under an advisory lock, so that any number of hub
//! nodes can start against one database at the same time.

use deadpool_postgres::Client;
use switchboard_kit::migrate::Schema;

use crate::store::StoreResult;

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
    (
        3,
        include_str!("../../../../migrations/hub/postgres/0003_messages_room_check.sql"),
    ),
    (
        4,
        include_str!("../../../../migrations/hub/postgres/0004_api_keys.sql"),
    ),
    (
        5,
        include_str!("../../../../migrations/hub/postgres/0005_jobs.sql"),
    ),
    (
        6,
        include_str!("../../../../migrations/hub/postgres/0006_media.sql"),
    ),
];

/// The advisory lock that serialises hub migrations across nodes: the ASCII bytes of
/// `"sbhubmig"`. Auth migrations (schema `auth`) use a different key, so a hub and an auth node
/// sharing a database do not wait on each other.
pub const MIGRATION_LOCK_KEY: i64 = 0x7362_6875_626d_6967;

/// The hub's PostgreSQL schema; its ledger is the SQLite store's (`schema_migrations`).
pub(crate) const PG_SCHEMA: Schema = Schema {
    name: "hub",
    migrations: PG_MIGRATIONS,
    ledger: crate::store::migrate::LEDGER,
    lock_key: MIGRATION_LOCK_KEY,
};

/// Brings the schema up to date, in one transaction that holds [`MIGRATION_LOCK_KEY`]: a second
/// node starting at the same time waits, then finds the work done. The transaction lifts the
/// session's `statement_timeout` (see `PgStore::connect`, which bounds the whole call).
///
/// # Errors
/// Refuses a database whose schema is newer than this binary knows (it was written by a newer
/// release, `MigrateError::SchemaTooNew`), so an old node never writes to a schema it does not
/// understand.
pub async fn migrate(client: &mut Client) -> StoreResult<()> {
    let now = crate::service::now_ms();
    switchboard_kit::migrate::postgres::migrate(client, &PG_SCHEMA, now).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use switchboard_testkit::services::TestDatabase;

    use super::*;

    /// Migration 6 holds the blob store's tables exactly as `switchboard-media` defines them
    /// (in schema `public`), so the crate's statements run against the hub's database.
    #[test]
    fn the_blob_tables_are_the_media_crates() {
        let (version, sql) = PG_MIGRATIONS[5];
        assert_eq!(version, 6);
        assert!(sql.starts_with(&switchboard_media::postgres_schema("public")));
    }

    /// A database migrated by the hub before the shared runner (the same ledger, `applied_ts`
    /// from `clock_timestamp()`) opens without re-running anything.
    #[tokio::test]
    async fn a_database_migrated_the_old_way_is_accepted_as_is() {
        let db = TestDatabase::create().await;
        let (mut client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(
                "CREATE TABLE schema_migrations (
                     version BIGINT PRIMARY KEY, applied_ts BIGINT NOT NULL)",
            )
            .await
            .unwrap();
        for (version, sql) in PG_MIGRATIONS {
            client.batch_execute(sql).await.unwrap();
            client
                .execute(
                    "INSERT INTO schema_migrations (version, applied_ts)
                     VALUES ($1, (EXTRACT(EPOCH FROM clock_timestamp()) * 1000)::BIGINT)",
                    &[version],
                )
                .await
                .unwrap();
        }
        let applied = switchboard_kit::migrate::postgres::migrate(&mut client, &PG_SCHEMA, 0)
            .await
            .expect("accepted");
        assert_eq!(applied, Vec::<i64>::new(), "nothing re-run");
        let count: i64 = client
            .query_one("SELECT count(*) FROM schema_migrations", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(count, PG_MIGRATIONS.len() as i64);
    }
}
