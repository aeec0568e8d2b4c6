//! The commit channel: what a store sends after its commits ([`crate::store::CommitSender`]).
//! Every new message once, a room's in seq order (within a batch and across batches, with
//! several writers in flight), never a repeat of a key, nothing of a refused or failed append.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::join_all;

use super::checks::new_room;
use super::{msg, user, Harness};
use crate::store::{Appended, Committed, Store};

/// `(room, seq)` of each sent message, in the order sent.
fn keys(sent: &[Committed]) -> Vec<(String, u64)> {
    sent.iter()
        .map(|c| (c.message.room.clone(), c.message.seq))
        .collect()
}

/// Concurrent appends to one room, every fifth repeating the key of the one before it, then a
/// refusal and a late repeat: each new message is sent once, in seq order, and no repeat or
/// refusal is sent.
pub(super) async fn commits_arrive_once_each_in_seq_order(h: &mut Harness) {
    let alice = user("alice");
    new_room(&*h.store, "r-once", &alice).await;
    let sends = (0..40).map(|i| {
        let key = format!("k{}", i - usize::from(i % 5 == 4));
        let store = h.store.clone();
        let alice = alice.clone();
        async move {
            let a = store
                .append(msg("r-once", &alice, &format!("m{i}"), Some(&key)))
                .await
                .unwrap();
            (key, a)
        }
    });
    let acked: Vec<(String, Appended)> = join_all(sends).await;
    assert_eq!(acked.iter().filter(|(_, a)| !a.duplicate).count(), 32);
    let sent = h.received_messages();
    assert_eq!(
        keys(&sent),
        (1..=32)
            .map(|s| ("r-once".to_owned(), s))
            .collect::<Vec<_>>()
    );
    // Each ack (a repeat's too) names the message sent with its key.
    let by_key: HashMap<&str, u64> = sent
        .iter()
        .map(|c| (c.message.client_msg_id.as_deref().unwrap(), c.message.seq))
        .collect();
    for (key, a) in &acked {
        assert_eq!(by_key[key.as_str()], a.seq, "key {key}");
    }
    let refused = h.store.append(msg("r-once", &user("zed"), "x", None)).await;
    assert!(refused.is_err());
    let late = h
        .store
        .append(msg("r-once", &alice, "late", Some("k0")))
        .await
        .unwrap();
    assert!(late.duplicate);
    // A barrier: the next batch holds only the next new message.
    let next = h
        .store
        .append(msg("r-once", &alice, "next", None))
        .await
        .unwrap();
    let sent = h.received_messages();
    assert_eq!(keys(&sent), [("r-once".to_owned(), next.seq)]);
    assert_eq!(next.seq, 33);
}

/// A sent message is the stored one: room, seq, author, body, time and key, neither edited
/// nor deleted; `room` names the message's room.
pub(super) async fn commits_carry_the_stored_message(h: &mut Harness) {
    let (alice, bob) = (user("alice"), user("bob"));
    new_room(&*h.store, "r-carry", &alice).await;
    h.store.add_member("r-carry", &bob, 1).await.unwrap();
    let mut with_ts = msg("r-carry", &bob, "bob's line", Some("c-1"));
    with_ts.ts = 4_242;
    let first = h.store.append(with_ts).await.unwrap();
    let second = h
        .store
        .append(msg("r-carry", &alice, "no key", None))
        .await
        .unwrap();
    let sent = h.received();
    assert_eq!(sent.len(), 2, "one batch per sequential append");
    for (batch, a) in sent.iter().zip([first, second]) {
        let [c] = batch.as_slice() else {
            panic!("one message: {batch:?}")
        };
        let stored = h.store.message("r-carry", a.seq).await.unwrap().unwrap();
        assert_eq!(c.message, stored.message);
        assert_eq!((&*c.room, c.message.ts), ("r-carry", a.ts));
        assert!(c.message.edited_ts.is_none() && !c.message.deleted);
    }
    assert_eq!(
        (sent[0][0].message.from.as_str(), sent[0][0].message.ts),
        ("bob", 4_242)
    );
    assert_eq!(sent[0][0].message.client_msg_id.as_deref(), Some("c-1"));
}

/// A refused append (missing room, not a member) and an append that fails in the database (its
/// seq already taken behind the store's back) send nothing, and take nothing: the next
/// message of the room gets the next seq and is all that is sent.
pub(super) async fn refused_and_failed_appends_send_nothing(h: &mut Harness) {
    let alice = user("alice");
    new_room(&*h.store, "r-ok", &alice).await;
    new_room(&*h.store, "r-broken", &alice).await;
    h.plant("r-broken", 1).await;
    let (missing, stranger, broken, fine) = tokio::join!(
        h.store.append(msg("r-nowhere", &alice, "x", None)),
        h.store.append(msg("r-ok", &user("zed"), "x", None)),
        h.store.append(msg("r-broken", &alice, "x", None)),
        h.store.append(msg("r-ok", &alice, "fine", None)),
    );
    for (what, result) in [("missing", missing), ("stranger", stranger)] {
        assert!(result.is_err(), "{what}: {result:?}");
    }
    // SQLite fails only the broken room's append; PostgreSQL fails its whole batch, which may
    // hold `fine`: either way, only what was acknowledged is sent.
    assert!(broken.is_err(), "{broken:?}");
    let sent = h.received_messages();
    match fine {
        Ok(a) => assert_eq!(keys(&sent), [("r-ok".to_owned(), a.seq)]),
        Err(_) => assert!(sent.is_empty(), "{sent:?}"),
    }
    assert_eq!(h.store.room("r-broken").await.unwrap().unwrap().last_seq, 0);
    let last = h.store.room("r-ok").await.unwrap().unwrap().last_seq;
    let next = h
        .store
        .append(msg("r-ok", &alice, "next", None))
        .await
        .unwrap();
    assert_eq!(next.seq, last + 1);
    assert_eq!(
        keys(&h.received_messages()),
        [("r-ok".to_owned(), next.seq)]
    );
}

