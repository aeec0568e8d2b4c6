//! The behaviour every [`Store`] must have: one suite, run against each implementation.
//!
//! Each check is an `async fn name(h: &mut Harness)` listed in the [`store_contract!`] call
//! below, which stamps out `store::contract::name::sqlite` and `store::contract::name::postgres`:
//! one `#[test]` per check per implementation, each on a fresh store (a temporary SQLite file;
//! a fresh PostgreSQL database with several batch writers), followed by [`Harness::finish`],
//! which checks what the store sent through its commit channel during the check.

mod attachments;
mod checks;
mod commits;
mod events;
mod server;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard_testkit::services::TestDatabase;
use tokio::sync::mpsc;

use super::postgres::{PgConfig, PgStore};
use super::sqlite::SqliteStore;
use super::{Committed, NewMessage, Store, UserRef};

use attachments::{appends_link_their_attachments, webhooks_carry_the_linked_attachments};
pub(crate) use checks::{check_restored_direct_leaver, new_room};
use checks::{
    direct_rooms_are_unique, hidden_direct_rooms_come_back, membership_and_read_marks,
    pages_are_ascending, pages_never_cross_their_bounds, retention_purges_old_messages,
    room_pages_keep_their_order_while_rooms_move, seqs_are_dense_and_idempotent,
};
use commits::{
    a_failed_batch_sends_nothing, commits_arrive_once_each_in_seq_order,
    commits_carry_the_stored_message, many_rooms_keep_their_order_with_concurrent_writers,
    refused_and_failed_appends_send_nothing,
};
use events::{events_enqueue_deliveries_with_their_changes, no_endpoint_no_deliveries};
use server::{api_keys_are_stored_found_and_revoked, bots_are_marked_and_never_known_users};

/// For each listed check, a module of the same name with the tests `sqlite` and `postgres`.
/// A check missing from the list is dead code, which the lints refuse.
macro_rules! store_contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let mut h = super::Harness::sqlite().await;
                super::$name(&mut h).await;
                h.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let mut h = super::Harness::postgres().await;
                super::$name(&mut h).await;
                h.finish().await;
            }
        }
    )*};
}

store_contract!(
    appends_link_their_attachments,
    webhooks_carry_the_linked_attachments,
    events_enqueue_deliveries_with_their_changes,
    no_endpoint_no_deliveries,
    api_keys_are_stored_found_and_revoked,
    bots_are_marked_and_never_known_users,
    seqs_are_dense_and_idempotent,
    pages_are_ascending,
    membership_and_read_marks,
    direct_rooms_are_unique,
    hidden_direct_rooms_come_back,
    room_pages_keep_their_order_while_rooms_move,
    retention_purges_old_messages,
    pages_never_cross_their_bounds,
    commits_arrive_once_each_in_seq_order,
    commits_carry_the_stored_message,
    refused_and_failed_appends_send_nothing,
    a_failed_batch_sends_nothing,
    many_rooms_keep_their_order_with_concurrent_writers,
);

/// Batches the test's commit channel holds: more than any check commits, so a writer never
/// waits for a check that has not read yet.
const CHANNEL_BATCHES: usize = 4096;

/// Batch writers of the PostgreSQL store under test: several, so that rooms are spread over
/// transactions in flight at once.
const PG_WRITERS: usize = 4;

/// A fresh store of one implementation, the receiving end of its commit channel, and raw
/// access to its database (to break it behind the store's back).
pub(crate) struct Harness {
    pub store: Arc<dyn Store>,
    commits: mpsc::Receiver<Vec<Committed>>,
    /// Every batch received so far, in order.
    log: Vec<Vec<Committed>>,
    backing: Backing,
    /// The store's webhook events (set their endpoints to make it enqueue deliveries).
    pub webhooks: super::events::Webhooks,
    /// The store's job queue, where the deliveries go.
    pub jobs: Arc<dyn switchboard_jobs::JobStore>,
}

enum Backing {
    Sqlite {
        path: PathBuf,
        _dir: tempfile::TempDir,
    },
    Postgres {
        db: TestDatabase,
    },
}

/// What holds every message write of a store back until [`WriteBlock::release`].
pub(crate) enum WriteBlock {
    /// A second connection inside `BEGIN IMMEDIATE`: it holds SQLite's write lock.
    Sqlite(rusqlite::Connection),
    /// A session inside a transaction that holds an `EXCLUSIVE` lock on `messages`.
    Postgres(tokio_postgres::Client),
}

impl WriteBlock {
    /// Lets writes through again.
    pub async fn release(self) {
        match self {
            Self::Sqlite(conn) => conn.execute_batch("ROLLBACK").unwrap(),
            Self::Postgres(client) => client.batch_execute("ROLLBACK").await.unwrap(),
        }
    }
}

