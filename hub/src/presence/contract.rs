//! The behaviour every [`Presence`] must have on one node, as one suite run against each
//! implementation: [`presence_contract!`] stamps one test per check per implementation
//! (`check::memory`, `check::redis`), so a failure names both. Each Redis test has a key prefix
//! of its own, deleted when it ends. What only Redis does (sharing across nodes, expiry of a
//! dead node's entries) is tested beside it, in `redis.rs`.

use std::sync::Arc;
use std::time::Duration;

use switchboard_testkit::services::{RedisPrefix, REDIS_URL};

use super::memory::MemoryPresence;
use super::redis::{RedisPresence, ENTRY_TTL};
use super::Presence;

/// A presence under test, and what must live as long as it (the Redis prefix).
struct Subject {
    presence: Arc<dyn Presence>,
    _prefix: Option<RedisPrefix>,
}

async fn memory() -> Subject {
    Subject {
        presence: Arc::new(MemoryPresence::default()),
        _prefix: None,
    }
}

async fn redis() -> Subject {
    let prefix = RedisPrefix::new();
    let client = ::redis::Client::open(REDIS_URL).expect("a Redis URL");
    let conn = ::redis::aio::ConnectionManager::new(client)
        .await
        .unwrap_or_else(|err| panic!("Redis at {REDIS_URL} is needed for this test: {err}"));
    Subject {
        presence: RedisPresence::start(conn, &prefix.0, "node-a", ENTRY_TTL),
        _prefix: Some(prefix),
    }
}

/// For each listed `async fn check(p: &dyn Presence)`, a module `check` with the tests
/// `memory` and `redis`. A check missing from the list is dead code, which the lints refuse.
macro_rules! presence_contract {
    ($($check:ident),* $(,)?) => {$(
        mod $check {
            #[tokio::test]
            async fn memory() {
                let subject = super::memory().await;
                super::$check(&*subject.presence).await;
            }

            #[tokio::test]
            async fn redis() {
                let subject = super::redis().await;
                super::$check(&*subject.presence).await;
            }
        }
    )*};
}

presence_contract!(
    an_empty_room_lists_nobody,
    the_first_connection_arrives_and_the_last_departs,
    rooms_are_independent,
    the_list_is_sorted_and_each_user_once,
    concurrent_connections_give_one_arrival_and_one_departure,
);

async fn an_empty_room_lists_nobody(p: &dyn Presence) {
    assert!(p.list("r").await.is_empty());
}

async fn the_first_connection_arrives_and_the_last_departs(p: &dyn Presence) {
    assert!(p.join("r", "alice").await, "first connection: an arrival");
    assert!(
        !p.join("r", "alice").await,
        "second connection: present already"
    );
    assert_eq!(p.list("r").await, ["alice"]);
    assert!(!p.leave("r", "alice").await, "one connection is left");
    assert_eq!(p.list("r").await, ["alice"]);
    assert!(
        p.leave("r", "alice").await,
        "the last connection: a departure"
    );
    assert!(p.list("r").await.is_empty());
    assert!(p.join("r", "alice").await, "back again: an arrival");
    assert!(p.leave("r", "alice").await);
}

async fn rooms_are_independent(p: &dyn Presence) {
    assert!(p.join("r1", "alice").await);
    assert!(p.join("r2", "alice").await, "an arrival in each room");
    assert!(p.join("r2", "bob").await);
    assert_eq!(p.list("r1").await, ["alice"]);
    assert_eq!(p.list("r2").await, ["alice", "bob"]);
    assert!(
        p.leave("r1", "alice").await,
        "gone from r1 while still in r2"
    );
    assert!(p.list("r1").await.is_empty());
    assert_eq!(p.list("r2").await, ["alice", "bob"]);
}

async fn the_list_is_sorted_and_each_user_once(p: &dyn Presence) {
    for user in ["carol", "alice", "bob", "alice"] {
        p.join("r", user).await;
    }
    assert_eq!(p.list("r").await, ["alice", "bob", "carol"]);
}

/// Connections of one user come and go concurrently (as sockets subscribing at once).
async fn concurrent_connections_give_one_arrival_and_one_departure(p: &dyn Presence) {
    const CONNECTIONS: usize = 16;
    let joins = futures_util::future::join_all((0..CONNECTIONS).map(|_| p.join("r", "alice")));
    let arrivals = tokio::time::timeout(WAIT, joins)
        .await
        .expect("joins in time");
    assert_eq!(arrivals.iter().filter(|&&arrived| arrived).count(), 1);
    assert_eq!(p.list("r").await, ["alice"]);
    let leaves = futures_util::future::join_all((0..CONNECTIONS).map(|_| p.leave("r", "alice")));
    let departures = tokio::time::timeout(WAIT, leaves)
        .await
        .expect("leaves in time");
    assert_eq!(departures.iter().filter(|&&departed| departed).count(), 1);
    assert!(p.list("r").await.is_empty());
}

/// Upper bound on a batch of calls (Redis round trips on a busy machine).
const WAIT: Duration = Duration::from_secs(10);
