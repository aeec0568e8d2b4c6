//! [`Store`] on a SQLite file: the embedded default.
//!
//! One connection behind a `std::sync::Mutex`, used only inside `spawn_blocking` and by the
//! append thread: SQLite serialises writers anyway, and a blocking mutex is right because no
//! `.await` happens while it is held. WAL mode with `synchronous=FULL`, so an acknowledged append
//! survives a crash of the process and of the machine. Appends go through one thread that
//! commits whatever is queued in one transaction (group commit, see [`append_writer`]): one
//! fsync per batch instead of one per message. That thread sends each batch's new messages
//! through the store's [`CommitSender`]; it runs no caller code.

use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row};
use switchboard_protocol::{ws::Message, Millis, Seq};

use super::events::Webhooks;
use super::{is_bot_id, ApiKeyRecord};
use super::{
    migrate, seq_bound, seq_key, Appended, CommitSender, Committed, Linked, MemberRoom,
    MessageRecord, NewMessage, NewRoom, Page, PendingAppend, RoomPage, RoomRecord, Store,
    StoreError, StoreResult, UserRef, KIND_DIRECT, KIND_GROUP,
};
use switchboard_jobs::{enqueue_sqlite, NewJob};

/// The SQLite store. Cheap to clone.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    /// The append writer's queue (see [`append_writer`]).
    appends: tokio::sync::mpsc::Sender<AppendJob>,
    /// The node's histograms of batch size and commit time, read by the append writer.
    metrics: Arc<std::sync::OnceLock<crate::metrics::StoreMetrics>>,
    /// The webhook events it causes (shared with the append writer).
    webhooks: Webhooks,
}

/// Most appends queued for the writer before senders wait.
const APPEND_QUEUE: usize = 4096;
/// Most appends committed together.
const APPEND_BATCH: usize = 512;

/// One queued append.
struct AppendJob {
    msg: NewMessage,
    reply: tokio::sync::oneshot::Sender<StoreResult<Appended>>,
}

/// The thread that performs every append (group commit). It takes whatever is queued (up to
/// [`APPEND_BATCH`], never waiting for more), runs each append in its own savepoint of ONE
/// transaction, commits once — one fsync for the lot — then sends the batch's new messages
/// through `commits` (`blocking_send`: this thread has no runtime) and only then answers each
/// job.
///
/// **Invariants:** appends are performed in queue order, so one sender's appends to a room get
/// ascending seqs in the order they were queued; a job is answered `Ok` only after the commit
/// that stored it; one job's failure (not a member, say) rolls back only its savepoint; a
/// failed commit fails every job of the batch and sends nothing. Commits reach the channel in
/// seq order per room: this thread is the only writer of messages, it assigns a room's seqs in
/// queue order within a batch, and it sends one batch (in queue order) before it begins the
/// next. A lagging receiver holds this thread in `blocking_send`, so the queue fills and
/// senders wait (back-pressure). Ends when every store handle is gone.
fn append_writer(
    conn: Arc<Mutex<Connection>>,
    mut jobs: tokio::sync::mpsc::Receiver<AppendJob>,
    commits: CommitSender,
    metrics: Arc<std::sync::OnceLock<crate::metrics::StoreMetrics>>,
    webhooks: Webhooks,
) {
    let mut batch = Vec::with_capacity(APPEND_BATCH);
    while jobs.blocking_recv_many(&mut batch, APPEND_BATCH) > 0 {
        let started = std::time::Instant::now();
        let mut guard = conn.lock().unwrap_or_else(|p| p.into_inner());
        let outcomes = write_batch(&mut guard, &batch, &webhooks);
        drop(guard);
        match outcomes {
            Ok((outcomes, enqueued)) => {
                if enqueued {
                    webhooks.enqueued();
                }
                let at = std::time::Instant::now();
                let mut committed = Vec::new();
                let mut replies = Vec::with_capacity(batch.len());
                for (job, (outcome, linked)) in batch.drain(..).zip(outcomes) {
                    if let Ok(a) = &outcome {
                        if !a.duplicate {
                            committed.push(Committed::new(job.msg, a.seq, a.ts, at, linked));
                        }
                    }
                    replies.push((job.reply, outcome));
                }
                if let Some(metrics) = metrics.get() {
                    metrics.committed(committed.len(), at - started);
                }
                // Handed over before any ack: a receiver gone (shutdown) drops them.
                if !committed.is_empty() {
                    let _ = commits.blocking_send(committed);
                }
                for (reply, outcome) in replies {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = batch.len(), "append batch failed");
                let e = Arc::new(StoreError::Sqlite(e));
                for job in batch.drain(..) {
                    let _ = job.reply.send(Err(StoreError::Batch(e.clone())));
                }
            }
        }
    }
}

