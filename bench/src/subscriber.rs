//! A group of subscriber sockets: opened at a bounded rate and concurrency, each reading its
//! room until told to finish, recording latency and which stamps it saw.
//!
//! A group lives in the bench's own process or in a worker process ([`crate::worker`]); both
//! drive it the same way: [`Group::open`] (returns [`Ready`] once every socket is subscribed
//! or has failed), then [`Group::finish`] with what the publishers sent (returns
//! [`GroupResult`] once every subscriber has everything it is owed or the drain time is up).
//!
//! Subscriber number `g` (a global index across all groups) reads room `g / per_room`, uses
//! URL `g mod urls` and source address `g mod sources`, so a job split over processes
//! connects exactly as the same job in one process would.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::net::{self, Incoming, SocketOptions, WsStream};
use crate::payload;
use crate::stats::{Latency, StreamExpect, SubscriberSeen, Tally};
use crate::target::SubscriberSpec;

/// Latencies a subscriber buffers before adding them to the group's histogram.
const LATENCY_BATCH: usize = 256;

/// Bound on opening and subscribing one socket.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// What a group opens.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubscriberJob {
    pub spec: SubscriberSpec,
    /// Room names by room index.
    pub rooms: Vec<String>,
    /// Global index of this group's first subscriber.
    pub first: usize,
    /// Subscribers in this group.
    pub count: usize,
    /// Subscribers per room (subscriber `g` reads room `g / per_room`).
    pub per_room: usize,
    /// Local addresses to bind, round-robin by global index (empty: the kernel chooses).
    pub source_ips: Vec<IpAddr>,
    pub read_buffer: usize,
    /// New connections per second for this group; 0: as fast as `concurrency` allows.
    pub connect_rate: f64,
    /// Connections being opened at once.
    pub concurrency: usize,
}

/// A group's answer once every socket is subscribed or failed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub opened: usize,
    pub failed: usize,
    pub first_error: Option<String>,
    /// Wall-clock µs when the group began connecting and when its last attempt ended.
    pub started_us: u64,
    pub finished_us: u64,
}

/// What the publishers did, by stream (= room index), and how long to wait for stragglers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finish {
    pub expect: Vec<StreamExpect>,
    pub drain_ms: u64,
}

/// A group's result.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupResult {
    pub subscribers: usize,
    pub tally: Tally,
    /// Subscribers whose connection ended before the finish (e.g. 4000 slow consumer).
    pub disconnected: u64,
    /// Error frames received.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latency histogram as `[µs, count]` pairs.
    pub latency: Vec<[u64; 2]>,
    /// Wall-clock µs of the first and last stamped delivery (0 when none).
    pub first_delivery_us: u64,
    pub last_delivery_us: u64,
}

/// State the subscriber tasks share.
struct Shared {
    latency: Mutex<Latency>,
    first_delivery_us: AtomicU64,
    last_delivery_us: AtomicU64,
    errors: AtomicU64,
    disconnected: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            latency: Mutex::default(),
            // fetch_min target: MAX means "no delivery yet".
            first_delivery_us: AtomicU64::new(u64::MAX),
            last_delivery_us: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            disconnected: AtomicU64::new(0),
            first_error: Mutex::default(),
        }
    }
}

impl Shared {
    fn note_error(&self, error: String) {
        let mut first = self.first_error.lock().expect("not poisoned");
        first.get_or_insert(error);
    }
}

/// Open subscribers, reading.
pub struct Group {
    tasks: JoinSet<Tally>,
    finish_tx: watch::Sender<Option<Arc<Finish>>>,
    shared: Arc<Shared>,
    subscribers: usize,
}

