//! The contract every [`Broker`](super::Broker) keeps, run against the in-process broker and
//! against Redis (a real server; a unique key prefix per test): the fanout of a "cluster" of two
//! nodes, A and B, sharing one store. With the in-process broker both names are the same node,
//! so the same checks hold: what A publishes reaches B's subscribers, in seq order, once, and
//! every hold taken is given back.
//!
//! `broker_tests!` stamps one `#[tokio::test]` per check per broker, so a failure names both.
//! The Redis restart test runs a private `redis-server` and leaves the shared one alone.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use switchboard_protocol::ws::{Message, ServerFrame};

use super::memory::MemoryBroker;
use super::redis::{RedisBroker, RedisConfig};
use crate::fanout::outbox::{outbox, Receiver};
use crate::fanout::{ConnHandle, ConnId, Event, Fanout, KillSwitch, Kind, Out, Registry, Target};
use crate::metrics::HubMetrics;
use crate::store::sqlite::SqliteStore;
use crate::store::{NewMessage, NewRoom, Store, UserRef};
use switchboard_testkit::PrivateRedis;

const WAIT: Duration = Duration::from_secs(10);

/// One hub node: its registry and its fanout.
#[derive(Clone)]
struct Node {
    registry: Arc<Registry>,
    fanout: Fanout,
}

