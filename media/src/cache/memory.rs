//! [`MemoryCache`]: an in-process LRU bounded by the total bytes of its values.

use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;
use hashlink::LinkedHashMap;

use super::HotCache;
use crate::Hash;

/// An in-process cache, least recently used out first, holding at most `capacity_bytes` of
/// values (plus a fixed ~100 bytes of bookkeeping per entry, not counted). A `get` hit makes an
/// entry the most recently used.
#[derive(Debug)]
pub struct MemoryCache {
    capacity_bytes: usize,
    max_item_bytes: usize,
    /// Least recently used at the front. A std mutex: no await while it is held, and every
    /// operation under it is O(1).
    inner: Mutex<Lru>,
}

#[derive(Debug, Default)]
struct Lru {
    entries: LinkedHashMap<Hash, Bytes>,
    bytes: usize,
}

impl MemoryCache {
    /// A cache of at most `capacity_bytes` of values, none above `max_item_bytes` (values
    /// above `capacity_bytes` are never kept either).
    pub fn new(capacity_bytes: usize, max_item_bytes: usize) -> Self {
        Self {
            capacity_bytes,
            max_item_bytes: max_item_bytes.min(capacity_bytes),
            inner: Mutex::new(Lru::default()),
        }
    }

    /// The bytes of values held now.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// The number of entries held now.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        // A panic under the lock cannot leave the map inconsistent with `bytes` for long enough
        // to matter: a cache may always be wrong towards a miss.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl HotCache for MemoryCache {
    fn max_item_bytes(&self) -> usize {
        self.max_item_bytes
    }

    async fn get(&self, hash: &Hash) -> Option<Bytes> {
        let mut lru = self.lock();
        lru.entries.to_back(hash).cloned()
    }

    async fn put(&self, hash: &Hash, value: Bytes) {
        if value.len() > self.max_item_bytes {
            return;
        }
        let mut lru = self.lock();
        if lru.entries.to_back(hash).is_some() {
            return; // the same bytes, by content addressing
        }
        lru.bytes += value.len();
        lru.entries.insert(*hash, value);
        while lru.bytes > self.capacity_bytes {
            let Some((_, evicted)) = lru.entries.pop_front() else {
                break;
            };
            lru.bytes -= evicted.len();
        }
    }
}
