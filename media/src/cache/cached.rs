//! [`CachedBlobs`]: a blob store read through a hot cache.

use std::sync::Arc;

use crate::{Blob, BlobStore, Hash, HotCache, Result};

/// Reads of a [`BlobStore`] served from a [`HotCache`] when they can be: a hit answers from
/// the cache; a miss reads the store and, when the blob is small enough for the cache, fills
/// it. Larger blobs stream from the store untouched (never held whole in memory).
#[derive(Clone)]
pub struct CachedBlobs {
    store: Arc<dyn BlobStore>,
    cache: Arc<dyn HotCache>,
}

impl std::fmt::Debug for CachedBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedBlobs").finish_non_exhaustive()
    }
}

impl CachedBlobs {
    /// `store` read through `cache`.
    pub fn new(store: Arc<dyn BlobStore>, cache: Arc<dyn HotCache>) -> Self {
        Self { store, cache }
    }

    /// The store behind the cache (for puts, ranges, deletes).
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        &self.store
    }

    /// Blob `hash`, from the cache or else from the store (filling the cache if it fits).
    ///
    /// # Errors
    /// The store's errors (the cache never fails).
    pub async fn get(&self, hash: &Hash) -> Result<Option<Blob>> {
        if let Some(bytes) = self.cache.get(hash).await {
            return Ok(Some(Blob::from_bytes(bytes)));
        }
        let Some(blob) = self.store.get(hash).await? else {
            return Ok(None);
        };
        if blob.len() > self.cache.max_item_bytes() as u64 {
            return Ok(Some(blob));
        }
        let bytes = blob.into_bytes().await?;
        self.cache.put(hash, bytes.clone()).await;
        Ok(Some(Blob::from_bytes(bytes)))
    }
}
