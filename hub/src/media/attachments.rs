//! Attachments: what an upload becomes (a cleaned name, a sniffed type, a blob, a thumbnail,
//! a random id) and how a download is labelled.
//!
//! **Uploads are spooled.** The body goes first to a file of its own under
//! `<data-dir>/uploads` ([`Spool`]), counted against `--max-attachment-bytes` as it arrives
//! (refused with 413 the moment it passes the bound, never held in memory), and only once it
//! is complete is it streamed into the blob store. So a slow or stalled client holds a file
//! descriptor and some disk, never a blob-store (PostgreSQL) connection or transaction; and
//! the type is sniffed and the thumbnail made from the complete file. The spool file is
//! removed on every path: success, refusal, a body that breaks off, and a request dropped
//! midway (its [`Drop`]); leftovers of a crash are removed when the hub starts
//! ([`Spool::clear_dir`]).
//!
//! **Thumbnails.** An image (sniffed PNG, JPEG, WebP or GIF) within
//! [`Bounds::THUMBNAIL_SOURCE`] (checked from the bytes and the header before decoding) gets a
//! PNG fitting [`THUMBNAIL_SIDE`]² pixels; at most [`THUMBNAIL_JOBS`] are decoded at once, on
//! blocking threads. An image that is too large, a decompression bomb or a corrupt file is
//! still stored as a file, without a thumbnail.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use rand::RngCore as _;
use switchboard_media::images::{self, Bounds};
use switchboard_media::sniff::{self, SNIFF_BYTES};
use switchboard_media::{BlobRef, Hash, MediaError};
use switchboard_protocol::ws::AttachmentInfo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::index::Attachment;

/// The largest side of a thumbnail, in pixels.
pub const THUMBNAIL_SIDE: u32 = 256;
/// Thumbnails decoded at once on a node (each may hold up to 64 MiB of pixels).
pub const THUMBNAIL_JOBS: usize = 2;
/// The longest file name kept, in bytes (cut at a character boundary).
pub const MAX_NAME_BYTES: usize = 200;
/// The name of a file uploaded without one (or whose name cleans to nothing).
pub const DEFAULT_NAME: &str = "file";
/// The spool directory, under the data directory.
const SPOOL_DIR: &str = "uploads";

/// Why an upload was not stored.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The body passed `--max-attachment-bytes` (HTTP 413); it was read no further.
    #[error("the file is larger than {0} bytes")]
    TooLarge(u64),
    /// The body broke off (the client went away or sent less than its `Content-Length`).
    #[error("the upload broke off: {0}")]
    Truncated(String),
    /// The spool file could not be written or read.
    #[error("spooling the upload: {0}")]
    Io(#[from] std::io::Error),
    /// The blob store failed.
    #[error("storing the upload: {0}")]
    Store(MediaError),
}

/// The wire form of an attachment: its metadata and URLs.
pub fn attachment_info(a: &Attachment) -> AttachmentInfo {
    AttachmentInfo {
        id: a.id.clone(),
        name: a.name.clone(),
        size: a.size,
        content_type: a.content_type.clone(),
        url: AttachmentInfo::url_of(&a.room, &a.id),
        thumbnail_url: a
            .thumb
            .is_some()
            .then(|| AttachmentInfo::thumbnail_url_of(&a.room, &a.id)),
    }
}

/// `messages` of `room` with the metadata of their attachments, read from `index` in one
/// query (deleted messages have none). What history pages, catch-ups and gap fills carry.
///
/// # Errors
/// The index cannot be read.
pub async fn fill(
    index: &dyn super::index::MediaIndex,
    room: &str,
    mut messages: Vec<switchboard_protocol::ws::Message>,
) -> crate::store::StoreResult<Vec<switchboard_protocol::ws::Message>> {
    let seqs: Vec<switchboard_protocol::Seq> = messages
        .iter()
        .filter(|m| !m.deleted)
        .map(|m| m.seq)
        .collect();
    if seqs.is_empty() {
        return Ok(messages);
    }
    let found = index.attachments_of(room, &seqs).await?;
    if found.is_empty() {
        return Ok(messages);
    }
    let mut by_seq: std::collections::HashMap<switchboard_protocol::Seq, Vec<AttachmentInfo>> =
        std::collections::HashMap::new();
    for a in &found {
        if let Some(seq) = a.seq {
            by_seq.entry(seq).or_default().push(attachment_info(a));
        }
    }
    for m in &mut messages {
        if let Some(list) = by_seq.remove(&m.seq) {
            m.attachments = list;
        }
    }
    Ok(messages)
}