/// Two nodes on one store.
struct Cluster {
    a: Node,
    b: Node,
    store: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn store_with_room(room: &str) -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    // Nobody publishes what it commits here: the tests publish by hand.
    let (commits, _) = tokio::sync::mpsc::channel(1);
    let store = SqliteStore::open(&dir.path().join("hub.db"), 0, commits)
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

fn memory_node(store: &Arc<dyn Store>) -> Node {
    let registry = Arc::new(Registry::new().with_hot_window(16));
    let (_tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let fanout = Fanout::start(registry.clone(), Arc::new(MemoryBroker), store.clone(), rx);
    Node { registry, fanout }
}

async fn redis_node(url: &str, prefix: &str, name: &str, store: &Arc<dyn Store>) -> Node {
    redis_node_with(url, prefix, name, store, HubMetrics::disabled()).await
}

async fn redis_node_with(
    url: &str,
    prefix: &str,
    name: &str,
    store: &Arc<dyn Store>,
    metrics: HubMetrics,
) -> Node {
    let registry = Arc::new(Registry::new().with_hot_window(16));
    let cfg = RedisConfig {
        url: url.into(),
        prefix: prefix.into(),
        node: name.into(),
        timeout: WAIT,
        metrics,
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let broker = RedisBroker::start(cfg, tx).await.expect("redis reachable");
    let fanout = Fanout::start(registry.clone(), Arc::new(broker), store.clone(), rx);
    Node { registry, fanout }
}

async fn memory_cluster() -> Cluster {
    let (dir, store) = store_with_room("r").await;
    let node = memory_node(&store);
    Cluster {
        a: node.clone(),
        b: node,
        store,
        _dir: dir,
    }
}

async fn redis_cluster() -> Cluster {
    let (dir, store) = store_with_room("r").await;
    let prefix = format!("sbtest:broker:{}:", uuid::Uuid::new_v4().simple());
    let url = "redis://127.0.0.1:6379";
    Cluster {
        a: redis_node(url, &prefix, "a", &store).await,
        b: redis_node(url, &prefix, "b", &store).await,
        store,
        _dir: dir,
    }
}

/// A connection of `user` on `node`.
fn connection(node: &Node, user: &str) -> (ConnId, Receiver<Out>) {
    let (tx, rx) = outbox(1024);
    let id = node.registry.add_conn(ConnHandle {
        tx,
        kill: Arc::new(KillSwitch::default()),
        user: Some(user.into()),
        username: Some(user.into()),
        session: "s".into(),
        queued: Arc::default(),
    });
    (id, rx)
}

/// Subscribes `id` to `room` as `sub` does: a hold first, kept by the subscription.
async fn subscribe(node: &Node, id: ConnId, room: &str) {
    let room: Arc<str> = room.into();
    let hold = tokio::time::timeout(WAIT, node.fanout.hold(&room))
        .await
        .expect("in time")
        .expect("the room's events flow");
    assert!(node.registry.subscribe(id, &room, Some(hold)));
}

/// A connection of `user` on `node`, subscribed to `room`.
async fn subscriber(node: &Node, room: &str, user: &str) -> (ConnId, Receiver<Out>) {
    let (id, rx) = connection(node, user);
    subscribe(node, id, room).await;
    (id, rx)
}

/// The next item of a queue (events and evictions; other items are skipped).
async fn next(rx: &mut Receiver<Out>) -> Out {
    loop {
        match tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an item in time")
        {
            Some(out @ (Out::Event(_) | Out::EndSub { .. })) => return out,
            Some(_) => {}
            None => panic!("queue closed"),
        }
    }
}

async fn next_seq(rx: &mut Receiver<Out>) -> u64 {
    loop {
        if let Out::Event(ev) = next(rx).await {
            if let Some(seq) = ev.seq() {
                return seq;
            }
        }
    }
}

async fn append(store: &dyn Store, room: &str, n: usize) -> Vec<Message> {
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
            attachments: Vec::new(),
        };
        let a = store.append(msg).await.unwrap();
        out.push(store.message(room, a.seq).await.unwrap().unwrap().message);
    }
    out
}

fn notice(room: &str, text: &'static str, target: Target) -> Event {
    Event::from_parts(
        room.into(),
        Kind::Notice,
        Bytes::from_static(text.as_bytes()),
        target,
        crate::metrics::ServerType::Typing,
    )
}

/// Messages reach B in seq order, once each: one lost on the way is read from the store, a late
/// duplicate is dropped.
async fn messages_arrive_in_seq_order_once(c: Cluster) {
    let (_, mut on_b) = subscriber(&c.b, "r", "x").await;
    let (_, mut on_a) = subscriber(&c.a, "r", "y").await;
    let msgs = append(&*c.store, "r", 4).await;
    // A publishes 2, 3, 4 but never 1 (as if its publish of 1 was lost).
    for m in &msgs[1..] {
        c.a.fanout.publish(Event::message(m.clone()));
    }
    for expected in 1..=4 {
        assert_eq!(next_seq(&mut on_b).await, expected, "B, in order");
        assert_eq!(next_seq(&mut on_a).await, expected, "A, in order");
    }
    c.a.fanout.publish(Event::message(msgs[0].clone()));
    let more = append(&*c.store, "r", 1).await;
    c.a.fanout.publish(Event::message(more[0].clone()));
    assert_eq!(
        next_seq(&mut on_b).await,
        5,
        "the late duplicate was dropped"
    );
}

/// Events without a seq reach the subscribers their target names, in publication order.
async fn notices_reach_their_targets_in_order(c: Cluster) {
    let (_, mut x) = subscriber(&c.b, "r", "x").await;
    let (_, mut y) = subscriber(&c.b, "r", "y").await;
    c.a.fanout
        .publish(notice("r", "1", Target::OthersThan("x".into())));
    c.a.fanout.publish(notice("r", "2", Target::Room));
    let text = |out: Out| match out {
        Out::Event(ev) => String::from_utf8(ev.bytes.to_vec()).unwrap(),
        other => panic!("an event, got {other:?}"),
    };
    assert_eq!(text(next(&mut y).await), "1");
    assert_eq!(text(next(&mut y).await), "2");
    assert_eq!(
        text(next(&mut x).await),
        "2",
        "x never got the one not for x"
    );
}

/// An event that rewrites history drops the room's hot window on every node.
async fn a_rewrite_drops_the_hot_window(c: Cluster) {
    let (_, mut on_b) = subscriber(&c.b, "r", "x").await;
    let msgs = append(&*c.store, "r", 2).await;
    for m in &msgs {
        c.a.fanout.publish(Event::message(m.clone()));
    }
    assert_eq!(next_seq(&mut on_b).await, 1);
    assert_eq!(next_seq(&mut on_b).await, 2);
    assert_eq!(c.b.registry.hot().after("r", 0).map(|h| h.upto), Some(2));
    let edited = ServerFrame::Edited {
        room: "r".into(),
        seq: 1,
        body: "new".into(),
        edited_ts: 1,
    };
    c.a.fanout
        .publish(Event::new("r".into(), &edited, Target::Room));
    assert!(matches!(next(&mut on_b).await, Out::Event(ev) if ev.kind == Kind::Rewrite));
    assert!(c.b.registry.hot().after("r", 0).is_none(), "dropped");
}

/// An eviction published after an event reaches every node after it, ends only that user's
/// subscriptions, and gives their holds back; unsubscribing gives its hold back too.
async fn evictions_follow_events_and_holds_balance(c: Cluster) {
    let (x1, mut x1_rx) = subscriber(&c.b, "r", "x").await;
    let (_, mut x2_rx) = subscriber(&c.b, "r", "x").await;
    let (y, mut y_rx) = subscriber(&c.b, "r", "y").await;
    let (z, _) = subscriber(&c.b, "r", "z").await;
    assert_eq!(c.b.fanout.holds_of("r"), 4);
    assert!(c.b.registry.unsubscribe(z, "r"));
    assert_eq!(c.b.fanout.holds_of("r"), 3, "unsubscribing gave one back");

    c.a.fanout.publish(notice("r", "left", Target::Room));
    c.a.fanout.evict("r", "x");
    for rx in [&mut x1_rx, &mut x2_rx] {
        assert!(matches!(next(rx).await, Out::Event(_)), "the event first");
        assert!(
            matches!(next(rx).await, Out::EndSub { room, reply: Some(_) } if &*room == "r"),
            "then unsubbed"
        );
    }
    assert!(matches!(next(&mut y_rx).await, Out::Event(_)));
    assert_eq!(c.b.fanout.holds_of("r"), 1, "x's two holds were given back");
    assert!(!c.b.registry.is_subscribed(x1, "r"));
    assert!(c.b.registry.is_subscribed(y, "r"));

    c.b.registry.remove_conn(y, [&Arc::<str>::from("r")]);
    assert_eq!(c.b.fanout.holds_of("r"), 0, "every hold given back");
    // The room is held again from nothing, and flows.
    let (_, mut again) = subscriber(&c.b, "r", "w").await;
    let msgs = append(&*c.store, "r", 1).await;
    c.a.fanout.publish(Event::message(msgs[0].clone()));
    assert_eq!(next_seq(&mut again).await, 1);
}

/// Stamps one test per check per broker.
macro_rules! broker_tests {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::memory_cluster().await).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $check() {
                    super::$check(super::redis_cluster().await).await;
                }
            )*
        }
    };
}

