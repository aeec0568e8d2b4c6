//! The batch writers (group commit) behind [`PgStore::append`](super::PgStore).
//!
//! A store runs `PgConfig::writers` writer tasks, each with its own bounded queue. Every
//! `append` puts a [`Job`] into the queue of its room's writer ([`shard`]: a fixed hash of the
//! room id) and waits on its own oneshot. A writer takes up to `batch_max_size` jobs, or what
//! arrived within `batch_max_age` of the first one, and writes them in ONE transaction:
//!
//! 1. pipelined in ONE round trip: `BEGIN`; [`LOCK_ROOMS`] locks the batch's rooms in id order
//!    (so two nodes' batches never deadlock); then [`INSERT_BATCH`] — which, running after the
//!    locks are held, sees every message committed to those rooms — drops keys already stored,
//!    advances each room's `last_seq` by its number of new messages, and inserts them all from
//!    `UNNEST`ed arrays, or fails as a whole if that would break an invariant; then `COMMIT`,
//!    which rolls back instead if any statement before it failed;
//! 2. once the commit is answered, the batch's new messages are sent through the store's
//!    [`CommitSender`] (one `Vec`, in job order) and, after that, each waiter answered.
//!
//! One round trip per batch, yet a writer's cycle is mostly waiting (for the scheduler and the
//! WAL flush): hence several writers (below).
//!
//! **Invariants.** A room's row lock is held from the lock statement to the commit, so across every node
//! seqs are assigned in one order, dense and never reused. A job is answered `Ok` only after the
//! commit that stored it (or that found its key stored). A failed batch rolls back whole, every
//! waiter in it gets the error and nothing of it is sent; a job for a missing room or from a
//! non-member fails alone. (Should `BEGIN` itself fail on a live connection, the pipelined
//! insert would run on its own and commit: its waiters are told the batch failed although it
//! may be stored — the same uncertainty as a `COMMIT` cut off in flight, which a retry with
//! the same `client_msg_id` resolves.)
//!
//! **Several transactions in flight.** The writers of one store work at the same time, one
//! transaction each, so one batch's round trips and `COMMIT` flush overlap the others' (and
//! PostgreSQL's group commit merges flushes that meet). They never wait for each other: a
//! room belongs to exactly one writer, so their batches lock disjoint room rows (and the
//! disjoint `members` rows of those rooms). Order per room, on the database and on the commit
//! channel, comes from that single owner: a room's jobs enter one FIFO queue in `append` call
//! order, the writer assigns their seqs in job order within a batch, and it commits, sends and
//! answers one batch before it takes the next. Batches of different rooms reach the channel in
//! any order, which the channel's contract allows.
//!
//! **Back-pressure.** The writer sends with `.send(batch).await`: when the receiver lags, the
//! writer waits before it answers that batch or starts the next, its queue fills and `append`s
//! wait for room (within their timeout). Appends whose waiters time out meanwhile were stored
//! all the same (their retry with the same `client_msg_id` finds them). A receiver that is gone
//! (the node is shutting down) makes the send fail at once: those commits are dropped.

use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Client, Pool};
use switchboard_protocol::{Millis, Seq};
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout_at, Instant};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use switchboard_jobs::NewJob;
use switchboard_webhooks::EventType;

use crate::store::events::Webhooks;
use crate::store::{
    Appended, CommitSender, Committed, Linked, NewMessage, StoreError, StoreResult,
};

/// One queued append.
pub(super) struct Job {
    pub msg: NewMessage,
    /// When the `append` was called: `batch_max_age` counts from the oldest job's.
    pub queued_at: Instant,
    /// When the waiting `append` gives up (`queued_at + timeout`).
    pub deadline: Instant,
    pub reply: oneshot::Sender<StoreResult<Appended>>,
}

