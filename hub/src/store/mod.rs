//! Durable state of the hub: rooms, membership, read marks and messages.
//!
//! [`Store`] is the seam between the service layer and a database. The embedded default is
//! [`sqlite::SqliteStore`]; [`postgres::PgStore`] (PostgreSQL with a batching writer) is the
//! second implementation, for running several hub nodes on one database.
//!
//! **Invariants every implementation keeps:**
//! - a room's seqs start at 1 and each [`Store::append`] assigns the next one, with no gaps and
//!   no reuse, atomically with storing the message;
//! - `(room, sender, client_msg_id)` is unique: appending a repeat returns the first message's
//!   seq and ts with `duplicate: true` and stores nothing;
//! - `append` returns only after the message is durable;
//! - the store only stores: no caller code runs on its writer. After each commit it sends the
//!   messages that commit made durable (never a repeat of a `client_msg_id`, never one of a
//!   failed or rolled-back batch) through the [`CommitSender`] it was built with, a room's
//!   messages in seq order within a batch and across batches, and before it acknowledges any of
//!   them; whoever holds the receiver (the service's publisher) delivers them. A room's order
//!   on the channel follows from its appends being committed by one writer, one batch after
//!   another (see `sqlite::append_writer` and `postgres::batch`).

#[cfg(test)]
pub(crate) mod contract;
pub mod events;
pub mod migrate;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use switchboard_protocol::ws::{AttachmentInfo, Message};
use switchboard_protocol::{Millis, Seq};

/// Why a store operation failed. The service layer turns every variant into `unavailable` or
/// `internal`; expected outcomes (not found, duplicate) are values, not errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
    /// The schema could not be brought up to date, or is newer than this binary's.
    #[error("migration: {0}")]
    Migration(#[from] switchboard_kit::migrate::MigrateError),
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// PostgreSQL answered with an error, or the connection failed mid-operation.
    #[error("postgres: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had (refused, timed out, pool closed).
    #[error("postgres pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The database did not answer within the configured bound (`PgConfig::timeout`).
    #[error("database did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// The batch that carried this append failed as a whole and was rolled back, so none of it
    /// is stored (unless the failure was a timeout that cut off its `COMMIT` in flight: then it
    /// may be, and a retry with the same `client_msg_id` finds it). Shared by every append of
    /// that batch.
    #[error("batch write failed: {0}")]
    Batch(#[source] std::sync::Arc<StoreError>),
    /// The append named a room that does not exist.
    #[error("room {0:?} does not exist")]
    RoomNotFound(String),
    /// The append's sender is not a member of the room (which exists).
    #[error("not a member of room {0:?}")]
    NotMember(String),
    /// The batch writer task has stopped (the store is shutting down, or the task panicked).
    #[error("the batch writer has stopped")]
    WriterGone,
    /// The text holds a NUL character, which PostgreSQL cannot store (SQLite can). Checked
    /// before a message joins a batch, where it would fail every other message of that batch.
    #[error("{0} contains a NUL character")]
    NulCharacter(&'static str),
    /// The stored data break an invariant (a seq above `rooms.last_seq` already taken);
    /// the transaction was rolled back.
    #[error("inconsistent store: {0}")]
    Inconsistent(String),
}

impl StoreError {
    /// True when the failure says the database is unreachable, overloaded or too slow, rather
    /// than that the request or the data are wrong: the client may retry later (`unavailable`).
    /// The rest is a wrong request ([`Self::RoomNotFound`], [`Self::NotMember`],
    /// [`Self::NulCharacter`]) or a bug or broken invariant (`internal`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Timeout(_) | Self::Pool(_) | Self::WriterGone => true,
            Self::Batch(inner) => inner.is_unavailable(),
            Self::Postgres(e) => postgres::is_transient(e),
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
            ),
            Self::Sqlite(_)
            | Self::Join(_)
            | Self::Migration(_)
            | Self::Io(_)
            | Self::RoomNotFound(_)
            | Self::NotMember(_)
            | Self::NulCharacter(_)
            | Self::Inconsistent(_) => false,
        }
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// A seq as a bound in a range query: the databases store seqs as signed 64-bit integers.
/// Seqs from clients are at most `MAX_SEQ` = `i64::MAX` (checked where they are decoded), so
/// this is exact for them; a larger one saturates at `i64::MAX`, which keeps `seq > bound` and
/// `seq < bound` right (no stored seq is above `i64::MAX`), never wraps to a negative bound.
pub(crate) fn seq_bound(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

/// A seq as a key of an equality lookup: `None` when no stored message can have it (above
/// `i64::MAX`), so the lookup finds nothing instead of failing or matching another seq.
pub(crate) fn seq_key(seq: Seq) -> Option<i64> {
    i64::try_from(seq).ok()
}

/// The prefix of a bot's id (`bot:<name>`). User ids are UUIDs (auth makes them), which
/// never hold a `:`, so a bot's id never equals a user's even when its name equals a username.
pub const BOT_ID_PREFIX: &str = "bot:";

/// Whether a sender id is a bot's (see [`BOT_ID_PREFIX`]).
pub fn is_bot_id(id: &str) -> bool {
    id.starts_with(BOT_ID_PREFIX)
}

/// `group` or `direct`.
pub const KIND_GROUP: &str = "group";
/// A room of exactly two users, created by `POST /v1/direct/{username}`.
pub const KIND_DIRECT: &str = "direct";

/// A room row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub kind: String,
    pub created_by: String,
    pub last_seq: Seq,
    pub last_ts: Millis,
}

/// A room as seen by one member, for the room list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRoom {
    pub room: RoomRecord,
    pub read_seq: Seq,
    /// The room's place in the list: its activity as of the page's `as_of` (see [`RoomPage`]).
    pub activity: Millis,
}

