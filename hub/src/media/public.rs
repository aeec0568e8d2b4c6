//! Which hashes are public media (an avatar's or an emoticon's), remembered for a short while
//! so that serving a popular avatar does not ask the database on every request.
//!
//! Only positive answers are kept (a hash that is not public is asked again next time, so a
//! new avatar is served at once), at most [`CAPACITY`] of them (least recently used first out),
//! each for [`TTL`]. A removed avatar or emoticon may therefore still be served by its hash on
//! a node that served it recently, for at most [`TTL`]: its bytes were public and never change,
//! and the garbage collector only deletes the file after its grace period.

use std::sync::Mutex;
use std::time::Duration;

use hashlink::LruCache;
use switchboard_media::Hash;
use tokio::time::Instant;

use super::index::MediaIndex;
use crate::store::StoreResult;

/// Public hashes remembered (32 bytes + an instant + the map's overhead each: about 100 KiB
/// when full).
pub const CAPACITY: usize = 1024;
/// How long a positive answer is believed.
pub const TTL: Duration = Duration::from_secs(60);

/// The remembered public hashes of a node.
#[derive(Debug)]
pub struct PublicHashes {
    seen: Mutex<LruCache<Hash, Instant>>,
}

impl Default for PublicHashes {
    fn default() -> Self {
        Self {
            seen: Mutex::new(LruCache::new(CAPACITY)),
        }
    }
}

impl PublicHashes {
    /// Whether `hash` is an avatar's or an emoticon's: remembered, or asked of `index`.
    ///
    /// # Errors
    /// The index's, when it has to be asked.
    pub async fn is_public(&self, index: &dyn MediaIndex, hash: &Hash) -> StoreResult<bool> {
        let now = Instant::now();
        {
            let mut seen = self.lock();
            match seen.get(hash) {
                Some(at) if now.duration_since(*at) < TTL => return Ok(true),
                Some(_) => {
                    seen.remove(hash);
                }
                None => {}
            }
        }
        let public = index.is_public(hash).await?;
        if public {
            self.lock().insert(*hash, now);
        }
        Ok(public)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<Hash, Instant>> {
        // A panic under the lock leaves at worst a stale entry, which the TTL ends.
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::index::Emoticon;
    use crate::store::contract::Harness;

    /// Positive answers are remembered for the TTL, negative ones never.
    #[tokio::test(flavor = "current_thread", start_paused = true)]
    async fn positive_answers_are_remembered_for_the_ttl() {
        let h = Harness::sqlite().await;
        let index = h.media().await;
        let public = PublicHashes::default();
        let hash = Hash::of(b"an emoticon");
        assert!(!public.is_public(&*index, &hash).await.unwrap());
        let emoticon = Emoticon {
            shortcode: "ok".into(),
            hash,
            created_by: "root".into(),
            created_ts: 1,
        };
        index.add_emoticon(&emoticon, 10).await.unwrap();
        assert!(
            public.is_public(&*index, &hash).await.unwrap(),
            "a new one is public at once"
        );
        index.remove_emoticon("ok").await.unwrap();
        assert!(
            public.is_public(&*index, &hash).await.unwrap(),
            "remembered within the TTL"
        );
        tokio::time::advance(TTL).await;
        assert!(
            !public.is_public(&*index, &hash).await.unwrap(),
            "asked again"
        );
    }
}
