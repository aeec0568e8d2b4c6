//! One migration runner for SQLite ([`sqlite::migrate`]) and PostgreSQL
//! ([`postgres::migrate`]), used by the hub's stores and the auth stores.
//!
//! A [`Schema`] lists its migrations as `(version, SQL)` pairs and names its **ledger**, the table
//! that records each applied version. The runner, in one transaction:
//! 1. (PostgreSQL) takes the schema's advisory lock, so that nodes starting together on one
//!    database migrate one at a time and the later ones find the work done;
//! 2. creates the ledger if it is missing;
//! 3. refuses a database that records a version newer than the binary's newest
//!    ([`MigrateError::SchemaTooNew`]): it was written by a newer release, and an old binary must
//!    never write to a schema it does not understand;
//! 4. applies each migration newer than the newest recorded one, in order, recording it.
//!
//! **Invariants:** a migration runs at most once per database, atomically with its ledger row; a
//! failed migration leaves the database as it was (the whole transaction rolls back); versions
//! are strictly ascending and never reused.
//!
//! Ledgers keep the tables (and column names) that databases migrated before this runner already
//! have, so those databases open without re-running anything: the hub's `schema_migrations`
//! (`applied_ts`), auth's `auth.schema_migrations` (`applied_at`), and auth's SQLite file, whose
//! versions were counted by `PRAGMA user_version` ([`Ledger::user_version`]).

#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;
#[cfg(test)]
mod tests;

/// What one component's database looks like, for the runner.
#[derive(Debug, Clone, Copy)]
pub struct Schema {
    /// Names the schema in logs (`"hub"`, `"auth"`).
    pub name: &'static str,
    /// `(version, SQL)`, in strictly ascending version order; the SQL may hold several
    /// statements.
    pub migrations: &'static [(i64, &'static str)],
    /// Where applied versions are recorded.
    pub ledger: Ledger,
    /// PostgreSQL: key of the transaction-level advisory lock held while migrating. Each schema
    /// that can share a database with another has its own key, so that they do not wait on each
    /// other. Unused on SQLite, where the write transaction itself serialises.
    pub lock_key: i64,
}

/// The table that records applied versions: `(version, <applied_column>)`, one row per version.
#[derive(Debug, Clone, Copy)]
pub struct Ledger {
    /// The table. On PostgreSQL, a schema-qualified name (`auth.schema_migrations`) has its
    /// schema created first.
    pub table: &'static str,
    /// The column recording when each version was applied; its value is the caller's
    /// `applied_at` (each schema keeps the unit it always had).
    pub applied_column: &'static str,
    /// SQLite: versions used to be counted by `PRAGMA user_version` (auth's file before this
    /// runner). When set, the runner counts that pragma as applied versions too (adopting them
    /// into the table without running them), and keeps it equal to the newest applied version,
    /// so that releases from before the ledger still refuse a schema newer than theirs.
    pub user_version: bool,
}

impl Schema {
    /// The newest version this binary knows (0 for none).
    pub fn newest(&self) -> i64 {
        self.migrations.last().map_or(0, |m| m.0)
    }

    /// Checks the listed versions ascend, and refuses a database whose newest `found` version
    /// this binary does not know.
    fn check(&self, found: i64) -> Result<(), MigrateError> {
        assert!(
            self.migrations.windows(2).all(|w| w[0].0 < w[1].0),
            "{} migrations must have strictly ascending versions",
            self.name
        );
        let known = self.newest();
        if found > known {
            return Err(MigrateError::SchemaTooNew { found, known });
        }
        Ok(())
    }

    /// The migrations newer than `current`, in order.
    fn pending(&self, current: i64) -> impl Iterator<Item = &'static (i64, &'static str)> {
        self.migrations.iter().filter(move |m| m.0 > current)
    }
}

/// Why migrating failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The database records a migration this binary does not know: it was migrated by a newer
    /// release. Nothing was changed.
    #[error("database schema version {found} is newer than this binary's {known}")]
    SchemaTooNew {
        /// The newest version recorded in the database.
        found: i64,
        /// The newest version this binary knows.
        known: i64,
    },
    /// SQLite failed (the transaction was rolled back).
    #[cfg(feature = "sqlite")]
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed, or the connection broke (the transaction was rolled back).
    #[cfg(feature = "postgres")]
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
}

impl MigrateError {
    /// Whether the database was unreachable (the connection broke), rather than the schema or a
    /// migration at fault: trying again later may succeed.
    pub fn is_unavailable(&self) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            Self::Postgres(e) => e.is_closed(),
            _ => false,
        }
    }
}
