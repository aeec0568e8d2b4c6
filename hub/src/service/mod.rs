//! The service layer: every rule of rooms and messages, written once. The REST handlers and the
//! WebSocket connection task are thin adapters over [`Service`].
//!
//! **Architecture invariant:** a room's messages are published in seq order. The store sends
//! each message once it is durable, a room's in seq order, through a channel
//! ([`crate::store::CommitSender`]); the fanout publishes them in the order received
//! ([`Fanout::spawn_commits`]); no lock is held across the database round trip, and no
//! publishing code runs on the store's writer. Everything goes out through the [`Fanout`].

use std::sync::Arc;

use switchboard_protocol::limits::{
    MAX_ATTACHMENTS_PER_MESSAGE, MAX_BODY_BYTES, MAX_CLIENT_MSG_ID_BYTES, MAX_HISTORY_LIMIT,
};
use switchboard_protocol::ws::{AttachmentInfo, Message, ServerFrame};
use switchboard_protocol::{Millis, Seq};

mod attachments;
mod directory;
mod presence;
mod rooms;
mod server;
mod subscribe;

pub use subscribe::{SinkClosed, SubLimits, SubRequest, SubSink, Subscribed};

pub use directory::{RemoteUsers, UserDirectory};

use crate::error::{Error, Result};
use crate::fanout::{Event, Fanout, Target};
use crate::store::{NewMessage, Page, RoomRecord, Store, StoreError, UserRef};

/// An authenticated caller, from a verified access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// User id (the token's `sub`).
    pub id: Arc<str>,
    pub username: Arc<str>,
    /// Session id (the token's `sid`): logout closes every connection of it.
    pub session: Arc<str>,
    pub role: String,
    /// The access token the caller presented (forwarded to a remote auth node for lookups).
    pub token: Arc<str>,
}

impl Identity {
    fn user_ref(&self) -> UserRef {
        UserRef {
            id: self.id.to_string(),
            username: self.username.to_string(),
        }
    }
}

/// What an `ack` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    pub seq: Seq,
    pub ts: Millis,
    pub client_msg_id: Option<String>,
}

/// The ack of a queued send (see [`Service::post_queued`]).
pub type PendingPost = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Ack>> + Send>>;

/// A failed append as the client sees it: the store's refusals in the service's words.
fn append_error(e: StoreError) -> Error {
    match e {
        StoreError::RoomNotFound(_) => Error::NotFound("room not found"),
        StoreError::NotMember(_) => Error::Forbidden("not a member of this room"),
        other => other.into(),
    }
}

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// The rules of rooms and messages over a [`Store`], publishing through the [`Fanout`].
pub struct Service {
    store: Arc<dyn Store>,
    fanout: Fanout,
    users: Arc<dyn UserDirectory>,
    presence: Arc<dyn crate::presence::Presence>,
    /// Client frames per connection, for the WebSocket adapter (see [`Service::frames`]).
    frames: crate::ratelimit::Frames,
    /// Per-user send limits (none: unlimited).
    user_limits: Option<crate::ratelimit::PerUser>,
    /// One `typing` event per user and room per `ratelimit::TYPING_INTERVAL`.
    typing: crate::ratelimit::Typing,
    /// Group rooms a user may create per hour on this node (`--rooms-per-hour`: a burst of `n`,
    /// refilled at `n` per hour; none: unlimited). Beyond it `create_room` fails with
    /// [`Error::RetryAfter`].
    room_quota: Option<crate::ratelimit::Refilling>,
    /// Bounds on `sub`.
    sub_limits: SubLimits,
    /// Server API requests per API key (none: unlimited).
    server_limits: Option<crate::ratelimit::PerUser>,
    /// Avatar uploads per user (fixed: `ratelimit::AVATAR_CHANGE_PERIOD`).
    avatar_changes: crate::ratelimit::Refilling,
    /// The media index, where sends find their attachments and history their metadata (none:
    /// a send with attachments is refused, history carries none).
    media: Option<Arc<dyn crate::media::index::MediaIndex>>,
}

