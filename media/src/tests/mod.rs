//! The contract suites: [`store`] stamps every [`BlobStore`](crate::BlobStore) check for
//! [`FsBlobStore`](crate::FsBlobStore) and [`PgBlobStore`](crate::PgBlobStore); [`cache`]
//! every [`HotCache`](crate::HotCache) check for [`MemoryCache`](crate::MemoryCache) and
//! [`RedisCache`](crate::RedisCache). Real PostgreSQL and Redis, through
//! `switchboard-testkit`; times are set on a manual clock, never waited for.

mod cache;
mod store;

use bytes::Bytes;

/// `len` bytes of a pattern that differs per `seed` (and is not periodic on chunk
/// boundaries).
pub(crate) fn bytes(seed: u8, len: usize) -> Bytes {
    (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect::<Vec<u8>>()
        .into()
}

/// A deadpool pool on `url`.
pub(crate) fn pg_pool(url: &str) -> deadpool_postgres::Pool {
    let cfg = deadpool_postgres::Config {
        url: Some(url.to_owned()),
        ..deadpool_postgres::Config::default()
    };
    cfg.create_pool(
        Some(deadpool_postgres::Runtime::Tokio1),
        tokio_postgres::NoTls,
    )
    .unwrap()
}
