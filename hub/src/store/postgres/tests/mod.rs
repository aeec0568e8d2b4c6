//! `PgStore` against a real PostgreSQL: what only a database shared by several nodes and
//! batching writers can get wrong (the shared contract runs in `store::contract`). Each test
//! has a fresh database.

mod outage;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::mpsc;

use super::{PgConfig, PgStore};
use crate::store::contract::{msg, user};
use crate::store::{Committed, NewMessage, NewRoom, Page, Store, StoreError, StoreResult};
use support::TestDb;

async fn new_room(store: &PgStore, id: &str) {
    let room = NewRoom {
        id: id.into(),
        name: id.into(),
        public: true,
        creator: user("alice"),
        ts: 1,
    };
    store.create_room(room).await.unwrap();
}

/// Every seq of `room`, ascending, read back from the store.
async fn stored_seqs(store: &PgStore, room: &str) -> Vec<u64> {
    let page = Page {
        before: None,
        after: Some(0),
        limit: 100_000,
    };
    let msgs = store.messages(room, page).await.unwrap();
    msgs.into_iter().map(|m| m.seq).collect()
}

/// A config whose batches wait long enough that everything sent at once lands in one batch:
/// one writer, so every room's appends go to it.
fn slow_batches() -> PgConfig {
    PgConfig {
        batch_max_age: Duration::from_millis(200),
        writers: 1,
        ..PgConfig::default()
    }
}

/// A store whose commits nobody receives (most tests here read the database instead).
async fn connect(url: &str, cfg: PgConfig) -> StoreResult<PgStore> {
    PgStore::connect(url, cfg, mpsc::channel(1).0).await
}