impl Service {
    /// A service over these components.
    pub fn new(
        store: Arc<dyn Store>,
        fanout: Fanout,
        users: Arc<dyn UserDirectory>,
        presence: Arc<dyn crate::presence::Presence>,
    ) -> Self {
        Self {
            store,
            fanout,
            users,
            presence,
            frames: crate::ratelimit::Frames::new(
                switchboard_protocol::limits::DEFAULT_RATE_PER_SEC,
                switchboard_protocol::limits::DEFAULT_RATE_BURST,
            ),
            user_limits: None,
            typing: crate::ratelimit::Typing::default(),
            room_quota: None,
            sub_limits: SubLimits::default(),
            server_limits: None,
            avatar_changes: crate::ratelimit::Refilling::new(crate::ratelimit::avatar_changes()),
            media: None,
        }
    }

    /// Queues `frame` to every connection of every node (see [`Fanout::broadcast`]); returns
    /// how many of this node's it reached.
    pub fn broadcast(&self, frame: &switchboard_protocol::ws::ServerFrame) -> usize {
        self.fanout.broadcast(frame)
    }

    /// Lets messages carry attachments recorded in `index`.
    pub fn with_media(mut self, index: Arc<dyn crate::media::index::MediaIndex>) -> Self {
        self.media = Some(index);
        self
    }

    /// The node's metrics.
    fn metrics(&self) -> &crate::metrics::HubMetrics {
        self.fanout.registry().metrics()
    }

    /// Bounds `sub` (see [`SubLimits`]).
    pub fn with_sub_limits(mut self, limits: SubLimits) -> Self {
        self.sub_limits = limits;
        self
    }

    /// Limits each user to creating `per_hour` group rooms per hour on this node (burst
    /// `per_hour`); 0: no limit.
    pub fn with_room_quota(mut self, per_hour: u32) -> Self {
        self.room_quota = std::num::NonZeroU32::new(per_hour)
            .map(|n| crate::ratelimit::Refilling::new(governor::Quota::per_hour(n)));
        self
    }

    /// Limits each WebSocket connection to `rate` client frames per second with bursts of
    /// `burst` (default: the protocol's 20 and 40).
    pub fn with_frame_limits(mut self, rate: u32, burst: u32) -> Self {
        self.frames = crate::ratelimit::Frames::new(rate, burst);
        self
    }

    /// The per-connection frame limits, which the WebSocket adapter applies to every client
    /// frame. They live here, shared by the node's connections, rather than in each
    /// connection's task: an idle connection then holds no limiter state at all.
    pub fn frames(&self) -> &crate::ratelimit::Frames {
        &self.frames
    }

    /// Limits each API key to `rate` server API requests per second with bursts of `burst` on
    /// this node.
    pub fn with_server_limits(mut self, rate: u32, burst: u32) -> Self {
        self.server_limits = Some(crate::ratelimit::PerUser::new(rate, burst));
        self
    }

    /// Limits each user to `rate` sends per second with bursts of `burst` on this node.
    pub fn with_user_limits(mut self, rate: u32, burst: u32) -> Self {
        self.user_limits = Some(crate::ratelimit::PerUser::new(rate, burst));
        self
    }

    /// Takes one avatar upload from `who`'s allowance (`ratelimit::avatar_changes`).
    ///
    /// # Errors
    /// `rate_limited` with the wait until the next one.
    pub fn take_avatar_change(&self, who: &Identity) -> Result<()> {
        self.avatar_changes.take(&who.id).map_err(|wait| {
            self.metrics().rate_limited(crate::metrics::Limit::Uploads);
            Error::RetryAfter(wait)
        })
    }

    /// Forgets the keys of the rate limits (frames, sends, typing, avatars, room quota) whose
    /// allowance has refilled. The node runs it every `ratelimit::SWEEP_EVERY` from a background task
    /// (`ratelimit::spawn_sweeper`); no request walks these maps.
    pub fn sweep_limits(&self) {
        if let Some(limits) = &self.user_limits {
            limits.sweep();
        }
        if let Some(limits) = &self.server_limits {
            limits.sweep();
        }
        self.frames.sweep();
        self.typing.sweep();
        self.avatar_changes.sweep();
        if let Some(quota) = &self.room_quota {
            quota.sweep();
        }
    }

    /// Publishes `frame` to `room`'s subscribers on every node (those `target` names).
    fn publish(&self, room: &str, frame: &ServerFrame, target: Target) {
        self.fanout.publish(Event::new(room.into(), frame, target));
    }

