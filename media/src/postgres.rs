//! [`PgBlobStore`]: blobs in PostgreSQL, for the scaled-out configuration.
//!
//! # Why PostgreSQL
//! Every node of a scaled-out Switchboard already reads and writes the shared PostgreSQL, so
//! blobs there need **no new infrastructure** (no bucket, no credentials, no second backup),
//! every node reads every blob, and a blob commits atomically (one transaction for its row and
//! its chunks). The price is database size and I/O: this store is meant for **avatars,
//! emoticons, thumbnails and attachments up to tens of MiB** (the attachment default is
//! 10 MiB). Bytes are cut into chunks of [`CHUNK_BYTES`] (256 KiB) rows, so no value comes near
//! PostgreSQL's 1 GiB `bytea` limit, a read holds one chunk at a time, and a `Range` request
//! reads only the chunks (and, the column being stored uncompressed, only the pages) it
//! covers. A deployment storing many GiB of large files a day would want an object store
//! behind the same [`BlobStore`] trait instead.
//!
//! # Transactions
//! - [`put`](BlobStore::put): the `blobs` row (`ON CONFLICT DO NOTHING`) and its chunks in one
//!   transaction. A concurrent put of the same bytes waits on the row's key, then finds it
//!   and only refreshes `created_ts`.
//! - [`put_stream`](BlobStore::put_stream): the hash is known only at the end, so chunks are
//!   inserted under a staging key (`upload:<uuid>`) in one transaction, which at the end
//!   inserts the row and renames the chunks to the hash (or drops them if the blob was there
//!   already), then commits. Any error, or dropping the future, rolls it all back. The
//!   transaction (and its pool connection) lasts as long as the upload: the caller bounds the
//!   upload's duration.
//! - Reads take a pooled connection per chunk, never for the whole (client-paced) download.

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use deadpool_postgres::Pool;

use crate::blob::{check_range, next_piece};
use crate::hash::Hashing;
use crate::{
    system_clock, Blob, BlobRef, BlobStore, BodyStream, ByteStream, Hash, MediaError, Result,
    WallClock,
};

/// Bytes per `blob_chunks` row (the last chunk of a blob may be shorter).
pub const CHUNK_BYTES: usize = 256 * 1024;

/// The tables of the blob store on PostgreSQL in `schema` (`public`); the owning component
/// applies it as one of its migrations (a migration file is fixed text, so the owner keeps a
/// copy with its schema filled in, and a test that they agree).
pub fn postgres_schema(schema: &str) -> String {
    include_str!("../sql/postgres.sql").replace("{schema}", schema)
}

/// The statements of one schema, built once.
#[derive(Debug)]
struct Sql {
    insert_blob: String,
    touch_blob: String,
    insert_chunk: String,
    rename_chunks: String,
    drop_chunks: String,
    size: String,
    chunk: String,
    delete_blob: String,
    delete_older: String,
    older: String,
}

impl Sql {
    fn new(s: &str) -> Self {
        Self {
            insert_blob: format!(
                "INSERT INTO {s}.blobs (hash, size, created_ts) VALUES ($1, $2, $3)
                 ON CONFLICT (hash) DO NOTHING"
            ),
            touch_blob: format!(
                "UPDATE {s}.blobs SET created_ts = greatest(created_ts, $2) WHERE hash = $1"
            ),
            insert_chunk: format!(
                "INSERT INTO {s}.blob_chunks (hash, n, bytes) VALUES ($1, $2, $3)"
            ),
            rename_chunks: format!("UPDATE {s}.blob_chunks SET hash = $2 WHERE hash = $1"),
            drop_chunks: format!("DELETE FROM {s}.blob_chunks WHERE hash = $1"),
            size: format!("SELECT size FROM {s}.blobs WHERE hash = $1"),
            // substring is 1-based.
            chunk: format!(
                "SELECT substring(bytes FROM $3 FOR $4) FROM {s}.blob_chunks
                 WHERE hash = $1 AND n = $2"
            ),
            delete_blob: format!("DELETE FROM {s}.blobs WHERE hash = $1"),
            delete_older: format!("DELETE FROM {s}.blobs WHERE hash = $1 AND created_ts < $2"),
            older: format!(
                "SELECT hash FROM {s}.blobs WHERE created_ts < $1 AND hash > $2
                 ORDER BY hash LIMIT $3"
            ),
        }
    }
}

