//! [`Identicons`]: the generated avatars, made on demand and kept in a small in-process cache
//! of their own.
//!
//! `GET /v1/identicons/{user_id}` answers anyone, for any well-formed id, so an anonymous
//! client can ask for as many different ones as it likes. Hence:
//! - **Never in the shared hot cache.** Identicons are kept in [`CACHE_BYTES`] of process
//!   memory, apart from avatars and emoticons: a flood of made-up ids evicts only other
//!   identicons, and writes nothing to Redis (whose memory every node shares).
//! - **Made on the blocking pool, [`AT_ONCE`] at a time per hub.** A 256 px identicon takes
//!   about 0.2 ms of CPU; a flood of misses keeps at most one core busy and never blocks the
//!   async workers that carry the WebSockets. Callers wait for their turn (their number is
//!   bounded by the HTTP connection limit).

use std::sync::Arc;

use bytes::Bytes;
use switchboard_media::{images, Hash, HotCache, MemoryCache};
use tokio::sync::Semaphore;

/// Bytes of identicons kept per hub (a 64 px one is about 0.4 KiB, a 256 px one 1.7 KiB).
pub const CACHE_BYTES: usize = 4 * 1024 * 1024;
/// Identicons made at once per hub.
pub const AT_ONCE: usize = 1;

/// The identicons of one hub (see the module docs).
#[derive(Debug, Clone)]
pub struct Identicons {
    cache: Arc<MemoryCache>,
    turns: Arc<Semaphore>,
}

impl Default for Identicons {
    fn default() -> Self {
        Self::with_cache_bytes(CACHE_BYTES)
    }
}

impl Identicons {
    fn with_cache_bytes(bytes: usize) -> Self {
        Self {
            cache: Arc::new(MemoryCache::new(bytes, bytes)),
            turns: Arc::new(Semaphore::new(AT_ONCE)),
        }
    }

    /// The PNG identicon of `user_id` at `size` px: from the cache, else made (and cached).
    /// `None` only when the hub is shutting down.
    pub async fn get(&self, user_id: &str, size: u32) -> Option<Bytes> {
        let key = key(user_id, size);
        if let Some(bytes) = self.cache.get(&key).await {
            return Some(bytes);
        }
        let _turn = self.turns.acquire().await.ok()?;
        // Another caller may have made it while this one waited.
        if let Some(bytes) = self.cache.get(&key).await {
            return Some(bytes);
        }
        let seed = user_id.to_owned();
        let bytes = tokio::task::spawn_blocking(move || images::identicon(&seed, size))
            .await
            .ok()?;
        let bytes = Bytes::from(bytes);
        self.cache.put(&key, bytes.clone()).await;
        Some(bytes)
    }

    /// Identicons cached now, and their bytes.
    #[cfg(test)]
    fn cached(&self) -> (usize, usize) {
        (self.cache.len(), self.cache.bytes())
    }
}

/// The cache key of an identicon: `Hash::of` a domain-separated
/// `"switchboard identicon v1\0{user_id}\0{size}"` (not a content hash; the cache is its own).
fn key(user_id: &str, size: u32) -> Hash {
    Hash::of(format!("switchboard identicon v1\0{user_id}\0{size}").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_identicon_is_made_once_and_then_served_from_the_cache() {
        let identicons = Identicons::default();
        let first = identicons.get("u1", 64).await.unwrap();
        assert_eq!(first, Bytes::from(images::identicon("u1", 64)));
        assert_eq!(identicons.cached().0, 1);
        let again = identicons.get("u1", 64).await.unwrap();
        assert_eq!(
            again.as_ptr(),
            first.as_ptr(),
            "the cached bytes, not new ones"
        );
        identicons.get("u1", 256).await.unwrap();
        assert_eq!(identicons.cached().0, 2, "each size is its own entry");
    }

    #[test]
    fn keys_differ_by_id_and_size_and_from_the_bytes() {
        let k = key("u1", 64);
        assert_ne!(k, key("u1", 256));
        assert_ne!(k, key("u2", 64));
        assert_ne!(k, Hash::of(&images::identicon("u1", 64)));
    }

    /// A flood of made-up ids keeps the cache within its bytes, the newest kept.
    #[tokio::test]
    async fn many_ids_stay_within_the_cache_bytes() {
        const BYTES: usize = 8 * 1024;
        let identicons = Identicons::with_cache_bytes(BYTES);
        for n in 0..100 {
            identicons.get(&format!("flood-{n}"), 64).await.unwrap();
        }
        let (count, bytes) = identicons.cached();
        assert!(bytes <= BYTES, "{bytes} bytes cached");
        assert!(count > 5 && count < 100, "{count} cached: some, not all");
        assert!(identicons.cache.get(&key("flood-99", 64)).await.is_some());
        assert!(identicons.cache.get(&key("flood-0", 64)).await.is_none());
    }
}
