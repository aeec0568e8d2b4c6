//! `switchboard-media`: where avatars, emoticons and attachments are kept, and the cache
//! that serves the small ones from memory.
//!
//! # Layout
//! - [`Hash`](struct@Hash) (a SHA-256, 64 hex characters) and [`BlobRef`] (hash and size).
//! - [`BlobStore`]: the content-addressed storage seam; [`Blob`], a chunked read.
//!   - [`FsBlobStore`]: files under a directory (the embedded configuration).
//!   - [`PgBlobStore`]: chunked rows in PostgreSQL (scaled out; [`postgres_schema`] is the
//!     SQL of its tables, which the owner copies into its migrations).
//! - [`HotCache`]: a byte-bounded cache of small immutable values keyed by hash.
//!   - [`MemoryCache`]: an in-process LRU bounded in bytes (embedded).
//!   - [`RedisCache`]: Redis with a TTL, shared by the nodes (scaled out).
//!   - [`CachedBlobs`]: a store read through a cache.
//! - [`MediaError`]: every failure, as variants an HTTP layer maps to a status.
//! - [`images`]: avatars and emoticons checked (bytes, type, dimensions) before decoding and
//!   re-encoded as square PNGs; attachments' thumbnails; generated identicons. Pure: no I/O.
//! - [`sniff`]: an attachment's content type from its first bytes (never an active type).
//!
//! # Architecture invariants
//! - Blobs are **immutable and named by their content**: nothing is ever overwritten, and a
//!   cache never needs invalidating. Who refers to a blob (messages, avatars, emoticons) and
//!   when an unreferenced one is removed is the owner's business: this crate only lists old
//!   blobs ([`BlobStore::list_older_than`]) and deletes what it is told to.
//! - **No whole blob in memory** on the streamed paths: uploads are hashed and written as
//!   they arrive, reads are streams of chunks. Only values under the cache's item bound are
//!   ever collected whole.
//! - This crate knows nothing about HTTP, users or rooms.

mod blob;
mod cache;
mod clock;
mod error;
mod fs;
mod hash;
pub mod images;
mod postgres;
pub mod sniff;

pub use blob::{body, Blob, BlobStore, BodyStream, BoxError, ByteStream};
pub use cache::{
    CachedBlobs, HotCache, MemoryCache, RedisCache, RedisCacheConfig, DEFAULT_MAX_ITEM_BYTES,
};
pub use clock::{system_clock, WallClock};
pub use error::{MediaError, Result};
pub use fs::FsBlobStore;
pub use hash::{BlobRef, Hash};
pub use postgres::{postgres_schema, PgBlobStore, CHUNK_BYTES};

#[cfg(test)]
mod tests;
