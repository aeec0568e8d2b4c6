//! [`MediaError`]: every failure of the blob store and of the cache helpers, as variants a
//! caller (the hub's HTTP layer) maps to a status without looking inside.

/// A failure of a [`BlobStore`](crate::BlobStore) operation.
///
/// The first four are the caller's doing (HTTP 413, 404, 400, 416); the others are the
/// storage's, and a request that meets one fails with a 5xx (their `source` is kept for the
/// log).
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// A streamed put went past its `max_bytes` bound (the body was read no further, and nothing
    /// was stored).
    #[error("the body is larger than {max_bytes} bytes")]
    TooLarge {
        /// The bound that was passed.
        max_bytes: u64,
    },
    /// No blob has this hash (a blob deleted while it was being read ends its stream with this).
    #[error("no blob {0}")]
    NotFound(crate::Hash),
    /// A hash that is not 64 lowercase-or-uppercase hex characters.
    #[error("not a SHA-256 hash (64 hex characters)")]
    BadHash,
    /// A range that is not within the blob (`start > end`, or `end > size`).
    #[error("range {start}..{end} is not within the blob's {size} bytes")]
    BadRange {
        /// The range asked for.
        start: u64,
        /// The range asked for.
        end: u64,
        /// The blob's size.
        size: u64,
    },
    /// The body of a streamed put failed (the client's upload broke off); nothing was stored.
    #[error("the body failed: {0}")]
    Body(String),
    /// The filesystem failed.
    #[error("blob file I/O: {0}")]
    Io(#[from] std::io::Error),
    /// PostgreSQL failed.
    #[error("blob database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had from the pool.
    #[error("blob database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// Redis refused the cache's configuration (a malformed URL). Never returned for a
    /// command: a failing Redis is a cache miss.
    #[error("cache Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The stored data is not what its hash or size says (a damaged file or row).
    #[error("blob {0} is damaged: {1}")]
    Corrupt(crate::Hash, String),
}

impl MediaError {
    /// Whether this is the caller's doing (a 4xx), not the storage's.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            Self::TooLarge { .. }
                | Self::NotFound(_)
                | Self::BadHash
                | Self::BadRange { .. }
                | Self::Body(_)
        )
    }
}

/// The result of a media operation.
pub type Result<T, E = MediaError> = std::result::Result<T, E>;
