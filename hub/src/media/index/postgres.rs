//! [`MediaIndex`] on the hub's PostgreSQL database (the tables of
//! `migrations/hub/postgres/0006_media.sql`, schema `public`, migrated by the store).

use async_trait::async_trait;
use deadpool_postgres::Pool;
use switchboard_media::Hash;
use switchboard_protocol::{Millis, Seq};
use tokio_postgres::Row;

use super::{hash_column, Attachment, Avatar, Emoticon, EmoticonAdded, MediaIndex};
use crate::store::{seq_key, StoreResult};

/// The media index on the hub's PostgreSQL database.
#[derive(Clone)]
pub struct PgMedia {
    pool: Pool,
}

impl std::fmt::Debug for PgMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgMedia").finish_non_exhaustive()
    }
}

/// The attachment columns, in [`attachment`]'s order.
const ATTACHMENT_COLUMNS: &str =
    "a.id, a.room, a.uploader, a.name, a.content_type, a.size, a.hash, a.thumb, a.created_ts, a.seq";

/// An attachment that is unsent, or whose message exists and is not deleted.
const ATTACHMENT_LIVE: &str = "(a.seq IS NULL OR EXISTS (SELECT 1 FROM messages m
     WHERE m.room_id = a.room AND m.seq = a.seq AND NOT m.deleted))";

impl PgMedia {
    /// The index over `pool` (a database the hub store has migrated).
    pub fn new(pool: Pool) -> Self {
        Self { pool }
    }
}

fn attachment(r: &Row) -> StoreResult<Attachment> {
    let size: i64 = r.get(5);
    let hash: String = r.get(6);
    let thumb: Option<String> = r.get(7);
    let seq: Option<i64> = r.get(9);
    Ok(Attachment {
        id: r.get(0),
        room: r.get(1),
        uploader: r.get(2),
        name: r.get(3),
        content_type: r.get(4),
        size: u64::try_from(size).unwrap_or(0),
        hash: hash_column(&hash)?,
        thumb: thumb.as_deref().map(hash_column).transpose()?,
        created_ts: r.get(8),
        seq: seq.and_then(|s| Seq::try_from(s).ok()),
    })
}

