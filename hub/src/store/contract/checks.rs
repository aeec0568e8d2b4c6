//! The checks every store passed before it had a commit channel: seqs, idempotency, pages,
//! membership, read marks, direct rooms, the room list, retention. Each runs on a fresh store
//! (see [`Harness`]); the stamped test then checks what the store sent (`Harness::finish`).

use super::{msg, user, Harness};
use crate::store::{MemberRoom, NewRoom, Page, RoomPage, Store, StoreError, UserRef};

/// After migration 0002 on a database where bob (`id-b`) had left the direct room `d1` of
/// alice and bob: both are members, the room is hidden for bob only, and bob opening the direct
/// room again finds `d1` and lists it.
pub(crate) async fn check_restored_direct_leaver(store: &dyn Store) {
    let mut members = store.members("d1").await.unwrap();
    members.sort();
    assert_eq!(members, ["alice", "bob"]);
    assert!(
        store
            .rooms_of("id-b", RoomPage::everything())
            .await
            .unwrap()
            .is_empty(),
        "hidden"
    );
    assert_eq!(
        store
            .rooms_of("id-a", RoomPage::everything())
            .await
            .unwrap()
            .len(),
        1,
        "alice never left"
    );
    let again = store
        .direct_room(&user("b"), &user("a"), "new", 9)
        .await
        .unwrap();
    assert_eq!(again.id, "d1");
    assert_eq!(
        store
            .rooms_of("id-b", RoomPage::everything())
            .await
            .unwrap()
            .len(),
        1,
        "bob opened it"
    );
}

/// Seqs that stress the arithmetic: small ones, the edge of the stored range (`i64::MAX`) and
/// of `u64`, and anything.
fn any_seq() -> impl proptest::strategy::Strategy<Value = u64> {
    use proptest::prelude::*;
    let max = switchboard_protocol::seq::MAX_SEQ;
    prop_oneof![
        0..24u64,
        Just(max + 1),
        Just(u64::MAX),
        (max - 2)..=max,
        (max + 1)..=(max + 2),
        (u64::MAX - 2)..=u64::MAX,
        any::<u64>(),
    ]
}

/// Property: for any `before`/`after` (up to `u64::MAX`, beyond what a client may send) a page
/// holds exactly the messages strictly between them (the first `limit` after `after`, or the
/// newest `limit` before `before`), ascending, and never wraps to the start of the room; lookups
/// of an unstorable seq find nothing and fail nothing. Cases come from a deterministic
/// proptest runner (the store is async, so they are drawn up front and run in turn).
pub(super) async fn pages_never_cross_their_bounds(h: &mut Harness) {
    let store = &*h.store;
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    const STORED: u64 = 12;
    let alice = user("alice");
    new_room(store, "r-bounds", &alice).await;
    for _ in 0..STORED {
        store
            .append(msg("r-bounds", &alice, "x", None))
            .await
            .unwrap();
    }
    let page = (
        proptest::option::of(any_seq()),
        proptest::option::of(any_seq()),
        1..=16u32,
    );
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let cases = proptest::collection::vec(page, 300)
        .new_tree(&mut runner)
        .expect("cases")
        .current();
    for (before, after, limit) in cases {
        let page = Page {
            before,
            after,
            limit,
        };
        let got: Vec<u64> = store
            .messages("r-bounds", page)
            .await
            .unwrap_or_else(|e| panic!("{page:?}: {e}"))
            .into_iter()
            .map(|m| m.seq)
            .collect();
        let between =
            (1..=STORED).filter(|&s| after.is_none_or(|a| s > a) && before.is_none_or(|b| s < b));
        let want: Vec<u64> = if after.is_some() {
            between.take(limit as usize).collect()
        } else {
            let all: Vec<u64> = between.collect();
            all[all.len().saturating_sub(limit as usize)..].to_vec()
        };
        assert_eq!(got, want, "{page:?}");
    }
    let seqs = proptest::collection::vec(any_seq(), 100)
        .new_tree(&mut runner)
        .expect("seqs")
        .current();
    for seq in seqs {
        let found = store.message("r-bounds", seq).await.unwrap();
        assert_eq!(
            found.map(|r| r.message.seq),
            (1..=STORED).contains(&seq).then_some(seq)
        );
        let mark = store.set_read("r-bounds", &alice.id, seq).await.unwrap();
        assert_eq!(mark, STORED, "clamped to last_seq, never wrapped");
        if seq > STORED {
            store.edit("r-bounds", seq, "y", 2).await.unwrap();
            store.delete("r-bounds", seq, 2).await.unwrap();
        }
    }
    assert!(
        store
            .messages(
                "r-bounds",
                Page {
                    before: None,
                    after: Some(0),
                    limit: 100
                }
            )
            .await
            .unwrap()
            .iter()
            .all(|m| m.body == "x" && !m.deleted),
        "edits and deletes of seqs past the room touched nothing"
    );
}