/// Which page of a member's room list to read ([`Store::rooms_of`]).
///
/// The list is ordered by activity, newest first, then by room id. A walk over all pages keeps
/// one `as_of` (the time its first page was read): a room's activity is its `last_ts` when that
/// is at most `as_of`, else the `ts` of its newest message stamped at or before `as_of` (or its
/// creation time). So a room that becomes active during the walk keeps the place it had when
/// the walk began, and the walk lists it exactly once; rooms joined, created, shown, left or
/// hidden during the walk may or may not be listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomPage {
    /// The walk's snapshot time, in ms since the epoch.
    pub as_of: Millis,
    /// Only rooms after this `(activity, room id)` in list order: the last room of the page
    /// before. `None`: from the top.
    pub after: Option<(Millis, String)>,
    /// Most rooms returned.
    pub limit: u32,
}

impl RoomPage {
    /// Every room, in list order as of now.
    pub fn everything() -> Self {
        Self {
            as_of: Millis::MAX,
            after: None,
            limit: u32::MAX,
        }
    }
}

/// A room to create. The creator becomes its first member.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub id: String,
    pub name: String,
    pub public: bool,
    pub creator: UserRef,
    pub ts: Millis,
}

/// A user as the hub stores it: the id from the token's `sub` and the username.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: String,
    pub username: String,
}

/// A message to append; the store assigns its seq.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub room: String,
    pub sender: UserRef,
    pub body: String,
    pub client_msg_id: Option<String>,
    pub ts: Millis,
    /// The attachments it carries (already checked by the service: this room's, the sender's,
    /// not yet sent). The append links them (`attachments.seq`) in its own transaction, only
    /// when there are any; the committed message carries those it linked.
    pub attachments: Vec<AttachmentInfo>,
}

impl NewMessage {
    /// The ids of its attachments.
    pub(crate) fn attachment_ids(&self) -> Vec<&str> {
        self.attachments.iter().map(|a| a.id.as_str()).collect()
    }
}

/// The ids of the attachments an append linked; `None` when its message carried none.
pub(crate) type Linked = Option<Vec<String>>;

