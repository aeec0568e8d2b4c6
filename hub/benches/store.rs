//! Persistence: appending a batch of [`BATCH`] messages, spread over [`ROOMS`] rooms, through the
//! `Store` trait. Throughput is in messages (elements) per batch.
//!
//! - `store_batch/postgres`: the [`BATCH`] appends are issued at once, so `PgStore`'s batch
//!   writers store them in one transaction each (`--batch-max-size` is 512; the rooms are
//!   sharded over the default `--pg-writers`); the bench prints the writers' batches, messages
//!   and mean time per transaction at the end to show it. Runs in a fresh database
//!   `sb_test_<uuid>` on 127.0.0.1:5432 (user `postgres`, trust), dropped at the end; when
//!   PostgreSQL does not answer, the group is skipped with a note.
//! - `store_batch/postgres_webhooks`: the same with an endpoint receiving `message.created`, so
//!   each message also inserts its delivery job in the batch's transaction.
//! - `store_batch/sqlite`: SQLite has no batch path (one durable transaction per `append`, WAL
//!   with `synchronous=FULL`), so the same [`BATCH`] appends run one after another, as one
//!   room's sends do. The database is a temporary file.
//!
//! Run with `cargo bench -p switchboard-hub --bench store` (add `-- --quick` for a short run).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{
    criterion_group, criterion_main, BenchmarkGroup, Criterion, SamplingMode, Throughput,
};
use futures_util::future::try_join_all;
use switchboard_hub::bench::SqliteStore;
use switchboard_hub::bench::{CommitSender, NewMessage, NewRoom, Store, UserRef};
use switchboard_hub::bench::{PgConfig, PgStore};
use switchboard_testkit::services::{TestDatabase, PG_ADMIN_URL};
use tokio::runtime::Runtime;

/// Messages per batch: the hub's default `--batch-max-size`.
const BATCH: usize = 512;
/// Rooms the batch's messages are spread over (round robin).
const ROOMS: usize = 16;
/// A chat line of about 100 bytes.
const BODY: &str = "Meeting moved to 3pm in the small room; bring the Q3 numbers and the draft of the launch plan, please";

/// Ensures `client_msg_id`s never repeat across batches (a repeat would store nothing).
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

