//! [`ImageSlots`]: the bounds on one hub's image work, so that the memory and CPU of uploads
//! do not grow with the number of callers.

use std::time::Duration;

use tokio::sync::Semaphore;

/// How many image uploads (avatars) may be under way at once on one hub, from their first
/// byte to the end of their decode: each holds at most its bound (2 MiB) in memory, so at most
/// `UPLOADS` × 2 MiB in all.
pub const UPLOADS: usize = 16;
/// How many uploads may be decoded and re-encoded at once (on the blocking pool): a
/// 4096×4096 image is 64 MiB of pixels while it is worked on.
pub const DECODES: usize = 2;
/// The longest an upload's body may take to arrive; past it the upload is refused and its
/// slot freed (a trickling client cannot hold one forever).
pub const BODY_DEADLINE: Duration = Duration::from_secs(30);

/// How many attachment uploads may be received at once on one hub: each holds a spool file
/// (one descriptor, at most `--max-attachment-bytes` of disk), so at most this many of each.
pub const ATTACHMENT_UPLOADS: usize = 64;
/// The longest an attachment's body may take to arrive (10 MiB at about 35 KiB/s); past it the
/// upload is refused, its spool file removed and its slot freed.
pub const ATTACHMENT_DEADLINE: Duration = Duration::from_secs(300);

/// The semaphores of [`UPLOADS`], [`DECODES`] and [`ATTACHMENT_UPLOADS`], one set per hub.
#[derive(Debug)]
pub struct ImageSlots {
    /// Uploads being received (taken without waiting: none free is `503 unavailable`).
    pub uploads: Semaphore,
    /// Decodes (waited for: the upload is already received).
    pub decodes: Semaphore,
    /// Attachment uploads being received (taken without waiting, as `uploads`).
    pub attachments: Semaphore,
}

impl Default for ImageSlots {
    fn default() -> Self {
        Self {
            uploads: Semaphore::new(UPLOADS),
            decodes: Semaphore::new(DECODES),
            attachments: Semaphore::new(ATTACHMENT_UPLOADS),
        }
    }
}
