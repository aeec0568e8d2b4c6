//! Who may upload to and download from a room's attachments.

use super::{Identity, Service};
use crate::error::{Error, Result};
use crate::store::RoomRecord;

impl Service {
    /// The room if `who` may upload an attachment to it: a member. Each upload counts as one
    /// send against the per-user send limit (`--user-rate-per-sec`), which so bounds how fast
    /// one user can fill the blob store.
    ///
    /// # Errors
    /// `not_found` for an unknown room or a private room the caller is not in (its existence
    /// is not told); `forbidden` for a public room the caller has not joined; `rate_limited`
    /// over the send limit.
    pub async fn uploadable_room(&self, who: &Identity, room: &str) -> Result<RoomRecord> {
        if let Some(limits) = &self.user_limits {
            if !limits.take(&who.id) {
                self.metrics().rate_limited(crate::metrics::Limit::Sends);
                return Err(Error::RateLimited);
            }
        }
        let rec = self
            .store
            .room(room)
            .await?
            .ok_or(Error::NotFound("room not found"))?;
        match self.store.membership(room, &who.id).await? {
            Some(_) => Ok(rec),
            None if rec.public => Err(Error::Forbidden("not a member of this room")),
            None => Err(Error::NotFound("room not found")),
        }
    }

    /// The room if `actor` (possibly anonymous) may download its attachments: anyone for a
    /// public room, members for a private one. Also whether `actor` is a member.
    ///
    /// # Errors
    /// `not_found` for an unknown room and for a private room the caller is not in.
    pub async fn downloadable_room(
        &self,
        actor: Option<&Identity>,
        room: &str,
    ) -> Result<RoomRecord> {
        match self.readable_room(actor, room).await {
            Err(Error::Forbidden(_)) => Err(Error::NotFound("room not found")),
            other => other,
        }
    }
}

/// The window of `--upload-bytes-per-day`.
pub const UPLOAD_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a user may still upload now under `--upload-bytes-per-day`
/// ([`Service::upload_allowance`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadAllowance {
    /// The limit (bytes per [`UPLOAD_WINDOW`]); `u64::MAX` when there is none.
    pub per_day: u64,
    /// Bytes left now.
    pub left: u64,
    /// When the oldest upload counted leaves the window (and gives its bytes back).
    pub retry: std::time::Duration,
}

impl UploadAllowance {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        per_day: u64::MAX,
        left: u64::MAX,
        retry: std::time::Duration::ZERO,
    };
}

impl Service {
    /// What `who` may still upload under `per_day` (0: no limit), counted over every node
    /// from the media index: the attachments `who` uploaded in the last [`UPLOAD_WINDOW`]
    /// and that are still kept.
    ///
    /// # Errors
    /// `too_large` when `want` bytes could never fit (over `per_day` itself);
    /// `rate_limited` (with `Retry-After`) when `want` bytes do not fit now; `unavailable`
    /// when the index cannot be read.
    pub async fn upload_allowance(
        &self,
        who: &Identity,
        per_day: u64,
        want: u64,
    ) -> Result<UploadAllowance> {
        let Some(index) = self.media.as_ref().filter(|_| per_day > 0) else {
            return Ok(UploadAllowance::UNLIMITED);
        };
        if want > per_day {
            return Err(Error::TooLarge(format!(
                "the file is larger than the {per_day} bytes a user may upload in a day"
            )));
        }
        let now = super::now_ms();
        let window = i64::try_from(UPLOAD_WINDOW.as_millis()).expect("a day fits");
        let (used, oldest) = index.uploaded_since(&who.id, now - window).await?;
        let retry = oldest.map_or(std::time::Duration::ZERO, |oldest| {
            std::time::Duration::from_millis(u64::try_from(oldest + window - now).unwrap_or(0))
        });
        let allowance = UploadAllowance {
            per_day,
            left: per_day.saturating_sub(used),
            retry,
        };
        if want > allowance.left || allowance.left == 0 {
            return Err(self.over_upload_allowance(&allowance));
        }
        Ok(allowance)
    }

    /// The refusal of an upload that does not fit `allowance` (counted in the metrics).
    pub fn over_upload_allowance(&self, allowance: &UploadAllowance) -> Error {
        self.metrics()
            .rate_limited(crate::metrics::Limit::UploadBytes);
        Error::UploadAllowance {
            per_day: allowance.per_day,
            retry: allowance.retry,
        }
    }
}
