//! The [`Store`] methods of [`PgStore`]: each is one pooled statement or one short transaction
//! within the timeout (see [`PgStore::call`]), except `append`, which hands the message to the
//! batch writer and waits for the commit that contains it.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use switchboard_jobs::NewJob;
use switchboard_protocol::{ws::Message, Millis, Seq};
use switchboard_webhooks::EventType;
use tokio::sync::oneshot;
use tokio::time::{timeout_at, Instant};
use tokio_postgres::Row;

use super::{batch, PgStore};
use crate::store::{
    seq_bound, seq_key, ApiKeyRecord, MemberRoom, MessageRecord, NewMessage, NewRoom, Page,
    PendingAppend, RoomPage, RoomRecord, Store, StoreError, StoreResult, UserRef, KIND_DIRECT,
    KIND_GROUP,
};

/// PostgreSQL `text` cannot hold NUL: refuse it here, with an error naming the field.
fn no_nul(field: &'static str, text: &str) -> StoreResult<()> {
    if text.contains('\0') {
        return Err(StoreError::NulCharacter(field));
    }
    Ok(())
}

const ROOM_COLS: &str = "id, name, public, kind, created_by, last_seq, last_ts";

/// A page of a member's room list: the query of the SQLite store (see `RoomPage` and
/// `sqlite::ROOMS_OF`) in PostgreSQL's words.
const ROOMS_OF: &str = "
SELECT * FROM (
    SELECT r.id, r.name, r.public, r.kind, r.created_by, r.last_seq, r.last_ts, m.read_seq,
           CASE WHEN r.last_ts <= $2 THEN r.last_ts
                ELSE COALESCE((SELECT x.ts FROM messages x WHERE x.room_id = r.id AND x.ts <= $2
                               ORDER BY x.seq DESC LIMIT 1), r.created_ts)
           END AS activity
    FROM members m JOIN rooms r ON r.id = m.room_id
    WHERE m.user_id = $1 AND NOT m.hidden
) page
WHERE $3::int8 IS NULL OR activity < $3 OR (activity = $3 AND id > $4::text)
ORDER BY activity DESC, id
LIMIT $5";
const MSG_COLS: &str =
    "room_id, seq, sender_name, body, ts, client_msg_id, edited_ts, deleted, sender_id";

fn seq_of(v: i64) -> Seq {
    Seq::try_from(v).unwrap_or_default()
}

fn room_row(r: &Row) -> RoomRecord {
    RoomRecord {
        id: r.get(0),
        name: r.get(1),
        public: r.get(2),
        kind: r.get(3),
        created_by: r.get(4),
        last_seq: seq_of(r.get(5)),
        last_ts: r.get(6),
    }
}

fn msg_row(r: &Row) -> Message {
    Message {
        room: r.get(0),
        seq: seq_of(r.get(1)),
        from: r.get(2),
        body: r.get(3),
        ts: r.get(4),
        client_msg_id: r.get(5),
        edited_ts: r.get(6),
        deleted: r.get(7),
        bot: super::super::is_bot_id(r.get::<_, &str>(8)),
        attachments: Vec::new(),
    }
}

async fn get_room(c: &impl GenericClient, id: &str) -> StoreResult<Option<RoomRecord>> {
    let sql = format!("SELECT {ROOM_COLS} FROM rooms WHERE id = $1");
    let stmt = c.prepare_cached(&sql).await?;
    Ok(c.query_opt(&stmt, &[&id]).await?.as_ref().map(room_row))
}

/// Inserts delivery jobs in `tx`, the transaction of the change causing them.
async fn enqueue(tx: &impl GenericClient, jobs: &[NewJob]) -> StoreResult<()> {
    super::enqueue_events(tx, jobs).await?;
    Ok(())
}

async fn insert_member(
    c: &impl GenericClient,
    room: &str,
    user: &UserRef,
    ts: Millis,
) -> StoreResult<bool> {
    let stmt = c
        .prepare_cached(
            "INSERT INTO members (room_id, user_id, username, joined_ts) VALUES ($1, $2, $3, $4)
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )
        .await?;
    let n = c
        .execute(&stmt, &[&room, &user.id, &user.username, &ts])
        .await?;
    Ok(n == 1)
}

