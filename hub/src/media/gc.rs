//! The media garbage collector: removes what nothing refers to any more, after a grace period.
//!
//! One sweep ([`sweep`]):
//! 1. the index drops the rows of attachments never sent within the grace period, and of
//!    attachments whose message is deleted or gone (retention)
//!    ([`MediaIndex::sweep_attachments`](super::index::MediaIndex::sweep_attachments));
//! 2. it pages through the blobs stored before `now - grace`, in hash order, and deletes each
//!    one no avatar, emoticon or attachment names, with
//!    [`BlobStore::delete_if_older`](switchboard_media::BlobStore::delete_if_older).
//!
//! **Why no upload is lost.** An upload puts its blob (which renews the blob's `created_ts`)
//! before it inserts the row that names it. A sweep that saw no row either deletes the blob
//! before that put (which then stores it anew) or finds it renewed and spares it
//! (`delete_if_older` is atomic with respect to puts). The grace period only has to be
//! longer than an upload takes between its put and its row.
//!
//! Every node sweeps on its own timer (`--media-gc-interval-secs`); the deletes are idempotent,
//! so sweeps that overlap only repeat work. A removed blob may stay in a hot cache until it is
//! evicted or expires; the routes look the hash up in the index first, so it is not served.

use std::time::Duration;

use switchboard_media::{BlobStore, Hash, MediaError};
use switchboard_protocol::Millis;

use super::index::MediaIndex;
use crate::store::StoreError;

/// Blobs listed per page of a sweep.
pub const PAGE: usize = 256;

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The index could not be read or written.
    #[error("media index: {0}")]
    Index(#[from] StoreError),
    /// The blob store could not be listed or written.
    #[error("blob store: {0}")]
    Blobs(#[from] MediaError),
}

/// What one sweep removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Attachment rows (never sent, or their message deleted or gone).
    pub attachments: u64,
    /// Blobs.
    pub blobs: u64,
}

/// One sweep at `now` (Unix ms) with `grace`, listing [`PAGE`] blobs at a time.
///
/// # Errors
/// The first failure of the index or the store; what was removed before it stays removed.
pub async fn sweep(
    index: &dyn MediaIndex,
    blobs: &dyn BlobStore,
    now: Millis,
    grace: Duration,
) -> Result<Swept, GcError> {
    sweep_paged(index, blobs, now, grace, PAGE).await
}