impl Group {
    /// Opens every subscriber of `job` (on the current runtime) and waits until each is
    /// subscribed or has failed.
    pub async fn open(job: SubscriberJob) -> (Group, Ready) {
        let started_us = payload::now_us();
        let job = Arc::new(job);
        let shared = Arc::new(Shared::default());
        let (finish_tx, finish_rx) = watch::channel(None);
        let (ready_tx, mut ready_rx) = mpsc::unbounded_channel();
        let gate = Arc::new(Semaphore::new(job.concurrency.max(1)));
        let start = Instant::now();
        let mut tasks = JoinSet::new();
        for i in 0..job.count {
            let due = if job.connect_rate > 0.0 {
                start + Duration::from_secs_f64(i as f64 / job.connect_rate)
            } else {
                start
            };
            tasks.spawn(subscriber(Subscriber {
                job: job.clone(),
                index: job.first + i,
                due,
                gate: gate.clone(),
                ready: ready_tx.clone(),
                finish: finish_rx.clone(),
                shared: shared.clone(),
            }));
        }
        drop(ready_tx);
        let mut ready = Ready {
            started_us,
            ..Ready::default()
        };
        while let Some(outcome) = ready_rx.recv().await {
            match outcome {
                Ok(()) => ready.opened += 1,
                Err(error) => {
                    ready.failed += 1;
                    ready.first_error.get_or_insert(error);
                }
            }
        }
        ready.finished_us = payload::now_us();
        let group = Group {
            tasks,
            finish_tx,
            shared,
            subscribers: job.count,
        };
        (group, ready)
    }

    /// Tells every subscriber what it is owed; waits until each has it all or `drain_ms`
    /// passed; closes the sockets.
    pub async fn finish(mut self, finish: Finish) -> GroupResult {
        let _ = self.finish_tx.send(Some(Arc::new(finish)));
        let mut tally = Tally::default();
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok(t) => tally.add(&t),
                Err(err) => self.shared.note_error(format!("subscriber task: {err}")),
            }
        }
        let shared = &self.shared;
        GroupResult {
            subscribers: self.subscribers,
            tally,
            disconnected: shared.disconnected.load(Ordering::Relaxed),
            errors: shared.errors.load(Ordering::Relaxed),
            first_error: shared.first_error.lock().expect("not poisoned").clone(),
            latency: shared.latency.lock().expect("not poisoned").to_pairs(),
            first_delivery_us: match shared.first_delivery_us.load(Ordering::Relaxed) {
                u64::MAX => 0,
                us => us,
            },
            last_delivery_us: shared.last_delivery_us.load(Ordering::Relaxed),
        }
    }
}

/// One subscriber's inputs.
struct Subscriber {
    job: Arc<SubscriberJob>,
    index: usize,
    due: Instant,
    gate: Arc<Semaphore>,
    ready: mpsc::UnboundedSender<Result<(), String>>,
    finish: watch::Receiver<Option<Arc<Finish>>>,
    shared: Arc<Shared>,
}