/// The outcome of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub seq: Seq,
    pub ts: Millis,
    /// The `client_msg_id` was seen before: `seq`/`ts` are the first message's; nothing stored.
    pub duplicate: bool,
}

/// A message the store has made durable (never a repeat of a client_msg_id).
#[derive(Debug, Clone)]
pub struct Committed {
    /// The message's room (the same as `message.room`), shared by the events made from it.
    pub room: Arc<str>,
    /// The message as stored: its seq and ts assigned, not edited, not deleted.
    pub message: Message,
    /// When the transaction that stored it committed: where its fanout latency starts.
    pub at: std::time::Instant,
}

/// Where a store hands its commits: one Vec per committed batch (SQLite: per transaction),
/// a room's messages in seq order within and across batches.
///
/// The channel is bounded: when the receiver lags, the store's writer waits for room before it
/// acknowledges the batch (back-pressure on the senders, which then wait within their
/// timeout). When the receiver is gone (the node is shutting down), commits are dropped.
pub type CommitSender = tokio::sync::mpsc::Sender<Vec<Committed>>;

impl Committed {
    /// The message `msg` became, durable with `seq` and `ts` by a commit at `at`, carrying
    /// the attachments its append `linked` (an attachment a concurrent message of the same
    /// sender linked first is not this one's).
    fn new(
        mut msg: NewMessage,
        seq: Seq,
        ts: Millis,
        at: std::time::Instant,
        linked: Linked,
    ) -> Self {
        if let Some(linked) = linked {
            msg.attachments.retain(|a| linked.contains(&a.id));
        }
        Self {
            at,
            room: msg.room.as_str().into(),
            message: Message {
                room: msg.room,
                seq,
                from: msg.sender.username,
                body: msg.body,
                ts,
                client_msg_id: msg.client_msg_id,
                edited_ts: None,
                deleted: false,
                bot: is_bot_id(&msg.sender.id),
                attachments: msg.attachments,
            },
        }
    }
}

/// The outcome of a queued append (see [`Store::enqueue_append`]).
pub type PendingAppend =
    std::pin::Pin<Box<dyn std::future::Future<Output = StoreResult<Appended>> + Send>>;

/// A stored message with its author's id (which the wire [`Message`] does not show).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    pub sender_id: String,
    pub message: Message,
}

/// Which page of history to read. At most one of `before`/`after` is usually given; with
/// neither, the newest `limit` messages. Results are always in ascending seq order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub before: Option<Seq>,
    pub after: Option<Seq>,
    pub limit: u32,
}

