//! The [`BlobStore`] contract, stamped for [`FsBlobStore`] and [`PgBlobStore`] by
//! [`store_tests!`].

use std::convert::Infallible;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{stream, StreamExt};

use super::{bytes, pg_pool};
use crate::{
    body, postgres_schema, BlobStore, BoxError, FsBlobStore, Hash, MediaError, PgBlobStore,
    CHUNK_BYTES,
};

/// A store on fresh storage, with a clock the test sets, and what keeps the storage alive.
pub(crate) struct Fixture {
    pub store: Arc<dyn BlobStore>,
    pub clock: Arc<AtomicI64>,
    backend: Backend,
}

enum Backend {
    Fs(tempfile::TempDir),
    Pg(switchboard_testkit::TestDatabase),
}

impl Fixture {
    pub(crate) async fn fs() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(AtomicI64::new(1_000));
        let store = FsBlobStore::open(dir.path().join("blobs"))
            .await
            .unwrap()
            .with_clock(manual(&clock));
        Self {
            store: Arc::new(store),
            clock,
            backend: Backend::Fs(dir),
        }
    }

    pub(crate) async fn postgres() -> Self {
        let db = switchboard_testkit::TestDatabase::create().await;
        db.connect()
            .await
            .batch_execute(&format!("CREATE SCHEMA m; {}", postgres_schema("m")))
            .await
            .unwrap();
        let clock = Arc::new(AtomicI64::new(1_000));
        let store = PgBlobStore::new(pg_pool(&db.url), "m").with_clock(manual(&clock));
        Self {
            store: Arc::new(store),
            clock,
            backend: Backend::Pg(db),
        }
    }

    fn set_time(&self, ms: i64) {
        self.clock.store(ms, Ordering::SeqCst);
    }

    /// Everything the storage holds: files (temp files included) or rows (both tables).
    async fn stored_objects(&self) -> u64 {
        match &self.backend {
            Backend::Fs(dir) => count_files(&dir.path().join("blobs")),
            Backend::Pg(db) => {
                let row = db
                    .connect()
                    .await
                    .query_one(
                        "SELECT (SELECT count(*) FROM m.blobs) + (SELECT count(*) FROM m.blob_chunks)",
                        &[],
                    )
                    .await
                    .unwrap();
                u64::try_from(row.get::<_, i64>(0)).unwrap()
            }
        }
    }

    /// What [`stored_objects`](Self::stored_objects) counts for one blob of `size` bytes.
    fn objects_of(&self, size: usize) -> u64 {
        match &self.backend {
            Backend::Fs(_) => 1,
            Backend::Pg(_) => 1 + size.div_ceil(CHUNK_BYTES) as u64,
        }
    }
}

fn manual(clock: &Arc<AtomicI64>) -> crate::WallClock {
    let clock = Arc::clone(clock);
    Arc::new(move || clock.load(Ordering::SeqCst))
}

fn count_files(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                count_files(&entry.path())
            } else {
                1
            }
        })
        .sum()
}

/// `data` as a body of pieces of `piece` bytes.
fn pieces(data: &Bytes, piece: usize) -> crate::BodyStream {
    let parts: Vec<Result<Bytes, Infallible>> = (0..data.len())
        .step_by(piece.max(1))
        .map(|at| Ok(data.slice(at..(at + piece).min(data.len()))))
        .collect();
    body(stream::iter(parts))
}

/// Reads a whole blob, checking that no chunk is larger than a store's read chunk.
async fn read_all(store: &dyn BlobStore, hash: &Hash) -> Option<Bytes> {
    let mut blob = store.get(hash).await.unwrap()?;
    let mut out = Vec::new();
    while let Some(chunk) = blob.chunks.next().await {
        let chunk = chunk.unwrap();
        assert!(
            chunk.len() <= CHUNK_BYTES,
            "a read chunk of {}",
            chunk.len()
        );
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out.len() as u64, blob.size);
    Some(out.into())
}

async fn read_range(store: &dyn BlobStore, hash: &Hash, start: u64, end: u64) -> Bytes {
    let blob = store.get_range(hash, start..end).await.unwrap().unwrap();
    assert_eq!(blob.range, start..end);
    assert_eq!(blob.len(), end - start);
    blob.into_bytes().await.unwrap()
}