/// Opens, subscribes, then reads until finished. Returns its tally (nothing owed when it never
/// subscribed: a failed connection is reported in [`Ready`], not as loss).
async fn subscriber(mut me: Subscriber) -> Tally {
    tokio::time::sleep_until(me.due).await;
    let room_index = me.index / me.job.per_room.max(1);
    let opened = {
        let _permit = me.gate.acquire().await.expect("the gate is never closed");
        tokio::time::timeout(CONNECT_TIMEOUT, open_one(&me.job, me.index, room_index))
            .await
            .unwrap_or_else(|_| Err("timed out opening and subscribing".into()))
    };
    let mut ws = match opened {
        Ok(ws) => {
            let _ = me.ready.send(Ok(()));
            ws
        }
        Err(error) => {
            let _ = me.ready.send(Err(error));
            return Tally::default();
        }
    };
    drop(me.ready);

    let spec = &me.job.spec;
    let mut seen = SubscriberSeen::new(room_index as u32);
    let mut latencies: Vec<u64> = Vec::new();
    let (mut first_us, mut last_us) = (u64::MAX, 0u64);
    let mut finish: Option<(Arc<Finish>, Instant)> = None;
    let mut closed = false;
    loop {
        if let Some((f, _)) = &finish {
            if seen.complete(f.expect.get(room_index).unwrap_or(&StreamExpect::default())) {
                break;
            }
        }
        let deadline = finish.as_ref().map(|(_, d)| *d);
        tokio::select! {
            incoming = net::next_text(&mut ws) => match incoming {
                Ok(Incoming::Text(text)) => {
                    if let Some(stamp) = payload::find(&text) {
                        let now = payload::now_us();
                        first_us = first_us.min(now);
                        last_us = now;
                        seen.record(stamp.stream, stamp.counter);
                        latencies.push(now.saturating_sub(stamp.sent_us));
                        if latencies.len() >= LATENCY_BATCH {
                            flush_latencies(&me.shared, &mut latencies);
                        }
                    } else if let Some(reply) = spec.reply_to(&text) {
                        if let Err(err) = net::send_text(&mut ws, reply).await {
                            me.shared.note_error(format!("reply: {err}"));
                        }
                    } else if spec.is_error(&text) {
                        me.shared.errors.fetch_add(1, Ordering::Relaxed);
                        me.shared.note_error(text.as_str().to_owned());
                    }
                }
                Ok(Incoming::Closed(code)) => {
                    me.shared.note_error(format!("subscriber closed by the server (code {code:?})"));
                    closed = true;
                    break;
                }
                Err(err) => {
                    me.shared.note_error(format!("subscriber: {err}"));
                    closed = true;
                    break;
                }
            },
            changed = me.finish.changed(), if finish.is_none() => {
                if changed.is_err() {
                    break; // the group is gone
                }
                if let Some(f) = me.finish.borrow_and_update().clone() {
                    let drain = Duration::from_millis(f.drain_ms);
                    finish = Some((f, Instant::now() + drain));
                }
            }
            () = sleep_until_opt(deadline) => break,
        }
    }
    if closed && finish.is_none() {
        me.shared.disconnected.fetch_add(1, Ordering::Relaxed);
    }
    flush_latencies(&me.shared, &mut latencies);
    if !closed {
        // Best effort: a close frame, no wait for the answer.
        let _ = tokio::time::timeout(Duration::from_millis(500), ws.close(None)).await;
    }
    // Without a finish (the group was dropped) nothing is owed.
    let expect = finish
        .as_ref()
        .and_then(|(f, _)| f.expect.get(room_index).cloned());
    if seen.deliveries > 0 {
        me.shared
            .first_delivery_us
            .fetch_min(first_us, Ordering::Relaxed);
        me.shared
            .last_delivery_us
            .fetch_max(last_us, Ordering::Relaxed);
    }
    seen.tally(expect.as_ref())
}

/// Connects subscriber `index` and subscribes it to room `room_index`.
async fn open_one(
    job: &SubscriberJob,
    index: usize,
    room_index: usize,
) -> Result<WsStream, String> {
    let room = job
        .rooms
        .get(room_index)
        .ok_or_else(|| format!("no room {room_index} for subscriber {index}"))?;
    let opts = SocketOptions {
        bind: (!job.source_ips.is_empty()).then(|| job.source_ips[index % job.source_ips.len()]),
        read_buffer: job.read_buffer,
    };
    let url = job.spec.url(index);
    let mut ws = net::open(url, job.spec.subprotocol(), &opts)
        .await
        .map_err(|err| format!("connect {url}: {err}"))?;
    job.spec
        .subscribe(&mut ws, room)
        .await
        .map_err(|err| format!("subscribe {url}: {err}"))?;
    Ok(ws)
}

fn flush_latencies(shared: &Shared, latencies: &mut Vec<u64>) {
    if latencies.is_empty() {
        return;
    }
    let mut hist = shared.latency.lock().expect("not poisoned");
    for us in latencies.drain(..) {
        hist.record(us);
    }
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
