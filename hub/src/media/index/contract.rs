//! The behaviour every [`MediaIndex`] must have, run against each implementation on a fresh
//! hub store (`store::contract::Harness`): `media::index::contract::<check>::{sqlite,postgres}`.

use switchboard_media::Hash;

use super::{Attachment, Avatar, Emoticon, EmoticonAdded};
use crate::store::contract::{msg, new_room, user, Harness};

/// For each listed check, a module of the same name with the tests `sqlite` and `postgres`.
macro_rules! media_contract {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let h = crate::store::contract::Harness::sqlite().await;
                super::$name(&h).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let h = crate::store::contract::Harness::postgres().await;
                super::$name(&h).await;
            }
        }
    )*};
}

media_contract!(
    avatars_are_set_replaced_and_cleared,
    emoticon_shortcodes_are_unique,
    emoticons_never_pass_their_maximum,
    uploads_are_counted_per_uploader_and_time,
    attachments_are_found_only_in_their_room,
    attachments_live_and_die_with_their_message,
    references_name_every_blob_in_use,
);

fn h(n: u8) -> Hash {
    Hash::of(&[n])
}

fn attachment(id: &str, room: &str, hash: Hash, thumb: Option<Hash>, ts: i64) -> Attachment {
    Attachment {
        id: id.into(),
        room: room.into(),
        uploader: "id-alice".into(),
        name: format!("{id}.png"),
        content_type: "image/png".into(),
        size: 42,
        hash,
        thumb,
        created_ts: ts,
        seq: None,
    }
}

async fn avatars_are_set_replaced_and_cleared(h0: &Harness) {
    let m = h0.media().await;
    assert_eq!(m.avatar("u1").await.unwrap(), None);
    let first = Avatar {
        small: h(1),
        large: h(2),
        updated_ts: 10,
    };
    m.set_avatar("u1", &first).await.unwrap();
    assert_eq!(m.avatar("u1").await.unwrap(), Some(first.clone()));
    let second = Avatar {
        small: h(3),
        large: h(4),
        updated_ts: 20,
    };
    m.set_avatar("u1", &second).await.unwrap();
    assert_eq!(m.avatar("u1").await.unwrap(), Some(second));
    assert_eq!(
        m.avatar("u2").await.unwrap(),
        None,
        "another user's is apart"
    );
    assert!(m.is_public(&h(3)).await.unwrap());
    assert!(
        !m.is_public(&h(1)).await.unwrap(),
        "the replaced one is gone"
    );
    assert!(m.clear_avatar("u1").await.unwrap());
    assert!(!m.clear_avatar("u1").await.unwrap(), "cleared twice");
    assert_eq!(m.avatar("u1").await.unwrap(), None);
    assert!(!m.is_referenced(&h(3)).await.unwrap());
}

async fn emoticon_shortcodes_are_unique(h0: &Harness) {
    let m = h0.media().await;
    let e = |code: &str, n| Emoticon {
        shortcode: code.into(),
        hash: h(n),
        created_by: "root".into(),
        created_ts: 5,
    };
    let added = EmoticonAdded::Added;
    assert_eq!(m.add_emoticon(&e("party", 1), 10).await.unwrap(), added);
    assert_eq!(m.add_emoticon(&e("cat_2", 2), 10).await.unwrap(), added);
    assert_eq!(
        m.add_emoticon(&e("party", 3), 10).await.unwrap(),
        EmoticonAdded::Taken,
        "a taken shortcode"
    );
    let all = m.emoticons().await.unwrap();
    assert_eq!(all, vec![e("cat_2", 2), e("party", 1)], "by shortcode");
    assert!(m.is_public(&h(1)).await.unwrap());
    assert!(!m.is_referenced(&h(3)).await.unwrap(), "the refused one");
    assert!(m.remove_emoticon("party").await.unwrap());
    assert!(!m.remove_emoticon("party").await.unwrap());
    assert_eq!(m.emoticons().await.unwrap(), vec![e("cat_2", 2)]);
}

/// Concurrent adds through two index instances (two nodes' pools, or two SQLite connections)
/// stop at the maximum exactly: the count and the insert are one step.
async fn emoticons_never_pass_their_maximum(h0: &Harness) {
    const MAX: usize = 5;
    let (a, b) = (h0.media().await, h0.media().await);
    let add = |m: std::sync::Arc<dyn super::MediaIndex>, n: u8| async move {
        let e = Emoticon {
            shortcode: format!("e{n}"),
            hash: h(n),
            created_by: "root".into(),
            created_ts: i64::from(n),
        };
        m.add_emoticon(&e, MAX).await.unwrap()
    };
    let tries = (0..16u8).map(|n| {
        let m = if n % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(add(m, n))
    });
    let outcomes = futures_util::future::join_all(tries).await;
    let added = outcomes
        .into_iter()
        .filter(|o| *o.as_ref().unwrap() == EmoticonAdded::Added)
        .count();
    assert_eq!(added, MAX, "exactly the maximum was added");
    assert_eq!(a.emoticons().await.unwrap().len(), MAX);
    let present = a.emoticons().await.unwrap()[0].shortcode.clone();
    let n: u8 = present[1..].parse().unwrap();
    assert_eq!(
        add(b.clone(), n).await,
        EmoticonAdded::Taken,
        "taken, not full"
    );
    assert_eq!(add(b.clone(), 99).await, EmoticonAdded::Full);
    assert!(a.remove_emoticon(&present).await.unwrap());
    assert_eq!(
        add(b.clone(), 100).await,
        EmoticonAdded::Added,
        "room again"
    );
}