fn sender() -> UserRef {
    UserRef {
        id: "0190e7a1-0000-7000-8000-000000000001".to_owned(),
        username: "alice".to_owned(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A commit channel nobody receives from: the stores drop what they would hand to the fanout,
/// so the figure is the store's alone.
fn discard_commits() -> CommitSender {
    tokio::sync::mpsc::channel(1).0
}

fn room_id(i: usize) -> String {
    format!("bench-room-{i:02}")
}

async fn create_rooms(store: &dyn Store) {
    for i in 0..ROOMS {
        store
            .create_room(NewRoom {
                id: room_id(i),
                name: format!("bench {i}"),
                public: true,
                creator: sender(),
                ts: now_ms(),
            })
            .await
            .expect("create a room");
    }
}

/// The next batch: [`BATCH`] messages with fresh `client_msg_id`s, round robin over the rooms.
fn batch() -> Vec<NewMessage> {
    let ts = now_ms();
    (0..BATCH)
        .map(|i| NewMessage {
            room: room_id(i % ROOMS),
            sender: sender(),
            body: BODY.to_owned(),
            client_msg_id: Some(format!("c-{}", NEXT_ID.fetch_add(1, Ordering::Relaxed))),
            ts,
            attachments: Vec::new(),
        })
        .collect()
}

/// Few samples, each of the same number of batches (flat sampling): a batch takes milliseconds
/// (PostgreSQL) to a second or more (SQLite, an fsync per message), not nanoseconds.
fn configure(group: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>, time: Duration) {
    group.sampling_mode(SamplingMode::Flat);
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(time);
    group.throughput(Throughput::Elements(BATCH as u64));
}

fn sqlite(c: &mut Criterion, runtime: &Runtime) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = runtime
        .block_on(SqliteStore::open(
            &dir.path().join("hub.db"),
            now_ms(),
            discard_commits(),
        ))
        .expect("open SQLite");
    runtime.block_on(create_rooms(&store));
    let mut group = c.benchmark_group("store_batch");
    // Every append is a durable commit (an fsync): 0.4 to 1.4 s per batch on the 2-core
    // machine, so ten samples need about this long.
    configure(&mut group, Duration::from_secs(15));
    let store = &store;
    group.bench_function("sqlite", |b| {
        b.to_async(runtime).iter_batched(
            batch,
            |messages| async move {
                for msg in messages {
                    store.append(msg).await.expect("append");
                }
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// Whether the shared PostgreSQL answers within a second.
async fn postgres_reachable() -> bool {
    let connect = tokio_postgres::connect(PG_ADMIN_URL, tokio_postgres::NoTls);
    match tokio::time::timeout(Duration::from_secs(1), connect).await {
        Ok(Ok(_)) => true,
        Ok(Err(err)) => {
            eprintln!("note: skipping store_batch/postgres: PostgreSQL at {PG_ADMIN_URL}: {err}");
            false
        }
        Err(_) => {
            eprintln!(
                "note: skipping store_batch/postgres: PostgreSQL at {PG_ADMIN_URL} did not answer"
            );
            false
        }
    }
}

/// A webhook registry with one endpoint receiving `message.created`: every stored message then
/// also inserts a delivery job in its batch's transaction (one more round trip per batch).
fn message_webhooks() -> switchboard_webhooks::Registry {
    let registry = switchboard_webhooks::Registry::new();
    registry.replace(vec![switchboard_webhooks::Endpoint {
        id: "bench".into(),
        url: "http://127.0.0.1:9/".into(),
        secret: "s".repeat(16),
        events: [switchboard_webhooks::EventType::MessageCreated]
            .into_iter()
            .collect(),
        enabled: true,
    }]);
    registry
}

/// `store_batch/postgres`, or with `webhooks` `store_batch/postgres_webhooks`: the same batches
/// with an endpoint receiving every message.
fn postgres(c: &mut Criterion, runtime: &Runtime, webhooks: bool) {
    if !runtime.block_on(postgres_reachable()) {
        return;
    }
    let db = runtime.block_on(TestDatabase::create());
    let store = runtime
        .block_on(PgStore::connect(
            &db.url,
            PgConfig::default(),
            discard_commits(),
        ))
        .expect("connect the PostgreSQL store");
    if webhooks {
        store.webhooks().set(
            message_webhooks(),
            std::sync::Arc::new(tokio::sync::Notify::new()),
        );
    }
    runtime.block_on(create_rooms(&store));
    let before = store.stats();
    let mut group = c.benchmark_group("store_batch");
    configure(&mut group, Duration::from_secs(5));
    let store_ref = &store;
    let name = if webhooks {
        "postgres_webhooks"
    } else {
        "postgres"
    };
    group.bench_function(name, |b| {
        b.to_async(runtime).iter_batched(
            batch,
            |messages| async move {
                try_join_all(messages.into_iter().map(|msg| store_ref.append(msg)))
                    .await
                    .expect("append");
            },
            criterion::BatchSize::PerIteration,
        )
    });
    group.finish();
    let after = store.stats();
    let (batches, messages) = (
        after.batches - before.batches,
        after.messages - before.messages,
    );
    let busy = after.busy_micros - before.busy_micros;
    eprintln!(
        "postgres batch writers: {messages} messages in {batches} transactions ({:.0} per transaction, {:.2} ms each)",
        messages as f64 / batches.max(1) as f64,
        busy as f64 / 1000.0 / batches.max(1) as f64
    );
    // Stop the batch writer and close the pool before the database is dropped.
    drop(store);
    runtime.block_on(async { tokio::time::sleep(Duration::from_millis(100)).await });
    drop(db);
}

fn store_batch(c: &mut Criterion) {
    // The hub's runtime on this machine: a worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    sqlite(c, &runtime);
    postgres(c, &runtime, false);
    postgres(c, &runtime, true);
}

criterion_group!(benches, store_batch);
criterion_main!(benches);