/// For each listed `async fn name(f: Fixture)`, a module `name` with the tests `fs` and
/// `postgres`.
macro_rules! store_tests {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn fs() {
                super::$name(super::Fixture::fs().await).await;
            }

            #[tokio::test]
            async fn postgres() {
                super::$name(super::Fixture::postgres().await).await;
            }
        }
    )*};
}

store_tests!(
    a_blob_round_trips_chunk_by_chunk,
    an_empty_blob_round_trips,
    an_unknown_hash_is_absent,
    the_same_bytes_are_stored_once,
    ranges_read_the_bytes_asked_for,
    a_range_past_the_end_is_refused,
    a_streamed_put_over_the_bound_is_too_large_and_stores_nothing,
    a_streamed_put_at_the_bound_is_stored,
    a_body_failing_midway_stores_nothing,
    a_put_dropped_midway_stores_nothing,
    concurrent_puts_of_the_same_bytes_store_one_blob,
    delete_removes_one_blob,
    list_older_than_pages_old_blobs_by_hash,
    delete_if_older_spares_a_renewed_blob,
    a_bad_hash_is_refused_and_any_case_finds_the_blob,
);

async fn a_blob_round_trips_chunk_by_chunk(f: Fixture) {
    let data = bytes(1, 2 * CHUNK_BYTES + 12_345);
    let blob = f.store.put(data.clone()).await.unwrap();
    assert_eq!(blob.hash, Hash::of(&data));
    assert_eq!(blob.size, data.len() as u64);
    assert_eq!(f.store.size(&blob.hash).await.unwrap(), Some(blob.size));
    assert_eq!(read_all(&*f.store, &blob.hash).await.unwrap(), data);

    // Streamed, in pieces that straddle the chunks.
    let other = bytes(2, CHUNK_BYTES + 1);
    let streamed = f
        .store
        .put_stream(pieces(&other, 10_000), 10 << 20)
        .await
        .unwrap();
    assert_eq!(streamed.hash, Hash::of(&other));
    assert_eq!(read_all(&*f.store, &streamed.hash).await.unwrap(), other);
    assert_eq!(
        f.stored_objects().await,
        f.objects_of(data.len()) + f.objects_of(other.len())
    );
}

async fn an_empty_blob_round_trips(f: Fixture) {
    let blob = f.store.put(Bytes::new()).await.unwrap();
    assert_eq!(blob.hash, Hash::of(b""));
    assert_eq!(blob.size, 0);
    assert_eq!(f.store.size(&blob.hash).await.unwrap(), Some(0));
    assert_eq!(read_all(&*f.store, &blob.hash).await.unwrap(), Bytes::new());
    assert_eq!(read_range(&*f.store, &blob.hash, 0, 0).await, Bytes::new());
    let streamed = f
        .store
        .put_stream(body(stream::empty::<Result<Bytes, Infallible>>()), 0)
        .await
        .unwrap();
    assert_eq!(streamed, blob);
}

async fn an_unknown_hash_is_absent(f: Fixture) {
    let hash = Hash::of(b"never stored");
    assert_eq!(f.store.size(&hash).await.unwrap(), None);
    assert!(f.store.get(&hash).await.unwrap().is_none());
    assert!(f.store.get_range(&hash, 0..0).await.unwrap().is_none());
    assert!(!f.store.delete(&hash).await.unwrap());
}

async fn the_same_bytes_are_stored_once(f: Fixture) {
    let data = bytes(3, CHUNK_BYTES + 7);
    let first = f.store.put(data.clone()).await.unwrap();
    let again = f.store.put(data.clone()).await.unwrap();
    let streamed = f
        .store
        .put_stream(pieces(&data, 4_096), 1 << 20)
        .await
        .unwrap();
    assert_eq!(first, again);
    assert_eq!(first, streamed);
    assert_eq!(f.stored_objects().await, f.objects_of(data.len()));
    assert_eq!(read_all(&*f.store, &first.hash).await.unwrap(), data);
}

async fn ranges_read_the_bytes_asked_for(f: Fixture) {
    let data = bytes(4, 2 * CHUNK_BYTES + 100);
    let hash = f.store.put(data.clone()).await.unwrap().hash;
    let size = data.len() as u64;
    let chunk = CHUNK_BYTES as u64;
    for (start, end) in [
        (0, 10),                // the start
        (chunk - 5, chunk + 5), // the middle, across a chunk boundary
        (chunk, 2 * chunk),     // exactly one chunk
        (1, size - 1),          // nearly all, across every chunk
        (size - 10, size),      // the end
        (0, size),              // all
        (17, 17),               // empty
        (size, size),           // empty, at the end
    ] {
        let got = read_range(&*f.store, &hash, start, end).await;
        assert_eq!(
            got,
            data.slice(start as usize..end as usize),
            "range {start}..{end}"
        );
    }
    let blob = f.store.get_range(&hash, 5..9).await.unwrap().unwrap();
    assert_eq!(blob.size, size);
}