    /// The room, if `actor` may read it: members always, anyone when it is public.
    ///
    /// # Errors
    /// `not_found` when it does not exist; `forbidden` when it is private and the caller
    /// (possibly anonymous) is not a member.
    pub async fn readable_room(&self, actor: Option<&Identity>, room: &str) -> Result<RoomRecord> {
        let rec = self
            .store
            .room(room)
            .await?
            .ok_or(Error::NotFound("room not found"))?;
        if rec.public {
            return Ok(rec);
        }
        let member = match actor {
            None => false,
            Some(who) => self.store.membership(room, &who.id).await?.is_some(),
        };
        if member {
            Ok(rec)
        } else {
            Err(Error::Forbidden("not a member of this room"))
        }
    }

    /// The room if `who` is a member of it.
    async fn member_room(&self, who: &Identity, room: &str) -> Result<RoomRecord> {
        let rec = self
            .store
            .room(room)
            .await?
            .ok_or(Error::NotFound("room not found"))?;
        match self.store.membership(room, &who.id).await? {
            Some(_) => Ok(rec),
            None => Err(Error::Forbidden("not a member of this room")),
        }
    }

    /// A page of history (ascending). `limit` must be 1..=100.
    pub async fn history(
        &self,
        actor: Option<&Identity>,
        room: &str,
        page: Page,
    ) -> Result<Vec<Message>> {
        check_history_limit(page.limit)?;
        self.readable_room(actor, room).await?;
        let messages = self.store.messages(room, page).await?;
        self.with_attachments(room, messages).await
    }

    /// `messages` with the metadata of their attachments (one index query per page; deleted
    /// messages have none).
    pub(crate) async fn with_attachments(
        &self,
        room: &str,
        messages: Vec<Message>,
    ) -> Result<Vec<Message>> {
        match &self.media {
            None => Ok(messages),
            Some(index) => Ok(crate::media::attachments::fill(&**index, room, messages).await?),
        }
    }