/// Blobs in PostgreSQL tables of one schema, over the owning component's pool. Cheap to clone.
#[derive(Clone)]
pub struct PgBlobStore {
    pool: Pool,
    sql: Arc<Sql>,
    clock: WallClock,
}

impl std::fmt::Debug for PgBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBlobStore").finish_non_exhaustive()
    }
}

impl PgBlobStore {
    /// The store on the tables of [`postgres_schema`] in `schema` (a trusted identifier from
    /// the configuration, not user input).
    pub fn new(pool: Pool, schema: &str) -> Self {
        Self {
            pool,
            sql: Arc::new(Sql::new(schema)),
            clock: system_clock(),
        }
    }

    /// The same store with another clock for `created_ts` (tests).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }
}

fn size_i64(size: u64) -> i64 {
    i64::try_from(size).expect("a blob is smaller than 8 EiB")
}

#[async_trait]
impl BlobStore for PgBlobStore {
    async fn put(&self, bytes: Bytes) -> Result<BlobRef> {
        // Hashing megabytes is CPU work: off the runtime's threads.
        let hashed = bytes.clone();
        let hash = tokio::task::spawn_blocking(move || Hash::of(&hashed))
            .await
            .map_err(|err| MediaError::Io(std::io::Error::other(err)))?;
        let blob = BlobRef {
            hash,
            size: bytes.len() as u64,
        };
        let hex = blob.hash.to_hex();
        let now = (self.clock)();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let inserted = tx
            .execute(&self.sql.insert_blob, &[&hex, &size_i64(blob.size), &now])
            .await?;
        if inserted == 0 {
            tx.execute(&self.sql.touch_blob, &[&hex, &now]).await?;
        } else {
            let insert = tx.prepare(&self.sql.insert_chunk).await?;
            for (n, chunk) in bytes.chunks(CHUNK_BYTES).enumerate() {
                let n = i32::try_from(n).expect("fewer than 2^31 chunks");
                tx.execute(&insert, &[&hex, &n, &chunk]).await?;
            }
        }
        tx.commit().await?;
        Ok(blob)
    }

    async fn put_stream(&self, mut body: BodyStream, max_bytes: u64) -> Result<BlobRef> {
        let staging = format!("upload:{}", uuid::Uuid::new_v4().simple());
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let insert = tx.prepare(&self.sql.insert_chunk).await?;
        let mut hashing = Hashing::default();
        let mut pending = BytesMut::with_capacity(CHUNK_BYTES);
        let mut n: i32 = 0;
        loop {
            let piece = next_piece(&mut body, &mut hashing, max_bytes).await?;
            let done = piece.is_none();
            if let Some(piece) = piece {
                pending.extend_from_slice(&piece);
            }
            // Full chunks go out as they fill; the rest at the end.
            while pending.len() >= CHUNK_BYTES || (done && !pending.is_empty()) {
                let take = pending.len().min(CHUNK_BYTES);
                let chunk = pending.split_to(take);
                tx.execute(&insert, &[&staging, &n, &&chunk[..]]).await?;
                n += 1;
            }
            if done {
                break;
            }
        }
        let blob = hashing.finish();
        let hex = blob.hash.to_hex();
        let now = (self.clock)();
        let inserted = tx
            .execute(&self.sql.insert_blob, &[&hex, &size_i64(blob.size), &now])
            .await?;
        if inserted == 0 {
            tx.execute(&self.sql.drop_chunks, &[&staging]).await?;
            tx.execute(&self.sql.touch_blob, &[&hex, &now]).await?;
        } else {
            tx.execute(&self.sql.rename_chunks, &[&staging, &hex])
                .await?;
        }
        tx.commit().await?;
        Ok(blob)
    }