/// A new attachment id: 128 bits of the OS's CSPRNG, as 32 lowercase hex digits.
pub fn new_id() -> String {
    let mut bytes = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `id` looks like an attachment id (so a lookup is not even tried otherwise).
pub fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A client's file name made safe to store and to show: the last path component only (`/`
/// and `\` both separate), no control characters, no leading dots or surrounding spaces, at
/// most [`MAX_NAME_BYTES`] bytes; [`DEFAULT_NAME`] when nothing is left.
pub fn clean_name(raw: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let kept: String = last.chars().filter(|c| !c.is_control()).collect();
    let trimmed = kept.trim().trim_start_matches('.').trim();
    let mut end = trimmed.len().min(MAX_NAME_BYTES);
    while !trimmed.is_char_boundary(end) {
        end -= 1;
    }
    let name = trimmed[..end].trim_end();
    if name.is_empty() {
        DEFAULT_NAME.to_owned()
    } else {
        name.to_owned()
    }
}

/// The file name of a `Content-Disposition` header: `filename*=UTF-8''<percent-encoded>`
/// (RFC 5987, preferred) or `filename="..."` / `filename=token`. Not cleaned.
pub fn disposition_filename(header: &str) -> Option<String> {
    let mut plain = None;
    for param in split_params(header) {
        let Some((key, value)) = param.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim();
        if key == "filename*" {
            let (charset, rest) = value.split_once('\'')?;
            let (_lang, encoded) = rest.split_once('\'')?;
            if charset.eq_ignore_ascii_case("utf-8") {
                if let Some(name) = percent_decode(encoded) {
                    return Some(name);
                }
            }
        } else if key == "filename" {
            plain = Some(unquote(value));
        }
    }
    plain
}

/// The `;`-separated parameters of a header value, `;` inside quotes kept.
fn split_params(header: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in header.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                out.push(&header[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&header[start..]);
    out
}

fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(next) = chars.next() {
                        out.push(next);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => value.to_owned(),
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The `Content-Disposition` of a download of `name`: `inline` (images) or `attachment`,
/// with an ASCII `filename` fallback and the exact name as `filename*` (RFC 6266, RFC 5987).
pub fn content_disposition(inline: bool, name: &str) -> String {
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' && c != '%' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// Whether a stored type is an image the hub shows inline (and thumbnails).
pub fn is_inline_image(content_type: &str) -> bool {
    matches!(
        content_type,
        "image/png" | "image/jpeg" | "image/webp" | "image/gif"
    )
}

/// An upload's body on disk while it arrives (see the module docs). Removed when dropped.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    size: u64,
}

/// Spool files made by this process (with the pid, unique within the directory).
static SPOOLED: AtomicU64 = AtomicU64::new(0);

impl Spool {
    /// The spool directory of a data directory.
    pub fn dir(data_dir: &Path) -> PathBuf {
        data_dir.join(SPOOL_DIR)
    }

    /// Makes the spool directory (private: 0700, like the rest of the data directory) and
    /// removes what a previous run left in it (a crash).
    ///
    /// # Errors
    /// The directory cannot be made or read.
    pub async fn clear_dir(data_dir: &Path) -> std::io::Result<()> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let dir = Self::dir(data_dir);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        tokio::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).await?;
        let mut entries = tokio::fs::read_dir(&dir).await?;
        while let Some(entry) = entries.next_entry().await? {
            if entry.file_name().to_string_lossy().ends_with(".part") {
                let _ = tokio::fs::remove_file(entry.path()).await;
            }
        }
        Ok(())
    }

    /// Writes `body` to a new spool file under `data_dir`, refusing it as soon as it passes
    /// `max_bytes`.
    ///
    /// # Errors
    /// [`UploadError::TooLarge`], [`UploadError::Truncated`] (the body failed),
    /// [`UploadError::Io`]. The file is gone on every error.
    pub async fn receive<S, E>(
        data_dir: &Path,
        body: S,
        max_bytes: u64,
    ) -> Result<Self, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        let dir = Self::dir(data_dir);
        let n = SPOOLED.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("{}-{n}-{}.part", std::process::id(), new_id()));
        // Private (0600), like every file of the data directory.
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .await?;
        // From here the guard removes the file on any exit.
        let mut spool = Spool { path, size: 0 };
        let mut body = std::pin::pin!(body);
        while let Some(piece) = body.next().await {
            let piece = piece.map_err(|e| UploadError::Truncated(e.to_string()))?;
            spool.size = spool.size.saturating_add(piece.len() as u64);
            if spool.size > max_bytes {
                return Err(UploadError::TooLarge(max_bytes));
            }
            file.write_all(&piece).await?;
        }
        file.flush().await?;
        Ok(spool)
    }

    /// The file's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The path of the file.
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Up to `n` first bytes.
    async fn head(&self, n: usize) -> std::io::Result<Vec<u8>> {
        let file = tokio::fs::File::open(&self.path).await?;
        let mut out = Vec::with_capacity(n.min(usize::try_from(self.size).unwrap_or(n)));
        file.take(n as u64).read_to_end(&mut out).await?;
        Ok(out)
    }

    /// The file as a stream of 64 KiB pieces.
    async fn stream(&self) -> std::io::Result<switchboard_media::BodyStream> {
        let file = tokio::fs::File::open(&self.path).await?;
        let pieces = futures_util::stream::try_unfold(file, |mut file| async move {
            let mut buf = vec![0u8; 64 * 1024];
            let n = file.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(None);
            }
            buf.truncate(n);
            Ok(Some((Bytes::from(buf), file)))
        });
        Ok(switchboard_media::body(pieces))
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        // Quick (an unlink), so done in place, on every path.
        if let Err(e) = std::fs::remove_file(&self.path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(error = %e, path = %self.path.display(), "removing a spool file");
            }
        }
    }
}