pub(super) async fn retention_purges_old_messages(h: &mut Harness) {
    let store = &*h.store;
    let alice = user("alice");
    new_room(store, "r-ret", &alice).await;
    for ts in [10, 20, 30] {
        let mut m = msg("r-ret", &alice, "x", None);
        m.ts = ts;
        store.append(m).await.unwrap();
    }
    assert_eq!(store.first_seq("r-ret").await.unwrap(), Some(1));
    let purged = store.purge_before(25).await.unwrap();
    assert!(
        purged >= 2,
        "at least this room's two old messages: {purged}"
    );
    assert_eq!(store.first_seq("r-ret").await.unwrap(), Some(3));
    assert_eq!(
        store.room("r-ret").await.unwrap().unwrap().last_seq,
        3,
        "seqs are never reused"
    );
    let next = store.append(msg("r-ret", &alice, "y", None)).await.unwrap();
    assert_eq!(next.seq, 4);
}

pub(crate) async fn new_room(store: &dyn Store, id: &str, creator: &UserRef) {
    let room = NewRoom {
        id: id.into(),
        name: id.into(),
        public: false,
        creator: creator.clone(),
        ts: 1,
    };
    let rec = store.create_room(room).await.unwrap();
    assert_eq!(rec.last_seq, 0);
}

pub(super) async fn seqs_are_dense_and_idempotent(h: &mut Harness) {
    let store = &*h.store;
    let alice = user("alice");
    new_room(store, "r-seq", &alice).await;
    for i in 1..=5u64 {
        let a = store.append(msg("r-seq", &alice, "x", None)).await.unwrap();
        assert_eq!((a.seq, a.duplicate), (i, false));
    }
    let first = store
        .append(msg("r-seq", &alice, "once", Some("k1")))
        .await
        .unwrap();
    let again = store
        .append(msg("r-seq", &alice, "twice", Some("k1")))
        .await
        .unwrap();
    assert_eq!(first.seq, 6);
    assert_eq!((again.seq, again.duplicate), (6, true));
    // The same key from another user is a different message.
    let erin = user("erin");
    store.add_member("r-seq", &erin, 1).await.unwrap();
    let other = store
        .append(msg("r-seq", &erin, "erin's", Some("k1")))
        .await
        .unwrap();
    assert_eq!((other.seq, other.duplicate), (7, false));
    assert_eq!(store.room("r-seq").await.unwrap().unwrap().last_seq, 7);
    let stored = store.message("r-seq", 6).await.unwrap().unwrap();
    assert_eq!(stored.message.body, "once");
}

