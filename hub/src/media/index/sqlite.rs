//! [`MediaIndex`] on the hub's SQLite file (the tables of `migrations/hub/sqlite/0005_media.sql`,
//! migrated by the store, which opens the file first). Its own connection, used through
//! `spawn_blocking` behind a mutex never held across an `.await`.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use switchboard_media::Hash;
use switchboard_protocol::{Millis, Seq};

use super::{hash_column, Attachment, Avatar, Emoticon, EmoticonAdded, MediaIndex};
use crate::store::{seq_key, StoreResult};

/// The media index on the hub's SQLite file.
#[derive(Clone)]
pub struct SqliteMedia {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for SqliteMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteMedia").finish_non_exhaustive()
    }
}

/// The attachment columns, in [`attachment_row`]'s order.
const ATTACHMENT_COLUMNS: &str =
    "a.id, a.room, a.uploader, a.name, a.content_type, a.size, a.hash, a.thumb, a.created_ts, a.seq";

/// An attachment that is unsent, or whose message exists and is not deleted.
const ATTACHMENT_LIVE: &str = "(a.seq IS NULL OR EXISTS (SELECT 1 FROM messages m
     WHERE m.room_id = a.room AND m.seq = a.seq AND m.deleted = 0))";

impl SqliteMedia {
    /// Opens the index on the hub's SQLite file at `path` (already migrated by the store).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> rusqlite::Result<Connection> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok(conn)
        })
        .await??;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await?
    }
}

fn attachment_row(r: &Row<'_>) -> rusqlite::Result<(Attachment, String, Option<String>)> {
    let hash: String = r.get(6)?;
    let thumb: Option<String> = r.get(7)?;
    let size: i64 = r.get(5)?;
    let seq: Option<i64> = r.get(9)?;
    Ok((
        Attachment {
            id: r.get(0)?,
            room: r.get(1)?,
            uploader: r.get(2)?,
            name: r.get(3)?,
            content_type: r.get(4)?,
            size: u64::try_from(size).unwrap_or(0),
            // Filled from the two strings by `finish`.
            hash: Hash::of(b""),
            thumb: None,
            created_ts: r.get(8)?,
            seq: seq.and_then(|s| Seq::try_from(s).ok()),
        },
        hash,
        thumb,
    ))
}

/// Parses the hash columns an [`attachment_row`] read.
fn finish((mut a, hash, thumb): (Attachment, String, Option<String>)) -> StoreResult<Attachment> {
    a.hash = hash_column(&hash)?;
    a.thumb = thumb.as_deref().map(hash_column).transpose()?;
    Ok(a)
}