async fn a_range_past_the_end_is_refused(f: Fixture) {
    let data = bytes(5, 1_000);
    let hash = f.store.put(data).await.unwrap().hash;
    for (start, end) in [(0, 1_001), (999, 1_001), (1_001, 1_001), (10, 5)] {
        let refused = f.store.get_range(&hash, start..end).await;
        assert!(
            matches!(
                refused,
                Err(MediaError::BadRange { start: s, end: e, size: 1_000 }) if s == start && e == end
            ),
            "{start}..{end}: {refused:?}"
        );
    }
}

async fn a_streamed_put_over_the_bound_is_too_large_and_stores_nothing(f: Fixture) {
    // An endless body of 100 KiB pieces, counting what is pulled from it.
    let pulled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&pulled);
    let piece = bytes(6, 100 * 1024);
    let endless = stream::repeat_with(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Infallible>(piece.clone())
    });
    let max = 3 * CHUNK_BYTES as u64; // passed by the 8th piece
    let refused = f.store.put_stream(body(endless), max).await;
    assert!(
        matches!(refused, Err(MediaError::TooLarge { max_bytes }) if max_bytes == max),
        "{refused:?}"
    );
    assert_eq!(
        pulled.load(Ordering::SeqCst),
        8,
        "read no further than the bound"
    );
    assert_eq!(f.stored_objects().await, 0);
}

async fn a_streamed_put_at_the_bound_is_stored(f: Fixture) {
    let data = bytes(7, CHUNK_BYTES + 3);
    let blob = f
        .store
        .put_stream(pieces(&data, 1_000), data.len() as u64)
        .await
        .unwrap();
    assert_eq!(blob.size, data.len() as u64);
    let over = f.store.put_stream(pieces(&bytes(8, 101), 50), 100).await;
    assert!(
        matches!(over, Err(MediaError::TooLarge { max_bytes: 100 })),
        "{over:?}"
    );
    assert_eq!(f.stored_objects().await, f.objects_of(data.len()));
}

async fn a_body_failing_midway_stores_nothing(f: Fixture) {
    // More than a chunk arrives (PostgreSQL has written a staged chunk) before the body fails.
    let data = bytes(9, 2 * CHUNK_BYTES);
    let mut parts: Vec<Result<Bytes, BoxError>> = vec![
        Ok(data.slice(..CHUNK_BYTES + 10)),
        Ok(data.slice(CHUNK_BYTES + 10..)),
    ];
    parts.push(Err("connection reset by peer".into()));
    let failed = f
        .store
        .put_stream(Box::pin(stream::iter(parts)), 10 << 20)
        .await;
    assert!(
        matches!(&failed, Err(MediaError::Body(message)) if message.contains("reset")),
        "{failed:?}"
    );
    assert_eq!(f.stored_objects().await, 0);
    assert_eq!(f.store.size(&Hash::of(&data)).await.unwrap(), None);
}

async fn a_put_dropped_midway_stores_nothing(f: Fixture) {
    // The body yields more than a chunk, tells the test, then never ends (a client that
    // stalls); the test then drops the put, as a server does when the client goes away.
    let (reached, reached_rx) = tokio::sync::oneshot::channel::<()>();
    let data = bytes(10, CHUNK_BYTES + 10);
    let first = stream::iter([Ok::<_, Infallible>(data.clone())]);
    let mut reached = Some(reached);
    let stall = stream::poll_fn(move |_| {
        if let Some(reached) = reached.take() {
            let _ = reached.send(());
        }
        std::task::Poll::<Option<Result<Bytes, Infallible>>>::Pending
    });
    let put = f.store.put_stream(body(first.chain(stall)), 10 << 20);
    tokio::select! {
        done = put => panic!("the put ended: {done:?}"),
        _ = reached_rx => {}
    }
    assert_eq!(f.stored_objects().await, 0);
}

