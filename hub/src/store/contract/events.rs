//! Checks of the webhook events a store causes: each change inserts the delivery jobs of its
//! event in its own transaction (none for a change that did not happen: a repeat, a refusal, a
//! missing row), in the room's lane, in the order the changes were made; and none at all
//! while no endpoint receives the event's type.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use switchboard_jobs::State;
use switchboard_webhooks::{Endpoint, EventType, Registry};

use super::checks::new_room;
use super::{msg, user, Harness};
use crate::store::StoreError;

/// The ready jobs of the store, in id (queue) order: (lane, type, data).
pub(super) async fn deliveries(h: &Harness) -> Vec<(String, String, serde_json::Value)> {
    h.jobs
        .list(State::Ready, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|j| {
            assert_eq!(j.kind, switchboard_webhooks::JOB_KIND);
            assert_eq!(j.payload["endpoint"], "e");
            let event = &j.payload["event"];
            (
                j.lane.unwrap(),
                event["type"].as_str().unwrap().to_owned(),
                event["data"].clone(),
            )
        })
        .collect()
}

pub(super) fn registry(events: &[EventType]) -> Registry {
    let registry = Registry::new();
    registry.replace(vec![Endpoint {
        id: "e".into(),
        url: "http://127.0.0.1:9/".into(),
        secret: "s".repeat(16),
        events: events.iter().copied().collect::<BTreeSet<_>>(),
        enabled: true,
    }]);
    registry
}

pub(super) async fn events_enqueue_deliveries_with_their_changes(h: &mut Harness) {
    let signal = Arc::new(tokio::sync::Notify::new());
    h.webhooks
        .set(registry(&EventType::ALL), Arc::clone(&signal));
    let store = Arc::clone(&h.store);
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    new_room(&*store, "r", &alice).await;
    tokio::time::timeout(Duration::from_secs(5), signal.notified())
        .await
        .expect("the commit of a delivery nudges the workers");
    assert!(store.add_member("r", &bob, 2).await.unwrap());
    assert!(!store.add_member("r", &bob, 3).await.unwrap(), "a repeat");
    let first = store
        .append(msg("r", &alice, "one", Some("k1")))
        .await
        .unwrap();
    let again = store
        .append(msg("r", &alice, "one", Some("k1")))
        .await
        .unwrap();
    assert!(again.duplicate);
    store.append(msg("r", &bob, "two", None)).await.unwrap();
    assert!(matches!(
        store.append(msg("r", &carol, "refused", None)).await,
        Err(StoreError::NotMember(_))
    ));
    store.edit("r", first.seq, "one, edited", 9).await.unwrap();
    store.edit("r", 99, "no such message", 9).await.unwrap();
    store.delete("r", 2, 10).await.unwrap();
    store.delete("r", 99, 10).await.unwrap();
    assert!(store.remove_member("r", &bob.id).await.unwrap());
    assert!(
        !store.remove_member("r", &bob.id).await.unwrap(),
        "a repeat"
    );
    store.direct_room(&alice, &carol, "d", 11).await.unwrap();
    store.direct_room(&carol, &alice, "d2", 12).await.unwrap();

    let got = deliveries(h).await;
    let in_r: Vec<(&str, &serde_json::Value)> = got
        .iter()
        .filter(|(lane, _, _)| lane == "webhook:e:r")
        .map(|(_, t, d)| (t.as_str(), d))
        .collect();
    let types: Vec<&str> = in_r.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        types,
        [
            "room.created",
            "member.joined",
            "message.created",
            "message.created",
            "message.edited",
            "message.deleted",
            "member.left"
        ],
        "{got:#?}"
    );
    assert_eq!(in_r[0].1["created_by"], "alice");
    assert_eq!(in_r[0].1["members"][0]["username"], "alice");
    assert_eq!(in_r[1].1["username"], "bob");
    assert_eq!(
        (&in_r[2].1["seq"], &in_r[2].1["body"], &in_r[2].1["from"]),
        (
            &serde_json::json!(1),
            &serde_json::json!("one"),
            &serde_json::json!("alice")
        )
    );
    assert_eq!(in_r[2].1["client_msg_id"], "k1");
    assert_eq!(
        (&in_r[3].1["seq"], &in_r[3].1["from"]),
        (&serde_json::json!(2), &serde_json::json!("bob"))
    );
    assert_eq!(in_r[4].1["body"], "one, edited");
    assert_eq!(in_r[5].1["seq"], 2);
    assert_eq!(
        (&in_r[6].1["user_id"], &in_r[6].1["username"]),
        (&serde_json::json!("id-bob"), &serde_json::json!("bob"))
    );
    let in_d: Vec<&(String, String, serde_json::Value)> = got
        .iter()
        .filter(|(lane, _, _)| lane == "webhook:e:d")
        .collect();
    assert_eq!(in_d.len(), 1, "one direct room, created once: {got:#?}");
    assert_eq!(in_d[0].1, "room.created");
    assert_eq!(in_d[0].2["kind"], "direct");
    assert_eq!(in_d[0].2["members"].as_array().unwrap().len(), 2);
    assert_eq!(got.len(), 8, "{got:#?}");
}

pub(super) async fn no_endpoint_no_deliveries(h: &mut Harness) {
    let store = Arc::clone(&h.store);
    let alice = user("alice");
    new_room(&*store, "before", &alice).await;
    // An endpoint of other types only.
    h.webhooks.set(
        registry(&[EventType::UserRegistered, EventType::MessageEdited]),
        Arc::new(tokio::sync::Notify::new()),
    );
    new_room(&*store, "r", &alice).await;
    store.add_member("r", &user("bob"), 2).await.unwrap();
    store.append(msg("r", &alice, "one", None)).await.unwrap();
    assert_eq!(deliveries(h).await, [], "no subscriber, no job");
    store.edit("r", 1, "edited", 3).await.unwrap();
    let got = deliveries(h).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, "message.edited");
}

/// On PostgreSQL, a batch's delivery jobs are inserted by the batch's own transaction even on a
/// connection that has not prepared the insert yet (every connection of a fresh store): the
/// job row and the message row carry the same transaction id (`xmin`). An insert that still had
/// to prepare would reach the server after the pipelined `COMMIT`, in a transaction of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_batch_deliveries_are_in_the_batch_transaction_on_a_fresh_connection() {
    let h = Harness::postgres().await;
    h.webhooks.set(
        registry(&[EventType::MessageCreated]),
        Arc::new(tokio::sync::Notify::new()),
    );
    let alice = user("alice");
    new_room(&*h.store, "x", &alice).await;
    h.store.append(msg("x", &alice, "one", None)).await.unwrap();
    let client = super::pg_client(h.database_url().unwrap()).await;
    let row = client
        .query_one(
            "SELECT (SELECT xmin::text FROM messages WHERE room_id = 'x' AND seq = 1),
                    (SELECT xmin::text FROM public.jobs WHERE payload::jsonb->'event'->>'type' = 'message.created')",
            &[],
        )
        .await
        .unwrap();
    let (message, job): (String, String) = (row.get(0), row.get(1));
    assert_eq!(message, job, "the job committed with its message");
}