/// The writer that owns `room` among `writers` (at least 1): every append to a room goes
/// through the same writer, which is what keeps a room's order (see the module docs). The hash
/// is fixed for the life of the process (`DefaultHasher::new` has fixed keys); nothing else
/// depends on it.
pub(super) fn shard(room: &str, writers: usize) -> usize {
    let mut h = DefaultHasher::new();
    room.hash(&mut h);
    (h.finish() % writers.max(1) as u64) as usize
}

/// What the writers have committed since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Transactions committed by the batch writers.
    pub batches: u64,
    /// Messages stored by those transactions (repeats of a `client_msg_id` are not counted).
    pub messages: u64,
    /// Time those transactions took, from taking a connection to the answer to `COMMIT`,
    /// summed over the writers, in microseconds: `busy_micros / batches` is the mean time a
    /// batch is in flight (its commit latency as the writer sees it).
    pub busy_micros: u64,
}

/// The live counters behind [`BatchStats`].
#[derive(Debug, Default)]
pub(super) struct Counters {
    batches: AtomicU64,
    messages: AtomicU64,
    busy_micros: AtomicU64,
    /// The node's histograms of batch size and commit time (set once, by the node).
    pub metrics: std::sync::OnceLock<crate::metrics::StoreMetrics>,
}

impl Counters {
    pub fn snapshot(&self) -> BatchStats {
        BatchStats {
            batches: self.batches.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            busy_micros: self.busy_micros.load(Ordering::Relaxed),
        }
    }
}

/// Locks the batch's rooms (`$1`, sorted and distinct) in id order. `NO KEY UPDATE` is the lock
/// the `UPDATE rooms` below takes anyway; unlike `FOR UPDATE` it does not block foreign-key
/// checks, so `add_member` on a busy room does not queue behind batches.
const LOCK_ROOMS: &str =
    "SELECT id FROM rooms WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE";