/// Batches that fail as a whole (the database holds every write back past the store's bound)
/// send nothing, neither then nor later; the store then works again and sends what it stores.
pub(super) async fn a_failed_batch_sends_nothing(h: &mut Harness) {
    let alice = user("alice");
    for room in ["r-f1", "r-f2", "r-f3"] {
        new_room(&*h.store, room, &alice).await;
    }
    let block = h.block_writes().await;
    let failed = join_all(
        ["r-f1", "r-f2", "r-f3", "r-f1"].map(|room| h.store.append(msg(room, &alice, "x", None))),
    )
    .await;
    for result in &failed {
        let err = result.as_ref().expect_err("held back");
        assert!(err.is_unavailable(), "{err}");
    }
    block.release().await;
    assert!(h.received().is_empty(), "a failed batch sent something");
    for room in ["r-f1", "r-f2", "r-f3"] {
        let a = h
            .store
            .append(msg(room, &alice, "after", None))
            .await
            .unwrap();
        assert_eq!(a.seq, 1, "{room}: the failed appends took no seq");
        assert_eq!(keys(&h.received_messages()), [(room.to_owned(), 1)]);
    }
}

/// Rooms: enough to land on every writer of a store with several.
const ROOMS: usize = 24;
/// Senders per room, each appending [`PER_SENDER`] messages one after another.
const SENDERS: usize = 3;
const PER_SENDER: usize = 8;
/// Appends one more sender per room queues at once before awaiting any (pipelining).
const PIPELINED: usize = 6;

/// Many rooms at once, several senders each, one of them pipelining: every room's messages are
/// sent once each, in seq order, whatever the interleaving of rooms and batches; each ack
/// matches the message sent at its seq; and pipelined appends get ascending seqs in the order
/// they were queued.
pub(super) async fn many_rooms_keep_their_order_with_concurrent_writers(h: &mut Harness) {
    let alice = user("alice");
    let rooms: Vec<String> = (0..ROOMS).map(|r| format!("r-many-{r:02}")).collect();
    for room in &rooms {
        new_room(&*h.store, room, &alice).await;
    }
    let mut tasks = Vec::new();
    for room in &rooms {
        for s in 0..SENDERS {
            let (store, room, alice) = (h.store.clone(), room.clone(), alice.clone());
            tasks.push(tokio::spawn(async move {
                let mut acked = Vec::new();
                for i in 0..PER_SENDER {
                    let body = format!("{room}/{s}/{i}");
                    let a = store.append(msg(&room, &alice, &body, None)).await.unwrap();
                    acked.push((room.clone(), a.seq, body));
                }
                acked
            }));
        }
        let (store, room, alice) = (h.store.clone(), room.clone(), alice.clone());
        tasks.push(tokio::spawn(pipelined(store, room, alice)));
    }
    let mut acked: BTreeMap<(String, u64), String> = BTreeMap::new();
    for task in join_all(tasks).await {
        for (room, seq, body) in task.unwrap() {
            assert!(
                acked.insert((room, seq), body).is_none(),
                "a seq acked twice"
            );
        }
    }
    let per_room = (SENDERS * PER_SENDER + PIPELINED) as u64;
    let mut sent: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for batch in h.received() {
        // Within a batch too, a room's messages ascend.
        for c in batch {
            let key = (c.message.room.clone(), c.message.seq);
            assert_eq!(acked.get(&key), Some(&c.message.body), "{key:?}");
            sent.entry(key.0).or_default().push(key.1);
        }
    }
    assert_eq!(sent.len(), ROOMS);
    for (room, seqs) in sent {
        assert_eq!(seqs, (1..=per_room).collect::<Vec<_>>(), "room {room}");
    }
}

/// Queues [`PIPELINED`] appends to `room` before awaiting any, then checks their seqs ascend
/// in queue order.
async fn pipelined(
    store: Arc<dyn Store>,
    room: String,
    from: crate::store::UserRef,
) -> Vec<(String, u64, String)> {
    let mut pending = Vec::new();
    for i in 0..PIPELINED {
        let body = format!("{room}/pipelined/{i}");
        let queued = store
            .enqueue_append(msg(&room, &from, &body, None))
            .await
            .unwrap();
        pending.push((body, queued));
    }
    let mut out = Vec::new();
    for (body, queued) in pending {
        out.push((room.clone(), queued.await.unwrap().seq, body));
    }
    let seqs: Vec<u64> = out.iter().map(|(_, s, _)| *s).collect();
    assert!(seqs.is_sorted(), "pipelined seqs in queue order: {seqs:?}");
    out
}
