//! The [`HotCache`] contract, stamped for [`MemoryCache`] and [`RedisCache`] by
//! [`cache_tests!`], then what only one of them does (the LRU byte bound; the TTL and a Redis
//! that is down or hanging).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchboard_testkit::services::REDIS_URL;
use switchboard_testkit::{PrivateRedis, RedisPrefix};

use super::bytes;
use crate::{
    BlobStore, CachedBlobs, FsBlobStore, Hash, HotCache, MemoryCache, RedisCache, RedisCacheConfig,
};

/// The item bound of the caches under test.
const MAX_ITEM: usize = 1_000;

/// A cache on fresh storage (an empty cache, or a fresh Redis prefix), and a way to make
/// another one that must not see its entries.
pub(crate) struct Fixture {
    pub cache: Arc<dyn HotCache>,
    /// The Redis prefix (its keys are deleted at the end); `None` for the memory cache.
    prefix: Option<RedisPrefix>,
}

impl Fixture {
    fn memory() -> Self {
        Self {
            cache: Arc::new(MemoryCache::new(1 << 20, MAX_ITEM)),
            prefix: None,
        }
    }

    fn redis() -> Self {
        let prefix = RedisPrefix::new();
        Self {
            cache: Arc::new(redis_cache(REDIS_URL, &prefix.0)),
            prefix: Some(prefix),
        }
    }

    /// A cache that shares nothing with this one: another process's memory, or another
    /// prefix on the same Redis.
    fn another(&self) -> (Arc<dyn HotCache>, Option<RedisPrefix>) {
        match &self.prefix {
            None => (Arc::new(MemoryCache::new(1 << 20, MAX_ITEM)), None),
            Some(_) => {
                let prefix = RedisPrefix::new();
                (Arc::new(redis_cache(REDIS_URL, &prefix.0)), Some(prefix))
            }
        }
    }
}

fn redis_cache(url: &str, prefix: &str) -> RedisCache {
    RedisCache::new(
        url,
        RedisCacheConfig {
            prefix: prefix.to_owned(),
            ttl: Duration::from_secs(60),
            max_item_bytes: MAX_ITEM,
            ..RedisCacheConfig::default()
        },
    )
    .unwrap()
}

/// For each listed `async fn name(f: Fixture)`, a module `name` with the tests `memory` and
/// `redis`.
macro_rules! cache_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn memory() {
                super::$name(super::Fixture::memory()).await;
            }

            #[tokio::test]
            async fn redis() {
                super::$name(super::Fixture::redis()).await;
            }
        }
    )*};
}

cache_tests!(
    a_miss_then_a_hit,
    values_over_the_item_bound_are_not_cached,
    caches_do_not_share_entries,
    cached_blobs_fill_the_cache_on_a_miss,
    cached_blobs_stream_large_blobs_past_the_cache,
    cached_blobs_serve_ranges_from_the_cache_or_the_store,
);

async fn a_miss_then_a_hit(f: Fixture) {
    let value = bytes(1, 700);
    let hash = Hash::of(&value);
    assert_eq!(f.cache.get(&hash).await, None);
    f.cache.put(&hash, value.clone()).await;
    assert_eq!(f.cache.get(&hash).await, Some(value.clone()));
    // Again (a put of the same key changes nothing).
    f.cache.put(&hash, value.clone()).await;
    assert_eq!(f.cache.get(&hash).await, Some(value));
    // An empty value is a value, not a miss.
    let empty = Hash::of(b"");
    f.cache.put(&empty, Bytes::new()).await;
    assert_eq!(f.cache.get(&empty).await, Some(Bytes::new()));
}

async fn values_over_the_item_bound_are_not_cached(f: Fixture) {
    assert_eq!(f.cache.max_item_bytes(), MAX_ITEM);
    let over = bytes(2, MAX_ITEM + 1);
    f.cache.put(&Hash::of(&over), over.clone()).await;
    assert_eq!(f.cache.get(&Hash::of(&over)).await, None);
    let at = bytes(3, MAX_ITEM);
    f.cache.put(&Hash::of(&at), at.clone()).await;
    assert_eq!(f.cache.get(&Hash::of(&at)).await, Some(at));
}

