//! Appends that carry attachments: the append links them (`attachments.seq`) in its own
//! transaction — only the room's, the sender's, not yet sent — and the committed message
//! carries those it linked; a repeat of a `client_msg_id` links nothing.

use switchboard_media::Hash;

use super::checks::new_room;
use super::{msg, user, Harness};
use crate::media::index::{Attachment, MediaIndex};
use crate::store::NewMessage;

/// An unsent attachment `id` of `room` uploaded by `uploader` (a user id).
fn attachment(id: &str, room: &str, uploader: &str, created_ts: i64) -> Attachment {
    Attachment {
        id: id.into(),
        room: room.into(),
        uploader: uploader.into(),
        name: format!("{id}.txt"),
        content_type: "text/plain; charset=utf-8".into(),
        size: 1,
        hash: Hash::of(id.as_bytes()),
        thumb: None,
        created_ts,
        seq: None,
    }
}

/// `m` carrying `attachments`.
fn carrying(mut m: NewMessage, attachments: &[&Attachment]) -> NewMessage {
    m.attachments = attachments
        .iter()
        .map(|a| crate::media::attachment_info(a))
        .collect();
    m
}

async fn seq_of(index: &dyn MediaIndex, room: &str, id: &str) -> Option<u64> {
    index.attachment(room, id).await.unwrap().unwrap().seq
}

pub(super) async fn appends_link_their_attachments(h: &mut Harness) {
    let (alice, bob) = (user("alice"), user("bob"));
    new_room(&*h.store, "r-att", &alice).await;
    new_room(&*h.store, "r-elsewhere", &alice).await;
    h.store.add_member("r-att", &bob, 2).await.unwrap();
    let index = h.media().await;
    let mine1 = attachment("a1", "r-att", &alice.id, 10);
    let mine2 = attachment("a2", "r-att", &alice.id, 11);
    let bobs = attachment("a3", "r-att", &bob.id, 12);
    let elsewhere = attachment("a4", "r-elsewhere", &alice.id, 13);
    let later = attachment("a5", "r-att", &alice.id, 14);
    for a in [&mine1, &mine2, &bobs, &elsewhere, &later] {
        index.add_attachment(a).await.unwrap();
    }

    // Only alice's of this room are linked; the message carries those.
    let m = carrying(
        msg("r-att", &alice, "files", Some("k1")),
        &[&mine1, &mine2, &bobs, &elsewhere],
    );
    let first = h.store.append(m).await.unwrap();
    assert!(!first.duplicate);
    let sent = h.received_messages();
    assert_eq!(sent.len(), 1);
    let ids: Vec<&str> = sent[0]
        .message
        .attachments
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(ids, ["a1", "a2"]);
    assert_eq!(seq_of(&*index, "r-att", "a1").await, Some(first.seq));
    assert_eq!(seq_of(&*index, "r-att", "a2").await, Some(first.seq));
    assert_eq!(seq_of(&*index, "r-att", "a3").await, None, "bob's");
    assert_eq!(
        seq_of(&*index, "r-elsewhere", "a4").await,
        None,
        "another room's"
    );
    let listed = index.attachments_of("r-att", &[first.seq]).await.unwrap();
    assert_eq!(
        listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["a1", "a2"]
    );

    // A repeat of the key links nothing new and sends nothing.
    let repeat = carrying(msg("r-att", &alice, "again", Some("k1")), &[&later]);
    let again = h.store.append(repeat).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    assert!(h.received_messages().is_empty());
    assert_eq!(seq_of(&*index, "r-att", "a5").await, None);

    // An attachment already sent is not linked again; a message without any links nothing.
    let resend = carrying(msg("r-att", &alice, "resend", None), &[&mine1, &later]);
    let second = h.store.append(resend).await.unwrap();
    let sent = h.received_messages();
    let ids: Vec<&str> = sent[0]
        .message
        .attachments
        .iter()
        .map(|a| a.id.as_str())
        .collect();
    assert_eq!(ids, ["a5"]);
    assert_eq!(seq_of(&*index, "r-att", "a1").await, Some(first.seq));
    assert_eq!(seq_of(&*index, "r-att", "a5").await, Some(second.seq));
    let plain = h
        .store
        .append(msg("r-att", &bob, "plain", None))
        .await
        .unwrap();
    assert!(h.received_messages()[0].message.attachments.is_empty());
    assert_eq!(seq_of(&*index, "r-att", "a3").await, None);
    assert!(index
        .attachments_of("r-att", &[plain.seq])
        .await
        .unwrap()
        .is_empty());
}

/// `message.created` deliveries name the attachments the append linked, as the `message`
/// frame does (none listed: no `attachments` key), in the batch's transaction.
pub(super) async fn webhooks_carry_the_linked_attachments(h: &mut Harness) {
    use switchboard_webhooks::EventType;

    h.webhooks.set(
        super::events::registry(&[EventType::MessageCreated]),
        std::sync::Arc::new(tokio::sync::Notify::new()),
    );
    let (alice, bob) = (user("alice"), user("bob"));
    new_room(&*h.store, "r-hook", &alice).await;
    h.store.add_member("r-hook", &bob, 2).await.unwrap();
    let index = h.media().await;
    let mine = attachment("h1", "r-hook", &alice.id, 10);
    let bobs = attachment("h2", "r-hook", &bob.id, 11);
    for a in [&mine, &bobs] {
        index.add_attachment(a).await.unwrap();
    }
    let with = carrying(msg("r-hook", &alice, "files", None), &[&mine, &bobs]);
    h.store.append(with).await.unwrap();
    let taken = carrying(msg("r-hook", &alice, "again", None), &[&mine]);
    h.store.append(taken).await.unwrap();
    h.store
        .append(msg("r-hook", &bob, "plain", None))
        .await
        .unwrap();

    let got = super::events::deliveries(h).await;
    let data: Vec<&serde_json::Value> = got
        .iter()
        .filter(|(_, t, _)| t == "message.created")
        .map(|(_, _, d)| d)
        .collect();
    assert_eq!(data.len(), 3, "{got:#?}");
    assert_eq!(
        data[0]["attachments"],
        serde_json::json!([crate::media::attachment_info(&mine)]),
        "alice's own only"
    );
    assert!(
        data[1].get("attachments").is_none(),
        "already sent: not linked again, not named: {}",
        data[1]
    );
    assert!(data[2].get("attachments").is_none(), "{}", data[2]);
}
