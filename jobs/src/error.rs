//! [`JobError`]: a storage failure of the queue.

/// A storage failure of the queue. Expected outcomes (nothing to claim, a lost lease, retrying a
/// job that is not dead) are values, not errors.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// SQLite failed.
    #[error("sqlite")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL failed.
    #[error("postgres")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had within the pool's timeouts.
    #[error("postgres connection pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The blocking task running a SQLite query panicked.
    #[error("database task failed")]
    Task(#[from] tokio::task::JoinError),
    /// A stored value does not fit its type (a state this release does not know, a negative
    /// count, a payload that is not JSON).
    #[error("corrupt value in column {column}")]
    Corrupt {
        /// The column.
        column: &'static str,
    },
}

impl JobError {
    /// Whether the database is unreachable right now rather than the data being at fault (the
    /// caller may retry; HTTP answers 503 `unavailable`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Postgres(e) => e.is_closed(),
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            _ => false,
        }
    }
}
