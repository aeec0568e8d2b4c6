//! Media: avatars, custom emoticons and attachments, on one blob store and one hot cache.
//!
//! - [`index`]: the [`MediaIndex`](index::MediaIndex) seam (who refers to which blob), on
//!   SQLite and PostgreSQL.
//! - [`serve`]: blob responses with the caching rules (immutable content-addressed URLs,
//!   strong ETags, 304, ranges, `nosniff`, a `sandbox` CSP).
//! - [`public`]: the hashes recently found public, remembered for a minute.
//! - [`gc`]: the sweep that removes blobs nothing refers to, after a grace period.
//! - [`flags`]: the `--media-*` and `--max-attachment-bytes` flags.
//!
//! **Configurations.** Embedded: blobs are files under `<data-dir>/media`, the index is in
//! `hub.db`, the hot cache an in-process LRU bounded by `--media-cache-bytes`. With
//! `--database-url`: blobs and index in the hub's PostgreSQL database (every node reads
//! them), on a pool of their own (`--media-pool-size`). With `--redis-url`: the hot cache is
//! in Redis, shared by the nodes.
//!
//! **Invariants.**
//! - Blobs are immutable and named by their content, so every URL that names a hash may be
//!   cached forever, and a change (a new avatar) is a new URL.
//! - Only avatars and emoticons are served by hash alone (`GET /v1/media/{hash}`); an
//!   attachment (and its thumbnail) only through its room, to whoever may read the room.
//! - Only small images (avatars, emoticons, thumbnails) go through the hot cache; attachments
//!   stream from the blob store.

pub mod attachments;
pub mod flags;
pub mod gc;
pub mod identicons;
pub mod index;
pub mod public;
pub mod serve;
pub mod slots;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use switchboard_media::{
    BlobStore, CachedBlobs, FsBlobStore, HotCache, MemoryCache, PgBlobStore, RedisCache,
    RedisCacheConfig, DEFAULT_MAX_ITEM_BYTES,
};

use crate::config::Config;
use index::MediaIndex;

pub use attachments::attachment_info;

/// The media of a hub: its blob store (through the hot cache) and its index.
#[derive(Clone)]
pub struct Media {
    /// The blob store read through the hot cache; `blobs.store()` is the store itself.
    pub blobs: CachedBlobs,
    /// Who refers to which blob.
    pub index: Arc<dyn MediaIndex>,
    /// `--max-attachment-bytes`.
    pub max_attachment_bytes: u64,
    /// `--upload-bytes-per-day` (0: no limit).
    pub upload_bytes_per_day: u64,
    /// The bounds on image uploads and decodes (avatars).
    pub slots: Arc<slots::ImageSlots>,
    /// Hashes recently found public (`GET /v1/media/{hash}` asks the database only on a miss).
    pub public: Arc<public::PublicHashes>,
    /// Where uploads are spooled (`<data-dir>/uploads`, see [`attachments::Spool`]).
    pub data_dir: PathBuf,
    /// The generated avatars (a cache of their own, see [`identicons`]).
    pub identicons: identicons::Identicons,
    /// Bounds the thumbnails decoded at once ([`attachments::THUMBNAIL_JOBS`]).
    pub thumbnails: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Media {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Media").finish_non_exhaustive()
    }
}

impl Media {
    /// Opens the configured media (see the module docs), after the store has migrated the
    /// database (`hub_db` is the SQLite file of the embedded configuration).
    ///
    /// # Errors
    /// The media directory cannot be made, the database or the Redis URL is malformed.
    pub async fn open(cfg: &Config, hub_db: &Path) -> anyhow::Result<Self> {
        let flags = &cfg.media;
        let timeout = Duration::from_millis(cfg.db_timeout_ms);
        let (store, index): (Arc<dyn BlobStore>, Arc<dyn MediaIndex>) = match &cfg.database_url {
            Some(url) => {
                let pool = crate::store::postgres::pool(
                    url,
                    flags.media_pool_size,
                    timeout,
                    "switchboard-hub-media",
                )
                .context("the media's PostgreSQL pool")?;
                (
                    Arc::new(PgBlobStore::new(pool.clone(), "public")),
                    Arc::new(index::postgres::PgMedia::new(pool)),
                )
            }
            None => {
                let dir = cfg.data_dir.join("media");
                let store = FsBlobStore::open(&dir)
                    .await
                    .with_context(|| format!("opening the media directory {}", dir.display()))?;
                let index = index::sqlite::SqliteMedia::open(hub_db)
                    .await
                    .context("opening the media index")?;
                (Arc::new(store), Arc::new(index))
            }
        };
        let cache: Arc<dyn HotCache> = match (&cfg.redis_url, flags.media_cache_bytes) {
            // No hot cache: every read goes to the blob store.
            (_, 0) => Arc::new(MemoryCache::new(0, 0)),
            (Some(url), _) => Arc::new(
                RedisCache::new(
                    url,
                    RedisCacheConfig {
                        prefix: format!("{}media:", cfg.redis_prefix),
                        ttl: Duration::from_secs(flags.media_cache_ttl_secs.max(1)),
                        max_item_bytes: DEFAULT_MAX_ITEM_BYTES,
                        timeout,
                    },
                )
                .context("the media cache's Redis URL")?,
            ),
            (None, _) => Arc::new(MemoryCache::new(
                flags.media_cache_bytes,
                DEFAULT_MAX_ITEM_BYTES.min(flags.media_cache_bytes),
            )),
        };
        attachments::Spool::clear_dir(&cfg.data_dir)
            .await
            .context("preparing the uploads directory")?;
        Ok(Self {
            blobs: CachedBlobs::new(store, cache),
            index,
            max_attachment_bytes: flags.max_attachment_bytes,
            upload_bytes_per_day: flags.upload_bytes_per_day,
            slots: Arc::default(),
            public: Arc::default(),
            data_dir: cfg.data_dir.clone(),
            identicons: identicons::Identicons::default(),
            thumbnails: Arc::new(tokio::sync::Semaphore::new(attachments::THUMBNAIL_JOBS)),
        })
    }

    /// The blob store itself (puts, streamed reads of attachments).
    pub fn store(&self) -> &Arc<dyn BlobStore> {
        self.blobs.store()
    }
}