/// A store and the receiving end of its commit channel.
async fn connect_with_commits(
    url: &str,
    cfg: PgConfig,
) -> (PgStore, mpsc::Receiver<Vec<Committed>>) {
    let (tx, rx) = mpsc::channel(1024);
    (PgStore::connect(url, cfg, tx).await.unwrap(), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_are_group_committed_with_dense_seqs() {
    let db = TestDb::create().await;
    let store = connect(&db.url, PgConfig::default()).await.unwrap();
    new_room(&store, "busy").await;
    let alice = user("alice");
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (store, alice) = (store.clone(), alice.clone());
            tokio::spawn(async move {
                store
                    .append(msg("busy", &alice, &format!("m{i}"), None))
                    .await
            })
        })
        .collect();
    let mut seqs = Vec::new();
    for task in join_all(tasks).await {
        let appended = task.unwrap().unwrap();
        assert!(!appended.duplicate);
        seqs.push(appended.seq);
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<_>>());
    assert_eq!(stored_seqs(&store, "busy").await, seqs);
    let stats = store.stats();
    println!("200 concurrent appends: {stats:?}");
    assert_eq!(stats.messages, 200);
    assert!(stats.batches <= 20, "no group commit: {stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_appending_to_the_same_rooms_get_dense_unique_seqs() {
    let db = TestDb::create().await;
    let nodes = [
        connect(&db.url, PgConfig::default()).await.unwrap(),
        connect(&db.url, PgConfig::default()).await.unwrap(),
    ];
    new_room(&nodes[0], "r1").await;
    new_room(&nodes[0], "r2").await;
    for n in 0..2 {
        for sender in 0..20 {
            let from = user(&format!("u{n}-{sender}"));
            for room in ["r1", "r2"] {
                nodes[0].add_member(room, &from, 1).await.unwrap();
            }
        }
    }
    // Each node runs 20 senders of 10 sequential appends, alternating rooms: both writers commit
    // batch after batch at the same time, and batches hold both rooms, so the writers contend
    // for the same row locks (taking them in id order is what keeps them from deadlocking).
    let mut tasks = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for sender in 0..20 {
            let node = node.clone();
            let from = user(&format!("u{n}-{sender}"));
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..10 {
                    let room = if (i + sender) % 2 == 0 { "r1" } else { "r2" };
                    let a = node.append(msg(room, &from, "x", None)).await.unwrap();
                    seqs.push((room, a.seq));
                }
                seqs
            }));
        }
    }
    let mut by_room: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for task in join_all(tasks).await {
        for (room, seq) in task.unwrap() {
            by_room.entry(room).or_default().push(seq);
        }
    }
    for (room, mut seqs) in by_room {
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<_>>(), "room {room}");
        assert_eq!(stored_seqs(&nodes[1], room).await, seqs, "room {room}");
        let rec = nodes[1].room(room).await.unwrap().unwrap();
        assert_eq!(rec.last_seq, 200);
    }
    let [a, b] = [nodes[0].stats(), nodes[1].stats()];
    println!("two nodes, 400 appends: {a:?} {b:?}");
    assert_eq!(a.messages + b.messages, 400);
    assert!(
        a.batches >= 5 && b.batches >= 5,
        "both writers kept committing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_of_a_key_in_one_batch_store_one_row() {
    let db = TestDb::create().await;
    let store = connect(&db.url, slow_batches()).await.unwrap();
    new_room(&store, "r").await;
    let (alice, bob) = (user("alice"), user("bob"));
    store.add_member("r", &bob, 1).await.unwrap();
    let mut sends: Vec<NewMessage> = (0..10)
        .map(|i| msg("r", &alice, &format!("try {i}"), Some("k")))
        .collect();
    sends.push(msg("r", &bob, "bob's k", Some("k")));
    sends.push(msg("r", &alice, "no key", None));
    let results = join_all(sends.into_iter().map(|m| {
        let store = store.clone();
        tokio::spawn(async move { store.append(m).await.unwrap() })
    }))
    .await;
    let results: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    assert_eq!(store.stats().batches, 1, "all in one batch");
    let alice_k = &results[..10];
    assert_eq!(alice_k.iter().filter(|a| !a.duplicate).count(), 1);
    assert!(alice_k.iter().all(|a| a.seq == alice_k[0].seq));
    assert!(!results[10].duplicate && !results[11].duplicate);
    assert_eq!(stored_seqs(&store, "r").await, [1, 2, 3]);
    assert_eq!(store.stats().messages, 3);

    // Repeats of a stored key, twice in one later batch: both duplicates of the first.
    let again = join_all((0..2).map(|_| {
        let (store, alice) = (store.clone(), alice.clone());
        tokio::spawn(async move { store.append(msg("r", &alice, "late", Some("k"))).await })
    }))
    .await;
    for a in again {
        let a = a.unwrap().unwrap();
        assert_eq!((a.seq, a.duplicate), (alice_k[0].seq, true));
    }
    assert_eq!(store.stats().messages, 3);
    assert_eq!(store.room("r").await.unwrap().unwrap().last_seq, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_to_a_missing_room_or_from_a_non_member_fail_alone() {
    let db = TestDb::create().await;
    let store = connect(&db.url, slow_batches()).await.unwrap();
    new_room(&store, "here").await;
    let (alice, mallory) = (user("alice"), user("mallory"));
    let (here, nowhere, intruder, again) = tokio::join!(
        store.append(msg("here", &alice, "hi", None)),
        store.append(msg("nowhere", &alice, "hi", None)),
        store.append(msg("here", &mallory, "let me in", Some("k"))),
        store.append(msg("here", &alice, "hi again", None)),
    );
    assert_eq!((here.unwrap().seq, again.unwrap().seq), (1, 2));
    let err = nowhere.unwrap_err();
    assert!(
        matches!(&err, StoreError::RoomNotFound(r) if r == "nowhere"),
        "{err}"
    );
    assert!(!err.is_unavailable());
    let err = intruder.unwrap_err();
    assert!(
        matches!(&err, StoreError::NotMember(r) if r == "here"),
        "{err}"
    );
    assert_eq!(store.stats().batches, 1, "one batch carried all four");
    assert_eq!(stored_seqs(&store, "here").await, [1, 2]);
    // The batch moved the author's read mark to their newest message.
    assert_eq!(store.membership("here", &alice.id).await.unwrap(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_migrate_once() {
    let db = TestDb::create().await;
    let connects = (0..4).map(|_| {
        let url = db.url.clone();
        tokio::spawn(async move { connect(&url, PgConfig::default()).await })
    });
    for store in join_all(connects).await {
        store.unwrap().expect("every node starts");
    }
    let rows = support::client(&db.url)
        .await
        .query("SELECT version FROM schema_migrations", &[])
        .await
        .unwrap();
    let versions: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let known: Vec<i64> = super::migrate::PG_MIGRATIONS.iter().map(|m| m.0).collect();
    assert_eq!(versions, known, "each migration once");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let db = TestDb::create().await;
    let store = connect(&db.url, PgConfig::default()).await.unwrap();
    new_room(&store, "r").await;
    drop(store);
    support::client(&db.url)
        .await
        .batch_execute("INSERT INTO schema_migrations VALUES (999, 0)")
        .await
        .unwrap();
    let err = connect(&db.url, PgConfig::default())
        .await
        .expect_err("newer schema refused");
    assert!(err.to_string().contains("newer"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_sent_to_two_nodes_at_once_is_stored_once() {
    let db = TestDb::create().await;
    let a = connect(&db.url, PgConfig::default()).await.unwrap();
    let b = connect(&db.url, PgConfig::default()).await.unwrap();
    new_room(&a, "r").await;
    let alice = user("alice");
    for k in 0..20 {
        let key = format!("k{k}");
        let (x, y) = tokio::join!(
            a.append(msg("r", &alice, "via a", Some(&key))),
            b.append(msg("r", &alice, "via b", Some(&key))),
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        assert_eq!(x.seq, y.seq, "key {key}");
        assert!(
            x.duplicate != y.duplicate,
            "exactly one stored: {x:?} {y:?}"
        );
    }
    assert_eq!(stored_seqs(&b, "r").await, (1..=20).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_seq_fails_the_whole_batch_and_stores_nothing() {
    let db = TestDb::create().await;
    let (store, mut commits) = connect_with_commits(&db.url, slow_batches()).await;
    new_room(&store, "broken").await;
    new_room(&store, "fine").await;
    // Break the invariant behind the store's back: seq 1 taken while `last_seq` is still 0.
    support::client(&db.url)
        .await
        .batch_execute(
            "INSERT INTO messages (room_id, seq, sender_id, sender_name, body, ts)
             VALUES ('broken', 1, 'x', 'x', 'planted', 0)",
        )
        .await
        .unwrap();
    let alice = user("alice");
    let (broken, fine) = tokio::join!(
        store.append(msg("broken", &alice, "hi", None)),
        store.append(msg("fine", &alice, "hi", None)),
    );
    for err in [broken.unwrap_err(), fine.unwrap_err()] {
        assert!(
            matches!(&err, StoreError::Batch(e) if matches!(**e, StoreError::Inconsistent(_))),
            "{err}"
        );
        assert!(!err.is_unavailable());
    }
    // Rolled back as a whole: nothing was acknowledged that is not stored, and nothing stored.
    assert!(stored_seqs(&store, "fine").await.is_empty());
    assert_eq!(store.room("fine").await.unwrap().unwrap().last_seq, 0);
    assert_eq!(store.room("broken").await.unwrap().unwrap().last_seq, 0);
    assert_eq!(store.stats().batches, 0);
    // And sent nothing: the next batch is the first thing on the channel.
    let next = store
        .append(msg("fine", &alice, "next", None))
        .await
        .unwrap();
    let first = commits
        .try_recv()
        .expect("the next batch was sent before its ack");
    let seqs: Vec<_> = first.iter().map(|c| (&*c.room, c.message.seq)).collect();
    assert_eq!(seqs, [("fine", next.seq)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_fails_only_its_message() {
    let db = TestDb::create().await;
    let store = connect(&db.url, slow_batches()).await.unwrap();
    new_room(&store, "r").await;
    let alice = user("alice");
    let (bad, good) = tokio::join!(
        store.append(msg("r", &alice, "nul \0 here", None)),
        store.append(msg("r", &alice, "fine", None)),
    );
    let err = bad.unwrap_err();
    assert!(matches!(err, StoreError::NulCharacter(_)), "{err}");
    assert_eq!(good.unwrap().seq, 1);
    let err = store.edit("r", 1, "\0", 2).await.unwrap_err();
    assert!(matches!(err, StoreError::NulCharacter(_)), "{err}");
}

#[tokio::test]
async fn migrating_restores_direct_room_leavers_as_hidden_members() {
    let db = TestDb::create().await;
    {
        // Schema 1, in which bob left his direct room with alice (alice has the smaller id).
        let c = support::client(&db.url).await;
        c.batch_execute(super::migrate::PG_MIGRATIONS[0].1)
            .await
            .unwrap();
        c.batch_execute(
            "CREATE TABLE schema_migrations (
                 version BIGINT PRIMARY KEY, applied_ts BIGINT NOT NULL);
             INSERT INTO schema_migrations VALUES (1, 0);
             INSERT INTO rooms (id, name, public, kind, created_by, created_ts, last_ts, direct_key)
             VALUES ('d1', 'alice,bob', FALSE, 'direct', 'alice', 5, 5, 'id-a:id-b');
             INSERT INTO members (room_id, user_id, username, joined_ts)
             VALUES ('d1', 'id-a', 'alice', 5);",
        )
        .await
        .unwrap();
    }
    let store = connect(&db.url, PgConfig::default()).await.unwrap();
    crate::store::contract::check_restored_direct_leaver(&store).await;
}

/// Two rooms owned by different writers. While another session holds the first room's row,
/// its writer's transaction waits on the lock, and the second room's writer still commits,
/// sends and acknowledges: the writers' transactions are in flight at once, independently,
/// and each room's messages reach the channel in seq order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_held_up_in_the_database_does_not_hold_up_other_writers() {
    let db = TestDb::create().await;
    let cfg = PgConfig {
        writers: 2,
        timeout: Duration::from_secs(10),
        ..PgConfig::default()
    };
    let (store, mut commits) = connect_with_commits(&db.url, cfg).await;
    let stuck = "r-stuck";
    let free = (0..)
        .map(|i| format!("r-free-{i}"))
        .find(|r| super::batch::shard(r, 2) != super::batch::shard(stuck, 2))
        .expect("a room of the other writer");
    new_room(&store, stuck).await;
    new_room(&store, &free).await;
    let locker = support::client(&db.url).await;
    locker
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM rooms WHERE id = '{stuck}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let alice = user("alice");
    let held = tokio::spawn({
        let (store, alice) = (store.clone(), alice.clone());
        async move { store.append(msg(stuck, &alice, "held", None)).await }
    });
    // Bounded poll (no event to await): the held writer's transaction is waiting on the lock.
    let watcher = support::client(&db.url).await;
    for attempt in 0.. {
        let waiting: i64 = watcher
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(attempt < 500, "the writer never reached the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for i in 1..=3 {
        let a = store
            .append(msg(&free, &alice, &format!("free {i}"), None))
            .await
            .unwrap();
        assert_eq!(a.seq, i);
        let sent = commits.try_recv().expect("sent before its ack");
        let seqs: Vec<_> = sent.iter().map(|c| (&*c.room, c.message.seq)).collect();
        assert_eq!(seqs, [(free.as_str(), i)]);
    }
    assert!(
        !held.is_finished(),
        "the held room's append waits on its lock"
    );
    locker.batch_execute("ROLLBACK").await.unwrap();
    let a = held.await.unwrap().unwrap();
    assert_eq!(a.seq, 1);
    let sent = commits.try_recv().expect("sent before its ack");
    let seqs: Vec<_> = sent.iter().map(|c| (&*c.room, c.message.seq)).collect();
    assert_eq!(seqs, [(stuck, 1)]);
}

/// Two nodes' events of one room (messages through both, a member joining and an edit in
/// between) are numbered in commit order: read in id order, the room's deliveries follow the
/// seqs, whatever each node's clock says (see `enqueue_events`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_events_of_a_room_are_numbered_in_commit_order() {
    use switchboard_jobs::JobStore as _;
    use switchboard_webhooks::{Endpoint, EventType, Registry};

    let db = TestDb::create().await;
    let nodes = [
        connect(&db.url, PgConfig::default()).await.unwrap(),
        connect(&db.url, PgConfig::default()).await.unwrap(),
    ];
    let registry = Registry::new();
    registry.replace(vec![Endpoint {
        id: "e".into(),
        url: "http://127.0.0.1:9/".into(),
        secret: "s".repeat(16),
        events: EventType::ALL.into_iter().collect(),
        enabled: true,
    }]);
    for node in &nodes {
        node.webhooks().set(
            registry.clone(),
            std::sync::Arc::new(tokio::sync::Notify::new()),
        );
    }
    new_room(&nodes[0], "r").await;
    let senders: Vec<_> = (0..8).map(|i| user(&format!("s{i}"))).collect();
    for s in &senders {
        nodes[1].add_member("r", s, 1).await.unwrap();
    }
    let tasks: Vec<_> = senders
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let (node, s) = (nodes[i % 2].clone(), s.clone());
            tokio::spawn(async move {
                for _ in 0..5 {
                    node.append(msg("r", &s, "x", None)).await.unwrap();
                }
            })
        })
        .collect();
    for t in join_all(tasks).await {
        t.unwrap();
    }
    nodes[1].edit("r", 3, "edited", 9).await.unwrap();
    let jobs = nodes[0]
        .job_store()
        .list(switchboard_jobs::State::Ready, None, 1000)
        .await
        .unwrap();
    let events: Vec<(String, serde_json::Value)> = jobs
        .iter()
        .map(|j| {
            let e = &j.payload["event"];
            (e["type"].as_str().unwrap().to_owned(), e["data"].clone())
        })
        .collect();
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types[0], "room.created");
    assert!(
        types[1..9].iter().all(|t| *t == "member.joined"),
        "{types:?}"
    );
    let seqs: Vec<u64> = events[9..49]
        .iter()
        .map(|(t, d)| {
            assert_eq!(t, "message.created");
            d["seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(seqs, (1..=40).collect::<Vec<_>>(), "ids follow the seqs");
    assert_eq!(types[49..], ["message.edited"]);
    let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1] && w[0].len() == 20),
        "{ids:?}"
    );
}