#[async_trait]
impl MediaIndex for PgMedia {
    async fn avatar(&self, user_id: &str) -> StoreResult<Option<Avatar>> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT small, large, updated_ts FROM avatars WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        row.map(|r| {
            Ok(Avatar {
                small: hash_column(r.get(0))?,
                large: hash_column(r.get(1))?,
                updated_ts: r.get(2),
            })
        })
        .transpose()
    }

    async fn set_avatar(&self, user_id: &str, avatar: &Avatar) -> StoreResult<()> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO avatars (user_id, small, large, updated_ts) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_id) DO UPDATE
             SET small = excluded.small, large = excluded.large, updated_ts = excluded.updated_ts",
            &[
                &user_id,
                &avatar.small.to_hex(),
                &avatar.large.to_hex(),
                &avatar.updated_ts,
            ],
        )
        .await?;
        Ok(())
    }

    async fn clear_avatar(&self, user_id: &str) -> StoreResult<bool> {
        let c = self.pool.get().await?;
        Ok(
            c.execute("DELETE FROM avatars WHERE user_id = $1", &[&user_id])
                .await?
                > 0,
        )
    }

    async fn emoticons(&self) -> StoreResult<Vec<Emoticon>> {
        let c = self.pool.get().await?;
        c.query(
            "SELECT shortcode, hash, created_by, created_ts FROM emoticons ORDER BY shortcode",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(Emoticon {
                shortcode: r.get(0),
                hash: hash_column(r.get(1))?,
                created_by: r.get(2),
                created_ts: r.get(3),
            })
        })
        .collect()
    }

    async fn add_emoticon(&self, emoticon: &Emoticon, max: usize) -> StoreResult<EmoticonAdded> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        // Serialises adds across nodes (readers are not blocked), so the count below is the
        // count the insert sees.
        tx.batch_execute("LOCK TABLE emoticons IN SHARE ROW EXCLUSIVE MODE")
            .await?;
        let row = tx
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM emoticons WHERE shortcode = $1), count(*)
                 FROM emoticons",
                &[&emoticon.shortcode],
            )
            .await?;
        let (taken, count): (bool, i64) = (row.get(0), row.get(1));
        if taken {
            return Ok(EmoticonAdded::Taken);
        }
        if count >= i64::try_from(max).unwrap_or(i64::MAX) {
            return Ok(EmoticonAdded::Full);
        }
        tx.execute(
            "INSERT INTO emoticons (shortcode, hash, created_by, created_ts)
             VALUES ($1, $2, $3, $4)",
            &[
                &emoticon.shortcode,
                &emoticon.hash.to_hex(),
                &emoticon.created_by,
                &emoticon.created_ts,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(EmoticonAdded::Added)
    }

    async fn remove_emoticon(&self, shortcode: &str) -> StoreResult<bool> {
        let c = self.pool.get().await?;
        Ok(
            c.execute("DELETE FROM emoticons WHERE shortcode = $1", &[&shortcode])
                .await?
                > 0,
        )
    }

    async fn uploaded_since(
        &self,
        uploader: &str,
        since: Millis,
    ) -> StoreResult<(u64, Option<Millis>)> {
        let c = self.pool.get().await?;
        let row = c
            .query_one(
                "SELECT coalesce(sum(size), 0)::bigint, min(created_ts) FROM attachments
                 WHERE uploader = $1 AND created_ts >= $2",
                &[&uploader, &since],
            )
            .await?;
        let (bytes, oldest): (i64, Option<i64>) = (row.get(0), row.get(1));
        Ok((u64::try_from(bytes).unwrap_or(0), oldest))
    }

    async fn add_attachment(&self, a: &Attachment) -> StoreResult<()> {
        let c = self.pool.get().await?;
        c.execute(
            "INSERT INTO attachments
             (id, room, uploader, name, content_type, size, hash, thumb, created_ts, seq)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL)",
            &[
                &a.id,
                &a.room,
                &a.uploader,
                &a.name,
                &a.content_type,
                &i64::try_from(a.size).unwrap_or(i64::MAX),
                &a.hash.to_hex(),
                &a.thumb.map(|t| t.to_hex()),
                &a.created_ts,
            ],
        )
        .await?;
        Ok(())
    }

    async fn attachment(&self, room: &str, id: &str) -> StoreResult<Option<Attachment>> {
        let c = self.pool.get().await?;
        c.query_opt(
            &format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
                 WHERE a.id = $1 AND a.room = $2 AND {ATTACHMENT_LIVE}"
            ),
            &[&id, &room],
        )
        .await?
        .as_ref()
        .map(attachment)
        .transpose()
    }

    async fn attachments_of(&self, room: &str, seqs: &[Seq]) -> StoreResult<Vec<Attachment>> {
        let keys: Vec<i64> = seqs.iter().filter_map(|s| seq_key(*s)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let c = self.pool.get().await?;
        c.query(
            &format!(
                "SELECT {ATTACHMENT_COLUMNS} FROM attachments a
                 JOIN messages m ON m.room_id = a.room AND m.seq = a.seq AND NOT m.deleted
                 WHERE a.room = $1 AND a.seq = ANY($2)
                 ORDER BY a.seq, a.created_ts, a.id"
            ),
            &[&room, &keys],
        )
        .await?
        .iter()
        .map(attachment)
        .collect()
    }

    async fn is_public(&self, hash: &Hash) -> StoreResult<bool> {
        let c = self.pool.get().await?;
        Ok(c.query_one(
            "SELECT EXISTS (SELECT 1 FROM avatars WHERE small = $1)
                 OR EXISTS (SELECT 1 FROM avatars WHERE large = $1)
                 OR EXISTS (SELECT 1 FROM emoticons WHERE hash = $1)",
            &[&hash.to_hex()],
        )
        .await?
        .get(0))
    }

    async fn is_referenced(&self, hash: &Hash) -> StoreResult<bool> {
        let c = self.pool.get().await?;
        Ok(c.query_one(
            "SELECT EXISTS (SELECT 1 FROM avatars WHERE small = $1)
                 OR EXISTS (SELECT 1 FROM avatars WHERE large = $1)
                 OR EXISTS (SELECT 1 FROM emoticons WHERE hash = $1)
                 OR EXISTS (SELECT 1 FROM attachments WHERE hash = $1)
                 OR EXISTS (SELECT 1 FROM attachments WHERE thumb = $1)",
            &[&hash.to_hex()],
        )
        .await?
        .get(0))
    }

    async fn sweep_attachments(&self, unsent_before: i64) -> StoreResult<u64> {
        let c = self.pool.get().await?;
        let unsent = c
            .execute(
                "DELETE FROM attachments WHERE seq IS NULL AND created_ts < $1",
                &[&unsent_before],
            )
            .await?;
        let orphaned = c
            .execute(
                "DELETE FROM attachments a WHERE a.seq IS NOT NULL AND NOT EXISTS
                 (SELECT 1 FROM messages m
                  WHERE m.room_id = a.room AND m.seq = a.seq AND NOT m.deleted)",
                &[],
            )
            .await?;
        Ok(unsent + orphaned)
    }
}
