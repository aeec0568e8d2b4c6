//! Fanout on one node: `Registry::deliver` queues one `message` event to each of N local
//! subscribers of a room (N = 1, 100, 10,000), the step between the broker and the
//! connections' writers. Throughput is in deliveries (elements).
//!
//! Run with `cargo bench -p switchboard-hub --bench fanout` (add `-- --quick` for a short run).
//!
//! Each timed stretch delivers [`CHUNK`] events with ascending seqs (as the broker does); the
//! queues are then drained, untimed, as the writers would, so no queue ever fills.
//!
//! The metrics are live, as on a node with `--metrics-listen` (the default): each event is a
//! message committed on this node, so the fanout counts it and the drain, like a writer, takes
//! its part of the fanout latency. `SWITCHBOARD_BENCH_METRICS=off` runs with no-op handles.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use switchboard_hub::bench::{outbox, Receiver};
use switchboard_hub::bench::{ConnHandle, Event, HubMetrics, KillSwitch, Out, Registry};
use switchboard_protocol::ws::Message;

/// The hub's defaults (`--outbound-queue-len`, `--outbound-queue-bytes`, `--hot-window`).
const QUEUE_LEN: usize = 1024;
const QUEUE_BYTES: usize = 1 << 20;
const HOT_WINDOW: usize = 256;
/// Events delivered between two drains: well below `QUEUE_LEN` frames and `QUEUE_BYTES`.
const CHUNK: u64 = 256;
/// Subscribers of the room in each case.
const SUBSCRIBERS: [usize; 3] = [1, 100, 10_000];

/// A room with `n` subscribed connections; the receivers stand in for their writers.
struct Room {
    registry: Registry,
    room: Arc<str>,
    queues: Vec<(Receiver<Out>, Arc<AtomicUsize>)>,
    next_seq: u64,
}

impl Room {
    fn new(n: usize) -> Self {
        let metrics = match std::env::var("SWITCHBOARD_BENCH_METRICS").as_deref() {
            Ok("off") => HubMetrics::disabled(),
            _ => HubMetrics::new(&switchboard_kit::metrics::Registry::new()),
        };
        let registry = Registry::new()
            .with_metrics(metrics)
            .with_queue_bytes(QUEUE_BYTES)
            .with_hot_window(HOT_WINDOW);
        let room: Arc<str> = Arc::from("01JD8X0ROOM");
        let mut queues = Vec::with_capacity(n);
        for i in 0..n {
            let (tx, rx) = outbox(QUEUE_LEN);
            let queued = Arc::new(AtomicUsize::new(0));
            let id = registry.add_conn(ConnHandle {
                tx,
                kill: Arc::new(KillSwitch::default()),
                user: Some(Arc::from(format!("user-{i}"))),
                username: None,
                session: Arc::from(format!("session-{i}")),
                queued: queued.clone(),
            });
            assert!(registry.subscribe(id, &room, None));
            queues.push((rx, queued));
        }
        Self {
            registry,
            room,
            queues,
            next_seq: 1,
        }
    }

    /// A `message` event with the next seq and a body of about 100 bytes, serialised once.
    fn event(&mut self) -> Arc<Event> {
        let seq = self.next_seq;
        self.next_seq += 1;
        Arc::new(Event::committed(
            Message {
                room: self.room.to_string(),
                seq,
                from: "alice".to_owned(),
                body:
                    "Meeting moved to 3pm in the small room; bring the Q3 numbers and the draft of \
                   the launch plan, please"
                        .to_owned(),
                ts: 1_763_780_000_000,
                client_msg_id: Some(format!("c-{seq}")),
                edited_ts: None,
                deleted: false,
                bot: false,
                attachments: Vec::new(),
            },
            Instant::now(),
        ))
    }

    /// Empties every queue, as the writers would, and checks that nothing was refused.
    fn drain(&mut self, per_queue: u64) {
        for (rx, queued) in &mut self.queues {
            let mut n = 0;
            while let Some(out) = rx.try_recv() {
                let Out::Event(event) = out else {
                    panic!("only events are queued");
                };
                // What a writer does once it has written the event.
                std::hint::black_box(event.handled());
                n += 1;
            }
            assert_eq!(n, per_queue, "a subscriber missed events (killed as slow?)");
            queued.store(0, Ordering::Relaxed);
        }
    }
}

fn fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("fanout");
    for n in SUBSCRIBERS {
        let mut room = Room::new(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter_custom(|iters| {
                let mut elapsed = Duration::ZERO;
                let mut left = iters;
                while left > 0 {
                    let chunk = left.min(CHUNK);
                    let events: Vec<_> = (0..chunk).map(|_| room.event()).collect();
                    let start = Instant::now();
                    for event in &events {
                        room.registry.deliver(event);
                    }
                    elapsed += start.elapsed();
                    room.drain(chunk);
                    left -= chunk;
                }
                elapsed
            })
        });
    }
    group.finish();
}

criterion_group!(benches, fanout);
criterion_main!(benches);