broker_tests!(
    messages_arrive_in_seq_order_once,
    notices_reach_their_targets_in_order,
    a_rewrite_drops_the_hot_window,
    evictions_follow_events_and_holds_balance,
);

/// The value of `series` in `registry`'s scrape.
fn sample(registry: &switchboard_kit::metrics::Registry, series: &str) -> Option<f64> {
    registry
        .render()
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A message from another node is counted with its lag (receipt minus its `ts`).
#[tokio::test]
async fn a_message_from_another_node_records_its_pubsub_lag() {
    let (_dir, store) = store_with_room("r").await;
    let prefix = format!("sbtest:broker:{}:", uuid::Uuid::new_v4().simple());
    let url = "redis://127.0.0.1:6379";
    let metrics = switchboard_kit::metrics::Registry::new();
    let a = redis_node(url, &prefix, "a", &store).await;
    let b = redis_node_with(url, &prefix, "b", &store, HubMetrics::new(&metrics)).await;
    let (_, mut on_b) = subscriber(&b, "r", "x").await;
    let (_, mut on_a) = subscriber(&a, "r", "y").await;
    let msgs = append(&*store, "r", 1).await;
    a.fanout.publish(Event::message(msgs[0].clone()));
    assert_eq!(next_seq(&mut on_a).await, 1);
    assert_eq!(next_seq(&mut on_b).await, 1);
    let lag = "switchboard_redis_pubsub_lag_seconds_count";
    assert_eq!(sample(&metrics, lag), Some(1.0), "one message from node a");
    assert_eq!(
        sample(&metrics, "switchboard_redis_reconnects_total"),
        Some(0.0)
    );
}

#[tokio::test]
async fn after_redis_restarts_subscribers_get_what_they_missed() {
    let mut redis = PrivateRedis::start().await;
    let url = redis.url();
    let (_dir, store) = store_with_room("r").await;
    let metrics = switchboard_kit::metrics::Registry::new();
    let b = redis_node_with(&url, "sb:", "b", &store, HubMetrics::new(&metrics)).await;
    let (_, mut on_b) = subscriber(&b, "r", "x").await;
    redis.kill();
    // Messages committed while Redis is down never reach B through Redis...
    append(&*store, "r", 3).await;
    redis.start_again().await;
    // ...but B resynchronises from the store once it has reconnected.
    for expected in 1..=3 {
        assert_eq!(next_seq(&mut on_b).await, expected);
    }
    let reconnects = sample(&metrics, "switchboard_redis_reconnects_total");
    assert!(
        reconnects >= Some(1.0),
        "the reconnect is counted: {reconnects:?}"
    );
}