    async fn size(&self, hash: &Hash) -> Result<Option<u64>> {
        let client = self.pool.get().await?;
        let row = client.query_opt(&self.sql.size, &[&hash.to_hex()]).await?;
        Ok(row.map(|row| u64::try_from(row.get::<_, i64>(0)).unwrap_or(0)))
    }

    async fn get(&self, hash: &Hash) -> Result<Option<Blob>> {
        let Some(size) = self.size(hash).await? else {
            return Ok(None);
        };
        Ok(Some(Blob {
            size,
            range: 0..size,
            chunks: self.chunks(*hash, 0..size),
        }))
    }

    async fn get_range(&self, hash: &Hash, range: Range<u64>) -> Result<Option<Blob>> {
        let Some(size) = self.size(hash).await? else {
            return Ok(None);
        };
        check_range(&range, size)?;
        Ok(Some(Blob {
            size,
            chunks: self.chunks(*hash, range.clone()),
            range,
        }))
    }

    async fn delete(&self, hash: &Hash) -> Result<bool> {
        let hex = hash.to_hex();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let deleted = tx.execute(&self.sql.delete_blob, &[&hex]).await?;
        tx.execute(&self.sql.drop_chunks, &[&hex]).await?;
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn delete_if_older(&self, hash: &Hash, ts: i64) -> Result<bool> {
        // The row lock of the DELETE orders it with a put's INSERT or renewing UPDATE.
        let hex = hash.to_hex();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let deleted = tx.execute(&self.sql.delete_older, &[&hex, &ts]).await?;
        if deleted > 0 {
            tx.execute(&self.sql.drop_chunks, &[&hex]).await?;
        }
        tx.commit().await?;
        Ok(deleted > 0)
    }

    async fn list_older_than(
        &self,
        ts: i64,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<Hash>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        // Every hash is above '' (the column is `COLLATE "C"`).
        let after = after.map(Hash::to_hex).unwrap_or_default();
        let client = self.pool.get().await?;
        let rows = client
            .query(&self.sql.older, &[&ts, &after, &limit])
            .await?;
        rows.iter()
            .map(|row| Hash::parse(row.get::<_, &str>(0)))
            .collect()
    }
}

impl PgBlobStore {
    /// Bytes `range` of blob `hash`, one query (and one pooled connection) per chunk it
    /// covers, reading only the covered part of each chunk.
    fn chunks(&self, hash: Hash, range: Range<u64>) -> ByteStream {
        let store = self.clone();
        Box::pin(futures_util::stream::try_unfold(range.start, move |pos| {
            let store = store.clone();
            let end = range.end;
            async move {
                if pos >= end {
                    return Ok(None);
                }
                let chunk = CHUNK_BYTES as u64;
                let n = i32::try_from(pos / chunk).expect("fewer than 2^31 chunks");
                let offset = pos % chunk;
                let take = (chunk - offset).min(end - pos);
                let client = store.pool.get().await?;
                let stmt = client.prepare_cached(&store.sql.chunk).await?;
                let from = i32::try_from(offset + 1).expect("an offset within a chunk");
                let count = i32::try_from(take).expect("a length within a chunk");
                let row = client
                    .query_opt(&stmt, &[&hash.to_hex(), &n, &from, &count])
                    .await?
                    .ok_or(MediaError::NotFound(hash))?;
                let bytes: &[u8] = row.get(0);
                if bytes.len() as u64 != take {
                    return Err(MediaError::Corrupt(
                        hash,
                        format!("chunk {n} is shorter than its blob's size says"),
                    ));
                }
                Ok(Some((Bytes::copy_from_slice(bytes), pos + take)))
            }
        }))
    }
}
