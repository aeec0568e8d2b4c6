//! The service layer: every rule of rooms and messages, written once. The REST handlers and the
//! WebSocket connection task are thin adapters over [`Service`].
//!
//! **Architecture invariant:** a room's messages are published in seq order. A message is
//! published by the hook the store runs once it is durable ([`Store::append_then`]), and a
//! store runs a room's hooks in seq order; no lock is held across the database round trip.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use switchboard_protocol::limits::{
    DEFAULT_ROOM_PAGE, MAX_BODY_BYTES, MAX_CLIENT_MSG_ID_BYTES, MAX_HISTORY_LIMIT,
    MAX_ROOM_NAME_CHARS, MAX_ROOM_PAGE,
};
use switchboard_protocol::rest::Room;
use switchboard_protocol::ws::{Message, ServerFrame};
use switchboard_protocol::{Millis, Seq};

use crate::broker::{Broker, Event};
use crate::error::{Error, Result};
use crate::store::{
    NewMessage, NewRoom, Page, RoomPage, RoomRecord, Store, StoreError, UserRef, KIND_DIRECT,
};

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

/// Looks up users by username (the auth service, in-process or remote).
#[async_trait::async_trait]
pub trait UserDirectory: Send + Sync + 'static {
    /// The user with this username, if any. `caller` is who asks (a remote directory
    /// authenticates the lookup with the caller's token).
    async fn find(&self, username: &str, caller: &Identity) -> Result<Option<UserRef>>;
}

#[async_trait::async_trait]
impl UserDirectory for switchboard_auth::Auth {
    async fn find(&self, username: &str, _caller: &Identity) -> Result<Option<UserRef>> {
        Ok(self.user_by_username(username).await?.map(|u| UserRef {
            id: u.id,
            username: u.username,
        }))
    }
}

/// Minimum interval between two `typing` events of one user in one room.
const TYPING_INTERVAL: Duration = Duration::from_secs(2);

/// Users tracked by the room-creation quota before those whose quota has refilled are forgotten.
const ROOM_QUOTA_PRUNE_AT: usize = 10_000;

/// Group rooms a user may create per hour on this node (`--rooms-per-hour`): a burst of `n`,
/// refilled at `n` per hour, one key per user id (governor's GCRA). Beyond it `create_room`
/// fails with [`Error::RetryAfter`] (429 `rate_limited` with `Retry-After`).
struct RoomQuota {
    limiter: governor::DefaultKeyedRateLimiter<Arc<str>>,
    clock: governor::clock::DefaultClock,
}

impl RoomQuota {
    fn per_hour(n: std::num::NonZeroU32) -> Self {
        Self {
            limiter: governor::RateLimiter::keyed(governor::Quota::per_hour(n)),
            clock: governor::clock::DefaultClock::default(),
        }
    }

    /// Takes one room from `user`'s quota, or says how long until one is free.
    fn take(&self, user: &Arc<str>) -> Result<()> {
        use governor::clock::Clock;
        if self.limiter.len() > ROOM_QUOTA_PRUNE_AT {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(user)
            .map_err(|wait| Error::RetryAfter(wait.wait_time_from(self.clock.now())))
    }
}

/// Current time in milliseconds since the Unix epoch.
pub fn now_ms() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as Millis)
}

/// The rules of rooms and messages over a [`Store`], publishing through a [`Broker`].
pub struct Service {
    store: Arc<dyn Store>,
    broker: Arc<dyn Broker>,
    users: Arc<dyn UserDirectory>,
    presence: Arc<dyn crate::presence::Presence>,
    /// Per-user send limits (none: unlimited).
    user_limits: Option<crate::ratelimit::PerUser>,
    /// (room, user) → last typing event sent; pruned when it grows.
    typing: DashMap<(Arc<str>, Arc<str>), Instant>,
    /// Per-user quota of rooms created (none: unlimited).
    room_quota: Option<RoomQuota>,
}

