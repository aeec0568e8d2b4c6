//! The media flags (`--max-attachment-bytes`, `--media-cache-bytes`, ...).

/// How media is stored, cached and collected.
#[derive(Debug, Clone, clap::Args)]
pub struct MediaFlags {
    /// Largest attachment, in bytes. A larger upload is refused with 413 `too_large` as soon
    /// as its body passes the bound (or at once, from its `Content-Length`).
    #[arg(long, env = "SWITCHBOARD_MAX_ATTACHMENT_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_attachment_bytes: u64,

    /// Attachment bytes one user may upload in 24 hours, counted over every node (from the
    /// store: what the user uploaded in the last 24 hours and is still kept). An upload that
    /// would pass it is refused with 429 `rate_limited` and `Retry-After` (at once from its
    /// `Content-Length`, else as its body passes what is left). 0: no limit.
    #[arg(
        long,
        env = "SWITCHBOARD_UPLOAD_BYTES_PER_DAY",
        default_value_t = 1024 * 1024 * 1024
    )]
    pub upload_bytes_per_day: u64,

    /// Bytes of the in-process hot cache of avatars, emoticons and thumbnails (the embedded
    /// configuration; with `--redis-url` the cache is in Redis, bounded by its TTL and Redis's
    /// `maxmemory`). 0: no hot cache at all, in either configuration (every read goes to the
    /// blob store).
    #[arg(long, env = "SWITCHBOARD_MEDIA_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub media_cache_bytes: usize,

    /// Lifetime of an entry of the Redis hot cache (with `--redis-url`), renewed on each hit,
    /// in seconds.
    #[arg(
        long,
        env = "SWITCHBOARD_MEDIA_CACHE_TTL_SECS",
        default_value_t = 86_400
    )]
    pub media_cache_ttl_secs: u64,

    /// Grace period of the media garbage collector, in seconds: a blob nothing refers to, and
    /// an attachment uploaded but not sent, are removed only once older than this.
    #[arg(long, env = "SWITCHBOARD_MEDIA_GC_GRACE_SECS", default_value_t = 3_600)]
    pub media_gc_grace_secs: u64,

    /// How often the media garbage collector sweeps, in seconds (0: never).
    #[arg(
        long,
        env = "SWITCHBOARD_MEDIA_GC_INTERVAL_SECS",
        default_value_t = 600
    )]
    pub media_gc_interval_secs: u64,

    /// PostgreSQL connections for media (blobs and their index; with `--database-url`): a pool
    /// of its own, so uploads and downloads never hold the message store's connections.
    #[arg(long, env = "SWITCHBOARD_MEDIA_POOL_SIZE", default_value_t = 4)]
    pub media_pool_size: usize,

    /// Most custom emoticons the hub holds: one more upload is refused with 409 `conflict`
    /// (the list every page loads stays small).
    #[arg(long, env = "SWITCHBOARD_MAX_EMOTICONS", default_value_t = 1000)]
    pub max_emoticons: usize,
}