    /// The attachments a send names, checked: at most [`MAX_ATTACHMENTS_PER_MESSAGE`], no id
    /// twice (`bad_request`); each an attachment of `room` (`not_found` otherwise, also for
    /// another user's upload not yet sent, which nobody else may see); not yet sent
    /// (`bad_request`), unless it was sent with the message this send repeats (same sender and
    /// `client_msg_id`: a retry, which the store answers with the first ack). In upload order,
    /// the order history gives them.
    async fn send_attachments(
        &self,
        who: &Identity,
        room: &str,
        ids: Vec<String>,
        client_msg_id: Option<&str>,
    ) -> Result<Vec<AttachmentInfo>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        if ids.len() > MAX_ATTACHMENTS_PER_MESSAGE {
            return Err(Error::BadRequest(format!(
                "a message carries at most {MAX_ATTACHMENTS_PER_MESSAGE} attachments"
            )));
        }
        let mut seen = std::collections::HashSet::new();
        if !ids.iter().all(|id| seen.insert(id.as_str())) {
            return Err(Error::BadRequest("an attachment is named twice".into()));
        }
        let index = self
            .media
            .as_ref()
            .ok_or_else(|| Error::BadRequest("this hub takes no attachments".into()))?;
        // The room and membership first, so a non-member learns nothing of its attachments.
        self.member_room(who, room).await?;
        let mut found = Vec::with_capacity(ids.len());
        for id in &ids {
            let a = index
                .attachment(room, id)
                .await?
                .filter(|a| a.seq.is_some() || *a.uploader == *who.id)
                .ok_or(Error::NotFound("attachment not found"))?;
            if let Some(seq) = a.seq {
                let retry = match client_msg_id {
                    None => false,
                    Some(key) => self.store.message(room, seq).await?.is_some_and(|r| {
                        *r.sender_id == *who.id && r.message.client_msg_id.as_deref() == Some(key)
                    }),
                };
                if !retry {
                    return Err(Error::BadRequest(format!(
                        "attachment {id} was already sent"
                    )));
                }
            }
            found.push(a);
        }
        found.sort_by(|a, b| (a.created_ts, &a.id).cmp(&(b.created_ts, &b.id)));
        Ok(found.iter().map(crate::media::attachment_info).collect())
    }

    /// Checks that a catch-up from `since` is still whole: no message after `since` was deleted
    /// by retention.
    ///
    /// # Errors
    /// `history_expired` when retention deleted messages after `since`: resuming from it would
    /// leave a gap.
    pub async fn check_retained(&self, room: &str, since: Seq) -> Result<()> {
        if let Some(first) = self.store.first_seq(room).await? {
            if since.checked_add(1).is_some_and(|next| next < first) {
                return Err(Error::HistoryExpired(since));
            }
        } else if let Some(rec) = self.store.room(room).await? {
            if since < rec.last_seq {
                return Err(Error::HistoryExpired(since));
            }
        }
        Ok(())
    }

    /// One page of catch-up for `sub`: at most `limit` (1..=[`MAX_HISTORY_LIMIT`]) stored
    /// messages with a seq above `after`, ascending. A catch-up is read a page at a time, so
    /// that what it holds in memory is bounded by the page, not by the room's history.
    pub async fn messages_after(&self, room: &str, after: Seq, limit: u32) -> Result<Vec<Message>> {
        let page = Page {
            before: None,
            after: Some(after),
            limit: limit.clamp(1, MAX_HISTORY_LIMIT),
        };
        let messages = self.store.messages(room, page).await?;
        self.with_attachments(room, messages).await
    }

    /// Stores a message and publishes it; returns the ack. A repeated `client_msg_id` returns
    /// the first message's ack and publishes nothing.
    pub async fn post(
        &self,
        who: &Identity,
        room: &str,
        body: String,
        client_msg_id: Option<String>,
        attachments: Vec<String>,
    ) -> Result<Ack> {
        self.post_queued(who, room, body, client_msg_id, attachments)
            .await?
            .await
    }

    /// [`post`](Self::post) in two steps: validates the send and queues it for the store,
    /// then resolves to the future of its ack. Sends queued one after another are stored in
    /// that order (a room's seqs ascend in queue order), so a connection may queue its next
    /// send before the last one is acknowledged.
    pub async fn post_queued(
        &self,
        who: &Identity,
        room: &str,
        body: String,
        client_msg_id: Option<String>,
        attachments: Vec<String>,
    ) -> Result<PendingPost> {
        // A message with attachments may have an empty body (a file sent alone).
        validate_body(&body, !attachments.is_empty())?;
        if let Some(limits) = &self.user_limits {
            if !limits.take(&who.id) {
                self.metrics().rate_limited(crate::metrics::Limit::Sends);
                return Err(Error::RateLimited);
            }
        }
        if let Some(id) = &client_msg_id {
            if id.is_empty() || id.len() > MAX_CLIENT_MSG_ID_BYTES {
                return Err(Error::BadRequest(format!(
                    "client_msg_id must be 1 to {MAX_CLIENT_MSG_ID_BYTES} bytes"
                )));
            }
        }
        let attachments = self
            .send_attachments(who, room, attachments, client_msg_id.as_deref())
            .await?;
        // Membership, the append and the author's read mark are one store call (one round
        // trip): a send is the hot path. The store hands it to the publisher once it is
        // durable, in seq order (see the module invariant).
        let msg = NewMessage {
            room: room.to_owned(),
            sender: who.user_ref(),
            body,
            client_msg_id: client_msg_id.clone(),
            ts: now_ms(),
            attachments,
        };
        let pending = self.store.enqueue_append(msg).await.map_err(append_error)?;
        Ok(Box::pin(async move {
            let appended = pending.await.map_err(append_error)?;
            Ok(Ack {
                seq: appended.seq,
                ts: appended.ts,
                client_msg_id,
            })
        }))
    }

    /// The message at `seq` if `who` wrote it and it is not deleted.
    async fn own_message(&self, who: &Identity, room: &str, seq: Seq) -> Result<Message> {
        self.member_room(who, room).await?;
        let rec = self.store.message(room, seq).await?;
        match rec {
            Some(r) if !r.message.deleted => {
                if *r.sender_id != *who.id {
                    return Err(Error::Forbidden("only the author may change a message"));
                }
                Ok(r.message)
            }
            _ => Err(Error::NotFound("message not found")),
        }
    }

    /// Replaces the body of the caller's own message.
    pub async fn edit(
        &self,
        who: &Identity,
        room: &str,
        seq: Seq,
        body: String,
    ) -> Result<Message> {
        validate_body(&body, false)?;
        let msg = self.own_message(who, room, seq).await?;
        let ts = now_ms();
        self.store.edit(room, seq, &body, ts).await?;
        // The answer shows the message whole, its attachments too.
        let mut msg = self
            .with_attachments(room, vec![msg])
            .await?
            .pop()
            .expect("one message in, one out");
        let frame = ServerFrame::Edited {
            room: room.to_owned(),
            seq,
            body: body.clone(),
            edited_ts: ts,
        };
        self.publish(room, &frame, Target::Room);
        msg.body = body;
        msg.edited_ts = Some(ts);
        Ok(msg)
    }

    /// Deletes a message (it stays as a tombstone): the caller's own, or, for an admin (the
    /// token's `role` claim), any message in any room, which subscribers see as `deleted` with
    /// `moderated: true` when the admin is not its author.
    ///
    /// # Errors
    /// `not_found` for an unknown room or an unknown or already deleted message; `forbidden`
    /// for a user who is not a member of the room or not the author.
    pub async fn delete(&self, who: &Identity, room: &str, seq: Seq) -> Result<()> {
        let moderated = if who.role == switchboard_auth::tokens::ROLE_ADMIN {
            self.store
                .room(room)
                .await?
                .ok_or(Error::NotFound("room not found"))?;
            match self.store.message(room, seq).await? {
                Some(r) if !r.message.deleted => *r.sender_id != *who.id,
                _ => return Err(Error::NotFound("message not found")),
            }
        } else {
            self.own_message(who, room, seq).await?;
            false
        };
        self.store.delete(room, seq, now_ms()).await?;
        if moderated {
            tracing::info!(admin = %who.id, room, seq, "message deleted by moderation");
        }
        self.publish(
            room,
            &ServerFrame::Deleted {
                room: room.to_owned(),
                seq,
                moderated,
            },
            Target::Room,
        );
        Ok(())
    }

    /// Moves the caller's read mark forward; returns the mark now stored.
    pub async fn mark_read(&self, who: &Identity, room: &str, seq: Seq) -> Result<Seq> {
        self.member_room(who, room).await?;
        let mark = self.store.set_read(room, &who.id, seq).await?;
        let frame = ServerFrame::Read {
            room: room.to_owned(),
            user: who.username.to_string(),
            seq: mark,
        };
        self.publish(room, &frame, Target::Room);
        Ok(mark)
    }

    /// Deletes messages older than `age` (retention); returns how many.
    pub async fn purge_older_than(&self, age: std::time::Duration) -> Result<u64> {
        Ok(self
            .store
            .purge_before(now_ms() - age.as_millis() as Millis)
            .await?)
    }

    /// Tells the room's other connections that `who` is typing (throttled, not stored).
    pub async fn typing(&self, who: &Identity, room: &str, conn: u64) -> Result<()> {
        self.member_room(who, room).await?;
        if !self.typing.allow(room, &who.id) {
            self.metrics().rate_limited(crate::metrics::Limit::Typing);
            return Ok(());
        }
        let frame = ServerFrame::Typing {
            room: room.to_owned(),
            user: who.username.to_string(),
        };
        self.publish(room, &frame, Target::AllBut(conn));
        Ok(())
    }
}

/// Checks a message body; `may_be_empty` for a message that carries attachments.
fn validate_body(body: &str, may_be_empty: bool) -> Result<()> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::TooLarge(format!(
            "message body is over {MAX_BODY_BYTES} bytes"
        )));
    }
    if body.trim().is_empty() && !may_be_empty {
        return Err(Error::BadRequest("message body is empty".into()));
    }
    if body.contains('\0') {
        return Err(Error::BadRequest(
            "message body contains a NUL character".into(),
        ));
    }
    Ok(())
}

/// A history page's `limit` must be 1..=[`MAX_HISTORY_LIMIT`] (the user's and the server API's
/// history alike).
pub(super) fn check_history_limit(limit: u32) -> Result<()> {
    if limit == 0 || limit > MAX_HISTORY_LIMIT {
        return Err(Error::BadRequest(format!(
            "limit must be 1 to {MAX_HISTORY_LIMIT}"
        )));
    }
    Ok(())
}
