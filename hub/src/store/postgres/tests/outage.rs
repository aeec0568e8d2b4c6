//! The database goes away (crash of a private server; a silent network) and comes back: every
//! operation fails within the timeout, nothing unstored is acknowledged, and the same store
//! works again afterwards without a restart.

use std::time::{Duration, Instant};

use super::support::{PrivatePostgres, Proxy, TestDb, PG_ADDR};
use super::{connect, msg, new_room, stored_seqs, user};
use crate::store::postgres::{PgConfig, PgStore};
use crate::store::{Page, Store, StoreResult};

const TIMEOUT: Duration = Duration::from_secs(1);
/// Scheduling slack on a loaded two-core machine.
const SLACK: Duration = Duration::from_millis(400);

fn config() -> PgConfig {
    PgConfig {
        timeout: TIMEOUT,
        ..PgConfig::default()
    }
}

/// Asserts that `op` fails as unavailable within the timeout.
async fn fails_in_time<T: std::fmt::Debug>(
    what: &str,
    op: impl std::future::Future<Output = StoreResult<T>>,
) {
    let started = Instant::now();
    let result = op.await;
    let took = started.elapsed();
    let err = result.expect_err(what);
    println!("{what} failed after {took:?}: {err}");
    assert!(err.is_unavailable(), "{what}: {err}");
    assert!(took < TIMEOUT + SLACK, "{what} took {took:?}: {err}");
}

/// Appends until one succeeds: right after an outage the first call may still meet a pooled
/// connection whose death the pool has not seen. Bounded: 50 tries, 100 ms apart.
async fn append_until_ok(store: &PgStore, body: &str) -> u64 {
    let alice = user("alice");
    let mut last_err = None;
    for attempt in 1..=50 {
        match store.append(msg("r", &alice, body, None)).await {
            Ok(a) => {
                println!("recovered at attempt {attempt}");
                return a.seq;
            }
            Err(e) => last_err = Some(e),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("store did not recover: {last_err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_recovers_after_the_database_crashes_and_restarts() {
    let server = PrivatePostgres::start().await;
    let store = connect(&server.url("postgres"), config()).await.unwrap();
    new_room(&store, "r").await;
    let alice = user("alice");
    let first = store
        .append(msg("r", &alice, "before", None))
        .await
        .unwrap();
    assert_eq!(first.seq, 1);

    server.stop_immediately().await;
    fails_in_time("append", store.append(msg("r", &alice, "during", None))).await;
    fails_in_time("room", store.room("r")).await;
    fails_in_time("members", store.members("r")).await;

    server.start_again().await;
    assert_eq!(
        append_until_ok(&store, "after").await,
        2,
        "the failed append took no seq"
    );
    let third = store
        .append(msg("r", &alice, "after 2", None))
        .await
        .unwrap();
    assert_eq!(third.seq, 3);
    let bodies: Vec<String> = store
        .messages(
            "r",
            Page {
                before: None,
                after: None,
                limit: 10,
            },
        )
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.body)
        .collect();
    assert_eq!(bodies, ["before", "after", "after 2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_fails_every_operation_within_the_timeout() {
    let db = TestDb::create().await;
    let proxy = Proxy::start(PG_ADDR).await;
    let url = db.url_via(proxy.addr);
    let store = connect(&url, config()).await.unwrap();
    new_room(&store, "r").await;
    let alice = user("alice");
    assert_eq!(
        store
            .append(msg("r", &alice, "before", None))
            .await
            .unwrap()
            .seq,
        1
    );

    proxy.freeze();
    // Concurrently, so several pooled connections (and new ones) hang at once.
    tokio::join!(
        fails_in_time(
            "append",
            store.append(msg("r", &alice, "during", Some("k")))
        ),
        fails_in_time("room", store.room("r")),
        fails_in_time("membership", store.membership("r", &alice.id)),
        fails_in_time("set_read", store.set_read("r", &alice.id, 1)),
        fails_in_time("connect", connect(&url, config())),
    );
    // Another batch while still frozen: the writer is not stuck behind the first one.
    fails_in_time(
        "second append",
        store.append(msg("r", &alice, "during 2", None)),
    )
    .await;

    proxy.thaw();
    assert_eq!(
        append_until_ok(&store, "after").await,
        2,
        "nothing unacked was stored"
    );
    let retried = store
        .append(msg("r", &alice, "during", Some("k")))
        .await
        .unwrap();
    assert_eq!((retried.seq, retried.duplicate), (3, false));
    assert_eq!(stored_seqs(&store, "r").await, [1, 2, 3]);
    drop(store);
    drop(proxy);
}
