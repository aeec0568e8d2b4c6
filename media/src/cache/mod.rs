//! The [`HotCache`] seam: small immutable byte values (avatars, emoticons, thumbnails) keyed
//! by their content hash, bounded in bytes; [`MemoryCache`] (embedded) and [`RedisCache`]
//! (scaled out); [`CachedBlobs`], a blob store read through a cache.

mod cached;
mod memory;
mod redis;

use async_trait::async_trait;
use bytes::Bytes;

use crate::Hash;

pub use self::redis::{RedisCache, RedisCacheConfig};
pub use cached::CachedBlobs;
pub use memory::MemoryCache;

/// The default largest value a cache keeps (512 KiB): avatars, emoticons and thumbnails fit;
/// attachments are served from the blob store.
pub const DEFAULT_MAX_ITEM_BYTES: usize = 512 * 1024;

/// A cache of immutable values keyed by the SHA-256 of their bytes.
///
/// Invariants:
/// - **No invalidation.** A key's value never changes (it is named by its content), so a hit
///   is always correct and nothing is ever invalidated; entries only leave to make room (or
///   expire, in Redis).
/// - **Bounded.** Values above [`max_item_bytes`](Self::max_item_bytes) are never stored, and
///   the whole cache is bounded in bytes (in process) or by a TTL and the operator's
///   `maxmemory` (Redis).
/// - **Never a failure.** A cache that cannot answer (Redis down or hanging) answers a miss and
///   drops puts: the request goes on from the blob store.
#[async_trait]
pub trait HotCache: Send + Sync {
    /// The largest value this cache keeps, in bytes.
    fn max_item_bytes(&self) -> usize;

    /// The value of `hash`, if cached.
    async fn get(&self, hash: &Hash) -> Option<Bytes>;

    /// Caches `value` as the bytes of `hash` (the caller vouches that they match), unless it is
    /// larger than [`max_item_bytes`](Self::max_item_bytes).
    async fn put(&self, hash: &Hash, value: Bytes);
}