/// One job's outcome in a batch, with the attachments its append linked.
type JobOutcome = (StoreResult<Appended>, Linked);

/// Appends `jobs` in one transaction, a savepoint each, with their webhook deliveries; `Err` if
/// the transaction as a whole failed (nothing stored). The flag: whether it inserted any
/// delivery job.
fn write_batch(
    conn: &mut Connection,
    jobs: &[AppendJob],
    webhooks: &Webhooks,
) -> rusqlite::Result<(Vec<JobOutcome>, bool)> {
    let mut enqueued = false;
    let mut tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut outcomes = Vec::with_capacity(jobs.len());
    for job in jobs {
        if job.reply.is_closed() {
            // Its `append` was cancelled: do not store what nobody will ack.
            outcomes.push((Err(StoreError::WriterGone), None));
            continue;
        }
        let sp = tx.savepoint()?;
        match append_one(&sp, &job.msg) {
            Ok(Ok(appended)) => {
                let mut linked = None;
                if !appended.duplicate {
                    if !job.msg.attachments.is_empty() {
                        linked = Some(link_attachments(&sp, &job.msg, appended.seq)?);
                    }
                    let deliveries = webhooks.message_created(
                        &job.msg,
                        appended.seq,
                        appended.ts,
                        linked.as_deref().unwrap_or_default(),
                    );
                    enqueue_all(&sp, &deliveries)?;
                    enqueued |= !deliveries.is_empty();
                }
                sp.commit()?;
                outcomes.push((Ok(appended), linked));
            }
            // Dropping the savepoint rolls back only this job.
            Ok(Err(refused)) => outcomes.push((Err(refused), None)),
            Err(e) => outcomes.push((Err(StoreError::Sqlite(e)), None)),
        }
    }
    tx.commit()?;
    Ok((outcomes, enqueued))
}

/// Inserts delivery jobs on `conn` (a transaction or savepoint of the change causing them).
fn enqueue_all(conn: &Connection, jobs: &[NewJob]) -> rusqlite::Result<()> {
    jobs.iter().try_for_each(|job| enqueue_sqlite(conn, job))
}