/// `uploaded_since` sums one uploader's attachments from a time on, and names the oldest.
async fn uploads_are_counted_per_uploader_and_time(h0: &Harness) {
    let m = h0.media().await;
    assert_eq!(m.uploaded_since("id-alice", 0).await.unwrap(), (0, None));
    for (id, ts) in [("a1", 100), ("a2", 200), ("a3", 300)] {
        m.add_attachment(&attachment(id, "r1", h(1), None, ts))
            .await
            .unwrap();
    }
    let mut bob = attachment("b1", "r1", h(2), None, 250);
    bob.uploader = "id-bob".into();
    bob.size = 1000;
    m.add_attachment(&bob).await.unwrap();
    assert_eq!(
        m.uploaded_since("id-alice", 0).await.unwrap(),
        (3 * 42, Some(100))
    );
    assert_eq!(
        m.uploaded_since("id-alice", 200).await.unwrap(),
        (2 * 42, Some(200)),
        "from `since` on, inclusive"
    );
    assert_eq!(m.uploaded_since("id-alice", 301).await.unwrap(), (0, None));
    assert_eq!(
        m.uploaded_since("id-bob", 0).await.unwrap(),
        (1000, Some(250))
    );
}

async fn attachments_are_found_only_in_their_room(h0: &Harness) {
    let (m, store) = (h0.media().await, &*h0.store);
    let alice = user("alice");
    new_room(store, "ra", &alice).await;
    new_room(store, "rb", &alice).await;
    let a = attachment("att1", "ra", h(7), Some(h(8)), 100);
    m.add_attachment(&a).await.unwrap();
    assert_eq!(m.attachment("ra", "att1").await.unwrap(), Some(a));
    assert_eq!(
        m.attachment("rb", "att1").await.unwrap(),
        None,
        "another room"
    );
    assert_eq!(m.attachment("ra", "att2").await.unwrap(), None);
    assert!(
        !m.is_public(&h(7)).await.unwrap() && !m.is_public(&h(8)).await.unwrap(),
        "attachments are never public by hash"
    );
}

async fn attachments_live_and_die_with_their_message(h0: &Harness) {
    let (m, store) = (h0.media().await, &*h0.store);
    let alice = user("alice");
    new_room(store, "rm", &alice).await;
    for ts in [10, 2_000, 2_000] {
        let mut m = msg("rm", &alice, "m", None);
        m.ts = ts;
        store.append(m).await.unwrap();
    }
    for (id, ts) in [
        ("sent1", 10),
        ("sent2", 10),
        ("sent3", 10),
        ("stale", 10),
        ("fresh", 1_000),
    ] {
        m.add_attachment(&attachment(id, "rm", h(9), None, ts))
            .await
            .unwrap();
    }
    h0.link_attachment("sent1", 1).await;
    h0.link_attachment("sent2", 2).await;
    h0.link_attachment("sent3", 3).await;
    let of = m.attachments_of("rm", &[1, 2, 3, 99]).await.unwrap();
    let ids: Vec<_> = of.iter().map(|a| (a.id.as_str(), a.seq)).collect();
    assert_eq!(
        ids,
        vec![("sent1", Some(1)), ("sent2", Some(2)), ("sent3", Some(3))]
    );
    assert!(m.attachments_of("rm", &[]).await.unwrap().is_empty());

    // Message 2 deleted: its attachment is no longer found, nor listed.
    store.delete("rm", 2, 50).await.unwrap();
    assert_eq!(m.attachment("rm", "sent2").await.unwrap(), None);
    let of = m.attachments_of("rm", &[1, 2, 3]).await.unwrap();
    assert_eq!(of.len(), 2);
    // Retention takes message 1 (ts 10 < cutoff): gone too.
    store.purge_before(1_000).await.unwrap();
    assert_eq!(m.attachment("rm", "sent1").await.unwrap(), None);

    // The sweep: the deleted message's, the purged message's and the stale unsent one.
    assert_eq!(m.sweep_attachments(500).await.unwrap(), 3);
    assert!(
        m.attachment("rm", "sent3").await.unwrap().is_some(),
        "its message is live"
    );
    assert_eq!(m.attachment("rm", "stale").await.unwrap(), None);
    assert!(
        m.attachment("rm", "fresh").await.unwrap().is_some(),
        "within the grace"
    );
    assert_eq!(m.sweep_attachments(500).await.unwrap(), 0, "nothing twice");
}

async fn references_name_every_blob_in_use(h0: &Harness) {
    let (m, store) = (h0.media().await, &*h0.store);
    new_room(store, "rr", &user("alice")).await;
    m.set_avatar(
        "u",
        &Avatar {
            small: h(1),
            large: h(2),
            updated_ts: 1,
        },
    )
    .await
    .unwrap();
    m.add_emoticon(
        &Emoticon {
            shortcode: "yes".into(),
            hash: h(3),
            created_by: "root".into(),
            created_ts: 1,
        },
        10,
    )
    .await
    .unwrap();
    m.add_attachment(&attachment("f", "rr", h(4), Some(h(5)), 1))
        .await
        .unwrap();
    for n in 1..=5 {
        assert!(m.is_referenced(&h(n)).await.unwrap(), "blob {n}");
    }
    assert!(!m.is_referenced(&h(6)).await.unwrap());
    m.sweep_attachments(10).await.unwrap();
    assert!(
        !m.is_referenced(&h(4)).await.unwrap(),
        "its attachment swept"
    );
    assert!(!m.is_referenced(&h(5)).await.unwrap(), "and its thumbnail");
}