impl Harness {
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hub.db");
        let (tx, commits) = mpsc::channel(CHANNEL_BATCHES);
        let store = SqliteStore::open(&path, 0, tx).await.unwrap();
        let jobs = switchboard_jobs::SqliteJobs::open(&path).await.unwrap();
        Self {
            webhooks: store.webhooks().clone(),
            jobs: Arc::new(jobs),
            store: Arc::new(store),
            commits,
            log: Vec::new(),
            backing: Backing::Sqlite { path, _dir: dir },
        }
    }

    pub async fn postgres() -> Self {
        let db = TestDatabase::create().await;
        let (tx, commits) = mpsc::channel(CHANNEL_BATCHES);
        let cfg = PgConfig {
            writers: PG_WRITERS,
            ..PgConfig::default()
        };
        let store = PgStore::connect(&db.url, cfg, tx).await.unwrap();
        Self {
            webhooks: store.webhooks().clone(),
            jobs: Arc::new(store.job_store()),
            store: Arc::new(store),
            commits,
            log: Vec::new(),
            backing: Backing::Postgres { db },
        }
    }

    /// The batches sent since the last call. Complete for every append that has returned: a
    /// store sends a batch before it acknowledges any of it.
    pub fn received(&mut self) -> Vec<Vec<Committed>> {
        let mut out = Vec::new();
        while let Ok(batch) = self.commits.try_recv() {
            assert!(!batch.is_empty(), "an empty batch was sent");
            self.log.push(batch.clone());
            out.push(batch);
        }
        out
    }

    /// [`received`](Self::received), flattened.
    pub fn received_messages(&mut self) -> Vec<Committed> {
        self.received().into_iter().flatten().collect()
    }

    /// Stores a message at `seq` of `room` behind the store's back, leaving the room's
    /// `last_seq` as it was: the store's next append there finds its seq taken.
    pub async fn plant(&self, room: &str, seq: i64) {
        const SQL: &str = "INSERT INTO messages (room_id, seq, sender_id, sender_name, body, ts)
                           VALUES ($1, $2, 'x', 'x', 'planted', 0)";
        match &self.backing {
            Backing::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                conn.execute(&SQL.replace('$', "?"), rusqlite::params![room, seq])
                    .unwrap();
            }
            Backing::Postgres { db } => {
                let client = pg_client(&db.url).await;
                client.execute(SQL, &[&room, &seq]).await.unwrap();
            }
        }
    }

    /// The PostgreSQL database's URL (`None` for SQLite).
    pub fn database_url(&self) -> Option<&str> {
        match &self.backing {
            Backing::Sqlite { .. } => None,
            Backing::Postgres { db } => Some(&db.url),
        }
    }

    /// The media index on this store's database (a second handle, as the hub opens it).
    pub async fn media(&self) -> Arc<dyn crate::media::index::MediaIndex> {
        match &self.backing {
            Backing::Sqlite { path, .. } => Arc::new(
                crate::media::index::sqlite::SqliteMedia::open(path)
                    .await
                    .unwrap(),
            ),
            Backing::Postgres { db } => {
                let pool = super::postgres::pool(&db.url, 2, Duration::from_secs(5), "media-test")
                    .unwrap();
                Arc::new(crate::media::index::postgres::PgMedia::new(pool))
            }
        }
    }

    /// Marks attachment `id` as sent with message `seq`, behind the store's back (as an
    /// append that carries it does).
    pub async fn link_attachment(&self, id: &str, seq: i64) {
        const SQL: &str = "UPDATE attachments SET seq = $1 WHERE id = $2";
        match &self.backing {
            Backing::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.busy_timeout(Duration::from_secs(5)).unwrap();
                conn.execute(&SQL.replace('$', "?"), rusqlite::params![seq, id])
                    .unwrap();
            }
            Backing::Postgres { db } => {
                let client = pg_client(&db.url).await;
                client.execute(SQL, &[&seq, &id]).await.unwrap();
            }
        }
    }

    /// Holds back every message write until the block is released: batches written meanwhile
    /// fail as a whole once the store's bound runs out (SQLite's busy timeout, 5 s; the
    /// PostgreSQL store's timeout, 2 s). Reads of other tables still work.
    pub async fn block_writes(&self) -> WriteBlock {
        match &self.backing {
            Backing::Sqlite { path, .. } => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch("BEGIN IMMEDIATE").unwrap();
                WriteBlock::Sqlite(conn)
            }
            Backing::Postgres { db } => {
                let client = pg_client(&db.url).await;
                client
                    .batch_execute("BEGIN; LOCK TABLE messages IN EXCLUSIVE MODE")
                    .await
                    .unwrap();
                WriteBlock::Postgres(client)
            }
        }
    }

    /// What every check leaves behind: each room that got commits got each of its seqs
    /// `1..=last_seq` exactly once, in seq order, and each sent message has the author,
    /// time and key of the message stored at its seq (when that is still stored).
    pub async fn finish(mut self) {
        self.received();
        let mut by_room: BTreeMap<String, Vec<Committed>> = BTreeMap::new();
        for c in self.log.iter().flatten() {
            assert_eq!(&*c.room, c.message.room, "the room twice, the same");
            by_room
                .entry(c.message.room.clone())
                .or_default()
                .push(c.clone());
        }
        for (room, sent) in by_room {
            let seqs: Vec<u64> = sent.iter().map(|c| c.message.seq).collect();
            let last = self.store.room(&room).await.unwrap().unwrap().last_seq;
            assert_eq!(
                seqs,
                (1..=last).collect::<Vec<_>>(),
                "room {room}: each seq once, in order"
            );
            for c in sent {
                let Some(stored) = self.store.message(&room, c.message.seq).await.unwrap() else {
                    continue;
                };
                let s = stored.message;
                assert_eq!(
                    (&c.message.from, c.message.ts, &c.message.client_msg_id),
                    (&s.from, s.ts, &s.client_msg_id),
                    "room {room} seq {}",
                    s.seq
                );
            }
        }
    }
}

/// A client of the database at `url`, its connection driven by a spawned task.
pub(crate) async fn pg_client(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    client
}

/// A user whose id is `id-{name}`.
pub(crate) fn user(name: &str) -> UserRef {
    UserRef {
        id: format!("id-{name}"),
        username: name.to_owned(),
    }
}

/// A message from `from` with an optional idempotency key.
pub(crate) fn msg(room: &str, from: &UserRef, body: &str, cmid: Option<&str>) -> NewMessage {
    NewMessage {
        room: room.to_owned(),
        sender: from.clone(),
        body: body.to_owned(),
        client_msg_id: cmid.map(str::to_owned),
        ts: 1_000,
        attachments: Vec::new(),
    }
}
