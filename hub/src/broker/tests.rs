//! The Redis broker against a real Redis: two "nodes" (registry + broker each) sharing one
//! store, as in a cluster. Each test uses a unique key prefix; the restart test runs a private
//! `redis-server` and leaves the shared one alone.

use std::sync::Arc;
use std::time::Duration;

use super::redis::{RedisBroker, RedisConfig};
use super::sequencer::event_of;
use super::Broker;
use crate::registry::{ConnHandle, KillSwitch, Out, Registry};
use crate::store::sqlite::SqliteStore;
use crate::store::{NewMessage, NewRoom, Store, UserRef};
use switchboard_testkit::PrivateRedis;

const WAIT: Duration = Duration::from_secs(10);

fn prefix() -> String {
    format!("sbtest:broker:{}:", uuid::Uuid::new_v4().simple())
}

struct Node {
    registry: Arc<Registry>,
    broker: RedisBroker,
}

async fn node(url: &str, prefix: &str, name: &str, store: Arc<dyn Store>) -> Node {
    let registry = Arc::new(Registry::new());
    let cfg = RedisConfig {
        url: url.into(),
        prefix: prefix.into(),
        node: name.into(),
        timeout: WAIT,
    };
    let broker = RedisBroker::start(cfg, registry.clone(), store)
        .await
        .expect("redis reachable");
    registry.set_broker(Arc::new(broker.clone()));
    Node { registry, broker }
}

/// A subscribed connection on `node`, returning its queue.
async fn subscriber(node: &Node, room: &str) -> crate::outbox::Receiver {
    let (tx, rx) = crate::outbox::outbox(1024);
    let id = node.registry.add_conn(ConnHandle {
        tx,
        kill: Arc::new(KillSwitch::default()),
        user: None,
        username: None,
        session: "s".into(),
        queued: Arc::default(),
    });
    let room: Arc<str> = room.into();
    assert!(node.registry.subscribe(id, &room));
    node.broker
        .acquire(&room)
        .await
        .expect("subscription confirmed");
    rx
}

async fn next_seq(rx: &mut crate::outbox::Receiver) -> u64 {
    loop {
        match tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an event in time")
        {
            Some(Out::Event(ev)) => {
                if let Some(seq) = ev.seq {
                    return seq;
                }
            }
            Some(_) => {}
            None => panic!("queue closed"),
        }
    }
}

async fn store_with_room(room: &str) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("hub.db"), 0)
        .await
        .unwrap();
    let creator = UserRef {
        id: "u".into(),
        username: "u".into(),
    };
    store
        .create_room(NewRoom {
            id: room.into(),
            name: room.into(),
            public: true,
            creator,
            ts: 0,
        })
        .await
        .unwrap();
    (dir, Arc::new(store))
}

async fn append(store: &dyn Store, room: &str, n: usize) -> Vec<switchboard_protocol::ws::Message> {
    let sender = UserRef {
        id: "u".into(),
        username: "u".into(),
    };
    let mut out = Vec::new();
    for i in 0..n {
        let msg = NewMessage {
            room: room.into(),
            sender: sender.clone(),
            body: format!("m{i}"),
            client_msg_id: None,
            ts: 0,
        };
        let a = store.append(msg).await.unwrap();
        out.push(store.message(room, a.seq).await.unwrap().unwrap().message);
    }
    out
}

#[tokio::test]
async fn events_cross_nodes_in_seq_order_and_gaps_are_filled_from_the_store() {
    let (_dir, store) = store_with_room("r").await;
    let prefix = prefix();
    let a = node("redis://127.0.0.1:6379", &prefix, "a", store.clone()).await;
    let b = node("redis://127.0.0.1:6379", &prefix, "b", store.clone()).await;
    let mut on_b = subscriber(&b, "r").await;
    let mut on_a = subscriber(&a, "r").await;
    let msgs = append(&*store, "r", 4).await;
    // Node A publishes 2, 3, 4 but never 1 (as if its publish of 1 was lost).
    for m in &msgs[1..] {
        a.broker.publish(Arc::new(event_of(m.clone())));
    }
    for expected in 1..=4 {
        assert_eq!(
            next_seq(&mut on_b).await,
            expected,
            "remote node, in order, 1 filled from the store"
        );
        assert_eq!(
            next_seq(&mut on_a).await,
            expected,
            "publishing node, locally"
        );
    }
    // A late duplicate is dropped; the next one flows.
    a.broker.publish(Arc::new(event_of(msgs[0].clone())));
    let more = append(&*store, "r", 1).await;
    a.broker.publish(Arc::new(event_of(more[0].clone())));
    assert_eq!(next_seq(&mut on_b).await, 5);
}

#[tokio::test]
async fn after_redis_restarts_subscribers_get_what_they_missed() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let (_dir, store) = store_with_room("r").await;
    let b = node(&url, "sb:", "b", store.clone()).await;
    let mut on_b = subscriber(&b, "r").await;
    redis.kill();
    // Messages committed while Redis is down never reach B through Redis...
    append(&*store, "r", 3).await;
    redis.start_again().await;
    // ...but B resynchronises from the store once it has reconnected.
    for expected in 1..=3 {
        assert_eq!(next_seq(&mut on_b).await, expected);
    }
}