pub(super) async fn pages_are_ascending(h: &mut Harness) {
    let store = &*h.store;
    let alice = user("alice");
    new_room(store, "r-page", &alice).await;
    for i in 1..=10 {
        store
            .append(msg("r-page", &alice, &format!("m{i}"), None))
            .await
            .unwrap();
    }
    let seqs = |v: Vec<switchboard_protocol::ws::Message>| {
        v.into_iter().map(|m| m.seq).collect::<Vec<_>>()
    };
    let newest = store
        .messages(
            "r-page",
            Page {
                before: None,
                after: None,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(newest), [8, 9, 10]);
    let before = store
        .messages(
            "r-page",
            Page {
                before: Some(8),
                after: None,
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(before), [5, 6, 7]);
    let after = store
        .messages(
            "r-page",
            Page {
                before: None,
                after: Some(2),
                limit: 3,
            },
        )
        .await
        .unwrap();
    assert_eq!(seqs(after), [3, 4, 5]);
    store.delete("r-page", 4, 2_000).await.unwrap();
    store.edit("r-page", 5, "edited", 2_001).await.unwrap();
    let page = store
        .messages(
            "r-page",
            Page {
                before: None,
                after: Some(3),
                limit: 2,
            },
        )
        .await
        .unwrap();
    assert!(page[0].deleted && page[0].body.is_empty());
    assert_eq!(
        (page[1].body.as_str(), page[1].edited_ts),
        ("edited", Some(2_001))
    );
}

pub(super) async fn membership_and_read_marks(h: &mut Harness) {
    let store = &*h.store;
    let (alice, bob) = (user("alice"), user("bob"));
    new_room(store, "r-mem", &alice).await;
    assert_eq!(store.membership("r-mem", &bob.id).await.unwrap(), None);
    let refused = store.append(msg("r-mem", &bob, "not yet", None)).await;
    assert!(
        matches!(&refused, Err(StoreError::NotMember(r)) if r == "r-mem"),
        "{refused:?}"
    );
    let missing = store.append(msg("r-nowhere", &bob, "x", None)).await;
    assert!(
        matches!(&missing, Err(StoreError::RoomNotFound(r)) if r == "r-nowhere"),
        "{missing:?}"
    );
    assert!(store.add_member("r-mem", &bob, 2).await.unwrap());
    assert!(!store.add_member("r-mem", &bob, 3).await.unwrap());
    assert_eq!(store.members("r-mem").await.unwrap(), ["alice", "bob"]);
    for _ in 0..3 {
        store.append(msg("r-mem", &alice, "x", None)).await.unwrap();
    }
    // Nothing was stored for the refused appends, and the author has read their own messages.
    assert_eq!(store.room("r-mem").await.unwrap().unwrap().last_seq, 3);
    assert_eq!(store.membership("r-mem", &alice.id).await.unwrap(), Some(3));
    assert_eq!(store.membership("r-mem", &bob.id).await.unwrap(), Some(0));
    assert_eq!(store.set_read("r-mem", &bob.id, 2).await.unwrap(), 2);
    assert_eq!(
        store.set_read("r-mem", &bob.id, 1).await.unwrap(),
        2,
        "never moves back"
    );
    assert_eq!(
        store.set_read("r-mem", &bob.id, 99).await.unwrap(),
        3,
        "clamped to last_seq"
    );
    let rooms = store
        .rooms_of(&bob.id, RoomPage::everything())
        .await
        .unwrap();
    assert_eq!((rooms.len(), rooms[0].read_seq), (1, 3));
    assert!(store.remove_member("r-mem", &bob.id).await.unwrap());
    assert!(!store.remove_member("r-mem", &bob.id).await.unwrap());
}

pub(super) async fn direct_rooms_are_unique(h: &mut Harness) {
    let store = &*h.store;
    let (carol, dave) = (user("carol"), user("dave"));
    let a = store.direct_room(&carol, &dave, "d-1", 1).await.unwrap();
    let b = store.direct_room(&dave, &carol, "d-2", 2).await.unwrap();
    assert_eq!(a.id, b.id);
    assert_eq!((a.kind.as_str(), a.name.as_str()), ("direct", "carol,dave"));
    assert_eq!(store.members(&a.id).await.unwrap().len(), 2);
}

/// A hidden room leaves the member's list but not the membership; opening it again or any new
/// message shows it.
pub(super) async fn hidden_direct_rooms_come_back(h: &mut Harness) {
    let store = &*h.store;
    let (erin, fred) = (user("erin"), user("fred"));
    let listed = |rooms: Vec<MemberRoom>, id: &str| rooms.iter().any(|m| m.room.id == id);
    let room = store
        .direct_room(&erin, &fred, "d-hide", 1)
        .await
        .unwrap()
        .id;
    assert_eq!(
        store.hide_member(&room, &fred.id).await.unwrap(),
        Some(vec![erin.id.clone()]),
        "the other member's id"
    );
    assert_eq!(store.hide_member(&room, "id-nobody").await.unwrap(), None);
    assert!(!listed(
        store
            .rooms_of(&fred.id, RoomPage::everything())
            .await
            .unwrap(),
        &room
    ));
    assert!(listed(
        store
            .rooms_of(&erin.id, RoomPage::everything())
            .await
            .unwrap(),
        &room
    ));
    assert!(
        store.membership(&room, &fred.id).await.unwrap().is_some(),
        "still a member"
    );
    // A message from the other side shows it again.
    store
        .append(msg(&room, &erin, "still there?", None))
        .await
        .unwrap();
    assert!(listed(
        store
            .rooms_of(&fred.id, RoomPage::everything())
            .await
            .unwrap(),
        &room
    ));
    // Opening it shows it to the caller only.
    store.hide_member(&room, &fred.id).await.unwrap();
    store.hide_member(&room, &erin.id).await.unwrap();
    let again = store.direct_room(&fred, &erin, "d-other", 2).await.unwrap();
    assert_eq!(again.id, room, "the same room");
    assert!(listed(
        store
            .rooms_of(&fred.id, RoomPage::everything())
            .await
            .unwrap(),
        &room
    ));
    assert!(!listed(
        store
            .rooms_of(&erin.id, RoomPage::everything())
            .await
            .unwrap(),
        &room
    ));
    // A message from a member who hid the room shows it to both, and moves the read mark.
    store.hide_member(&room, &fred.id).await.unwrap();
    let sent = store.append(msg(&room, &fred, "back", None)).await.unwrap();
    assert!(listed(
        store
            .rooms_of(&fred.id, RoomPage::everything())
            .await
            .unwrap(),
        &room
    ));
    assert!(listed(
        store
            .rooms_of(&erin.id, RoomPage::everything())
            .await
            .unwrap(),
        &room
    ));
    assert_eq!(
        store.membership(&room, &fred.id).await.unwrap(),
        Some(sent.seq)
    );
}

/// A walk over the room list in pages of 2, with rooms becoming active between the pages (ones
/// already listed and ones still to come): every room comes exactly once, in the order of the
/// walk's start.
pub(super) async fn room_pages_keep_their_order_while_rooms_move(h: &mut Harness) {
    let store = &*h.store;
    let gina = user("gina");
    let ids: Vec<String> = (0..7).map(|i| format!("r-walk-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        new_room(store, id, &gina).await;
        let mut m = msg(id, &gina, "x", None);
        m.ts = 100 + i as i64;
        store.append(m).await.unwrap();
    }
    // Newest activity first: r-walk-6 (ts 106) down to r-walk-0 (ts 100).
    let expected: Vec<String> = ids.iter().rev().cloned().collect();
    let as_of = 1_000;
    let mut walked = Vec::new();
    let mut after = None;
    let mut moved_ts = 2_000;
    loop {
        let page = RoomPage {
            as_of,
            after: after.clone(),
            limit: 2,
        };
        let rooms = store.rooms_of(&gina.id, page).await.unwrap();
        let Some(last) = rooms.last() else { break };
        after = Some((last.activity, last.room.id.clone()));
        walked.extend(rooms.iter().map(|m| m.room.id.clone()));
        // The oldest room not yet listed, and the first one listed, become active.
        let pending = expected.iter().rev().find(|id| !walked.contains(id));
        for id in pending.into_iter().chain(walked.first()) {
            let mut m = msg(id, &gina, "moved", None);
            m.ts = moved_ts;
            moved_ts += 1;
            store.append(m).await.unwrap();
        }
    }
    assert_eq!(walked, expected, "each room once, in the walk's order");
    // A new walk sees the new order: the room that moved last is on top.
    let now = store
        .rooms_of(&gina.id, RoomPage::everything())
        .await
        .unwrap();
    assert_eq!(now.len(), ids.len());
    assert_eq!(now[0].activity, moved_ts - 1);
}