/// What a spooled upload was stored as.
#[derive(Debug, Clone)]
pub struct Stored {
    pub blob: BlobRef,
    pub content_type: &'static str,
    pub thumb: Option<Hash>,
}

/// Stores a complete upload: sniffs its type, makes an image's thumbnail, and streams the
/// file into the blob store (the thumbnail too, if any).
///
/// # Errors
/// [`UploadError::Io`] (reading the spool), [`UploadError::Store`].
pub async fn store(media: &super::Media, spool: &Spool) -> Result<Stored, UploadError> {
    let head = spool.head(SNIFF_BYTES).await?;
    let complete = (head.len() as u64) == spool.size();
    let content_type = sniff::content_type(&head, complete);
    let thumb_png = if is_inline_image(content_type) {
        thumbnail(media, spool).await
    } else {
        None
    };
    let blob = media
        .store()
        .put_stream(spool.stream().await?, spool.size())
        .await
        .map_err(UploadError::Store)?;
    let thumb = match thumb_png {
        Some(png) => Some(
            media
                .store()
                .put(Bytes::from(png))
                .await
                .map_err(UploadError::Store)?
                .hash,
        ),
        None => None,
    };
    Ok(Stored {
        blob,
        content_type,
        thumb,
    })
}

/// The thumbnail of a spooled image, if it is within [`Bounds::THUMBNAIL_SOURCE`] and decodes.
async fn thumbnail(media: &super::Media, spool: &Spool) -> Option<Vec<u8>> {
    let bounds = Bounds::THUMBNAIL_SOURCE;
    if spool.size() > bounds.max_bytes as u64 {
        tracing::debug!(size = spool.size(), "an image too large for a thumbnail");
        return None;
    }
    let _permit = media.thumbnails.acquire().await.ok()?;
    let bytes = tokio::fs::read(&spool.path).await.ok()?;
    let made =
        tokio::task::spawn_blocking(move || images::thumbnail(&bytes, &bounds, THUMBNAIL_SIDE))
            .await
            .ok()?;
    match made {
        Ok(png) => Some(png),
        Err(e) => {
            tracing::debug!(error = %e, "an image attachment without a thumbnail");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_cleaned() {
        assert_eq!(clean_name("report.pdf"), "report.pdf");
        assert_eq!(clean_name("../../etc/passwd"), "passwd");
        assert_eq!(clean_name("C:\\Users\\me\\photo.jpg"), "photo.jpg");
        assert_eq!(clean_name("a\u{0}b\nc\u{1b}.txt"), "abc.txt");
        assert_eq!(clean_name("  .hidden  "), "hidden");
        assert_eq!(clean_name(""), DEFAULT_NAME);
        assert_eq!(clean_name("dir/"), DEFAULT_NAME);
        assert_eq!(clean_name(".."), DEFAULT_NAME);
        let long = "é".repeat(300);
        let cut = clean_name(&long);
        assert!(cut.len() <= MAX_NAME_BYTES && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn disposition_names_are_read() {
        let read = disposition_filename;
        assert_eq!(
            read("attachment; filename=\"a b.txt\"").as_deref(),
            Some("a b.txt")
        );
        assert_eq!(
            read("attachment; filename=plain.txt").as_deref(),
            Some("plain.txt")
        );
        assert_eq!(
            read("attachment; filename=\"x.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt").as_deref(),
            Some("été.txt")
        );
        assert_eq!(
            read("attachment; filename=\"a;b\\\".txt\"").as_deref(),
            Some("a;b\".txt")
        );
        assert_eq!(read("inline"), None);
    }

    #[test]
    fn dispositions_encode_the_name() {
        assert_eq!(
            content_disposition(false, "été \"x\".txt"),
            "attachment; filename=\"_t_ _x_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9%20%22x%22.txt"
        );
        assert!(content_disposition(true, "a.png").starts_with("inline; filename=\"a.png\""));
    }

    #[test]
    fn ids_are_random_hex() {
        let (a, b) = (new_id(), new_id());
        assert_ne!(a, b);
        assert!(is_id(&a) && is_id(&b));
        assert!(!is_id("1") && !is_id(&"g".repeat(32)));
    }

    #[tokio::test]
    async fn a_spool_is_removed_on_every_path() {
        let dir = tempfile::tempdir().unwrap();
        Spool::clear_dir(dir.path()).await.unwrap();
        let empty = |d: &Path| std::fs::read_dir(Spool::dir(d)).unwrap().count() == 0;
        let ok = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("hello"))]);
        let spool = Spool::receive(dir.path(), ok, 5).await.unwrap();
        assert_eq!(spool.size(), 5);
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(spool.path()), 0o600);
        assert_eq!(mode(&Spool::dir(dir.path())), 0o700);
        drop(spool);
        assert!(empty(dir.path()));

        let big = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from("123456"))]);
        let err = Spool::receive(dir.path(), big, 5).await.unwrap_err();
        assert!(matches!(err, UploadError::TooLarge(5)));
        assert!(empty(dir.path()));

        let broken = futures_util::stream::iter([
            Ok(Bytes::from("12")),
            Err(std::io::Error::other("reset")),
        ]);
        let err = Spool::receive(dir.path(), broken, 5).await.unwrap_err();
        assert!(matches!(err, UploadError::Truncated(_)));
        assert!(empty(dir.path()));
    }
}
