//! The [`BlobStore`] seam: [`Blob`] (a chunked read), [`BodyStream`] (a streamed put's body)
//! and what every implementation shares (the bound on a streamed put, the range check).

use std::fmt;
use std::ops::Range;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt, TryStreamExt};

use crate::hash::Hashing;
use crate::{BlobRef, Hash, MediaError, Result};

/// An error of a streamed body, as the body's source reports it (hyper's, axum's, an I/O
/// error...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body of [`BlobStore::put_stream`]: pieces of any size, as they arrive.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send>>;

/// Boxes any stream of byte pieces (an axum `Body::into_data_stream()`, a file's
/// `ReaderStream`...) into a [`BodyStream`].
pub fn body<S, E>(stream: S) -> BodyStream
where
    S: Stream<Item = Result<Bytes, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    Box::pin(stream.map_err(Into::into))
}

/// The bytes of a read, chunk by chunk: at most one chunk (64 KiB from files, 256 KiB from
/// PostgreSQL) is in memory at a time, whatever the blob's size.
pub type ByteStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

/// A read of a blob, or of a range of it.
///
/// **Invariant:** `chunks` yields exactly `range.end - range.start` bytes, or ends with an
/// error ([`MediaError::NotFound`] if the blob was deleted mid-read, [`MediaError::Corrupt`] if
/// its storage holds fewer bytes than recorded).
pub struct Blob {
    /// The size of the whole blob (for `Content-Range: bytes a-b/size`).
    pub size: u64,
    /// The bytes this read yields (`0..size` for a whole read).
    pub range: Range<u64>,
    /// The bytes, in order.
    pub chunks: ByteStream,
}

impl Blob {
    /// A whole blob already in memory (a cache hit).
    pub fn from_bytes(bytes: Bytes) -> Self {
        let size = bytes.len() as u64;
        Self {
            size,
            range: 0..size,
            chunks: Box::pin(futures_util::stream::iter([Ok(bytes)])),
        }
    }

    /// How many bytes this read yields.
    pub fn len(&self) -> u64 {
        self.range.end - self.range.start
    }

    /// Whether this read yields no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reads every chunk into one buffer. Only for reads known to be small (the caller checks
    /// [`Blob::len`] first): this is what holds a blob whole in memory.
    ///
    /// # Errors
    /// The first error of the stream.
    pub async fn into_bytes(mut self) -> Result<Bytes> {
        let capacity = usize::try_from(self.len()).unwrap_or(usize::MAX);
        let mut out = BytesMut::with_capacity(capacity);
        while let Some(chunk) = self.chunks.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }
}

impl fmt::Debug for Blob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob")
            .field("size", &self.size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Content-addressed storage of immutable byte blobs, named by their SHA-256.
///
/// Invariants every implementation keeps (the contract suite checks each one):
/// - **Content addressing.** A blob's name is the SHA-256 of its bytes; the same bytes put
///   twice (or concurrently) are stored once and answer the same [`BlobRef`].
/// - **All or nothing.** A blob is visible (to `size`, `get`, `list_older_than`) only once it
///   is completely and durably written. A put that fails, a streamed put whose body fails or
///   passes its bound, and a put whose future is dropped midway leave nothing behind.
/// - **Bounded memory.** [`put_stream`](Self::put_stream) and the reads hold one chunk at a
///   time, never a whole blob.
/// - **`created_ts`** (milliseconds since the Unix epoch) is the time of the blob's *latest*
///   put: putting bytes that are already stored refreshes it, so a garbage collector's grace
///   period counts from the newest upload.
#[async_trait]
pub trait BlobStore: Send + Sync {
    /// Stores `bytes` (already in memory: a re-encoded avatar, a thumbnail).
    ///
    /// # Errors
    /// [`MediaError::Io`], [`MediaError::Postgres`], [`MediaError::Pool`].
    async fn put(&self, bytes: Bytes) -> Result<BlobRef>;

    /// Stores a body as it arrives, hashing it on the way, and refuses it with
    /// [`MediaError::TooLarge`] as soon as more than `max_bytes` have arrived: the body is read
    /// no further.
    ///
    /// # Errors
    /// [`MediaError::TooLarge`]; [`MediaError::Body`] when the body fails (a truncated
    /// upload); storage errors. Nothing is stored on any error.
    async fn put_stream(&self, body: BodyStream, max_bytes: u64) -> Result<BlobRef>;

    /// The size of blob `hash`, if it is stored.
    ///
    /// # Errors
    /// Storage errors.
    async fn size(&self, hash: &Hash) -> Result<Option<u64>>;

    /// A chunked read of the whole blob, if it is stored.
    ///
    /// # Errors
    /// Storage errors (later ones end the stream instead).
    async fn get(&self, hash: &Hash) -> Result<Option<Blob>>;

    /// A chunked read of bytes `range.start..range.end` (HTTP `Range`, already resolved and
    /// clamped to the size by the caller), if the blob is stored. An empty range (`start ==
    /// end <= size`) yields nothing.
    ///
    /// # Errors
    /// [`MediaError::BadRange`] if `start > end` or `end > size`; storage errors.
    async fn get_range(&self, hash: &Hash, range: Range<u64>) -> Result<Option<Blob>>;

    /// Removes blob `hash`; answers whether it was stored. Reads already under way may end
    /// with [`MediaError::NotFound`] (PostgreSQL) or still finish (files).
    ///
    /// # Errors
    /// Storage errors.
    async fn delete(&self, hash: &Hash) -> Result<bool>;

    /// Removes blob `hash` only if its `created_ts` is before `ts`, atomically with respect to
    /// puts: a put of the same bytes either renews the blob first (and it stays) or comes
    /// after the removal (and stores it anew). What a garbage-collection sweep calls, with
    /// `ts` = now minus the grace period, after finding no reference to the blob: an upload
    /// that is about to be referenced has renewed it.
    ///
    /// # Errors
    /// Storage errors.
    async fn delete_if_older(&self, hash: &Hash, ts: i64) -> Result<bool>;

    /// Up to `limit` blobs whose `created_ts` is before `ts` (milliseconds since the Unix
    /// epoch) and whose hash is after `after`, in ascending hash order: the candidates of a
    /// garbage-collection sweep, which pages through them by passing the last hash it got
    /// (so blobs that stay referenced never hide the ones behind them).
    ///
    /// # Errors
    /// Storage errors.
    async fn list_older_than(
        &self,
        ts: i64,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<Hash>>;
}

/// The next piece of a streamed put's body, hashed and counted; `None` at its end.
///
/// # Errors
/// [`MediaError::TooLarge`] before a piece that would pass `max_bytes` is taken in;
/// [`MediaError::Body`] when the body fails.
pub(crate) async fn next_piece(
    body: &mut BodyStream,
    hashing: &mut Hashing,
    max_bytes: u64,
) -> Result<Option<Bytes>> {
    match body.next().await {
        None => Ok(None),
        Some(Err(err)) => Err(MediaError::Body(err.to_string())),
        Some(Ok(piece)) => {
            if hashing.size().saturating_add(piece.len() as u64) > max_bytes {
                return Err(MediaError::TooLarge { max_bytes });
            }
            hashing.update(&piece);
            Ok(Some(piece))
        }
    }
}

/// Refuses a range that is not within a blob of `size` bytes.
///
/// # Errors
/// [`MediaError::BadRange`].
pub(crate) fn check_range(range: &Range<u64>, size: u64) -> Result<()> {
    if range.start > range.end || range.end > size {
        return Err(MediaError::BadRange {
            start: range.start,
            end: range.end,
            size,
        });
    }
    Ok(())
}