/// Links the attachments of `msg` (stored at `seq`) to it, in the append's transaction: those
/// of its room, uploaded by its sender and not yet sent. Returns the ids it linked.
fn link_attachments(
    conn: &Connection,
    msg: &NewMessage,
    seq: Seq,
) -> rusqlite::Result<Vec<String>> {
    let ids = serde_json::to_string(&msg.attachment_ids()).expect("strings serialise");
    let mut stmt = conn.prepare_cached(
        "UPDATE attachments SET seq = ?1
         WHERE room = ?2 AND uploader = ?3 AND seq IS NULL
           AND id IN (SELECT value FROM json_each(?4))
         RETURNING id",
    )?;
    let linked = stmt
        .query_map(params![seq, msg.room, msg.sender.id, ids], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(linked)
}

/// One append inside the writer's transaction: membership, key check, seq, insert, read mark.
fn append_one(conn: &Connection, msg: &NewMessage) -> rusqlite::Result<StoreResult<Appended>> {
    // Statements are cached: this is the hot path of every send.
    let member = conn
        .prepare_cached("SELECT 1 FROM members WHERE room_id = ?1 AND user_id = ?2")?
        .query_row(params![msg.room, msg.sender.id], |_| Ok(()))
        .optional()?;
    if member.is_none() {
        let room = conn
            .prepare_cached("SELECT 1 FROM rooms WHERE id = ?1")?
            .query_row([&msg.room], |_| Ok(()))
            .optional()?;
        return Ok(Err(match room {
            None => StoreError::RoomNotFound(msg.room.clone()),
            Some(()) => StoreError::NotMember(msg.room.clone()),
        }));
    }
    if let Some(cmid) = &msg.client_msg_id {
        let first: Option<(Seq, Millis)> = conn
            .prepare_cached(
                "SELECT seq, ts FROM messages
                 WHERE room_id = ?1 AND sender_id = ?2 AND client_msg_id = ?3",
            )?
            .query_row(params![msg.room, msg.sender.id, cmid], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        if let Some((seq, ts)) = first {
            return Ok(Ok(Appended {
                seq,
                ts,
                duplicate: true,
            }));
        }
    }
    let seq: Seq = conn
        .prepare_cached(
            "UPDATE rooms SET last_seq = last_seq + 1, last_ts = ?2 WHERE id = ?1 RETURNING last_seq",
        )?
        .query_row(params![msg.room, msg.ts], |r| r.get(0))?;
    conn.prepare_cached(
        "INSERT INTO messages (room_id, seq, sender_id, sender_name, body, ts, client_msg_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        msg.room,
        seq,
        msg.sender.id,
        msg.sender.username,
        msg.body,
        msg.ts,
        msg.client_msg_id
    ])?;
    // The author has read their own message (marks never move back).
    conn.prepare_cached(
        "UPDATE members SET read_seq = MAX(read_seq, ?3) WHERE room_id = ?1 AND user_id = ?2",
    )?
    .execute(params![msg.room, msg.sender.id, seq])?;
    // A new message shows the room to members who hid it (a direct room's leaver), so nothing
    // is posted where nobody looks. The partial index makes this a probe when nobody did.
    conn.prepare_cached("UPDATE members SET hidden = 0 WHERE room_id = ?1 AND hidden = 1")?
        .execute([&msg.room])?;
    Ok(Ok(Appended {
        seq,
        ts: msg.ts,
        duplicate: false,
    }))
}

const ROOM_COLS: &str = "id, name, public, kind, created_by, last_seq, last_ts";

/// A page of a member's room list (see [`RoomPage`]): `?1` user, `?2` as_of, `?3`/`?4` the
/// activity and id to start after (NULL: from the top), `?5` limit. The activity of a room active
/// since `as_of` is found by walking its messages back from the newest (primary key order), so it
/// costs only the messages newer than `as_of`.
const ROOMS_OF: &str = "
SELECT * FROM (
    SELECT r.id, r.name, r.public, r.kind, r.created_by, r.last_seq, r.last_ts, m.read_seq,
           CASE WHEN r.last_ts <= ?2 THEN r.last_ts
                ELSE COALESCE((SELECT x.ts FROM messages x WHERE x.room_id = r.id AND x.ts <= ?2
                               ORDER BY x.seq DESC LIMIT 1), r.created_ts)
           END AS activity
    FROM members m JOIN rooms r ON r.id = m.room_id
    WHERE m.user_id = ?1 AND m.hidden = 0
)
WHERE ?3 IS NULL OR activity < ?3 OR (activity = ?3 AND id > ?4)
ORDER BY activity DESC, id
LIMIT ?5";
const MSG_COLS: &str =
    "room_id, seq, sender_name, body, ts, client_msg_id, edited_ts, deleted, sender_id";

impl SqliteStore {
    /// Opens (creating if needed) the database file, applies pending migrations and starts the
    /// append thread, which sends every commit through `commits` (see the module invariants).
    pub async fn open(path: &Path, now: Millis, commits: CommitSender) -> StoreResult<Self> {
        let path = path.to_owned();
        let conn = tokio::task::spawn_blocking(move || -> StoreResult<Connection> {
            let mut conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            migrate::migrate(&mut conn, now)?;
            Ok(conn)
        })
        .await??;
        let conn = Arc::new(Mutex::new(conn));
        let (appends, jobs) = tokio::sync::mpsc::channel(APPEND_QUEUE);
        let writer_conn = conn.clone();
        let metrics = Arc::new(std::sync::OnceLock::new());
        let writer_metrics = metrics.clone();
        let webhooks = Webhooks::default();
        let writer_webhooks = webhooks.clone();
        std::thread::Builder::new()
            .name("sqlite-appends".into())
            .spawn(move || {
                append_writer(writer_conn, jobs, commits, writer_metrics, writer_webhooks);
            })?;
        Ok(Self {
            conn,
            appends,
            metrics,
            webhooks,
        })
    }

    /// The webhook events this store causes (set their endpoints once, see [`Webhooks::set`]).
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// Runs `f` in a transaction that may insert delivery jobs (`f` returns them with its
    /// value), committing both together, then raises the webhooks' signal if it inserted any.
    async fn call_tx<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Transaction<'_>, &Webhooks) -> rusqlite::Result<(T, Vec<NewJob>)>
            + Send
            + 'static,
    {
        let webhooks = self.webhooks.clone();
        let signal = webhooks.clone();
        let (out, enqueued) = self
            .call(move |conn| {
                // `IMMEDIATE`: the write lock is taken (or waited for) at the start. A deferred
                // transaction that read first could find its snapshot stale when it writes,
                // and fail at once with `SQLITE_BUSY`, busy timeout or not.
                let tx =
                    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let (out, jobs) = f(&tx, &webhooks)?;
                enqueue_all(&tx, &jobs)?;
                tx.commit()?;
                Ok((out, !jobs.is_empty()))
            })
            .await?;
        if enqueued {
            signal.enqueued();
        }
        Ok(out)
    }

    /// Records each committed batch's size and time in `metrics` from now on (set once: a
    /// second call changes nothing).
    pub fn set_metrics(&self, metrics: crate::metrics::StoreMetrics) {
        let _ = self.metrics.set(metrics);
    }

    /// Runs `f` on the connection off the async threads.
    async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let out = tokio::task::spawn_blocking(move || {
            let mut guard = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&mut guard)
        })
        .await??;
        Ok(out)
    }
}