impl Service {
    /// A service over these components.
    pub fn new(
        store: Arc<dyn Store>,
        broker: Arc<dyn Broker>,
        users: Arc<dyn UserDirectory>,
        presence: Arc<dyn crate::presence::Presence>,
    ) -> Self {
        Self {
            store,
            broker,
            users,
            presence,
            user_limits: None,
            typing: DashMap::new(),
            room_quota: None,
        }
    }

    /// Limits each user to creating `per_hour` group rooms per hour on this node (burst
    /// `per_hour`); 0: no limit.
    pub fn with_room_quota(mut self, per_hour: u32) -> Self {
        self.room_quota = std::num::NonZeroU32::new(per_hour).map(RoomQuota::per_hour);
        self
    }

    /// Limits each user to `rate` sends per second with bursts of `burst` on this node.
    pub fn with_user_limits(mut self, rate: u32, burst: u32) -> Self {
        self.user_limits = Some(crate::ratelimit::PerUser::new(rate, burst));
        self
    }

    /// A connection of `who` subscribed to `room`: announce them if they just came online there.
    pub async fn presence_join(&self, who: &Identity, room: &str) {
        if self.presence.join(room, &who.username).await {
            let frame = ServerFrame::Presence {
                room: room.to_owned(),
                user: who.username.to_string(),
                online: true,
            };
            self.publish(room, None, &frame, None);
        }
    }

    /// A connection of `who` left `room`: announce them if they are gone from it everywhere.
    pub async fn presence_leave(&self, who: &Identity, room: &str) {
        if self.presence.leave(room, &who.username).await {
            let frame = ServerFrame::Presence {
                room: room.to_owned(),
                user: who.username.to_string(),
                online: false,
            };
            self.publish(room, None, &frame, None);
        }
    }

    /// A user's subscriptions to a room ended on this node (see [`crate::registry::Evicted`]):
    /// they stop counting towards the user's presence there, which is announced if they are
    /// gone from it everywhere.
    pub async fn presence_evicted(&self, ev: &crate::registry::Evicted) {
        let mut gone = false;
        for _ in 0..ev.connections {
            gone |= self.presence.leave(&ev.room, &ev.username).await;
        }
        if gone {
            let frame = ServerFrame::Presence {
                room: ev.room.to_string(),
                user: ev.username.to_string(),
                online: false,
            };
            self.publish(&ev.room, None, &frame, None);
        }
    }

    /// Who is online in a room the caller may read.
    pub async fn presence(&self, actor: Option<&Identity>, room: &str) -> Result<Vec<String>> {
        self.readable_room(actor, room).await?;
        Ok(self.presence.list(room).await)
    }

    fn publish(&self, room: &str, seq: Option<Seq>, frame: &ServerFrame, skip_conn: Option<u64>) {
        self.broker.publish(Arc::new(Event {
            room: room.into(),
            seq,
            bytes: frame.to_bytes(),
            skip_conn,
            skip_user: None,
            evict_user: None,
        }));
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

    /// Creates a group room with `who` as its first member.
    ///
    /// # Errors
    /// `bad_request` for a bad name; `rate_limited` ([`Error::RetryAfter`]) once the caller
    /// spent their room quota (a refused request costs nothing).
    pub async fn create_room(&self, who: &Identity, name: &str, public: bool) -> Result<Room> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_ROOM_NAME_CHARS || name.contains('\0') {
            return Err(Error::BadRequest(format!(
                "room name must be 1 to {MAX_ROOM_NAME_CHARS} characters"
            )));
        }
        if let Some(quota) = &self.room_quota {
            quota.take(&who.id)?;
        }
        let rec = self
            .store
            .create_room(NewRoom {
                id: uuid::Uuid::now_v7().to_string(),
                name: name.to_owned(),
                public,
                creator: who.user_ref(),
                ts: now_ms(),
            })
            .await?;
        Ok(to_room(rec, None, None))
    }