/// The hub's durable state. All methods are cancel-safe in the sense that a dropped future
/// either completed its write or did not start it (each runs as one transaction).
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a room with its creator as the first member.
    async fn create_room(&self, room: NewRoom) -> StoreResult<RoomRecord>;
    /// The room, if it exists.
    async fn room(&self, id: &str) -> StoreResult<Option<RoomRecord>>;
    /// The direct room of two users, created (with both as members) if it does not exist.
    /// `a` is the caller: if they had hidden the room it is shown to them again (see
    /// [`Store::hide_member`]); a missing membership of either user is restored.
    async fn direct_room(
        &self,
        a: &UserRef,
        b: &UserRef,
        new_id: &str,
        ts: Millis,
    ) -> StoreResult<RoomRecord>;
    /// The caller's read mark if they are a member, `None` otherwise.
    async fn membership(&self, room: &str, user_id: &str) -> StoreResult<Option<Seq>>;
    /// Adds a member; returns false if they already were one.
    async fn add_member(&self, room: &str, user: &UserRef, ts: Millis) -> StoreResult<bool>;
    /// Removes a member; returns false if they were not one.
    async fn remove_member(&self, room: &str, user_id: &str) -> StoreResult<bool>;
    /// Hides a room from a member's room list ([`Store::rooms_of`]) without ending their
    /// membership (how a direct room is left). Showing it again: [`Store::direct_room`] by
    /// that member, or any new message in the room (every append shows the room to all its
    /// members). Returns the ids of the room's other members, or `None` if `user_id` is not a
    /// member.
    async fn hide_member(&self, room: &str, user_id: &str) -> StoreResult<Option<Vec<String>>>;
    /// Usernames of a room's members, in joining order.
    async fn members(&self, room: &str) -> StoreResult<Vec<String>>;
    /// A page of the rooms a user is a member of and has not hidden, most recently active first
    /// (see [`RoomPage`] for the order and what a walk over pages guarantees).
    async fn rooms_of(&self, user_id: &str, page: RoomPage) -> StoreResult<Vec<MemberRoom>>;
    /// Appends a message from a member, assigning the room's next seq (see the module
    /// invariants), moves the sender's read mark up to it and shows the room again to members
    /// who hid it — in one transaction, so a send costs one round trip. Fails with
    /// [`StoreError::RoomNotFound`] or [`StoreError::NotMember`] (membership is checked for
    /// repeats of a key too).
    ///
    /// A new message (not a repeat) is sent through the store's [`CommitSender`] after its
    /// commit and before this returns, even if the caller has stopped waiting.
    async fn append(&self, msg: NewMessage) -> StoreResult<Appended> {
        self.enqueue_append(msg).await?.await
    }
    /// [`append`](Self::append) in two steps: resolves once the append is queued (waiting, in
    /// call order, while the queue is full), to the future of its outcome. Appends to one room
    /// are performed in queue order, so a caller that queues several appends to a room before
    /// awaiting any gets ascending seqs in that order (this is how a connection pipelines its
    /// sends). Dropping the outcome future before it resolves may or may not store the message.
    async fn enqueue_append(&self, msg: NewMessage) -> StoreResult<PendingAppend>;
    /// A page of messages (tombstones included), ascending.
    async fn messages(&self, room: &str, page: Page) -> StoreResult<Vec<Message>>;
    /// One message, with its author's id.
    async fn message(&self, room: &str, seq: Seq) -> StoreResult<Option<MessageRecord>>;
    /// Replaces a message's body.
    async fn edit(&self, room: &str, seq: Seq, body: &str, ts: Millis) -> StoreResult<()>;
    /// Turns a message into a tombstone (empty body, `deleted`).
    async fn delete(&self, room: &str, seq: Seq, ts: Millis) -> StoreResult<()>;
    /// Moves a member's read mark forward to `min(seq, last_seq)`; returns the mark now stored.
    async fn set_read(&self, room: &str, user_id: &str, seq: Seq) -> StoreResult<Seq>;
    /// Deletes every message stored before `cutoff` (retention); seqs are never reused, so the
    /// room's `last_seq` stays. Returns how many were deleted.
    async fn purge_before(&self, cutoff: Millis) -> StoreResult<u64>;
    /// The oldest seq still stored in the room, if any.
    async fn first_seq(&self, room: &str) -> StoreResult<Option<Seq>>;
    /// The id of a user known to the hub by `username` (a member, or once a member, of a
    /// room), never a bot's. Usernames are never reused (a deleted account's stays reserved),
    /// so a hit names the right account, which may have been deleted since.
    async fn known_user(&self, username: &str) -> StoreResult<Option<UserRef>>;
    /// Stores a new API key; false (nothing stored) when its name or id is taken.
    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<bool>;
    /// Every API key, oldest first.
    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>>;
    /// The API key with this id, if it exists (is not revoked).
    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Deletes the API key with this name or id; returns it, `None` if there is none.
    async fn revoke_api_key(&self, name_or_id: &str) -> StoreResult<Option<ApiKeyRecord>>;
    /// Records that the key with this id was used at `ts`.
    async fn touch_api_key(&self, id: &str, ts: Millis) -> StoreResult<()>;
}

/// An API key as stored: never the key, only its SHA-256 (see `crate::apikeys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// The key's public id (part of the key, not secret).
    pub id: String,
    pub name: String,
    /// SHA-256 of the whole key.
    pub hash: Vec<u8>,
    pub created_ts: Millis,
    pub last_used_ts: Option<Millis>,
}