async fn caches_do_not_share_entries(f: Fixture) {
    let (other, _prefix) = f.another();
    let value = bytes(4, 10);
    let hash = Hash::of(&value);
    f.cache.put(&hash, value.clone()).await;
    assert_eq!(other.get(&hash).await, None);
    let other_value = bytes(5, 10);
    other
        .put(&Hash::of(&other_value), other_value.clone())
        .await;
    assert_eq!(f.cache.get(&Hash::of(&other_value)).await, None);
    assert_eq!(f.cache.get(&hash).await, Some(value));
}

async fn cached_blobs_fill_the_cache_on_a_miss(f: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let blobs = CachedBlobs::new(Arc::clone(&store), Arc::clone(&f.cache));
    let value = bytes(6, 900);
    let hash = store.put(value.clone()).await.unwrap().hash;
    assert_eq!(f.cache.get(&hash).await, None);
    let read = blobs.get(&hash).await.unwrap().unwrap();
    assert_eq!((read.size, read.range.clone()), (900, 0..900));
    assert_eq!(read.into_bytes().await.unwrap(), value);
    assert_eq!(
        f.cache.get(&hash).await,
        Some(value.clone()),
        "the miss filled it"
    );
    // Served from the cache now: the store no longer has it.
    store.delete(&hash).await.unwrap();
    let hit = blobs.get(&hash).await.unwrap().unwrap();
    assert_eq!(hit.into_bytes().await.unwrap(), value);
    // Absent everywhere: absent.
    assert!(blobs.get(&Hash::of(b"none")).await.unwrap().is_none());
}

async fn cached_blobs_stream_large_blobs_past_the_cache(f: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let blobs = CachedBlobs::new(Arc::clone(&store), Arc::clone(&f.cache));
    let large = bytes(7, 200 * 1024);
    let hash = store.put(large.clone()).await.unwrap().hash;
    let read = blobs.get(&hash).await.unwrap().unwrap();
    assert_eq!(read.into_bytes().await.unwrap(), large);
    assert_eq!(f.cache.get(&hash).await, None);
}

async fn cached_blobs_serve_ranges_from_the_cache_or_the_store(f: Fixture) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let blobs = CachedBlobs::new(Arc::clone(&store), Arc::clone(&f.cache));
    let value = bytes(8, 900);
    let hash = store.put(value.clone()).await.unwrap().hash;
    // A miss: from the store, and the cache is not filled by a range.
    let miss = blobs.get_range(&hash, 10..20).await.unwrap().unwrap();
    assert_eq!(miss.into_bytes().await.unwrap(), value.slice(10..20));
    assert_eq!(f.cache.get(&hash).await, None);
    // A hit: sliced from the cached value, the same bytes and bounds as the store's.
    blobs.get(&hash).await.unwrap().unwrap();
    store.delete(&hash).await.unwrap();
    for (start, end) in [(0, 10), (450, 460), (890, 900), (900, 900)] {
        let hit = blobs.get_range(&hash, start..end).await.unwrap().unwrap();
        assert_eq!((hit.size, hit.range.clone()), (900, start..end));
        let want = value.slice(start as usize..end as usize);
        assert_eq!(hit.into_bytes().await.unwrap(), want);
    }
    let refused = blobs.get_range(&hash, 0..901).await;
    assert!(
        matches!(refused, Err(crate::MediaError::BadRange { size: 900, .. })),
        "{refused:?}"
    );
}

// The in-process LRU.

