//! [`CachedBlobs`]: a blob store read through a hot cache.

use std::ops::Range;
use std::sync::Arc;

use crate::blob::check_range;
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

    /// The hot cache itself (values that are not blobs of the store, e.g. generated
    /// identicons under a derived key).
    pub fn cache(&self) -> &Arc<dyn HotCache> {
        &self.cache
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

    /// Bytes `range` of blob `hash`: sliced from a cached value on a hit, else read from the
    /// store (a range read never fills the cache: the whole value is not at hand).
    ///
    /// # Errors
    /// [`MediaError::BadRange`](crate::MediaError::BadRange) as
    /// [`BlobStore::get_range`]; the store's errors.
    pub async fn get_range(&self, hash: &Hash, range: Range<u64>) -> Result<Option<Blob>> {
        let Some(bytes) = self.cache.get(hash).await else {
            return self.store.get_range(hash, range).await;
        };
        let size = bytes.len() as u64;
        check_range(&range, size)?;
        let slice = bytes.slice(
            usize::try_from(range.start).expect("within a cached value")
                ..usize::try_from(range.end).expect("within a cached value"),
        );
        Ok(Some(Blob {
            size,
            range,
            chunks: Box::pin(futures_util::stream::iter([Ok(slice)])),
        }))
    }
}
