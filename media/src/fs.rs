//! [`FsBlobStore`]: blobs as files under a directory, for the embedded configuration (one
//! process owns the directory, under `--data-dir`).
//!
//! Layout: `<dir>/ab/cdef…` (the first byte of the hash in hex names a fan-out directory of at
//! most a few thousand files each, the other 62 characters the file), and `<dir>/tmp/` for
//! writes in progress. Directories are 0700 and files 0600: only the server's user reads them.
//! A file's modification time is the blob's `created_ts`.
//!
//! A put writes a temp file in `<dir>/tmp/` (the same filesystem), fsyncs it, renames it into
//! place and fsyncs the fan-out directory: a reader sees the whole blob or none, and after a
//! crash a blob is either complete or absent. A temp file is removed when its put fails or is
//! dropped; one left by a crash is removed by the next [`FsBlobStore::open`] once it is an hour
//! old.
//!
//! Checking for a blob and moving one into place (a put), and checking a blob's time and
//! removing it ([`BlobStore::delete_if_older`]) happen under one lock of the store (shared by
//! its clones), so a sweep never removes a blob that a concurrent put has just renewed. One
//! store (and its clones) per directory: two stores opened on the same directory do not share
//! that lock.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use crate::blob::{check_range, next_piece};
use crate::hash::Hashing;
use crate::{
    system_clock, Blob, BlobRef, BlobStore, BodyStream, ByteStream, Hash, MediaError, Result,
    WallClock,
};

/// Bytes per read of a file: the most a read holds in memory.
const READ_CHUNK: u64 = 64 * 1024;
/// Age after which a temp file is a crash's leftover.
const STALE_TEMP: Duration = Duration::from_secs(3600);

/// Blobs as files under a directory. Cheap to clone.
#[derive(Clone)]
pub struct FsBlobStore {
    dir: Arc<PathBuf>,
    clock: WallClock,
    /// Held (on a blocking thread) while a put commits and while `delete_if_older` checks and
    /// removes: no await happens under it.
    commit_lock: Arc<std::sync::Mutex<()>>,
}