#[async_trait]
impl Store for PgStore {
    async fn create_room(&self, room: NewRoom) -> StoreResult<RoomRecord> {
        no_nul("room id", &room.id)?;
        no_nul("room name", &room.name)?;
        let webhooks = self.webhooks().clone();
        self.call_events(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                tx.execute(
                    "INSERT INTO rooms (id, name, public, kind, created_by, created_ts, last_ts)
                     VALUES ($1, $2, $3, $4, $5, $6, $6)",
                    &[
                        &room.id,
                        &room.name,
                        &room.public,
                        &KIND_GROUP,
                        &room.creator.username,
                        &room.ts,
                    ],
                )
                .await?;
                insert_member(&tx, &room.id, &room.creator, room.ts).await?;
                let rec = get_room(&tx, &room.id).await?.expect("room just inserted");
                let jobs = webhooks.room_created(&rec, &[&room.creator], room.ts);
                enqueue(&tx, &jobs).await?;
                tx.commit().await?;
                Ok((rec, !jobs.is_empty()))
            })
        })
        .await
    }

    async fn room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        let id = id.to_owned();
        self.call(move |c| Box::pin(async move { get_room(&*c, &id).await }))
            .await
    }

    async fn direct_room(
        &self,
        a: &UserRef,
        b: &UserRef,
        new_id: &str,
        ts: Millis,
    ) -> StoreResult<RoomRecord> {
        let (mut a, mut b, new_id) = (a.clone(), b.clone(), new_id.to_owned());
        let caller = a.id.clone();
        if a.id > b.id {
            std::mem::swap(&mut a, &mut b);
        }
        let webhooks = self.webhooks().clone();
        self.call_events(move |c| {
            Box::pin(async move {
                let key = format!("{}:{}", a.id, b.id);
                let mut names = [a.username.as_str(), b.username.as_str()];
                names.sort_unstable();
                let tx = c.transaction().await?;
                // Two nodes may create the same pair at once: the unique `direct_key` lets one
                // insert win; the other waits for it, skips, and reads the winner's room.
                let created = tx
                    .execute(
                        "INSERT INTO rooms (id, name, public, kind, created_by, created_ts, last_ts, direct_key)
                         VALUES ($1, $2, FALSE, $3, $4, $5, $5, $6) ON CONFLICT (direct_key) DO NOTHING",
                        &[&new_id, &names.join(","), &KIND_DIRECT, &a.username, &ts, &key],
                    )
                    .await?;
                // Locked (when members' events are delivered) so that a restored membership's
                // event takes its id after the room's earlier events (see `enqueue_events`).
                let lock = if webhooks.wants(EventType::MemberJoined) {
                    " FOR NO KEY UPDATE"
                } else {
                    ""
                };
                let sql = format!("SELECT {ROOM_COLS} FROM rooms WHERE direct_key = $1{lock}");
                let rec = room_row(&tx.query_one(&sql, &[&key]).await?);
                // Both are members (restored if a row is missing); the caller sees it again.
                let mut jobs = Vec::new();
                for user in [&a, &b] {
                    if insert_member(&tx, &rec.id, user, ts).await? && created == 0 {
                        jobs.extend(webhooks.member_joined(&rec.id, user, ts));
                    }
                }
                if created == 1 {
                    jobs.extend(webhooks.room_created(&rec, &[&a, &b], ts));
                }
                if created == 0 {
                    tx.execute(
                        "UPDATE members SET hidden = FALSE WHERE room_id = $1 AND user_id = $2",
                        &[&rec.id, &caller],
                    )
                    .await?;
                }
                enqueue(&tx, &jobs).await?;
                tx.commit().await?;
                Ok((rec, !jobs.is_empty()))
            })
        })
        .await
    }

    async fn membership(&self, room: &str, user_id: &str) -> StoreResult<Option<Seq>> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT read_seq FROM members WHERE room_id = $1 AND user_id = $2",
                    )
                    .await?;
                let row = c.query_opt(&stmt, &[&room, &user_id]).await?;
                Ok(row.map(|r| seq_of(r.get(0))))
            })
        })
        .await
    }

    async fn add_member(&self, room: &str, user: &UserRef, ts: Millis) -> StoreResult<bool> {
        let (room, user) = (room.to_owned(), user.clone());
        let webhooks = self.webhooks().clone();
        self.call_events(move |c| {
            Box::pin(async move {
                if !webhooks.wants(EventType::MemberJoined) {
                    return Ok((insert_member(&*c, &room, &user, ts).await?, false));
                }
                let tx = c.transaction().await?;
                super::lock_room(&tx, &room).await?;
                let added = insert_member(&tx, &room, &user, ts).await?;
                let jobs = if added {
                    webhooks.member_joined(&room, &user, ts)
                } else {
                    Vec::new()
                };
                enqueue(&tx, &jobs).await?;
                tx.commit().await?;
                Ok((added, !jobs.is_empty()))
            })
        })
        .await
    }

    async fn remove_member(&self, room: &str, user_id: &str) -> StoreResult<bool> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        let webhooks = self.webhooks().clone();
        self.call_events(move |c| {
            Box::pin(async move {
                if !webhooks.wants(EventType::MemberLeft) {
                    let n = c
                        .execute(
                            "DELETE FROM members WHERE room_id = $1 AND user_id = $2",
                            &[&room, &user_id],
                        )
                        .await?;
                    return Ok((n == 1, false));
                }
                let tx = c.transaction().await?;
                super::lock_room(&tx, &room).await?;
                let row = tx
                    .query_opt(
                        "DELETE FROM members WHERE room_id = $1 AND user_id = $2 RETURNING username",
                        &[&room, &user_id],
                    )
                    .await?;
                let jobs = match &row {
                    Some(row) => {
                        let user = UserRef {
                            id: user_id.clone(),
                            username: row.get(0),
                        };
                        webhooks.member_left(&room, &user, switchboard_jobs::clock::now_ms())
                    }
                    None => Vec::new(),
                };
                enqueue(&tx, &jobs).await?;
                tx.commit().await?;
                Ok((row.is_some(), !jobs.is_empty()))
            })
        })
        .await
    }

    async fn hide_member(&self, room: &str, user_id: &str) -> StoreResult<Option<Vec<String>>> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        self.call(move |c| {
            Box::pin(async move {
                let tx = c.transaction().await?;
                let n = tx
                    .execute(
                        "UPDATE members SET hidden = TRUE WHERE room_id = $1 AND user_id = $2",
                        &[&room, &user_id],
                    )
                    .await?;
                if n == 0 {
                    return Ok(None);
                }
                let rows = tx
                    .query(
                        "SELECT user_id FROM members WHERE room_id = $1 AND user_id <> $2",
                        &[&room, &user_id],
                    )
                    .await?;
                tx.commit().await?;
                Ok(Some(rows.iter().map(|r| r.get(0)).collect()))
            })
        })
        .await
    }

    async fn members(&self, room: &str) -> StoreResult<Vec<String>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(
                        "SELECT username FROM members WHERE room_id = $1 ORDER BY joined_ts, username",
                    )
                    .await?;
                let rows = c.query(&stmt, &[&room]).await?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
        })
        .await
    }

    async fn rooms_of(&self, user_id: &str, page: RoomPage) -> StoreResult<Vec<MemberRoom>> {
        let user_id = user_id.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let (after_activity, after_id) = page.after.unzip();
                let stmt = c.prepare_cached(ROOMS_OF).await?;
                let limit = i64::from(page.limit);
                let rows = c
                    .query(
                        &stmt,
                        &[&user_id, &page.as_of, &after_activity, &after_id, &limit],
                    )
                    .await?;
                Ok(rows
                    .iter()
                    .map(|r| MemberRoom {
                        room: room_row(r),
                        read_seq: seq_of(r.get(7)),
                        activity: r.get(8),
                    })
                    .collect())
            })
        })
        .await
    }

    /// Queues the message for its room's batch writer and waits for the commit that contains
    /// it. Fails within the timeout; a job still queued when its `append` gives up is not
    /// written.
    async fn enqueue_append(&self, msg: NewMessage) -> StoreResult<PendingAppend> {
        no_nul("room id", &msg.room)?;
        no_nul("message body", &msg.body)?;
        no_nul(
            "client_msg_id",
            msg.client_msg_id.as_deref().unwrap_or_default(),
        )?;
        no_nul("user", &msg.sender.id)?;
        no_nul("username", &msg.sender.username)?;
        let queued_at = Instant::now();
        let deadline = queued_at + self.timeout;
        let (reply, answer) = oneshot::channel();
        let queue = self.queue(&msg.room);
        let job = batch::Job {
            msg,
            queued_at,
            deadline,
            reply,
        };
        // Both steps share the one deadline: queueing (waiting for room) and the batch.
        let timeout = self.timeout;
        timeout_at(deadline, queue.send(job))
            .await
            .map_err(|_| StoreError::Timeout(timeout))?
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Box::pin(async move {
            timeout_at(deadline, answer)
                .await
                .map_err(|_| StoreError::Timeout(timeout))?
                .map_err(|_| StoreError::WriterGone)?
        }))
    }

    async fn messages(&self, room: &str, page: Page) -> StoreResult<Vec<Message>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let limit = i64::from(page.limit);
                let before = page.before.map_or(i64::MAX, seq_bound);
                let rows = if let Some(after) = page.after {
                    let after = seq_bound(after);
                    let stmt = c
                        .prepare_cached(&format!(
                            "SELECT {MSG_COLS} FROM messages WHERE room_id = $1 AND seq > $2 AND seq < $3
                             ORDER BY seq ASC LIMIT $4"
                        ))
                        .await?;
                    c.query(&stmt, &[&room, &after, &before, &limit]).await?
                } else {
                    let stmt = c
                        .prepare_cached(&format!(
                            "SELECT {MSG_COLS} FROM messages WHERE room_id = $1 AND seq < $2
                             ORDER BY seq DESC LIMIT $3"
                        ))
                        .await?;
                    c.query(&stmt, &[&room, &before, &limit]).await?
                };
                let mut out: Vec<Message> = rows.iter().map(msg_row).collect();
                if page.after.is_none() {
                    out.reverse();
                }
                Ok(out)
            })
        })
        .await
    }

    async fn message(&self, room: &str, seq: Seq) -> StoreResult<Option<MessageRecord>> {
        let room = room.to_owned();
        let Some(seq) = seq_key(seq) else {
            return Ok(None);
        };
        self.call(move |c| {
            Box::pin(async move {
                let stmt = c
                    .prepare_cached(&format!(
                        "SELECT {MSG_COLS} FROM messages WHERE room_id = $1 AND seq = $2"
                    ))
                    .await?;
                let row = c.query_opt(&stmt, &[&room, &seq]).await?;
                Ok(row.map(|r| MessageRecord {
                    message: msg_row(&r),
                    sender_id: r.get(8),
                }))
            })
        })
        .await
    }

    async fn edit(&self, room: &str, seq: Seq, body: &str, ts: Millis) -> StoreResult<()> {
        no_nul("message body", body)?;
        let (room, body) = (room.to_owned(), body.to_owned());
        let wire_seq = seq;
        let Some(seq) = seq_key(seq) else {
            return Ok(());
        };
        let webhooks = self.webhooks().clone();
        self.call_events(move |c| {
            Box::pin(async move {
                const EDIT: &str =
                    "UPDATE messages SET body = $3, edited_ts = $4 WHERE room_id = $1 AND seq = $2";
                if !webhooks.wants(EventType::MessageEdited) {
                    c.execute(EDIT, &[&room, &seq, &body, &ts]).await?;
                    return Ok(((), false));
                }
                let tx = c.transaction().await?;
                super::lock_room(&tx, &room).await?;
                let n = tx.execute(EDIT, &[&room, &seq, &body, &ts]).await?;
                let jobs = if n == 1 {
                    webhooks.message_edited(&room, wire_seq, &body, ts)
                } else {
                    Vec::new()
                };
                enqueue(&tx, &jobs).await?;
                tx.commit().await?;
                Ok(((), !jobs.is_empty()))
            })
        })
        .await
    }

    async fn delete(&self, room: &str, seq: Seq, ts: Millis) -> StoreResult<()> {
        let room = room.to_owned();
        let wire_seq = seq;
        let Some(seq) = seq_key(seq) else {
            return Ok(());
        };
        let webhooks = self.webhooks().clone();
        self.call_events(move |c| {
            Box::pin(async move {
                const DELETE: &str = "UPDATE messages SET body = '', deleted = TRUE, edited_ts = $3
                                      WHERE room_id = $1 AND seq = $2";
                if !webhooks.wants(EventType::MessageDeleted) {
                    c.execute(DELETE, &[&room, &seq, &ts]).await?;
                    return Ok(((), false));
                }
                let tx = c.transaction().await?;
                super::lock_room(&tx, &room).await?;
                let n = tx.execute(DELETE, &[&room, &seq, &ts]).await?;
                let jobs = if n == 1 {
                    webhooks.message_deleted(&room, wire_seq, ts)
                } else {
                    Vec::new()
                };
                enqueue(&tx, &jobs).await?;
                tx.commit().await?;
                Ok(((), !jobs.is_empty()))
            })
        })
        .await
    }

    async fn set_read(&self, room: &str, user_id: &str, seq: Seq) -> StoreResult<Seq> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        let seq = seq_bound(seq);
        self.call(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "UPDATE members
                         SET read_seq = GREATEST(read_seq, LEAST($3, (SELECT last_seq FROM rooms WHERE id = $1)))
                         WHERE room_id = $1 AND user_id = $2 RETURNING read_seq",
                        &[&room, &user_id, &seq],
                    )
                    .await?;
                Ok(row.map_or(0, |r| seq_of(r.get(0))))
            })
        })
        .await
    }

    async fn purge_before(&self, cutoff: Millis) -> StoreResult<u64> {
        self.call(move |c| {
            Box::pin(async move {
                Ok(c.execute("DELETE FROM messages WHERE ts < $1", &[&cutoff])
                    .await?)
            })
        })
        .await
    }

    async fn first_seq(&self, room: &str) -> StoreResult<Option<Seq>> {
        let room = room.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let row = c
                    .query_one("SELECT MIN(seq) FROM messages WHERE room_id = $1", &[&room])
                    .await?;
                Ok(row.get::<_, Option<i64>>(0).map(seq_of))
            })
        })
        .await
    }

    async fn known_user(&self, username: &str) -> StoreResult<Option<UserRef>> {
        let username = username.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let row = c
                    .query_opt(
                        "SELECT user_id, username FROM members
                         WHERE username = $1 AND user_id NOT LIKE 'bot:%' LIMIT 1",
                        &[&username],
                    )
                    .await?;
                Ok(row.map(|r| UserRef {
                    id: r.get(0),
                    username: r.get(1),
                }))
            })
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<bool> {
        self.call(move |c| {
            Box::pin(async move {
                let n = c
                    .execute(
                        "INSERT INTO api_keys (id, name, hash, created_ts) VALUES ($1, $2, $3, $4)
                         ON CONFLICT DO NOTHING",
                        &[&key.id, &key.name, &key.hash, &key.created_ts],
                    )
                    .await?;
                Ok(n == 1)
            })
        })
        .await
    }

    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.call(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {KEY_COLS} FROM api_keys ORDER BY created_ts, name");
                Ok(c.query(&sql, &[]).await?.iter().map(key_row).collect())
            })
        })
        .await
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let id = id.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let sql = format!("SELECT {KEY_COLS} FROM api_keys WHERE id = $1");
                let stmt = c.prepare_cached(&sql).await?;
                Ok(c.query_opt(&stmt, &[&id]).await?.as_ref().map(key_row))
            })
        })
        .await
    }

    async fn revoke_api_key(&self, name_or_id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let which = name_or_id.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                let sql =
                    format!("DELETE FROM api_keys WHERE name = $1 OR id = $1 RETURNING {KEY_COLS}");
                Ok(c.query_opt(&sql, &[&which]).await?.as_ref().map(key_row))
            })
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, ts: Millis) -> StoreResult<()> {
        let id = id.to_owned();
        self.call(move |c| {
            Box::pin(async move {
                c.execute(
                    "UPDATE api_keys SET last_used_ts = $2 WHERE id = $1",
                    &[&id, &ts],
                )
                .await?;
                Ok(())
            })
        })
        .await
    }
}

const KEY_COLS: &str = "id, name, hash, created_ts, last_used_ts";

fn key_row(r: &Row) -> ApiKeyRecord {
    ApiKeyRecord {
        id: r.get(0),
        name: r.get(1),
        hash: r.get(2),
        created_ts: r.get(3),
        last_used_ts: r.get(4),
    }
}
