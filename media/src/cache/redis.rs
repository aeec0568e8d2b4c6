//! [`RedisCache`]: the hot cache in Redis, shared by every node.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use super::{HotCache, DEFAULT_MAX_ITEM_BYTES};
use crate::{Hash, MediaError};

/// The settings of a [`RedisCache`].
#[derive(Debug, Clone)]
pub struct RedisCacheConfig {
    /// Prefix of every key (`sb:media:`); keys are `<prefix><hash hex>`.
    pub prefix: String,
    /// Lifetime of an entry, renewed on each hit (`GETEX`): what bounds the cache's memory in
    /// Redis when the operator sets no `maxmemory` (with one, Redis evicts too).
    pub ttl: Duration,
    /// Values above this are not cached.
    pub max_item_bytes: usize,
    /// How long a command may take before it counts as a miss (a hanging Redis must not hang
    /// the request).
    pub timeout: Duration,
}

impl Default for RedisCacheConfig {
    fn default() -> Self {
        Self {
            prefix: "sb:media:".into(),
            ttl: Duration::from_secs(24 * 3600),
            max_item_bytes: DEFAULT_MAX_ITEM_BYTES,
            timeout: Duration::from_millis(250),
        }
    }
}

/// The hot cache in Redis: `SET key value EX ttl`, `GETEX key EX ttl`. Every Redis error or
/// timeout is a miss (logged at debug level), never a failure; the connection manager
/// reconnects in the background.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    config: RedisCacheConfig,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// A cache on Redis at `url`. Connects lazily: a Redis that is down at start-up only
    /// makes misses until it is up.
    ///
    /// # Errors
    /// [`MediaError::Redis`] for a malformed URL.
    pub fn new(url: &str, config: RedisCacheConfig) -> Result<Self, MediaError> {
        let client = redis::Client::open(url)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_lazy_with_config(client, manager_config)?;
        Ok(Self { conn, config })
    }

    fn key(&self, hash: &Hash) -> String {
        format!("{}{}", self.config.prefix, hash.to_hex())
    }

    fn ttl_secs(&self) -> u64 {
        self.config.ttl.as_secs().max(1)
    }

    /// Runs `cmd` within the timeout; any failure is `None`.
    async fn run<T: redis::FromRedisValue>(&self, cmd: redis::Cmd) -> Option<T> {
        let mut conn = self.conn.clone();
        match tokio::time::timeout(self.config.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(Ok(value)) => Some(value),
            Ok(Err(err)) => {
                tracing::debug!(%err, "media cache: Redis failed, a miss");
                None
            }
            Err(_) => {
                tracing::debug!("media cache: Redis timed out, a miss");
                None
            }
        }
    }
}

#[async_trait]
impl HotCache for RedisCache {
    fn max_item_bytes(&self) -> usize {
        self.config.max_item_bytes
    }

    async fn get(&self, hash: &Hash) -> Option<Bytes> {
        let mut cmd = redis::cmd("GETEX");
        cmd.arg(self.key(hash)).arg("EX").arg(self.ttl_secs());
        let value: Option<Vec<u8>> = self.run(cmd).await.flatten();
        value.map(Bytes::from)
    }

    async fn put(&self, hash: &Hash, value: Bytes) {
        if value.len() > self.config.max_item_bytes {
            return;
        }
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(hash))
            .arg(&value[..])
            .arg("EX")
            .arg(self.ttl_secs());
        let _: Option<()> = self.run(cmd).await;
    }
}