fn room_row(r: &Row<'_>) -> rusqlite::Result<RoomRecord> {
    Ok(RoomRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        public: r.get(2)?,
        kind: r.get(3)?,
        created_by: r.get(4)?,
        last_seq: r.get(5)?,
        last_ts: r.get(6)?,
    })
}

fn msg_row(r: &Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        room: r.get(0)?,
        seq: r.get(1)?,
        from: r.get(2)?,
        body: r.get(3)?,
        ts: r.get(4)?,
        client_msg_id: r.get(5)?,
        edited_ts: r.get(6)?,
        deleted: r.get(7)?,
        bot: is_bot_id(&r.get::<_, String>(8)?),
        attachments: Vec::new(),
    })
}

fn get_room(conn: &Connection, id: &str) -> rusqlite::Result<Option<RoomRecord>> {
    conn.query_row(
        &format!("SELECT {ROOM_COLS} FROM rooms WHERE id = ?1"),
        [id],
        room_row,
    )
    .optional()
}

fn insert_member(
    conn: &Connection,
    room: &str,
    user: &UserRef,
    ts: Millis,
) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO members (room_id, user_id, username, joined_ts) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (room_id, user_id) DO NOTHING",
        params![room, user.id, user.username, ts],
    )?;
    Ok(n == 1)
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_room(&self, room: NewRoom) -> StoreResult<RoomRecord> {
        self.call_tx(move |tx, webhooks| {
            tx.execute(
                "INSERT INTO rooms (id, name, public, kind, created_by, created_ts, last_ts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![
                    room.id,
                    room.name,
                    room.public,
                    KIND_GROUP,
                    room.creator.username,
                    room.ts
                ],
            )?;
            insert_member(tx, &room.id, &room.creator, room.ts)?;
            let rec = get_room(tx, &room.id)?.expect("room just inserted");
            let jobs = webhooks.room_created(&rec, &[&room.creator], room.ts);
            Ok((rec, jobs))
        })
        .await
    }

    async fn room(&self, id: &str) -> StoreResult<Option<RoomRecord>> {
        let id = id.to_owned();
        self.call(move |conn| get_room(conn, &id)).await
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
        self.call_tx(move |tx, webhooks| {
            let key = format!("{}:{}", a.id, b.id);
            let mut jobs = Vec::new();
            let existing: Option<String> = tx
                .query_row("SELECT id FROM rooms WHERE direct_key = ?1", [&key], |r| r.get(0))
                .optional()?;
            let id = match existing {
                Some(id) => {
                    for user in [&a, &b] {
                        if insert_member(tx, &id, user, ts)? {
                            jobs.extend(webhooks.member_joined(&id, user, ts));
                        }
                    }
                    tx.execute(
                        "UPDATE members SET hidden = 0 WHERE room_id = ?1 AND user_id = ?2",
                        [&id, &caller],
                    )?;
                    id
                }
                None => {
                    let mut names = [a.username.as_str(), b.username.as_str()];
                    names.sort_unstable();
                    tx.execute(
                        "INSERT INTO rooms (id, name, public, kind, created_by, created_ts, last_ts, direct_key)
                         VALUES (?1, ?2, 0, ?3, ?4, ?5, ?5, ?6)",
                        params![new_id, names.join(","), KIND_DIRECT, a.username, ts, key],
                    )?;
                    insert_member(tx, &new_id, &a, ts)?;
                    insert_member(tx, &new_id, &b, ts)?;
                    let rec = get_room(tx, &new_id)?.expect("direct room just inserted");
                    jobs.extend(webhooks.room_created(&rec, &[&a, &b], ts));
                    new_id
                }
            };
            let rec = get_room(tx, &id)?.expect("direct room exists");
            Ok((rec, jobs))
        })
        .await
    }

    async fn membership(&self, room: &str, user_id: &str) -> StoreResult<Option<Seq>> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        self.call(move |conn| {
            conn.query_row(
                "SELECT read_seq FROM members WHERE room_id = ?1 AND user_id = ?2",
                [&room, &user_id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }

    async fn add_member(&self, room: &str, user: &UserRef, ts: Millis) -> StoreResult<bool> {
        let (room, user) = (room.to_owned(), user.clone());
        self.call_tx(move |tx, webhooks| {
            let added = insert_member(tx, &room, &user, ts)?;
            let jobs = if added {
                webhooks.member_joined(&room, &user, ts)
            } else {
                Vec::new()
            };
            Ok((added, jobs))
        })
        .await
    }

    async fn remove_member(&self, room: &str, user_id: &str) -> StoreResult<bool> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        self.call_tx(move |tx, webhooks| {
            let username: Option<String> = tx
                .query_row(
                    "DELETE FROM members WHERE room_id = ?1 AND user_id = ?2 RETURNING username",
                    [&room, &user_id],
                    |r| r.get(0),
                )
                .optional()?;
            let jobs = match &username {
                Some(username) => {
                    let user = UserRef {
                        id: user_id.clone(),
                        username: username.clone(),
                    };
                    webhooks.member_left(&room, &user, switchboard_jobs::clock::now_ms())
                }
                None => Vec::new(),
            };
            Ok((username.is_some(), jobs))
        })
        .await
    }

    async fn hide_member(&self, room: &str, user_id: &str) -> StoreResult<Option<Vec<String>>> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        self.call(move |conn| {
            let n = conn.execute(
                "UPDATE members SET hidden = 1 WHERE room_id = ?1 AND user_id = ?2",
                [&room, &user_id],
            )?;
            if n == 0 {
                return Ok(None);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT user_id FROM members WHERE room_id = ?1 AND user_id <> ?2",
            )?;
            let others = stmt.query_map([&room, &user_id], |r| r.get(0))?;
            others.collect::<rusqlite::Result<_>>().map(Some)
        })
        .await
    }

    async fn members(&self, room: &str) -> StoreResult<Vec<String>> {
        let room = room.to_owned();
        self.call(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT username FROM members WHERE room_id = ?1 ORDER BY joined_ts, username",
            )?;
            let rows = stmt.query_map([&room], |r| r.get(0))?;
            rows.collect()
        })
        .await
    }

    async fn rooms_of(&self, user_id: &str, page: RoomPage) -> StoreResult<Vec<MemberRoom>> {
        let user_id = user_id.to_owned();
        self.call(move |conn| {
            let (after_activity, after_id) = page.after.unzip();
            let mut stmt = conn.prepare_cached(ROOMS_OF)?;
            let rows = stmt.query_map(
                params![
                    user_id,
                    page.as_of,
                    after_activity,
                    after_id,
                    i64::from(page.limit)
                ],
                |r| {
                    Ok(MemberRoom {
                        room: room_row(r)?,
                        read_seq: r.get(7)?,
                        activity: r.get(8)?,
                    })
                },
            )?;
            rows.collect()
        })
        .await
    }

    async fn enqueue_append(&self, msg: NewMessage) -> StoreResult<PendingAppend> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = AppendJob { msg, reply };
        self.appends
            .send(job)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Box::pin(async move {
            answer.await.map_err(|_| StoreError::WriterGone)?
        }))
    }

    async fn messages(&self, room: &str, page: Page) -> StoreResult<Vec<Message>> {
        let room = room.to_owned();
        self.call(move |conn| {
            let limit = i64::from(page.limit);
            let before = page.before.map_or(i64::MAX, seq_bound);
            let mut out: Vec<Message> = if let Some(after) = page.after {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {MSG_COLS} FROM messages WHERE room_id = ?1 AND seq > ?2 AND seq < ?3
                     ORDER BY seq ASC LIMIT ?4"
                ))?;
                let rows =
                    stmt.query_map(params![room, seq_bound(after), before, limit], msg_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            } else {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {MSG_COLS} FROM messages WHERE room_id = ?1 AND seq < ?2
                     ORDER BY seq DESC LIMIT ?3"
                ))?;
                let rows = stmt.query_map(params![room, before, limit], msg_row)?;
                rows.collect::<rusqlite::Result<_>>()?
            };
            if page.after.is_none() {
                out.reverse();
            }
            Ok(out)
        })
        .await
    }

    async fn message(&self, room: &str, seq: Seq) -> StoreResult<Option<MessageRecord>> {
        let room = room.to_owned();
        let Some(seq) = seq_key(seq) else {
            return Ok(None);
        };
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {MSG_COLS} FROM messages WHERE room_id = ?1 AND seq = ?2"),
                params![room, seq],
                |r| {
                    Ok(MessageRecord {
                        message: msg_row(r)?,
                        sender_id: r.get(8)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn edit(&self, room: &str, seq: Seq, body: &str, ts: Millis) -> StoreResult<()> {
        let (room, body) = (room.to_owned(), body.to_owned());
        let wire_seq = seq;
        let Some(seq) = seq_key(seq) else {
            return Ok(());
        };
        self.call_tx(move |tx, webhooks| {
            let n = tx.execute(
                "UPDATE messages SET body = ?3, edited_ts = ?4 WHERE room_id = ?1 AND seq = ?2",
                params![room, seq, body, ts],
            )?;
            let jobs = if n == 1 {
                webhooks.message_edited(&room, wire_seq, &body, ts)
            } else {
                Vec::new()
            };
            Ok(((), jobs))
        })
        .await
    }

    async fn delete(&self, room: &str, seq: Seq, ts: Millis) -> StoreResult<()> {
        let room = room.to_owned();
        let wire_seq = seq;
        let Some(seq) = seq_key(seq) else {
            return Ok(());
        };
        self.call_tx(move |tx, webhooks| {
            let n = tx.execute(
                "UPDATE messages SET body = '', deleted = 1, edited_ts = ?3 WHERE room_id = ?1 AND seq = ?2",
                params![room, seq, ts],
            )?;
            let jobs = if n == 1 {
                webhooks.message_deleted(&room, wire_seq, ts)
            } else {
                Vec::new()
            };
            Ok(((), jobs))
        })
        .await
    }

    async fn set_read(&self, room: &str, user_id: &str, seq: Seq) -> StoreResult<Seq> {
        let (room, user_id) = (room.to_owned(), user_id.to_owned());
        let seq = seq_bound(seq);
        self.call(move |conn| {
            conn.query_row(
                "UPDATE members SET read_seq = MAX(read_seq, MIN(?3, (SELECT last_seq FROM rooms WHERE id = ?1)))
                 WHERE room_id = ?1 AND user_id = ?2 RETURNING read_seq",
                params![room, user_id, seq],
                |r| r.get(0),
            )
            .optional()
            .map(Option::unwrap_or_default)
        })
        .await
    }

    async fn purge_before(&self, cutoff: Millis) -> StoreResult<u64> {
        self.call(move |conn| {
            conn.execute("DELETE FROM messages WHERE ts < ?1", [cutoff])
                .map(|n| n as u64)
        })
        .await
    }

    async fn first_seq(&self, room: &str) -> StoreResult<Option<Seq>> {
        let room = room.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT MIN(seq) FROM messages WHERE room_id = ?1",
                [&room],
                |r| r.get(0),
            )
        })
        .await
    }

    async fn known_user(&self, username: &str) -> StoreResult<Option<UserRef>> {
        let username = username.to_owned();
        self.call(move |conn| {
            conn.query_row(
                "SELECT user_id, username FROM members
                 WHERE username = ?1 AND user_id NOT LIKE 'bot:%' LIMIT 1",
                [&username],
                |r| {
                    Ok(UserRef {
                        id: r.get(0)?,
                        username: r.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn create_api_key(&self, key: ApiKeyRecord) -> StoreResult<bool> {
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO api_keys (id, name, hash, created_ts) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT DO NOTHING",
                params![key.id, key.name, key.hash, key.created_ts],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn api_keys(&self) -> StoreResult<Vec<ApiKeyRecord>> {
        self.call(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {KEY_COLS} FROM api_keys ORDER BY created_ts, name"
            ))?;
            let rows = stmt.query_map([], key_row)?;
            rows.collect()
        })
        .await
    }

    async fn api_key(&self, id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!("SELECT {KEY_COLS} FROM api_keys WHERE id = ?1"),
                [&id],
                key_row,
            )
            .optional()
        })
        .await
    }

    async fn revoke_api_key(&self, name_or_id: &str) -> StoreResult<Option<ApiKeyRecord>> {
        let which = name_or_id.to_owned();
        self.call(move |conn| {
            conn.query_row(
                &format!("DELETE FROM api_keys WHERE name = ?1 OR id = ?1 RETURNING {KEY_COLS}"),
                [&which],
                key_row,
            )
            .optional()
        })
        .await
    }

    async fn touch_api_key(&self, id: &str, ts: Millis) -> StoreResult<()> {
        let id = id.to_owned();
        self.call(move |conn| {
            conn.execute(
                "UPDATE api_keys SET last_used_ts = ?2 WHERE id = ?1",
                params![id, ts],
            )
            .map(drop)
        })
        .await
    }
}

const KEY_COLS: &str = "id, name, hash, created_ts, last_used_ts";

fn key_row(r: &Row<'_>) -> rusqlite::Result<ApiKeyRecord> {
    Ok(ApiKeyRecord {
        id: r.get(0)?,
        name: r.get(1)?,
        hash: r.get(2)?,
        created_ts: r.get(3)?,
        last_used_ts: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store whose commits nobody receives (these tests read the database instead).
    async fn open(path: &Path) -> StoreResult<SqliteStore> {
        SqliteStore::open(path, 0, tokio::sync::mpsc::channel(1).0).await
    }

    #[tokio::test]
    async fn migrating_restores_direct_room_leavers_as_hidden_members() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            // A database of schema 1 in which bob left his direct room with alice ("id-b" >
            // "id-a", so alice created it), and both left the one of carol and dave.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(migrate::SQLITE_MIGRATIONS[0].1).unwrap();
            conn.execute_batch(
                "CREATE TABLE schema_migrations (
                     version INTEGER PRIMARY KEY, applied_ts INTEGER NOT NULL);
                 INSERT INTO schema_migrations VALUES (1, 0);
                 INSERT INTO rooms (id, name, public, kind, created_by, created_ts, last_ts,
                                    direct_key, last_seq)
                 VALUES ('d1', 'alice,bob', 0, 'direct', 'alice', 5, 5, 'id-a:id-b', 0),
                        ('d2', 'carol,dave', 0, 'direct', 'carol', 6, 6, 'id-c:id-d', 0);
                 INSERT INTO members (room_id, user_id, username, joined_ts)
                 VALUES ('d1', 'id-a', 'alice', 5);",
            )
            .unwrap();
        }
        let store = open(&path).await.unwrap();
        let names = |v: Vec<String>| {
            let mut v = v;
            v.sort();
            v
        };
        assert_eq!(names(store.members("d2").await.unwrap()), ["carol", "dave"]);
        assert_eq!(store.membership("d2", "id-d").await.unwrap(), Some(0));
        crate::store::contract::check_restored_direct_leaver(&store).await;
        // Each restored row pairs the right id with the right name.
        drop(store);
        let conn = Connection::open(&path).unwrap();
        let mut rows: Vec<(String, String)> = conn
            .prepare("SELECT user_id, username FROM members WHERE room_id = 'd2' ORDER BY user_id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows.sort();
        assert_eq!(
            rows,
            [
                ("id-c".into(), "carol".into()),
                ("id-d".into(), "dave".into())
            ]
        );
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_refuses_newer_schemas() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        {
            let store = open(&path).await.unwrap();
            let creator = UserRef {
                id: "u".into(),
                username: "u".into(),
            };
            let room = NewRoom {
                id: "r".into(),
                name: "r".into(),
                public: true,
                creator,
                ts: 0,
            };
            store.create_room(room).await.unwrap();
        }
        let store = open(&path).await.unwrap();
        assert!(store.room("r").await.unwrap().is_some());
        drop(store);
        let conn = Connection::open(&path).unwrap();
        conn.execute("INSERT INTO schema_migrations VALUES (999, 0)", [])
            .unwrap();
        drop(conn);
        let err = open(&path).await.err().expect("newer schema refused");
        assert!(err.to_string().contains("newer"), "{err}");
    }

    /// The store's write transactions begin `IMMEDIATE`: while another connection to the file
    /// (the job queue's, the media index's) keeps committing, a transaction that read first
    /// and then wrote could find its snapshot stale and fail at once with `SQLITE_BUSY`
    /// (the busy timeout does not apply to that case): a `503` for a request that did nothing
    /// wrong (seen as `POST /v1/direct/{username}` answering "storage is unavailable").
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn write_transactions_survive_another_connections_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let store = open(&path).await.unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let other = {
            let (path, stop) = (path.clone(), stop.clone());
            std::thread::spawn(move || {
                let conn = Connection::open(&path).unwrap();
                conn.busy_timeout(std::time::Duration::from_secs(5))
                    .unwrap();
                conn.pragma_update(None, "synchronous", "OFF").unwrap();
                conn.execute_batch("CREATE TABLE IF NOT EXISTS scratch (n INTEGER)")
                    .unwrap();
                let mut commits = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    conn.execute("INSERT INTO scratch VALUES (1)", []).unwrap();
                    commits += 1;
                }
                commits
            })
        };
        let user = |n: u32| UserRef {
            id: format!("id-{n}"),
            username: format!("u{n}"),
        };
        let mut failures = Vec::new();
        for n in 0..300 {
            // A new direct room, then the same one again: read, then write, in one transaction.
            for _ in 0..2 {
                if let Err(e) = store
                    .direct_room(&user(n), &user(n + 1000), &format!("d{n}"), 1)
                    .await
                {
                    failures.push(e.to_string());
                }
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let commits = other.join().unwrap();
        assert!(
            commits > 100,
            "the other connection wrote meanwhile ({commits} commits)"
        );
        assert!(
            failures.is_empty(),
            "{} failed: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
}