#[tokio::test]
async fn the_byte_bound_evicts_the_least_recently_used() {
    let cache = MemoryCache::new(300, 200);
    let [a, b, c, d] = [1, 2, 3, 4].map(|seed| bytes(seed, 100));
    let [ha, hb, hc, hd] = [&a, &b, &c, &d].map(|v| Hash::of(v));
    cache.put(&ha, a.clone()).await;
    cache.put(&hb, b.clone()).await;
    cache.put(&hc, c.clone()).await;
    assert_eq!(cache.bytes(), 300);
    // `a` used: `b` is now the least recently used, and goes first.
    assert!(cache.get(&ha).await.is_some());
    cache.put(&hd, d.clone()).await;
    assert_eq!(cache.get(&hb).await, None);
    assert_eq!(cache.get(&ha).await, Some(a));
    assert_eq!(cache.get(&hc).await, Some(c));
    assert_eq!(cache.get(&hd).await, Some(d));
    assert_eq!((cache.len(), cache.bytes()), (3, 300));
    // One value of 200 bytes pushes out as many as it takes (here: two of 100).
    let big = bytes(5, 200);
    cache.put(&Hash::of(&big), big.clone()).await;
    assert_eq!((cache.len(), cache.bytes()), (2, 300));
    assert_eq!(cache.get(&Hash::of(&big)).await, Some(big));
}

#[tokio::test]
async fn the_item_bound_never_exceeds_the_capacity() {
    let cache = MemoryCache::new(100, 1_000);
    assert_eq!(cache.max_item_bytes(), 100);
    let over = bytes(6, 101);
    cache.put(&Hash::of(&over), over.clone()).await;
    assert!(cache.is_empty());
}

// Redis.

#[tokio::test]
async fn redis_entries_expire_after_the_ttl_renewed_on_each_hit() {
    let prefix = RedisPrefix::new();
    let cache = redis_cache(REDIS_URL, &prefix.0);
    let value = bytes(7, 100);
    let hash = Hash::of(&value);
    cache.put(&hash, value).await;
    let mut conn = switchboard_testkit::services::redis_conn().await;
    let key = format!("{}{}", prefix.0, hash.to_hex());
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((1..=60).contains(&ttl), "TTL {ttl}");
    // A hit renews it.
    let _: () = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(5)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(cache.get(&hash).await.is_some());
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > 5, "TTL {ttl} after a hit");
}

/// Upper bound on a miss from a Redis that is down or hanging: the cache's timeout (250 ms)
/// with room for a busy machine.
const MISS_LIMIT: Duration = Duration::from_secs(3);

#[tokio::test]
async fn a_redis_that_is_down_or_hanging_is_a_miss() {
    let mut server = PrivateRedis::start().await;
    let cache = redis_cache(&server.url(), "media:");
    let value = bytes(8, 100);
    let hash = Hash::of(&value);
    cache.put(&hash, value.clone()).await;
    assert_eq!(cache.get(&hash).await, Some(value.clone()));

    // Hanging: sockets open, nothing answered.
    server.pause();
    let started = Instant::now();
    assert_eq!(cache.get(&hash).await, None);
    cache.put(&hash, value.clone()).await;
    assert!(started.elapsed() < MISS_LIMIT, "{:?}", started.elapsed());
    server.resume();

    // Down: every connection reset, the port closed.
    server.kill();
    let started = Instant::now();
    assert_eq!(cache.get(&hash).await, None);
    cache.put(&hash, value.clone()).await;
    assert_eq!(cache.get(&hash).await, None);
    assert!(started.elapsed() < MISS_LIMIT, "{:?}", started.elapsed());

    // Back (empty, as a restarted cache is): misses, then fills again once the connection
    // manager has reconnected, which no event tells: a bounded poll.
    server.start_again().await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        cache.put(&hash, value.clone()).await;
        if cache.get(&hash).await == Some(value.clone()) {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never reconnected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_redis_down_at_start_up_is_a_miss_and_the_blob_is_served() {
    let server = PrivateRedis::start().await;
    let url = server.url();
    drop(server);
    let cache: Arc<dyn HotCache> = Arc::new(redis_cache(&url, "media:"));
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn BlobStore> = Arc::new(FsBlobStore::open(dir.path()).await.unwrap());
    let value = bytes(9, 100);
    let hash = store.put(value.clone()).await.unwrap().hash;
    let blobs = CachedBlobs::new(store, cache);
    let read = blobs.get(&hash).await.unwrap().unwrap();
    assert_eq!(read.into_bytes().await.unwrap(), value);
}
