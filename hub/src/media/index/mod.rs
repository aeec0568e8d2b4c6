//! The media index: which avatars, emoticons and attachments exist, and so which blobs are
//! still referred to. [`MediaIndex`] is the seam; [`sqlite::SqliteMedia`] (the embedded
//! configuration, on the hub's SQLite file) and [`postgres::PgMedia`] (on the hub's PostgreSQL
//! database) implement it, and one contract suite (`contract.rs`) runs against both.
//!
//! Invariants every implementation keeps:
//! - **A blob is referred to** exactly while some avatar (either size), emoticon, or
//!   attachment (its bytes or its thumbnail) names it: [`MediaIndex::is_referenced`] is what
//!   the garbage collector asks before deleting one.
//! - **Only avatars and emoticons are public** ([`MediaIndex::is_public`]): an attachment's
//!   blob or thumbnail is never served by hash alone, only through its room.
//! - **An attachment belongs to one room**, and is found only with that room
//!   ([`MediaIndex::attachment`] takes both). Once sent, it lives as long as its message: when
//!   the message is deleted or gone (retention), it is no longer found, and the sweep
//!   ([`MediaIndex::sweep_attachments`]) removes its row.
//! - A message's append links its attachments (`seq`) in the append's own transaction (the
//!   store does it, see `store::sqlite` and `store::postgres::batch`), so an acknowledged
//!   message never refers to an attachment the sweep may take.

#[cfg(test)]
mod contract;
pub mod postgres;
pub mod sqlite;

use async_trait::async_trait;
use switchboard_media::Hash;
use switchboard_protocol::{Millis, Seq};

use crate::store::StoreResult;

/// An uploaded avatar, re-encoded at two sizes. A user without one has the generated
/// identicon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Avatar {
    /// The 64 px PNG.
    pub small: Hash,
    /// The 256 px PNG.
    pub large: Hash,
    pub updated_ts: Millis,
}

/// A custom emoticon: `:shortcode:` renders as the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emoticon {
    /// `[a-z0-9_]{2,32}`, unique.
    pub shortcode: String,
    /// The re-encoded PNG.
    pub hash: Hash,
    /// Username of the admin who uploaded it.
    pub created_by: String,
    pub created_ts: Millis,
}

/// A file uploaded to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// Random (128 bits of a CSPRNG), never sequential.
    pub id: String,
    pub room: String,
    /// User id of the uploader.
    pub uploader: String,
    /// The file name the client gave (cleaned).
    pub name: String,
    /// Sniffed from the bytes, never the client's word.
    pub content_type: String,
    pub size: u64,
    pub hash: Hash,
    /// A PNG thumbnail (images).
    pub thumb: Option<Hash>,
    pub created_ts: Millis,
    /// The message that carries it; `None` until sent.
    pub seq: Option<Seq>,
}

/// The outcome of [`MediaIndex::add_emoticon`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmoticonAdded {
    Added,
    /// Its shortcode is taken; nothing changed.
    Taken,
    /// The hub holds as many emoticons as it may; nothing changed.
    Full,
}

/// Where the media's metadata is kept. See the module docs for the invariants.
#[async_trait]
pub trait MediaIndex: Send + Sync + 'static {
    /// The uploaded avatar of `user_id`, if any.
    async fn avatar(&self, user_id: &str) -> StoreResult<Option<Avatar>>;
    /// Sets (or replaces) the uploaded avatar of `user_id`.
    async fn set_avatar(&self, user_id: &str, avatar: &Avatar) -> StoreResult<()>;
    /// Removes the uploaded avatar of `user_id`; false if there was none.
    async fn clear_avatar(&self, user_id: &str) -> StoreResult<bool>;

    /// Every emoticon, by shortcode.
    async fn emoticons(&self) -> StoreResult<Vec<Emoticon>>;
    /// Adds an emoticon unless its shortcode is taken or `max` emoticons exist (checked and
    /// inserted atomically: concurrent adds on any node never pass `max`).
    async fn add_emoticon(&self, emoticon: &Emoticon, max: usize) -> StoreResult<EmoticonAdded>;
    /// Removes an emoticon; false if there was none.
    async fn remove_emoticon(&self, shortcode: &str) -> StoreResult<bool>;

    /// The bytes of the attachments `uploader` uploaded at or after `since` that are still
    /// kept, and when the oldest of them was uploaded (`None`: none).
    async fn uploaded_since(
        &self,
        uploader: &str,
        since: Millis,
    ) -> StoreResult<(u64, Option<Millis>)>;
    /// Records an uploaded (not yet sent) attachment.
    async fn add_attachment(&self, attachment: &Attachment) -> StoreResult<()>;
    /// Attachment `id` of `room`: `None` if it does not exist, belongs to another room, or was
    /// sent with a message that is deleted or gone.
    async fn attachment(&self, room: &str, id: &str) -> StoreResult<Option<Attachment>>;
    /// The attachments sent with messages `seqs` of `room`, ordered by seq then upload (for
    /// history). Deleted messages have none.
    async fn attachments_of(&self, room: &str, seqs: &[Seq]) -> StoreResult<Vec<Attachment>>;

    /// Whether `hash` is an avatar's or an emoticon's (served to anyone by its hash).
    async fn is_public(&self, hash: &Hash) -> StoreResult<bool>;
    /// Whether any avatar, emoticon or attachment names `hash` (the garbage collector's test).
    async fn is_referenced(&self, hash: &Hash) -> StoreResult<bool>;
    /// Removes the rows of attachments never sent and uploaded before `unsent_before`, and of
    /// attachments whose message is deleted or gone; returns how many.
    async fn sweep_attachments(&self, unsent_before: Millis) -> StoreResult<u64>;
}

/// A stored hash column back into a [`Hash`] (the columns only ever hold [`Hash::to_hex`]).
fn hash_column(text: &str) -> Result<Hash, crate::store::StoreError> {
    Hash::parse(text).map_err(|_| {
        crate::store::StoreError::Inconsistent(format!("stored hash {text:?} is not a SHA-256"))
    })
}