async fn concurrent_puts_of_the_same_bytes_store_one_blob(f: Fixture) {
    let data = bytes(11, CHUNK_BYTES + 99);
    let puts = (0..8).map(|i| {
        let store = Arc::clone(&f.store);
        let data = data.clone();
        tokio::spawn(async move {
            if i % 2 == 0 {
                store.put(data).await
            } else {
                store.put_stream(pieces(&data, 30_000), 1 << 20).await
            }
        })
    });
    let refs: Vec<_> = futures_util::future::join_all(puts).await;
    for blob in refs {
        let blob = blob.unwrap().unwrap();
        assert_eq!(blob.hash, Hash::of(&data));
        assert_eq!(blob.size, data.len() as u64);
    }
    assert_eq!(f.stored_objects().await, f.objects_of(data.len()));
    assert_eq!(read_all(&*f.store, &Hash::of(&data)).await.unwrap(), data);
}

async fn delete_removes_one_blob(f: Fixture) {
    let doomed = f.store.put(bytes(12, CHUNK_BYTES + 1)).await.unwrap();
    let kept_data = bytes(13, 500);
    let kept = f.store.put(kept_data.clone()).await.unwrap();
    assert!(f.store.delete(&doomed.hash).await.unwrap());
    assert_eq!(f.store.size(&doomed.hash).await.unwrap(), None);
    assert!(f.store.get(&doomed.hash).await.unwrap().is_none());
    assert!(!f.store.delete(&doomed.hash).await.unwrap());
    assert_eq!(read_all(&*f.store, &kept.hash).await.unwrap(), kept_data);
    assert_eq!(f.stored_objects().await, f.objects_of(500));
    // Put again after a delete: stored again.
    let back = f.store.put(bytes(12, CHUNK_BYTES + 1)).await.unwrap();
    assert_eq!(back, doomed);
    assert_eq!(f.store.size(&back.hash).await.unwrap(), Some(back.size));
}

async fn list_older_than_pages_old_blobs_by_hash(f: Fixture) {
    f.set_time(1_000);
    let a = f.store.put(bytes(14, 10)).await.unwrap().hash;
    f.set_time(2_000);
    let b = f
        .store
        .put_stream(pieces(&bytes(15, 10), 3), 100)
        .await
        .unwrap()
        .hash;
    f.set_time(3_000);
    let c = f.store.put(bytes(16, 10)).await.unwrap().hash;
    let sorted = |mut v: Vec<Hash>| {
        v.sort_unstable();
        v
    };
    assert_eq!(
        f.store.list_older_than(2_500, None, 10).await.unwrap(),
        sorted(vec![a, b])
    );
    let all = sorted(vec![a, b, c]);
    assert_eq!(f.store.list_older_than(3_001, None, 10).await.unwrap(), all);
    assert_eq!(
        f.store.list_older_than(1_000, None, 10).await.unwrap(),
        vec![]
    );
    // Paging: one at a time, each page after the last hash of the one before.
    let mut paged = Vec::new();
    let mut after = None;
    loop {
        let page = f
            .store
            .list_older_than(3_001, after.as_ref(), 1)
            .await
            .unwrap();
        let Some(last) = page.last().copied() else {
            break;
        };
        assert_eq!(page.len(), 1);
        paged.push(last);
        after = Some(last);
    }
    assert_eq!(paged, all);
    // A put of bytes already stored renews them: a sweep's grace period counts from it.
    f.set_time(4_000);
    f.store.put(bytes(14, 10)).await.unwrap();
    assert_eq!(
        f.store.list_older_than(3_500, None, 10).await.unwrap(),
        sorted(vec![b, c])
    );
    f.store.delete(&b).await.unwrap();
    assert_eq!(
        f.store.list_older_than(3_500, None, 10).await.unwrap(),
        vec![c]
    );
}

async fn delete_if_older_spares_a_renewed_blob(f: Fixture) {
    f.set_time(1_000);
    let old = f.store.put(bytes(21, CHUNK_BYTES + 5)).await.unwrap().hash;
    let renewed_data = bytes(22, 10);
    let renewed = f.store.put(renewed_data.clone()).await.unwrap().hash;
    // The sweep lists both as older than 2 000 ...
    assert_eq!(
        f.store
            .list_older_than(2_000, None, 10)
            .await
            .unwrap()
            .len(),
        2
    );
    // ... then one of them is uploaded again (about to be referenced) before it deletes.
    f.set_time(3_000);
    f.store.put(renewed_data.clone()).await.unwrap();
    assert!(f.store.delete_if_older(&old, 2_000).await.unwrap());
    assert!(!f.store.delete_if_older(&renewed, 2_000).await.unwrap());
    assert_eq!(f.store.size(&old).await.unwrap(), None);
    assert_eq!(read_all(&*f.store, &renewed).await.unwrap(), renewed_data);
    assert!(
        !f.store.delete_if_older(&old, 2_000).await.unwrap(),
        "already gone"
    );
    assert_eq!(f.stored_objects().await, f.objects_of(10));
}