    /// A page of the caller's rooms, most recently active first, with unread counts, and the
    /// cursor of the next page (`None` on the last). `limit`: 1..=[`MAX_ROOM_PAGE`], default
    /// [`DEFAULT_ROOM_PAGE`]. `cursor`: the `next_cursor` of the page before. A walk keeps the
    /// order of its first page (see [`RoomPage`] for what it guarantees).
    ///
    /// # Errors
    /// `bad_request` for a limit out of range or a cursor this hub did not make.
    pub async fn rooms_of(
        &self,
        who: &Identity,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<(Vec<Room>, Option<String>)> {
        let limit = limit.unwrap_or(DEFAULT_ROOM_PAGE);
        if limit == 0 || limit > MAX_ROOM_PAGE {
            return Err(Error::BadRequest(format!(
                "limit must be 1 to {MAX_ROOM_PAGE}"
            )));
        }
        let (as_of, after) = match cursor {
            None => (now_ms(), None),
            Some(c) => {
                let c = RoomCursor::decode(c)
                    .ok_or_else(|| Error::BadRequest("invalid cursor".into()))?;
                (c.as_of, Some((c.activity, c.room)))
            }
        };
        let page = RoomPage {
            as_of,
            after,
            // One more than asked: whether it comes says if there is a next page.
            limit: limit + 1,
        };
        let mut rooms = self.store.rooms_of(&who.id, page).await?;
        let next = if rooms.len() > limit as usize {
            rooms.truncate(limit as usize);
            rooms.last().map(|last| {
                RoomCursor {
                    as_of,
                    activity: last.activity,
                    room: last.room.id.clone(),
                }
                .encode()
            })
        } else {
            None
        };
        let rooms = rooms
            .into_iter()
            .map(|m| {
                let unread = m.room.last_seq.saturating_sub(m.read_seq);
                to_room(m.room, Some((unread, m.read_seq)), None)
            })
            .collect();
        Ok((rooms, next))
    }

    /// One room with its members. Private rooms the caller is not in are `not_found`.
    pub async fn room(&self, actor: Option<&Identity>, room: &str) -> Result<Room> {
        let rec = match self.readable_room(actor, room).await {
            Err(Error::Forbidden(_)) => return Err(Error::NotFound("room not found")),
            other => other?,
        };
        let members = self.store.members(room).await?;
        Ok(to_room(rec, None, Some(members)))
    }

    /// Adds `username` to a group room the caller is a member of (idempotent).
    pub async fn add_member(&self, who: &Identity, room: &str, username: &str) -> Result<()> {
        let rec = self.member_room(who, room).await?;
        if rec.kind == KIND_DIRECT {
            return Err(Error::Forbidden("direct rooms have exactly two members"));
        }
        let user = self
            .users
            .find(username, who)
            .await?
            .ok_or_else(|| Error::UserNotFound(username.to_owned()))?;
        if self.store.add_member(room, &user, now_ms()).await? {
            let frame = ServerFrame::MemberJoined {
                room: room.to_owned(),
                user: user.username,
            };
            self.publish(room, None, &frame, None);
        }
        Ok(())
    }

    /// Removes the caller from a room. In a private room their subscriptions end too. A direct
    /// room is never left, only hidden (see [`Service::hide_direct`]).
    pub async fn leave(&self, who: &Identity, room: &str) -> Result<()> {
        let rec = self
            .store
            .room(room)
            .await?
            .ok_or(Error::NotFound("room not found"))?;
        if rec.kind == KIND_DIRECT {
            return self.hide_direct(who, room).await;
        }
        if !self.store.remove_member(room, &who.id).await? {
            return Err(Error::Forbidden("not a member of this room"));
        }
        self.publish_member_left(room, who, None, (!rec.public).then(|| who.id.clone()));
        Ok(())
    }

    /// Publishes `member_left` for `who`, ending `evict_user`'s subscriptions to the room on
    /// every node, and not delivered to `skip_user`'s connections.
    fn publish_member_left(
        &self,
        room: &str,
        who: &Identity,
        skip_user: Option<Arc<str>>,
        evict_user: Option<Arc<str>>,
    ) {
        let frame = ServerFrame::MemberLeft {
            room: room.to_owned(),
            user: who.username.to_string(),
        };
        self.broker.publish(Arc::new(Event {
            room: room.into(),
            seq: None,
            bytes: frame.to_bytes(),
            skip_conn: None,
            skip_user,
            evict_user,
        }));
    }

    /// "Leaving" a direct room: it is hidden from the caller's room list and their
    /// subscriptions to it end (each of their connections gets `member_left` for themselves,
    /// then `unsubbed`; the other side is told nothing), but they stay a member, so the other
    /// side's messages never go where nobody can read them. It is shown again when the caller
    /// opens it ([`Service::direct`]) or when a new message arrives in it (the store's append
    /// does that), with every message in it.
    ///
    /// # Errors
    /// `forbidden` when the caller is not a member.
    async fn hide_direct(&self, who: &Identity, room: &str) -> Result<()> {
        let Some(others) = self.store.hide_member(room, &who.id).await? else {
            return Err(Error::Forbidden("not a member of this room"));
        };
        // A direct room has one other member: only the caller's own connections hear it.
        let other = others.into_iter().next().map(Into::into);
        self.publish_member_left(room, who, other, Some(who.id.clone()));
        Ok(())
    }

    /// The direct room of the caller and `username`, created on first use; shown again to the
    /// caller if they had hidden it.
    pub async fn direct(&self, who: &Identity, username: &str) -> Result<Room> {
        let peer = self
            .users
            .find(username, who)
            .await?
            .ok_or_else(|| Error::UserNotFound(username.to_owned()))?;
        if *peer.id == *who.id {
            return Err(Error::Conflict("a direct room needs two different users"));
        }
        let id = uuid::Uuid::now_v7().to_string();
        let rec = self
            .store
            .direct_room(&who.user_ref(), &peer, &id, now_ms())
            .await?;
        let members = self.store.members(&rec.id).await?;
        Ok(to_room(rec, None, Some(members)))
    }

    /// A page of history (ascending). `limit` must be 1..=100.
    pub async fn history(
        &self,
        actor: Option<&Identity>,
        room: &str,
        page: Page,
    ) -> Result<Vec<Message>> {
        if page.limit == 0 || page.limit > MAX_HISTORY_LIMIT {
            return Err(Error::BadRequest(format!(
                "limit must be 1 to {MAX_HISTORY_LIMIT}"
            )));
        }
        self.readable_room(actor, room).await?;
        Ok(self.store.messages(room, page).await?)
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
        Ok(self.store.messages(room, page).await?)
    }

    /// Stores a message and publishes it; returns the ack. A repeated `client_msg_id` returns
    /// the first message's ack and publishes nothing.
    pub async fn post(
        &self,
        who: &Identity,
        room: &str,
        body: String,
        client_msg_id: Option<String>,
    ) -> Result<Ack> {
        self.post_queued(who, room, body, client_msg_id)
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
    ) -> Result<PendingPost> {
        validate_body(&body)?;
        if let Some(limits) = &self.user_limits {
            if !limits.take(&who.id) {
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
        // Membership, the append and the author's read mark are one store call (one round
        // trip): a send is the hot path. The store publishes it once it is durable, in seq
        // order (see the module invariant).
        let msg = NewMessage {
            room: room.to_owned(),
            sender: who.user_ref(),
            body,
            client_msg_id: client_msg_id.clone(),
            ts: now_ms(),
        };
        let publish = {
            let broker = self.broker.clone();
            let event_room: Arc<str> = room.into();
            let (room, from, body) = (
                msg.room.clone(),
                msg.sender.username.clone(),
                msg.body.clone(),
            );
            let client_msg_id = client_msg_id.clone();
            Box::new(move |appended: &crate::store::Appended| {
                let frame = ServerFrame::Message(Message {
                    room,
                    seq: appended.seq,
                    from,
                    body,
                    ts: appended.ts,
                    client_msg_id,
                    edited_ts: None,
                    deleted: false,
                });
                broker.publish(Arc::new(Event {
                    room: event_room,
                    seq: Some(appended.seq),
                    bytes: frame.to_bytes(),
                    skip_conn: None,
                    skip_user: None,
                    evict_user: None,
                }));
            })
        };
        let pending = self
            .store
            .enqueue_append(msg, publish)
            .await
            .map_err(append_error)?;
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
        validate_body(&body)?;
        let mut msg = self.own_message(who, room, seq).await?;
        let ts = now_ms();
        self.store.edit(room, seq, &body, ts).await?;
        let frame = ServerFrame::Edited {
            room: room.to_owned(),
            seq,
            body: body.clone(),
            edited_ts: ts,
        };
        self.publish(room, None, &frame, None);
        msg.body = body;
        msg.edited_ts = Some(ts);
        Ok(msg)
    }

    /// Deletes the caller's own message (it stays as a tombstone).
    pub async fn delete(&self, who: &Identity, room: &str, seq: Seq) -> Result<()> {
        self.own_message(who, room, seq).await?;
        self.store.delete(room, seq, now_ms()).await?;
        self.publish(
            room,
            None,
            &ServerFrame::Deleted {
                room: room.to_owned(),
                seq,
            },
            None,
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
        self.publish(room, None, &frame, None);
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
        let key: (Arc<str>, Arc<str>) = (room.into(), who.id.clone());
        let now = Instant::now();
        if let Some(last) = self.typing.get(&key) {
            if now.duration_since(*last) < TYPING_INTERVAL {
                return Ok(());
            }
        }
        if self.typing.len() > 10_000 {
            self.typing
                .retain(|_, t| now.duration_since(*t) < TYPING_INTERVAL);
        }
        self.typing.insert(key, now);
        let frame = ServerFrame::Typing {
            room: room.to_owned(),
            user: who.username.to_string(),
        };
        self.publish(room, None, &frame, Some(conn));
        Ok(())
    }
}

/// Where a walk over `GET /v1/rooms` stands: its snapshot time and the list position of the
/// last room it returned. On the wire: `{as_of}.{activity}.{room id}` in unpadded base64url,
/// opaque to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RoomCursor {
    as_of: Millis,
    activity: Millis,
    room: String,
}

impl RoomCursor {
    fn encode(&self) -> String {
        use base64::Engine as _;
        let text = format!("{}.{}.{}", self.as_of, self.activity, self.room);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    /// `None` for anything [`RoomCursor::encode`] did not make.
    fn decode(cursor: &str) -> Option<Self> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cursor)
            .ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(3, '.');
        let as_of = parts.next()?.parse().ok()?;
        let activity = parts.next()?.parse().ok()?;
        let room = parts.next()?.to_owned();
        (!room.is_empty() && !room.contains('\0')).then_some(Self {
            as_of,
            activity,
            room,
        })
    }
}

fn validate_body(body: &str) -> Result<()> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Error::TooLarge(format!(
            "message body is over {MAX_BODY_BYTES} bytes"
        )));
    }
    if body.trim().is_empty() {
        return Err(Error::BadRequest("message body is empty".into()));
    }
    if body.contains('\0') {
        return Err(Error::BadRequest(
            "message body contains a NUL character".into(),
        ));
    }
    Ok(())
}

fn to_room(rec: RoomRecord, unread: Option<(u64, Seq)>, members: Option<Vec<String>>) -> Room {
    Room {
        id: rec.id,
        name: rec.name,
        public: rec.public,
        kind: rec.kind,
        created_by: rec.created_by,
        last_seq: rec.last_seq,
        unread: unread.map(|u| u.0),
        read_seq: unread.map(|u| u.1),
        members,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_cursors_round_trip_and_refuse_anything_else() {
        let cursor = RoomCursor {
            as_of: 1_763_780_000_000,
            activity: -5,
            room: "01JD.8X0:ROOM".into(),
        };
        assert_eq!(RoomCursor::decode(&cursor.encode()), Some(cursor.clone()));
        let encoded = cursor.encode();
        assert!(
            encoded
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "safe in a query string: {encoded}"
        );
        for bad in ["", "!!", "bm90LmEuY3Vyc29y", "MS4y", "MS4yLg"] {
            assert_eq!(RoomCursor::decode(bad), None, "{bad:?}");
        }
    }
}