#[async_trait]
impl MediaIndex for SqliteMedia {
    async fn avatar(&self, user_id: &str) -> StoreResult<Option<Avatar>> {
        let user = user_id.to_owned();
        self.call(move |c| {
            let row: Option<(String, String, i64)> = c
                .query_row(
                    "SELECT small, large, updated_ts FROM avatars WHERE user_id = ?1",
                    [&user],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            row.map(|(small, large, updated_ts)| {
                Ok(Avatar {
                    small: hash_column(&small)?,
                    large: hash_column(&large)?,
                    updated_ts,
                })
            })
            .transpose()
        })
        .await
    }

    async fn set_avatar(&self, user_id: &str, avatar: &Avatar) -> StoreResult<()> {
        let (user, a) = (user_id.to_owned(), avatar.clone());
        self.call(move |c| {
            c.execute(
                "INSERT INTO avatars (user_id, small, large, updated_ts) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (user_id) DO UPDATE
                 SET small = excluded.small, large = excluded.large, updated_ts = excluded.updated_ts",
                params![user, a.small.to_hex(), a.large.to_hex(), a.updated_ts],
            )?;
            Ok(())
        })
        .await
    }

    async fn clear_avatar(&self, user_id: &str) -> StoreResult<bool> {
        let user = user_id.to_owned();
        self.call(move |c| Ok(c.execute("DELETE FROM avatars WHERE user_id = ?1", [user])? > 0))
            .await
    }

    async fn emoticons(&self) -> StoreResult<Vec<Emoticon>> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT shortcode, hash, created_by, created_ts FROM emoticons ORDER BY shortcode",
            )?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter()
                .map(|(shortcode, hash, created_by, created_ts)| {
                    Ok(Emoticon {
                        shortcode,
                        hash: hash_column(&hash)?,
                        created_by,
                        created_ts,
                    })
                })
                .collect()
        })
        .await
    }

    async fn add_emoticon(&self, emoticon: &Emoticon, max: usize) -> StoreResult<EmoticonAdded> {
        let e = emoticon.clone();
        let max = i64::try_from(max).unwrap_or(i64::MAX);
        self.call(move |c| {
            let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let taken: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM emoticons WHERE shortcode = ?1)",
                [&e.shortcode],
                |r| r.get(0),
            )?;
            if taken {
                return Ok(EmoticonAdded::Taken);
            }
            let count: i64 = tx.query_row("SELECT count(*) FROM emoticons", [], |r| r.get(0))?;
            if count >= max {
                return Ok(EmoticonAdded::Full);
            }
            tx.execute(
                "INSERT INTO emoticons (shortcode, hash, created_by, created_ts)
                 VALUES (?1, ?2, ?3, ?4)",
                params![e.shortcode, e.hash.to_hex(), e.created_by, e.created_ts],
            )?;
            tx.commit()?;
            Ok(EmoticonAdded::Added)
        })
        .await
    }

    async fn remove_emoticon(&self, shortcode: &str) -> StoreResult<bool> {
        let code = shortcode.to_owned();
        self.call(move |c| Ok(c.execute("DELETE FROM emoticons WHERE shortcode = ?1", [code])? > 0))
            .await
    }

    async fn uploaded_since(
        &self,
        uploader: &str,
        since: Millis,
    ) -> StoreResult<(u64, Option<Millis>)> {
        let uploader = uploader.to_owned();
        self.call(move |c| {
            let (bytes, oldest): (i64, Option<i64>) = c.query_row(
                "SELECT coalesce(sum(size), 0), min(created_ts) FROM attachments
                 WHERE uploader = ?1 AND created_ts >= ?2",
                params![uploader, since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok((u64::try_from(bytes).unwrap_or(0), oldest))
        })
        .await
    }

    async fn add_attachment(&self, attachment: &Attachment) -> StoreResult<()> {
        let a = attachment.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO attachments
                 (id, room, uploader, name, content_type, size, hash, thumb, created_ts, seq)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL)",
                params![
                    a.id,
                    a.room,
                    a.uploader,
                    a.name,
                    a.content_type,
                    i64::try_from(a.size).unwrap_or(i64::MAX),
                    a.hash.to_hex(),
                    a.thumb.map(|t| t.to_hex()),
                    a.created_ts,
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn attachment(&self, room: &str, id: &str) -> StoreResult<Option<Attachment>> {
        let (room, id) = (room.to_owned(), id.to_owned());
        self.call(move |c| {
            let row = c
                .query_row(
                    &format!(
                        "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
                         WHERE a.id = ?1 AND a.room = ?2 AND {ATTACHMENT_LIVE}"
                    ),
                    [&id, &room],
                    attachment_row,
                )
                .optional()?;
            row.map(finish).transpose()
        })
        .await
    }

    async fn attachments_of(&self, room: &str, seqs: &[Seq]) -> StoreResult<Vec<Attachment>> {
        let keys: Vec<i64> = seqs.iter().filter_map(|s| seq_key(*s)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let room = room.to_owned();
        self.call(move |c| {
            // The seqs of a history page, as a JSON array (one statement, however many).
            let json = serde_json::to_string(&keys).expect("integers serialise");
            let mut stmt = c.prepare(&format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
                 JOIN messages m ON m.room_id = a.room AND m.seq = a.seq AND m.deleted = 0
                 WHERE a.room = ?1 AND a.seq IN (SELECT value FROM json_each(?2))
                 ORDER BY a.seq, a.created_ts, a.id"
            ))?;
            let rows = stmt
                .query_map(params![room, json], attachment_row)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(finish).collect()
        })
        .await
    }

    async fn is_public(&self, hash: &Hash) -> StoreResult<bool> {
        let hash = hash.to_hex();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM avatars WHERE small = ?1)
                     OR EXISTS (SELECT 1 FROM avatars WHERE large = ?1)
                     OR EXISTS (SELECT 1 FROM emoticons WHERE hash = ?1)",
                [hash],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn is_referenced(&self, hash: &Hash) -> StoreResult<bool> {
        let hash = hash.to_hex();
        self.call(move |c| {
            Ok(c.query_row(
                "SELECT EXISTS (SELECT 1 FROM avatars WHERE small = ?1)
                     OR EXISTS (SELECT 1 FROM avatars WHERE large = ?1)
                     OR EXISTS (SELECT 1 FROM emoticons WHERE hash = ?1)
                     OR EXISTS (SELECT 1 FROM attachments WHERE hash = ?1)
                     OR EXISTS (SELECT 1 FROM attachments WHERE thumb = ?1)",
                [hash],
                |r| r.get(0),
            )?)
        })
        .await
    }

    async fn sweep_attachments(&self, unsent_before: i64) -> StoreResult<u64> {
        self.call(move |c| {
            let unsent = c.execute(
                "DELETE FROM attachments WHERE seq IS NULL AND created_ts < ?1",
                [unsent_before],
            )?;
            let orphaned = c.execute(
                "DELETE FROM attachments AS a WHERE a.seq IS NOT NULL AND NOT EXISTS
                 (SELECT 1 FROM messages m
                  WHERE m.room_id = a.room AND m.seq = a.seq AND m.deleted = 0)",
                [],
            )?;
            Ok((unsent + orphaned) as u64)
        })
        .await
    }
}