async fn a_bad_hash_is_refused_and_any_case_finds_the_blob(f: Fixture) {
    let data = bytes(17, 64);
    let hash = f.store.put(data.clone()).await.unwrap().hash;
    let hex = hash.to_hex();
    for bad in [
        "",
        "../../etc/passwd",
        &hex[..63],
        &format!("{hex}00"),
        &format!("{}z", &hex[..63]),
        &format!("{}/{}", &hex[..2], &hex[3..]),
    ] {
        assert!(
            matches!(Hash::parse(bad), Err(MediaError::BadHash)),
            "{bad:?}"
        );
    }
    let upper = Hash::parse(&hex.to_uppercase()).unwrap();
    assert_eq!(upper, hash);
    assert_eq!(read_all(&*f.store, &upper).await.unwrap(), data);
}

// What only one implementation has.

#[tokio::test]
async fn files_are_private_and_fanned_out_by_the_first_byte() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    let store = FsBlobStore::open(&root).await.unwrap();
    let blob = store.put(bytes(18, 100)).await.unwrap();
    let hex = blob.hash.to_hex();
    let path = root.join(&hex[..2]).join(&hex[2..]);
    assert_eq!(store.path_of(&blob.hash), path);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&root.join("tmp")), 0o700);
}

#[tokio::test]
async fn open_removes_stale_temp_files_only() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("blobs");
    drop(FsBlobStore::open(&root).await.unwrap());
    let stale = root.join("tmp").join("stale");
    let fresh = root.join("tmp").join("fresh");
    std::fs::write(&stale, b"x").unwrap();
    std::fs::write(&fresh, b"x").unwrap();
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7_200);
    std::fs::File::options()
        .write(true)
        .open(&stale)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let store = FsBlobStore::open(&root).await.unwrap();
    assert!(!stale.exists());
    assert!(
        fresh.exists(),
        "a put in progress (another store) keeps its temp file"
    );
    // Nor are temp files or strangers listed as blobs.
    std::fs::write(root.join("README"), b"x").unwrap();
    assert_eq!(
        store.list_older_than(i64::MAX, None, 10).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn postgres_rows_are_256_kib_chunks_and_hashes_are_checked() {
    let f = Fixture::postgres().await;
    let Backend::Pg(db) = &f.backend else {
        unreachable!()
    };
    let data = bytes(19, 2 * CHUNK_BYTES + 1);
    let hash = f.store.put(data).await.unwrap().hash;
    let client = db.connect().await;
    let sizes: Vec<(i32, i32)> = client
        .query(
            "SELECT n, length(bytes) FROM m.blob_chunks WHERE hash = $1 ORDER BY n",
            &[&hash.to_hex()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let chunk = i32::try_from(CHUNK_BYTES).unwrap();
    assert_eq!(sizes, vec![(0, chunk), (1, chunk), (2, 1)]);
    let refused = client
        .execute(
            "INSERT INTO m.blobs (hash, size, created_ts) VALUES ('../x', 0, 0)",
            &[],
        )
        .await;
    assert!(
        refused.is_err(),
        "the table refuses a hash that is not 64 hex"
    );
}

#[tokio::test]
async fn a_postgres_read_of_a_blob_deleted_midway_ends_not_found() {
    let f = Fixture::postgres().await;
    let data = bytes(20, 2 * CHUNK_BYTES);
    let hash = f.store.put(data).await.unwrap().hash;
    let mut blob = f.store.get(&hash).await.unwrap().unwrap();
    let first = blob.chunks.next().await.unwrap().unwrap();
    assert_eq!(first.len(), CHUNK_BYTES);
    assert!(f.store.delete(&hash).await.unwrap());
    let next = blob.chunks.next().await.unwrap();
    assert!(
        matches!(next, Err(MediaError::NotFound(h)) if h == hash),
        "{next:?}"
    );
}