/// [`sweep`] with `page` blobs per listing (tests use tiny pages).
pub(crate) async fn sweep_paged(
    index: &dyn MediaIndex,
    blobs: &dyn BlobStore,
    now: Millis,
    grace: Duration,
    page: usize,
) -> Result<Swept, GcError> {
    let cutoff = now.saturating_sub(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let mut swept = Swept {
        attachments: index.sweep_attachments(cutoff).await?,
        blobs: 0,
    };
    let mut after: Option<Hash> = None;
    loop {
        let listed = blobs
            .list_older_than(cutoff, after.as_ref(), page.max(1))
            .await?;
        for hash in &listed {
            if !index.is_referenced(hash).await? && blobs.delete_if_older(hash, cutoff).await? {
                swept.blobs += 1;
            }
        }
        match listed.last() {
            Some(last) if listed.len() >= page.max(1) => after = Some(*last),
            _ => return Ok(swept),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::sync::Arc;

    use bytes::Bytes;
    use switchboard_media::{BlobStore, FsBlobStore, PgBlobStore};

    use super::*;
    use crate::media::index::{Attachment, Avatar, Emoticon};
    use crate::store::contract::{new_room, user, Harness};

    const GRACE: Duration = Duration::from_secs(60);

    /// A blob store on the harness's backing, on a clock the test sets.
    async fn blob_store(
        h: &Harness,
        clock: Arc<AtomicI64>,
    ) -> (Arc<dyn BlobStore>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let wall: switchboard_media::WallClock = Arc::new(move || clock.load(Ordering::SeqCst));
        let store: Arc<dyn BlobStore> = match h.database_url() {
            Some(url) => {
                let pool = crate::store::postgres::pool(url, 2, Duration::from_secs(5), "gc-test")
                    .unwrap();
                Arc::new(PgBlobStore::new(pool, "public").with_clock(wall))
            }
            None => Arc::new(
                FsBlobStore::open(dir.path())
                    .await
                    .unwrap()
                    .with_clock(wall),
            ),
        };
        (store, dir)
    }

    async fn sweeps_only_what_nothing_refers_to(h: &Harness) {
        let index = h.media().await;
        let clock = Arc::new(AtomicI64::new(1_000));
        let (blobs, _dir) = blob_store(h, clock.clone()).await;
        let put = |n: u8| {
            let blobs = blobs.clone();
            async move {
                blobs
                    .put(Bytes::from(vec![n; 10 + usize::from(n)]))
                    .await
                    .unwrap()
                    .hash
            }
        };
        // Old blobs: an avatar's two, an emoticon's, a sent attachment's with its thumbnail, an
        // unsent attachment's, and ten that nothing names.
        let (small, large, emo, sent, thumb, unsent) = (
            put(1).await,
            put(2).await,
            put(3).await,
            put(4).await,
            put(5).await,
            put(6).await,
        );
        let mut garbage = Vec::new();
        for n in 10..20 {
            garbage.push(put(n).await);
        }
        index
            .set_avatar(
                "u",
                &Avatar {
                    small,
                    large,
                    updated_ts: 1_000,
                },
            )
            .await
            .unwrap();
        index
            .add_emoticon(
                &Emoticon {
                    shortcode: "ok".into(),
                    hash: emo,
                    created_by: "root".into(),
                    created_ts: 1_000,
                },
                10,
            )
            .await
            .unwrap();
        let alice = user("alice");
        new_room(&*h.store, "g", &alice).await;
        h.store
            .append(crate::store::contract::msg("g", &alice, "file", None))
            .await
            .unwrap();
        let attachment = |id: &str, hash, thumb| Attachment {
            id: id.into(),
            room: "g".into(),
            uploader: alice.id.clone(),
            name: "f".into(),
            content_type: "image/png".into(),
            size: 1,
            hash,
            thumb,
            created_ts: 1_000,
            seq: None,
        };
        index
            .add_attachment(&attachment("sent", sent, Some(thumb)))
            .await
            .unwrap();
        index
            .add_attachment(&attachment("unsent", unsent, None))
            .await
            .unwrap();
        h.link_attachment("sent", 1).await;
        // A fresh blob nothing names yet (an upload about to insert its row).
        clock.store(100_000, Ordering::SeqCst);
        let fresh = put(30).await;

        // Pages of 3: the referenced blobs are spread over the pages and never hide the rest.
        let swept = sweep_paged(&*index, &*blobs, 100_000, GRACE, 3)
            .await
            .unwrap();
        assert_eq!(
            swept,
            Swept {
                attachments: 1,
                blobs: 11
            }
        );
        for kept in [small, large, emo, sent, thumb, fresh] {
            assert!(blobs.size(&kept).await.unwrap().is_some(), "{kept} kept");
        }
        for gone in garbage.iter().chain([&unsent]) {
            assert_eq!(blobs.size(gone).await.unwrap(), None, "{gone} swept");
        }
        // Nothing twice; and once the message is deleted, its attachment and blobs go.
        assert_eq!(
            sweep_paged(&*index, &*blobs, 100_000, GRACE, 3)
                .await
                .unwrap(),
            Swept::default()
        );
        h.store.delete("g", 1, 2).await.unwrap();
        index.clear_avatar("u").await.unwrap();
        let swept = sweep(&*index, &*blobs, 100_000, GRACE).await.unwrap();
        assert_eq!(
            swept,
            Swept {
                attachments: 1,
                blobs: 4
            }
        );
        assert!(blobs.size(&emo).await.unwrap().is_some());
    }

    async fn a_blob_put_again_during_the_sweep_is_spared(h: &Harness) {
        let index = h.media().await;
        let clock = Arc::new(AtomicI64::new(1_000));
        let (blobs, _dir) = blob_store(h, clock.clone()).await;
        let bytes = Bytes::from_static(b"an avatar about to be set again");
        let hash = blobs.put(bytes.clone()).await.unwrap().hash;
        // The upload renews it (its put), then the sweep runs before the row is written.
        clock.store(100_000, Ordering::SeqCst);
        blobs.put(bytes).await.unwrap();
        let swept = sweep(&*index, &*blobs, 100_000, GRACE).await.unwrap();
        assert_eq!(swept.blobs, 0);
        assert!(blobs.size(&hash).await.unwrap().is_some());
    }

    macro_rules! both {
        ($($name:ident),*) => {$(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$name(&crate::store::contract::Harness::sqlite().await).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    super::$name(&crate::store::contract::Harness::postgres().await).await;
                }
            }
        )*};
    }

    both!(
        sweeps_only_what_nothing_refers_to,
        a_blob_put_again_during_the_sweep_is_spared
    );
}
