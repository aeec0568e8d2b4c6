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