/// Writes a batch (one element per job; `idx` is the job's position). Returns one row per job:
/// its seq and ts, whether it repeats a stored key (`duplicate`), `stored` (always true), and
/// whether the sender is a member of the room (`member`; if not, nothing is written for the job —
/// its room may not exist at all; membership is looked up once per room and sender, not per
/// job). A new message whose seq, above `last_seq`, is already taken, or whose seq is not
/// positive, breaks the store's invariants: the statement then fails as a whole (the plain
/// `INSERT` raises a unique violation; a seq not above 0 casts an [`INCONSISTENT`] text to
/// `bool`, which raises), so the `COMMIT` pipelined behind it rolls back instead. The insert
/// has no `ON CONFLICT`: under the room locks, `known` has found every stored key, so a conflict
/// can only be such a broken invariant. Each sender's read mark moves up to its newest message
/// of the batch, and every member who hid a room that got a message sees it again (`marked` does
/// it for the senders and `shown` for the others: one statement may not update a row twice).
const INSERT_BATCH: &str = "
WITH raw AS (
    SELECT * FROM UNNEST($1::int4[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[],
                         $7::text[])
        AS t(idx, room_id, sender_id, sender_name, body, ts, client_msg_id)
),
allowed AS (
    SELECT s.room_id, s.sender_id FROM (SELECT DISTINCT room_id, sender_id FROM raw) s
    WHERE EXISTS (SELECT 1 FROM members mb
                  WHERE mb.room_id = s.room_id AND mb.user_id = s.sender_id)
),
input AS (
    SELECT r.*, a.room_id IS NOT NULL AS member FROM raw r
    LEFT JOIN allowed a ON a.room_id = r.room_id AND a.sender_id = r.sender_id
),
known AS (
    SELECT i.idx, m.seq, m.ts FROM input i
    JOIN messages m ON m.room_id = i.room_id AND m.sender_id = i.sender_id
                   AND m.client_msg_id = i.client_msg_id
    WHERE i.member AND i.client_msg_id IS NOT NULL
),
fresh AS (
    SELECT i.*, row_number() OVER (PARTITION BY i.room_id ORDER BY i.idx) AS rn
    FROM input i WHERE i.member AND i.idx NOT IN (SELECT idx FROM known)
),
counts AS (
    SELECT room_id, count(*) AS n, max(ts) AS max_ts FROM fresh GROUP BY room_id
),
bumped AS (
    UPDATE rooms r SET last_seq = r.last_seq + c.n, last_ts = GREATEST(r.last_ts, c.max_ts)
    FROM counts c WHERE r.id = c.room_id
    RETURNING r.id, r.last_seq - c.n AS base
),
placed AS (
    SELECT f.*, b.base + f.rn AS seq FROM fresh f JOIN bumped b ON b.id = f.room_id
),
inserted AS (
    INSERT INTO messages (room_id, seq, sender_id, sender_name, body, ts, client_msg_id)
    SELECT room_id, seq, sender_id, sender_name, body, ts, client_msg_id FROM placed
),
marked AS (
    UPDATE members mb SET read_seq = GREATEST(mb.read_seq, x.seq), hidden = FALSE
    FROM (SELECT room_id, sender_id, max(seq) AS seq FROM placed GROUP BY room_id, sender_id) x
    WHERE mb.room_id = x.room_id AND mb.user_id = x.sender_id
),
shown AS (
    UPDATE members mb SET hidden = FALSE
    FROM counts c
    WHERE mb.room_id = c.room_id AND mb.hidden
      AND NOT EXISTS (SELECT 1 FROM placed p
                      WHERE p.room_id = mb.room_id AND p.sender_id = mb.user_id)
)
SELECT p.idx, p.seq, p.ts, FALSE AS duplicate,
       CASE WHEN p.seq > 0 THEN TRUE
            ELSE ('inconsistent store: seq ' || p.seq || ' of room ' || p.room_id
                  || ' is not above 0')::bool
       END AS stored,
       TRUE AS member
FROM placed p
UNION ALL
SELECT k.idx, k.seq, k.ts, TRUE, TRUE, TRUE FROM known k
UNION ALL
SELECT i.idx, 0::int8, 0::int8, FALSE, TRUE, FALSE FROM input i WHERE NOT i.member";

/// Links the attachments of the batch's new messages (`UNNEST`ed: attachment id, room,
/// sender, seq) to them: only those of the message's room, uploaded by its sender and not yet
/// sent. Returns each linked attachment with the seq it got (an id two messages of the batch
/// carry goes to one of them only).
const LINK_ATTACHMENTS: &str = "
UPDATE attachments a SET seq = u.seq
FROM UNNEST($1::text[], $2::text[], $3::text[], $4::int8[]) AS u(id, room, uploader, seq)
WHERE a.id = u.id AND a.room = u.room AND a.uploader = u.uploader AND a.seq IS NULL
RETURNING a.id, a.seq";

/// How [`INSERT_BATCH`] says that the batch would break an invariant (in the text it fails to
/// cast), turned into [`StoreError::Inconsistent`] by [`refusal`].
const INCONSISTENT: &str = "inconsistent store: ";

/// The error of a batch statement, with [`INSERT_BATCH`]'s own refusals recognised: its
/// failed cast, and a unique violation of `messages` (a seq or key already taken behind the
/// store's back).
fn refusal(e: tokio_postgres::Error) -> StoreError {
    let why = e.as_db_error().and_then(|db| match *db.code() {
        SqlState::INVALID_TEXT_REPRESENTATION => db
            .message()
            .split_once(INCONSISTENT)
            .map(|(_, why)| why.trim_end_matches('"').to_owned()),
        SqlState::UNIQUE_VIOLATION if db.table() == Some("messages") => Some(format!(
            "a new message's seq or key is already taken ({}: {})",
            db.constraint().unwrap_or("unique"),
            db.detail().unwrap_or(db.message()),
        )),
        _ => None,
    });
    match why {
        Some(why) => StoreError::Inconsistent(why),
        None => e.into(),
    }
}

/// One of a store's writer tasks: it writes every append to the rooms of its [`shard`].
pub(super) struct Writer {
    pub pool: Pool,
    pub jobs: mpsc::Receiver<Job>,
    /// Where committed messages go (see the module docs).
    pub commits: CommitSender,
    pub max_size: usize,
    pub max_age: Duration,
    /// `PgConfig::timeout`, for the error of a job that ran out of time.
    pub timeout: Duration,
    pub counters: Arc<Counters>,
    /// The webhook events of the messages it stores (`message.created`).
    pub webhooks: Webhooks,
}

impl Writer {
    /// Time kept in hand before the earliest deadline of a batch: the writer stops (and rolls
    /// back) a slow batch this long before its waiters give up, so they get the writer's answer
    /// ("not stored") rather than their own timeout. Only a batch cut off while its `COMMIT` is
    /// in flight stays uncertain: it may have been stored, and a retry with the same
    /// `client_msg_id` then answers `duplicate` with the stored seq.
    fn margin(&self) -> Duration {
        self.timeout / 8
    }

    /// Runs until every sender (every clone of the store) is gone and the queue is drained.
    pub async fn run(mut self) {
        let mut batch = Vec::with_capacity(self.max_size);
        while let Some(first) = self.jobs.recv().await {
            let flush_at = first.queued_at + self.max_age;
            batch.push(first);
            while batch.len() < self.max_size {
                let room = self.max_size - batch.len();
                // `timeout_at` polls the queue before the clock, so a late writer still takes
                // everything already queued.
                match timeout_at(flush_at, self.jobs.recv_many(&mut batch, room)).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            self.flush(&mut batch).await;
        }
    }

    /// Writes a batch and answers every job in it.
    async fn flush(&self, batch: &mut Vec<Job>) {
        let now = Instant::now();
        let margin = self.margin();
        let mut jobs = Vec::with_capacity(batch.len());
        for job in batch.drain(..) {
            if job.reply.is_closed() {
                // Its `append` was cancelled or gave up: do not store what nobody will ack.
                continue;
            }
            if job.deadline.checked_sub(margin).is_none_or(|d| d <= now) {
                let _ = job.reply.send(Err(StoreError::Timeout(self.timeout)));
                continue;
            }
            jobs.push(job);
        }
        let Some(deadline) = jobs.iter().map(|j| j.deadline - margin).min() else {
            return;
        };
        let result = match timeout_at(deadline, self.pool.get()).await {
            Err(_) => Err(StoreError::Timeout(self.timeout)),
            Ok(Err(e)) => Err(e.into()),
            Ok(Ok(mut client)) => {
                match timeout_at(deadline, write(&mut client, &jobs, &self.webhooks)).await {
                    Ok(result) => result,
                    Err(_) => {
                        // The connection may be stuck mid-transaction: close it rather than return
                        // it to the pool; the server rolls back when it sees the socket close.
                        drop(deadpool_postgres::Object::take(client));
                        Err(StoreError::Timeout(self.timeout))
                    }
                }
            }
        };
        match result {
            Ok(written) => {
                if written.enqueued {
                    self.webhooks.enqueued();
                }
                self.counters.batches.fetch_add(1, Ordering::Relaxed);
                self.counters
                    .messages
                    .fetch_add(written.stored, Ordering::Relaxed);
                let elapsed = now.elapsed();
                let took = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
                self.counters.busy_micros.fetch_add(took, Ordering::Relaxed);
                if let Some(metrics) = self.counters.metrics.get() {
                    metrics.committed(written.stored as usize, elapsed);
                }
                tracing::debug!(jobs = jobs.len(), took_us = took, "message batch committed");
                // In job order: a room's seqs ascend with the job index, and this writer (the
                // room's only one) sends a batch before it takes the next, so the channel gets
                // each room's messages in seq order.
                let mut committed = Vec::new();
                let mut replies = Vec::with_capacity(jobs.len());
                let at = std::time::Instant::now();
                for ((job, outcome), linked) in
                    jobs.into_iter().zip(written.outcomes).zip(written.linked)
                {
                    if let Ok(a) = &outcome {
                        if !a.duplicate {
                            committed.push(Committed::new(job.msg, a.seq, a.ts, at, linked));
                        }
                    }
                    replies.push((job.reply, outcome));
                }
                // Handed over before any ack; waits while the receiver lags (back-pressure);
                // a receiver gone (shutdown) drops them.
                if !committed.is_empty() {
                    let _ = self.commits.send(committed).await;
                }
                for (reply, outcome) in replies {
                    let _ = reply.send(outcome);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, jobs = jobs.len(), "message batch failed");
                let e = Arc::new(e);
                for job in jobs {
                    let _ = job.reply.send(Err(StoreError::Batch(e.clone())));
                }
            }
        }
    }
}

/// The result of a committed batch.
struct Written {
    /// One per job, in job order.
    outcomes: Vec<StoreResult<Appended>>,
    /// One per job: the attachments its append linked (`None`: it carried none, or it is not
    /// a new message).
    linked: Vec<Linked>,
    /// Whether it inserted delivery jobs.
    enqueued: bool,
    /// How many rows were inserted.
    stored: u64,
}

/// What the database said about one primary job.
#[derive(Clone, Copy)]
struct Row {
    seq: Seq,
    ts: Millis,
    duplicate: bool,
}

/// Writes `jobs` in one transaction (see the module docs) and commits; on an error, rolls the
/// transaction back before the connection goes back to the pool. (A `write` cut off by the
/// writer's timeout never returns its connection: `flush` closes it, and the server rolls back.)
async fn write(client: &mut Client, jobs: &[Job], webhooks: &Webhooks) -> StoreResult<Written> {
    let written = write_and_commit(client, jobs, webhooks).await;
    if written.is_err() {
        // Outside a transaction (BEGIN or COMMIT failed) this is a warning, not an error; on a
        // broken connection it fails, and the pool drops the connection.
        let _ = client.batch_execute("ROLLBACK").await;
    }
    written
}

/// [`write`] without the clean-up: returns as soon as a statement fails, leaving the failed
/// transaction open.
async fn write_and_commit(
    client: &Client,
    jobs: &[Job],
    webhooks: &Webhooks,
) -> StoreResult<Written> {
    // Repeats of a key within the batch follow the first job with that key (their leader);
    // only leaders go to the database.
    let mut first_with_key: HashMap<(&str, &str, &str), usize> = HashMap::new();
    let mut leader: Vec<usize> = (0..jobs.len()).collect();
    for (i, job) in jobs.iter().enumerate() {
        if let Some(cmid) = &job.msg.client_msg_id {
            let key = (
                job.msg.room.as_str(),
                job.msg.sender.id.as_str(),
                cmid.as_str(),
            );
            leader[i] = *first_with_key.entry(key).or_insert(i);
        }
    }
    let leaders: Vec<&Job> = (0..jobs.len())
        .filter(|&i| leader[i] == i)
        .map(|i| &jobs[i])
        .collect();
    let idx: Vec<i32> = (0..jobs.len())
        .filter(|&i| leader[i] == i)
        .map(|i| i32::try_from(i).expect("batch_max_size fits in i32"))
        .collect();
    let room: Vec<&str> = leaders.iter().map(|j| j.msg.room.as_str()).collect();
    let sender_id: Vec<&str> = leaders.iter().map(|j| j.msg.sender.id.as_str()).collect();
    let sender_name: Vec<&str> = leaders
        .iter()
        .map(|j| j.msg.sender.username.as_str())
        .collect();
    let body: Vec<&str> = leaders.iter().map(|j| j.msg.body.as_str()).collect();
    let ts: Vec<i64> = leaders.iter().map(|j| j.msg.ts).collect();
    let cmid: Vec<Option<&str>> = leaders
        .iter()
        .map(|j| j.msg.client_msg_id.as_deref())
        .collect();
    let mut rooms = room.clone();
    rooms.sort_unstable();
    rooms.dedup();

    let (lock, insert) = tokio::try_join!(
        client.prepare_cached(LOCK_ROOMS),
        client.prepare_cached(INSERT_BATCH)
    )?;
    // Pipelined, in ONE round trip: `biased` polls (and so sends) `BEGIN`, the lock, the insert
    // and `COMMIT` in that order, and the server runs them in that order, the insert (with a
    // fresh snapshot) only once the lock statement has finished. If the lock or the insert fails
    // (the insert fails on purpose when the batch would break an invariant, see
    // `INSERT_BATCH`), the transaction is aborted and the `COMMIT` behind it rolls back;
    // `try_join!` returns the first error, as the answers come in order. So `Ok` here means
    // committed. (No `Transaction` guard: it would cost round trips of its own; `write` sends
    // a `ROLLBACK` after any error instead.)
    let lock_params: [&(dyn ToSql + Sync); 1] = [&rooms];
    let insert_params: [&(dyn ToSql + Sync); 7] =
        [&idx, &room, &sender_id, &sender_name, &body, &ts, &cmid];
    //
    // With an endpoint receiving `message.created`, the `COMMIT` waits for the delivery jobs,
    // which need the seqs the insert assigns: one more round trip, only then.
    let with_events = webhooks.wants(EventType::MessageCreated);
    // With attachments, the `COMMIT` waits for their link, which needs the seqs too: one more
    // round trip, only for a batch with a message that carries attachments.
    let with_attachments = leaders.iter().any(|j| !j.msg.attachments.is_empty());
    let (locked, rows) = if with_events || with_attachments {
        let ((), locked, rows) = tokio::try_join!(
            biased;
            client.batch_execute("BEGIN"),
            client.query(&lock, &lock_params),
            client.query(&insert, &insert_params),
        )
        .map_err(refusal)?;
        (locked, rows)
    } else {
        let ((), locked, rows, ()) = tokio::try_join!(
            biased;
            client.batch_execute("BEGIN"),
            client.query(&lock, &lock_params),
            client.query(&insert, &insert_params),
            client.batch_execute("COMMIT"),
        )
        .map_err(refusal)?;
        (locked, rows)
    };
    let existing: HashSet<&str> = locked.iter().map(|r| r.get(0)).collect();
    let mut by_job: Vec<Option<Row>> = vec![None; jobs.len()];
    let mut stored = 0;
    for r in rows {
        let i: i32 = r.get(0);
        if !r.get::<_, bool>(5) {
            continue;
        }
        let seq: i64 = r.get(1);
        let duplicate: bool = r.get(3);
        // The statement refuses both cases below itself (before the commit); kept as guards.
        let Ok(seq) = Seq::try_from(seq) else {
            let room = &jobs[i as usize].msg.room;
            return Err(StoreError::Inconsistent(format!(
                "room {room:?} assigned the negative seq {seq}"
            )));
        };
        if !r.get::<_, bool>(4) {
            let room = &jobs[i as usize].msg.room;
            return Err(StoreError::Inconsistent(format!(
                "seq {seq} of room {room:?} is above last_seq but already taken"
            )));
        }
        stored += u64::from(!duplicate);
        by_job[i as usize] = Some(Row {
            seq,
            ts: r.get(2),
            duplicate,
        });
    }

    let mut enqueued = false;
    let mut linked: Vec<Linked> = vec![None; jobs.len()];
    if with_events || with_attachments {
        // The new messages' attachments: (id, room, sender, seq), and which job has which seq.
        let (mut a_id, mut a_room, mut a_uploader, mut a_seq) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut job_of_seq: HashMap<(&str, i64), usize> = HashMap::new();
        for (i, row) in by_job.iter().enumerate() {
            let Some(row) = row.filter(|r| !r.duplicate) else {
                continue;
            };
            let msg = &jobs[i].msg;
            if msg.attachments.is_empty() {
                continue;
            }
            let seq = i64::try_from(row.seq).unwrap_or(i64::MAX);
            job_of_seq.insert((msg.room.as_str(), seq), i);
            linked[i] = Some(Vec::new());
            for id in msg.attachment_ids() {
                a_id.push(id);
                a_room.push(msg.room.as_str());
                a_uploader.push(msg.sender.id.as_str());
                a_seq.push(seq);
            }
        }
        let link_params: [&(dyn ToSql + Sync); 4] = [&a_id, &a_room, &a_uploader, &a_seq];
        // Prepared first: a statement not yet prepared on this connection is parsed in a round
        // trip of its own, so its execution would reach the server after the `COMMIT`
        // pipelined behind it, outside the transaction. A prepared one is sent at its first
        // poll, in order.
        let link = if a_id.is_empty() {
            None
        } else {
            Some(client.prepare_cached(LINK_ATTACHMENTS).await?)
        };
        // The deliveries name the attachments the link took, so with both the link comes
        // first, in a round trip of its own (only for such a batch); else it is pipelined
        // with the `COMMIT`.
        let link_first = with_events && link.is_some();
        let first_links = match (link_first, &link) {
            (true, Some(stmt)) => client.query(stmt, &link_params).await.map_err(refusal)?,
            _ => Vec::new(),
        };
        let record_links = |linked: &mut Vec<Linked>, links: Vec<tokio_postgres::Row>| {
            for r in links {
                let (id, seq): (String, i64) = (r.get(0), r.get(1));
                // The row's room is the message's (the statement matched it).
                if let Some(&i) = a_room
                    .iter()
                    .zip(&a_id)
                    .zip(&a_seq)
                    .find(|((_, aid), s)| **aid == id && **s == seq)
                    .and_then(|((room, _), _)| job_of_seq.get(&(*room, seq)))
                {
                    if let Some(ids) = linked[i].as_mut() {
                        ids.push(id);
                    }
                }
            }
        };
        record_links(&mut linked, first_links);
        let deliveries: Vec<NewJob> = if with_events {
            by_job
                .iter()
                .enumerate()
                .filter_map(|(i, row)| row.as_ref().map(|row| (i, row)))
                .filter(|(_, row)| !row.duplicate)
                .flat_map(|(i, row)| {
                    let ids = linked[i].as_deref().unwrap_or_default();
                    webhooks.message_created(&jobs[i].msg, row.seq, row.ts, ids)
                })
                .collect()
        } else {
            Vec::new()
        };
        // The same preparing for the deliveries' insert.
        let enqueue = if deliveries.is_empty() {
            None
        } else {
            Some(super::enqueue_statement(client).await?)
        };
        let (_, links, ()) = tokio::try_join!(
            biased;
            async {
                match &enqueue {
                    None => Ok(()),
                    Some(stmt) => super::enqueue_prepared(client, stmt, &deliveries).await,
                }
            },
            async {
                match &link {
                    Some(link) if !link_first => client.query(link, &link_params).await,
                    _ => Ok(Vec::new()),
                }
            },
            client.batch_execute("COMMIT"),
        )
        .map_err(refusal)?;
        record_links(&mut linked, links);
        enqueued = !deliveries.is_empty();
    }
    let outcomes = jobs
        .iter()
        .enumerate()
        .map(|(i, job)| match by_job[leader[i]] {
            None if existing.contains(job.msg.room.as_str()) => {
                Err(StoreError::NotMember(job.msg.room.clone()))
            }
            None => Err(StoreError::RoomNotFound(job.msg.room.clone())),
            Some(row) => Ok(Appended {
                seq: row.seq,
                ts: row.ts,
                duplicate: row.duplicate || leader[i] != i,
            }),
        })
        .collect();
    Ok(Written {
        outcomes,
        linked,
        stored,
        enqueued,
    })
}