impl std::fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBlobStore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl FsBlobStore {
    /// Opens (creating it, 0700) the store under `dir`, and removes temp files older than an
    /// hour (a crash's leftovers).
    ///
    /// # Errors
    /// [`MediaError::Io`] if the directory cannot be created or read.
    pub async fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        let tmp = dir.join("tmp");
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            private_dirs().create(&tmp)?;
            for entry in std::fs::read_dir(&tmp)? {
                let entry = entry?;
                let age = entry
                    .metadata()?
                    .modified()?
                    .elapsed()
                    .unwrap_or(Duration::ZERO);
                if age > STALE_TEMP {
                    remove_if_present(&entry.path())?;
                }
            }
            Ok(())
        })
        .await
        .map_err(join_error)??;
        Ok(Self {
            dir: Arc::new(dir),
            clock: system_clock(),
            commit_lock: Arc::default(),
        })
    }

    /// The same store with another clock for `created_ts` (tests).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// The directory of the store.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where blob `hash` lives.
    pub fn path_of(&self, hash: &Hash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    fn temp_path(&self) -> PathBuf {
        self.dir
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Moves a written temp file into place as blob `blob` (or drops it, when the blob is
    /// there already, refreshing that one's time): fsync, set the time, rename, fsync the dir.
    async fn commit(&self, temp: TempFile, file: File, blob: BlobRef) -> Result<BlobRef> {
        let target = self.path_of(&blob.hash);
        let now = to_system_time((self.clock)());
        let lock = Arc::clone(&self.commit_lock);
        tokio::task::spawn_blocking(move || -> io::Result<()> {
            file.sync_all()?;
            file.set_modified(now)?;
            drop(file);
            let parent = target.parent().expect("a fan-out directory");
            if !parent.exists() {
                private_dirs().create(parent)?;
                // The new directory's entry is durable too.
                File::open(parent.parent().expect("the store's directory"))?.sync_all()?;
            }
            let _committing = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if target.exists() {
                // The same bytes are there: keep them, refresh their time.
                File::options()
                    .write(true)
                    .open(&target)?
                    .set_modified(now)?;
                return Ok(());
            }
            std::fs::rename(&temp.0, &target)?;
            temp.disarm();
            File::open(parent)?.sync_all()
        })
        .await
        .map_err(join_error)??;
        Ok(blob)
    }

    /// Opens blob `hash` for reading, with its size; `None` if absent.
    async fn open_blob(&self, hash: &Hash) -> Result<Option<(tokio::fs::File, u64)>> {
        match tokio::fs::File::open(self.path_of(hash)).await {
            Ok(file) => {
                let size = file.metadata().await?.len();
                Ok(Some((file, size)))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, bytes: Bytes) -> Result<BlobRef> {
        let temp = TempFile(self.temp_path());
        let path = temp.0.clone();
        // Hashing megabytes is CPU work: off the runtime's threads, with the write.
        let (file, blob) = tokio::task::spawn_blocking(move || -> io::Result<(File, BlobRef)> {
            let blob = BlobRef {
                hash: Hash::of(&bytes),
                size: bytes.len() as u64,
            };
            let mut file = create_private(&path)?;
            file.write_all(&bytes)?;
            Ok((file, blob))
        })
        .await
        .map_err(join_error)??;
        self.commit(temp, file, blob).await
    }

    async fn put_stream(&self, mut body: BodyStream, max_bytes: u64) -> Result<BlobRef> {
        let temp = TempFile(self.temp_path());
        let path = temp.0.clone();
        let file = tokio::task::spawn_blocking(move || create_private(&path))
            .await
            .map_err(join_error)??;
        let mut file = tokio::fs::File::from_std(file);
        let mut hashing = Hashing::default();
        while let Some(piece) = next_piece(&mut body, &mut hashing, max_bytes).await? {
            file.write_all(&piece).await?;
        }
        file.flush().await?;
        let file = file.into_std().await;
        self.commit(temp, file, hashing.finish()).await
    }

    async fn size(&self, hash: &Hash) -> Result<Option<u64>> {
        match tokio::fs::metadata(self.path_of(hash)).await {
            Ok(meta) => Ok(Some(meta.len())),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err.into()),
        }
    }

    async fn get(&self, hash: &Hash) -> Result<Option<Blob>> {
        let Some((file, size)) = self.open_blob(hash).await? else {
            return Ok(None);
        };
        Ok(Some(Blob {
            size,
            range: 0..size,
            chunks: file_chunks(file, *hash, size),
        }))
    }

    async fn get_range(&self, hash: &Hash, range: Range<u64>) -> Result<Option<Blob>> {
        let Some((mut file, size)) = self.open_blob(hash).await? else {
            return Ok(None);
        };
        check_range(&range, size)?;
        file.seek(io::SeekFrom::Start(range.start)).await?;
        Ok(Some(Blob {
            size,
            chunks: file_chunks(file, *hash, range.end - range.start),
            range,
        }))
    }

    async fn delete(&self, hash: &Hash) -> Result<bool> {
        match tokio::fs::remove_file(self.path_of(hash)).await {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    async fn delete_if_older(&self, hash: &Hash, ts: i64) -> Result<bool> {
        let path = self.path_of(hash);
        let lock = Arc::clone(&self.commit_lock);
        let deleted = tokio::task::spawn_blocking(move || -> io::Result<bool> {
            let _committing = lock
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let created = match std::fs::metadata(&path) {
                Ok(meta) => from_system_time(meta.modified()?),
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(err) => return Err(err),
            };
            if created >= ts {
                return Ok(false);
            }
            std::fs::remove_file(&path)?;
            Ok(true)
        })
        .await
        .map_err(join_error)??;
        Ok(deleted)
    }

    async fn list_older_than(
        &self,
        ts: i64,
        after: Option<&Hash>,
        limit: usize,
    ) -> Result<Vec<Hash>> {
        let dir = Arc::clone(&self.dir);
        let mut found: Vec<Hash> = tokio::task::spawn_blocking(move || scan_older_than(&dir, ts))
            .await
            .map_err(join_error)??
            .into_iter()
            .map(|(_, hash)| hash)
            .filter(|hash| after.is_none_or(|after| hash > after))
            .collect();
        found.sort_unstable();
        found.truncate(limit);
        Ok(found)
    }
}

/// Every blob under `dir` whose time is before `ts`, with that time. A full walk: the
/// embedded store holds thousands of blobs, not millions, and a sweep runs rarely.
fn scan_older_than(dir: &Path, ts: i64) -> io::Result<Vec<(i64, Hash)>> {
    let mut found = Vec::new();
    for fan in std::fs::read_dir(dir)? {
        let fan = fan?;
        let prefix = fan.file_name();
        let Some(prefix) = prefix.to_str().filter(|p| p.len() == 2) else {
            continue; // tmp/, or anything else that is not ours
        };
        if !fan.file_type()?.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(fan.path())? {
            let entry = entry?;
            let Some(rest) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let Ok(hash) = Hash::parse(&format!("{prefix}{rest}")) else {
                continue;
            };
            let created = match entry.metadata() {
                Ok(meta) => from_system_time(meta.modified()?),
                // Deleted while we walked.
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(err),
            };
            if created < ts {
                found.push((created, hash));
            }
        }
    }
    Ok(found)
}

/// `len` bytes of `file` from its current position, [`READ_CHUNK`] at a time.
fn file_chunks(file: tokio::fs::File, hash: Hash, len: u64) -> ByteStream {
    Box::pin(futures_util::stream::try_unfold(
        (file, len),
        move |(mut file, left)| async move {
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(READ_CHUNK);
            let mut buf = vec![0u8; usize::try_from(want).expect("a chunk fits usize")];
            file.read_exact(&mut buf).await.map_err(|err| {
                if err.kind() == io::ErrorKind::UnexpectedEof {
                    MediaError::Corrupt(hash, "the file is shorter than its size".into())
                } else {
                    err.into()
                }
            })?;
            Ok(Some((Bytes::from(buf), (file, left - want))))
        },
    ))
}

/// A temp file that is removed when dropped, unless [`disarm`](Self::disarm)ed (renamed into
/// place). Dropped on every error path and when the put's future is dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Err(err) = remove_if_present(&self.0) {
            tracing::warn!(path = %self.0.display(), %err, "could not remove a blob temp file");
        }
    }
}

fn private_dirs() -> DirBuilder {
    let mut builder = DirBuilder::new();
    builder.recursive(true).mode(0o700);
    builder
}

/// A new file, 0600, that did not exist.
fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

fn to_system_time(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn from_system_time(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn join_error(err: tokio::task::JoinError) -> MediaError {
    MediaError::Io(io::Error::other(err))
}
